//! dual's own files on the host (its state, caches, accounts files, shims,
//! rc files): how they are replaced whole and how they are locked, done one
//! way everywhere. A clone's files are `confined`'s business, never this
//! module's: a repo controls those.
//!
//! A write goes to a temporary file in the same directory, which is synced
//! and renamed over the name, and then the directory is synced too: a reader
//! sees the old file or the new one, and after a crash the name holds one of
//! them whole, never an empty or half-written file.
//!
//! A lock is `flock` on a file beside what it guards. The exclusive holder
//! writes its pid into it, so that a waiter can say who holds it.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

/// How often a waiting lock tries again.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// Replaces `path` with `bytes`, readable by its owner only (as a new
/// `tempfile` is). The directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with_mode(path, bytes, 0o600)
}

/// Replaces `path` with `bytes`, with permissions `mode` from the start (a
/// shim is executable the moment it has its name).
pub fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a path with no file name"))?;
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    // The rename is in the directory: sync it, or a crash can lose it.
    File::open(dir)?.sync_all()
}

/// Like [`write_atomic_with_mode`], but leaves a file that holds `bytes`
/// already untouched (no new inode for a shell reading it right now).
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let same = std::fs::read(path).is_ok_and(|existing| existing == bytes)
        && std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o777 == mode);
    if same {
        return Ok(());
    }
    write_atomic_with_mode(path, bytes, mode)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Who holds a lock: the pid its exclusive holder wrote, when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder(pub Option<u32>);

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pid) => write!(f, "pid {pid}"),
            None => write!(f, "another process"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("`{}` is held by {holder}", .path.display())]
    Held { path: PathBuf, holder: Holder },
    #[error("`{}` was still held by {holder} after {}s", .path.display(), .waited.as_secs())]
    TimedOut {
        path: PathBuf,
        holder: Holder,
        waited: Duration,
    },
    #[error("could not {action} the lock file `{}`", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LockError {
    /// Who held the lock, when that is why it was not taken.
    pub fn holder(&self) -> Option<Holder> {
        match self {
            LockError::Held { holder, .. } | LockError::TimedOut { holder, .. } => Some(*holder),
            LockError::Io { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exclusive,
    Shared,
}

/// A held `flock`; dropping it (closing the file) lets it go.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// The exclusive lock on `path` (created with its directories if
    /// missing), now or never.
    pub fn try_exclusive(path: &Path) -> Result<Lock, LockError> {
        Lock::take(path, Kind::Exclusive, Duration::ZERO)
    }

    /// The exclusive lock, waiting up to `wait` for its holder to let go.
    pub fn exclusive(path: &Path, wait: Duration) -> Result<Lock, LockError> {
        Lock::take(path, Kind::Exclusive, wait)
    }

    /// A shared lock on `path`, now or never: free while no exclusive
    /// holder has it.
    pub fn try_shared(path: &Path) -> Result<Lock, LockError> {
        Lock::take(path, Kind::Shared, Duration::ZERO)
    }

    /// A shared lock, waiting up to `wait` for an exclusive holder.
    pub fn shared(path: &Path, wait: Duration) -> Result<Lock, LockError> {
        Lock::take(path, Kind::Shared, wait)
    }

    /// Who holds the exclusive lock on `path` now, without taking it (nor
    /// creating the file): `None` when nobody does.
    pub fn holder_of(path: &Path) -> Option<Holder> {
        let file = File::open(path).ok()?;
        match flock(&file, FlockOperation::NonBlockingLockShared) {
            Ok(()) => None,
            Err(_) => Some(read_holder(path)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    fn take(path: &Path, kind: Kind, wait: Duration) -> Result<Lock, LockError> {
        let io = |action, source| LockError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(parent(path))
            .map_err(|source| io("create the directory of", source))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| io("open", source))?;
        let operation = match kind {
            Kind::Exclusive => FlockOperation::NonBlockingLockExclusive,
            Kind::Shared => FlockOperation::NonBlockingLockShared,
        };
        let deadline = Instant::now() + wait;
        loop {
            match flock(&file, operation) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    if Instant::now() >= deadline {
                        let holder = read_holder(path);
                        return Err(if wait.is_zero() {
                            LockError::Held {
                                path: path.to_owned(),
                                holder,
                            }
                        } else {
                            LockError::TimedOut {
                                path: path.to_owned(),
                                holder,
                                waited: wait,
                            }
                        });
                    }
                    std::thread::sleep(LOCK_POLL);
                }
                Err(errno) => return Err(io("lock", errno.into())),
            }
        }
        if kind == Kind::Exclusive {
            // Best effort: the pid only names the holder in a waiter's error.
            let mut named = &file;
            let _ = file.set_len(0);
            let _ = write!(named, "{}", std::process::id());
        }
        Ok(Lock {
            file,
            path: path.to_owned(),
        })
    }
}

fn read_holder(path: &Path) -> Holder {
    Holder(
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "old and longer than the new text").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn an_atomic_write_gives_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("npm");
        write_if_changed(&path, b"#!/bin/sh\n", 0o755).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        write_if_changed(&path, b"#!/bin/sh\n", 0o755).unwrap();
        let again = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        assert_eq!(inode, again, "an unchanged file was replaced");
    }

    #[test]
    fn a_write_into_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/file");
        assert!(write_atomic(&path, b"x").is_err());
    }

    #[test]
    fn an_exclusive_lock_names_its_holder_and_excludes_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/state.lock");
        let held = Lock::try_exclusive(&path).unwrap();
        let me = Holder(Some(std::process::id()));
        assert_eq!(Lock::holder_of(&path), Some(me));
        // flock locks belong to the open file: a second open is a second
        // holder, even in the same process.
        let error = Lock::try_exclusive(&path).unwrap_err();
        assert!(matches!(error, LockError::Held { .. }), "{error}");
        assert_eq!(error.holder(), Some(me));
        assert!(
            error
                .to_string()
                .contains(&format!("pid {}", std::process::id()))
        );
        let error = Lock::exclusive(&path, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(error, LockError::TimedOut { .. }), "{error}");
        assert!(Lock::try_shared(&path).is_err());
        drop(held);
        assert_eq!(Lock::holder_of(&path), None);
        let first = Lock::try_shared(&path).unwrap();
        let second = Lock::shared(&path, Duration::from_millis(100)).unwrap();
        assert!(Lock::try_exclusive(&path).is_err());
        drop((first, second));
        Lock::try_exclusive(&path).unwrap();
    }

    #[test]
    fn a_waiting_lock_is_taken_once_its_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("launch.lock");
        let held = Lock::try_exclusive(&path).unwrap();
        let (taken_tx, taken) = std::sync::mpsc::channel();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let lock = Lock::exclusive(&path, Duration::from_secs(20));
                taken_tx.send(()).unwrap();
                lock
            })
        };
        // Not taken while held: the waiter is still waiting after a while.
        assert!(taken.recv_timeout(Duration::from_millis(200)).is_err());
        drop(held);
        taken.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap().unwrap();
    }
}
