//! File operations confined to one directory that never follow a link.
//!
//! A workspace's clone, its logs and its home are written by its container,
//! which the repo controls: any name in them may be a symbolic link to a
//! host file (`.env.local -> ~/.bashrc`), a directory link that leads out
//! (`conf -> ~/.ssh`), a hard link to another file of the same filesystem,
//! or a FIFO that blocks a reader. So dual resolves such paths one component
//! at a time from a directory it opened itself (`openat` with `O_NOFOLLOW`),
//! refuses a link wherever one appears and says which path, reads only
//! regular files, and writes by creating a new file and renaming it over the
//! old name, so that a hard link's other names are never written through.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    #[error("`{}` is a symbolic link; dual does not follow links here", .0.display())]
    Link(PathBuf),
    #[error("`{}` is not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("`{}` is larger than {limit} bytes", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("`{}` is not a relative path inside `{}`", .path.display(), .root.display())]
    Outside { path: PathBuf, root: PathBuf },
    #[error("could not access `{}`", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConfinedError {
    /// The file was not there (as opposed to being refused).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ConfinedError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    fn io(path: &Path, source: impl Into<std::io::Error>) -> ConfinedError {
        ConfinedError::Io {
            path: path.to_owned(),
            source: source.into(),
        }
    }
}

/// The normal components of `relative`; anything else (`..`, `/`) is refused.
fn components<'p>(root: &Path, relative: &'p Path) -> Result<Vec<&'p Path>, ConfinedError> {
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(Path::new(part)),
            Component::CurDir => {}
            _ => {
                return Err(ConfinedError::Outside {
                    path: relative.to_owned(),
                    root: root.to_owned(),
                });
            }
        }
    }
    if parts.is_empty() {
        return Err(ConfinedError::Outside {
            path: relative.to_owned(),
            root: root.to_owned(),
        });
    }
    Ok(parts)
}

/// Opens the directory `parts` below `root`, one component at a time,
/// creating missing ones when `create` says so.
fn open_dirs(root: &Path, parts: &[&Path], create: bool) -> Result<OwnedFd, ConfinedError> {
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(root, directory, Mode::empty())
        .map_err(|errno| ConfinedError::io(root, errno))?;
    let mut walked = root.to_path_buf();
    for part in parts {
        walked.push(part);
        let opened = rustix::fs::openat(&dir, *part, directory | OFlags::NOFOLLOW, Mode::empty());
        let opened = match opened {
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&dir, *part, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(errno) => return Err(ConfinedError::io(&walked, errno)),
                }
                rustix::fs::openat(&dir, *part, directory | OFlags::NOFOLLOW, Mode::empty())
            }
            other => other,
        };
        dir = opened.map_err(|errno| refusal(&dir, part, &walked, errno))?;
    }
    Ok(dir)
}

/// What an `openat` with `O_NOFOLLOW` failing with `errno` means.
fn refusal(dir: &OwnedFd, name: &Path, path: &Path, errno: Errno) -> ConfinedError {
    match errno {
        Errno::LOOP => ConfinedError::Link(path.to_owned()),
        Errno::NOTDIR => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
                ConfinedError::Link(path.to_owned())
            }
            _ => ConfinedError::NotADirectory(path.to_owned()),
        },
        other => ConfinedError::io(path, other),
    }
}

/// Opens a regular file for reading, with its size and permission bits.
pub fn open(root: &Path, relative: &Path) -> Result<(File, u64, u32), ConfinedError> {
    let parts = components(root, relative)?;
    let (name, parents) = parts.split_last().expect("components are never empty");
    let dir = open_dirs(root, parents, false)?;
    let path = root.join(relative);
    // O_NONBLOCK: opening a FIFO planted there must not hang dual.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&dir, *name, flags, Mode::empty())
        .map_err(|errno| refusal(&dir, name, &path, errno))?;
    let stat = rustix::fs::fstat(&fd).map_err(|errno| ConfinedError::io(&path, errno))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(ConfinedError::NotAFile(path));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
    Ok((File::from(fd), size, stat.st_mode & 0o777))
}

/// A regular file's bytes (at most `limit`) and its permission bits.
pub fn read(root: &Path, relative: &Path, limit: u64) -> Result<(Vec<u8>, u32), ConfinedError> {
    let (file, size, mode) = open(root, relative)?;
    let path = || root.join(relative);
    if size > limit {
        return Err(ConfinedError::TooLarge {
            path: path(),
            limit,
        });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| ConfinedError::io(&path(), error))?;
    if bytes.len() as u64 > limit {
        return Err(ConfinedError::TooLarge {
            path: path(),
            limit,
        });
    }
    Ok((bytes, mode))
}

/// A regular file's text, as `read`, with invalid UTF-8 replaced.
pub fn read_text(root: &Path, relative: &Path, limit: u64) -> Result<String, ConfinedError> {
    let (bytes, _) = read(root, relative, limit)?;
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()))
}

/// Writes `bytes` as `relative` below `root` (creating its directories),
/// by renaming a new file over the name: never through a link. An existing
/// link or directory at the name is refused.
pub fn write(root: &Path, relative: &Path, bytes: &[u8], mode: u32) -> Result<(), ConfinedError> {
    let parts = components(root, relative)?;
    let (name, parents) = parts.split_last().expect("components are never empty");
    let dir = open_dirs(root, parents, true)?;
    let path = root.join(relative);
    match rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {}
            FileType::Symlink => return Err(ConfinedError::Link(path)),
            _ => return Err(ConfinedError::NotAFile(path)),
        },
        Err(Errno::NOENT) => {}
        Err(errno) => return Err(ConfinedError::io(&path, errno)),
    }
    let partial = PathBuf::from(format!(".{}.dual-{}", name.display(), std::process::id()));
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let _ = rustix::fs::unlinkat(&dir, &partial, AtFlags::empty());
    let fd = rustix::fs::openat(&dir, &partial, flags, Mode::from_raw_mode(mode & 0o777))
        .map_err(|errno| ConfinedError::io(&path, errno))?;
    let written = {
        let mut file = File::from(fd);
        file.write_all(bytes).and_then(|()| file.sync_all())
    };
    let renamed = written.and_then(|()| {
        rustix::fs::renameat(&dir, &partial, &dir, *name).map_err(std::io::Error::from)
    });
    if let Err(error) = renamed {
        let _ = rustix::fs::unlinkat(&dir, &partial, AtFlags::empty());
        return Err(ConfinedError::io(&path, error));
    }
    // The rename lives in the directory: synced, it survives a crash.
    rustix::fs::fsync(&dir).map_err(|errno| ConfinedError::io(&path, errno))
}

/// Creates the directories of `relative` below `root` that are missing,
/// never through a link.
pub fn create_dirs(root: &Path, relative: &Path) -> Result<(), ConfinedError> {
    let parts = components(root, relative)?;
    open_dirs(root, &parts, true).map(drop)
}

/// Whether `relative` below `root` exists as something (a link counts),
/// without following anything.
pub fn exists(root: &Path, relative: &Path) -> bool {
    let Ok(parts) = components(root, relative) else {
        return false;
    };
    let (name, parents) = parts.split_last().expect("components are never empty");
    open_dirs(root, parents, false)
        .is_ok_and(|dir| rustix::fs::statat(dir.as_fd(), *name, AtFlags::SYMLINK_NOFOLLOW).is_ok())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn reads_and_writes_plain_files() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), Path::new("a/b/.env"), b"X=1\n", 0o600).unwrap();
        let (bytes, mode) = read(root.path(), Path::new("a/b/.env"), 100).unwrap();
        assert_eq!(bytes, b"X=1\n");
        assert_eq!(mode, 0o600);
        write(root.path(), Path::new("a/b/.env"), b"X=2\n", 0o600).unwrap();
        assert_eq!(
            read_text(root.path(), Path::new("./a/b/.env"), 100).unwrap(),
            "X=2\n"
        );
        assert!(exists(root.path(), Path::new("a/b")));
        assert!(
            read(root.path(), Path::new("missing"), 10)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn links_are_refused_wherever_they_are() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "host secret").unwrap();
        symlink(&secret, root.path().join("file")).unwrap();
        symlink(outside.path(), root.path().join("dir")).unwrap();

        let refused = read(root.path(), Path::new("file"), 100).unwrap_err();
        assert!(matches!(refused, ConfinedError::Link(_)), "{refused}");
        let refused = read(root.path(), Path::new("dir/secret"), 100).unwrap_err();
        assert!(matches!(refused, ConfinedError::Link(_)), "{refused}");
        let refused = write(root.path(), Path::new("file"), b"x", 0o644).unwrap_err();
        assert!(
            refused.to_string().contains("is a symbolic link"),
            "{refused}"
        );
        let refused = write(root.path(), Path::new("dir/new"), b"x", 0o644).unwrap_err();
        assert!(matches!(refused, ConfinedError::Link(_)), "{refused}");
        let refused = create_dirs(root.path(), Path::new("dir/a/b")).unwrap_err();
        assert!(matches!(refused, ConfinedError::Link(_)), "{refused}");
        create_dirs(root.path(), Path::new("real/a/b")).unwrap();
        assert!(root.path().join("real/a/b").is_dir());

        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
        assert!(!outside.path().join("new").exists(), "nothing made outside");
        for bad in ["../x", "/etc/passwd", ""] {
            assert!(
                matches!(
                    read(root.path(), Path::new(bad), 10),
                    Err(ConfinedError::Outside { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_hard_link_s_other_name_is_never_written() {
        let root = tempfile::tempdir().unwrap();
        let other = root.path().join("other");
        std::fs::write(&other, "keep").unwrap();
        std::fs::hard_link(&other, root.path().join("linked")).unwrap();
        write(root.path(), Path::new("linked"), b"new", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "keep");
        assert_eq!(
            std::fs::read_to_string(root.path().join("linked")).unwrap(),
            "new"
        );
    }

    #[test]
    fn a_fifo_or_a_huge_file_is_not_read() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(matches!(
            read(root.path(), Path::new("fifo"), 10),
            Err(ConfinedError::NotAFile(_))
        ));
        std::fs::write(root.path().join("big"), vec![b'x'; 100]).unwrap();
        assert!(matches!(
            read(root.path(), Path::new("big"), 10),
            Err(ConfinedError::TooLarge { .. })
        ));
    }
}
