//! The host user as the container should see it. Processes inside run with
//! the host's uid and gid, but an image does not know that uid: `whoami`
//! fails, `$USER` is empty and Python's `getpass.getuser()` raises. dual
//! gives the container passwd and group files with the user's entries
//! first, so that the host's name wins over an image user with the same uid.
//!
//! Nothing runs as root for it, and no program of the image runs at all:
//! dual reads the image's `/etc/passwd` and `/etc/group` once per image (by
//! id, from a container it creates and never starts), writes the merged
//! files into its own store and mounts them read-only. Fresh volumes are
//! handed to the user where the engine makes them root's (docker), by
//! copying a directory entry owned by the user over each mount point. Every
//! process of the container runs as the user from its first instruction.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::engine::{Engine, EngineError, RunSpec, labels};

/// Who runs dual on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub group: String,
}

impl HostUser {
    /// The user with `ids`, named from the host's passwd and group
    /// databases; `None` where the host itself has no name for the uid.
    pub fn lookup(ids: (u32, u32)) -> Option<HostUser> {
        let (uid, gid) = ids;
        let name = user_name(uid)?;
        let group = group_name(gid).unwrap_or_else(|| name.clone());
        Some(HostUser {
            name,
            uid,
            gid,
            group,
        })
    }

    /// As `lookup`, with a made-up name (`u{uid}`) where the host has none.
    pub fn lookup_or_named(ids: (u32, u32)) -> HostUser {
        HostUser::lookup(ids).unwrap_or_else(|| HostUser {
            name: format!("u{}", ids.0),
            uid: ids.0,
            gid: ids.1,
            group: format!("g{}", ids.1),
        })
    }
}

/// The passwd and group files mounted (read-only) into a workspace's
/// container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    pub passwd: PathBuf,
    pub group: PathBuf,
}

/// A passwd or group file of the image's larger than this is not read
/// (only the entries dual adds are then in the container's file).
const ACCOUNT_FILE_LIMIT: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("could not read the accounts of image `{image}`")]
    Read {
        image: String,
        #[source]
        source: EngineError,
    },
    #[error("could not hand the volumes of `{container}` to uid {uid}")]
    Volumes {
        uid: u32,
        container: String,
        #[source]
        source: EngineError,
    },
    #[error("could not write `{}`", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::confined::ConfinedError),
}

/// The passwd and group files for `user` in containers of `image` (whose
/// id is `image_id`), written into dual's store unless they are there
/// already. `None` for root: every image knows uid 0.
pub fn accounts(
    engine: &Engine,
    image: &str,
    image_id: &str,
    user: &HostUser,
    home: &str,
) -> Result<Option<Accounts>, IdentityError> {
    if user.uid == 0 {
        return Ok(None);
    }
    let key = super::names::long_hash(
        &serde_json::json!([
            engine.kind().program(),
            image_id,
            user.name,
            user.uid,
            user.gid,
            user.group,
            home
        ])
        .to_string(),
    );
    let store = crate::paths::data_dir().join("accounts");
    let dir = Path::new(&key);
    let accounts = Accounts {
        passwd: store.join(&key).join("passwd"),
        group: store.join(&key).join("group"),
    };
    let present = |file: &str| crate::confined::exists(&store, &dir.join(file));
    if present("passwd") && present("group") {
        return Ok(Some(accounts));
    }
    let (passwd, group) = image_accounts(engine, image, image_id)?;
    let passwd = with_user_first(&passwd, user, home);
    let group = with_group_first(&group, user);
    let pair = store.join(&key);
    std::fs::create_dir_all(&pair).map_err(|source| IdentityError::Write {
        path: pair.clone(),
        source,
    })?;
    // Group last: its presence says the pair is whole. Readable by all: the
    // container's user reads them through a read-only mount.
    for (path, text) in [(&accounts.passwd, &passwd), (&accounts.group, &group)] {
        crate::files::write_atomic_with_mode(path, text.as_bytes(), 0o644).map_err(|source| {
            IdentityError::Write {
                path: path.clone(),
                source,
            }
        })?;
    }
    Ok(Some(accounts))
}

/// Gives the (fresh) volume directories `dirs` of a running `container` to
/// `user`. Docker makes a new volume's root root's, and cannot be told
/// otherwise; podman, which an ordinary user runs rootless with keep-id,
/// gives it to the user already.
pub fn hand_over_volumes(
    engine: &Engine,
    container: &str,
    user: &HostUser,
    dirs: &[PathBuf],
) -> Result<(), IdentityError> {
    if user.uid == 0 || dirs.is_empty() || engine.kind() != crate::engine::EngineKind::Docker {
        return Ok(());
    }
    let archive = owned_dirs_archive(dirs, user).map_err(|source| IdentityError::Write {
        path: PathBuf::from(format!("{container}:/")),
        source,
    })?;
    engine
        .copy_in(container, archive)
        .map_err(|source| IdentityError::Volumes {
            uid: user.uid,
            container: container.to_owned(),
            source,
        })
}

/// The uid `user` (`name`, `uid` or either with `:group`) stands for in
/// `image`: a number as the kernel reads it (`00` is 0), a name through the
/// image's own passwd (where `postgres` may be uid 0). `None` where the
/// image has no such name: the engine then refuses to start it.
pub fn image_uid(
    engine: &Engine,
    image: &str,
    image_id: &str,
    user: &str,
) -> Result<Option<u32>, IdentityError> {
    let name = user.split(':').next().unwrap_or_default();
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Some(name.parse().unwrap_or(u32::MAX)));
    }
    let (passwd, _) = image_accounts(engine, image, image_id)?;
    Ok(passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then(|| fields.nth(1)?.parse().ok())?
    }))
}

/// The image's passwd and group files, read from a container made (never
/// started) for that, and removed after.
fn image_accounts(
    engine: &Engine,
    image: &str,
    image_id: &str,
) -> Result<(String, String), IdentityError> {
    let name = format!(
        "dual-accounts-{}",
        super::names::short_hash(&format!("{image_id}{}", std::process::id()))
    );
    let mut spec = RunSpec::new(&name, image);
    // Labelled as probes are, with its creator's pid: `dual prune` removes
    // one whose launch was killed before it could.
    spec.labels.insert(labels::MANAGED.into(), "true".into());
    spec.labels
        .insert(labels::KIND.into(), labels::KIND_ACCOUNTS.into());
    spec.labels
        .insert(labels::OWNER_PID.into(), std::process::id().to_string());
    spec.command = vec!["true".into()];
    let read_error = |source| IdentityError::Read {
        image: image.to_owned(),
        source,
    };
    engine.create(&spec).map_err(read_error)?;
    // Two independent reads, at once (each ~30 ms on docker, ~100 on podman).
    let (passwd, group) = std::thread::scope(|scope| {
        let group = scope.spawn(|| image_file(engine, &name, "/etc/group"));
        let passwd = image_file(engine, &name, "/etc/passwd");
        let group = group
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (passwd, group)
    });
    engine.remove(&[&name]).map_err(read_error)?;
    Ok((passwd, group))
}

/// The image's file at `path` (a regular file), or nothing: an image may
/// have none, or a link or a device there, which dual does not read.
fn image_file(engine: &Engine, container: &str, path: &str) -> String {
    // The tar headers around the file take a few blocks.
    let archive = match engine.copy_out(container, path, ACCOUNT_FILE_LIMIT + 64 * 1024) {
        Ok(Some(archive)) => archive,
        Ok(None) => {
            crate::log::debug(&format!("{container}: {path} is too large to read"));
            return String::new();
        }
        Err(error) => {
            crate::log::debug(&format!("{container}: no {path} read: {error}"));
            return String::new();
        }
    };
    first_regular_file(&archive).unwrap_or_default()
}

/// The text of the archive's first entry when it is a regular file under
/// the size limit.
fn first_regular_file(archive: &[u8]) -> Option<String> {
    let mut archive = tar::Archive::new(archive);
    let mut entry = archive.entries().ok()?.next()?.ok()?;
    let header = entry.header();
    if header.entry_type() != tar::EntryType::Regular || header.size().ok()? > ACCOUNT_FILE_LIMIT {
        return None;
    }
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The image's passwd with `user` as the first entry for its uid (unless it
/// already is, with the same home: a container made again keeps one entry).
fn with_user_first(passwd: &str, user: &HostUser, home: &str) -> String {
    let first_for_uid = first_entry_with_id(passwd, user.uid);
    let already = first_for_uid.is_some_and(|fields| {
        fields.first() == Some(&user.name.as_str()) && fields.get(5) == Some(&home)
    });
    if already {
        return with_final_newline(passwd);
    }
    format!(
        "{}:x:{}:{}::{home}:/bin/sh\n{}",
        user.name,
        user.uid,
        user.gid,
        with_final_newline(passwd)
    )
}

/// The image's group file with `user`'s group first, and `user`'s name in
/// no group's member list: an image that lists it in `root` or `shadow`
/// would otherwise give the container's main process those groups (the
/// engine adds every group naming the user when it starts it by uid).
fn with_group_first(group: &str, user: &HostUser) -> String {
    let group = without_member(group, &user.name);
    let already = first_entry_with_id(&group, user.gid)
        .is_some_and(|fields| fields.first() == Some(&user.group.as_str()));
    if already {
        return with_final_newline(&group);
    }
    format!(
        "{}:x:{}:\n{}",
        user.group,
        user.gid,
        with_final_newline(&group)
    )
}

/// Every line of a group file, with `name` taken out of its member list.
fn without_member(group: &str, name: &str) -> String {
    let mut out = String::with_capacity(group.len());
    for line in group.lines() {
        let fields: Vec<&str> = line.splitn(4, ':').collect();
        match fields.as_slice() {
            [group_name, password, gid, members] => {
                let kept: Vec<&str> = members.split(',').filter(|m| *m != name).collect();
                out.push_str(&format!("{group_name}:{password}:{gid}:{}", kept.join(",")));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The fields of the first line whose third field (uid or gid) is `id`.
fn first_entry_with_id(text: &str, id: u32) -> Option<Vec<&str>> {
    text.lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.get(2).and_then(|f| f.parse::<u32>().ok()) == Some(id))
}

fn with_final_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}

/// One directory entry per path, owned by the user: extracted over a fresh
/// volume's mount point, it hands the volume to the user.
fn owned_dirs_archive(dirs: &[PathBuf], user: &HostUser) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for dir in dirs {
        let relative = dir.strip_prefix("/").unwrap_or(dir);
        append_dir(
            &mut builder,
            &format!("{}/", relative.display()),
            user.uid,
            user.gid,
        )?;
    }
    builder.into_inner()
}

fn append_dir(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    uid: u32,
    gid: u32,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_uid(u64::from(uid));
    header.set_gid(u64::from(gid));
    header.set_mtime(now());
    builder.append_data(&mut header, path, std::io::empty())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Exists once the container's start-up work is done (in a tmpfs: a new one
/// each start).
pub const READY_FILE: &str = "/run/dual/ready";

/// `sh -c AFTER_START_UP sh READY COMMAND…`: COMMAND once the start-up work
/// is done, with the config's `path` first on PATH (see the file's header).
pub const AFTER_START_UP: &str = include_str!("after-start-up.sh");

/// The container's main process, as the user (`entry.sh`, whose header
/// says what it does): clears the services' stale states, marks itself
/// ready for `dual run` and `setup`, idles, and stops the services when the
/// container is stopped.
const ENTRY: &str = include_str!("entry.sh");
/// Runs `ENTRY` from a file in the container's tmpfs (`boot.sh`).
const BOOT: &str = include_str!("boot.sh");
/// Where `BOOT` puts the entry: in `ps`, `sh /run/dual/dual-entry …`.
const ENTRY_FILE: &str = "/run/dual/dual-entry";

/// The main command of a workspace container; `path` (`a:b`, or empty)
/// goes first on PATH for every command exec'd into it (see
/// `after-start-up.sh`).
pub fn entry_command(path: &str) -> Vec<String> {
    vec![
        "sh".to_owned(),
        "-c".to_owned(),
        BOOT.to_owned(),
        "dual-boot".to_owned(),
        ENTRY.to_owned(),
        ENTRY_FILE.to_owned(),
        super::services::LOG_MOUNT.to_owned(),
        READY_FILE.to_owned(),
        super::services::SUPERVISION_DIR.to_owned(),
        super::services::STOP_GRACE_SECONDS.to_string(),
        path.to_owned(),
    ]
}

/// The host's name for `uid`, through NSS (so LDAP and sssd users count).
fn user_name(uid: u32) -> Option<String> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    Some(user.name)
}

fn group_name(gid: u32) -> Option<String> {
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok()??;
    Some(group.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> HostUser {
        HostUser {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            group: "staff".into(),
        }
    }

    #[test]
    fn root_is_found_by_uid() {
        let root = HostUser::lookup((0, 0)).expect("uid 0 has a name");
        assert_eq!(root.name, "root");
        assert_eq!(root.group, "root");
        assert_eq!(HostUser::lookup_or_named((4_000_000, 7)).name, "u4000000");
    }

    #[test]
    fn the_user_comes_first_once() {
        let image = "root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh";
        let once = with_user_first(image, &alice(), "/home/alice");
        assert_eq!(
            once,
            "alice:x:1000:1000::/home/alice:/bin/sh\nroot:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n"
        );
        assert_eq!(with_user_first(&once, &alice(), "/home/alice"), once);
        assert_eq!(with_group_first("", &alice()), "staff:x:1000:\n");
        let group = with_group_first("node:x:1000:\n", &alice());
        assert_eq!(group, "staff:x:1000:\nnode:x:1000:\n");
        assert_eq!(with_group_first(&group, &alice()), group);
        let hostile = "root:x:0:root,alice\nshadow:x:42:alice\nstaff:x:1000:bob,alice,carol\n";
        assert_eq!(
            with_group_first(hostile, &alice()),
            "root:x:0:root\nshadow:x:42:\nstaff:x:1000:bob,carol\n",
            "alice is in no group of the image's"
        );
    }

    #[test]
    fn a_command_after_start_up_waits_for_the_ready_file_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let run = |ready: &str| {
            let started = std::time::Instant::now();
            let output = crate::process::Cmd::new(
                "sh",
                ["-c", AFTER_START_UP, "sh", ready, "echo", "it ran"],
            )
            .run()
            .unwrap();
            (output.stdout, started.elapsed())
        };
        let (said, _) = run("");
        assert_eq!(said, "it ran\n", "no ready file to wait for");
        std::fs::write(&ready, "").unwrap();
        let (said, took) = run(ready.to_str().unwrap());
        assert_eq!(said, "it ran\n");
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
        let missing = dir.path().join("never");
        let (said, took) = run(missing.to_str().unwrap());
        assert_eq!(said, "it ran\n", "runs anyway once the wait is over");
        assert!(took >= std::time::Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn the_entry_s_path_goes_first_on_path_for_what_is_exec_d() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let bin = dir.path().join("clone/.venv/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("python"), "#!/bin/sh\necho venv python\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(bin.join("python"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        // The entry's start-up, as the container runs it; a `sleep` that
        // returns at once ends its idling, so that it exits.
        let fake = dir.path().join("fake");
        std::fs::create_dir_all(&fake).unwrap();
        std::fs::write(fake.join("sleep"), "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(fake.join("sleep"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let paths = format!("{}:/nowhere", bin.display());
        let host_path = std::env::var("PATH").unwrap_or_default();
        let base = dir.path().join("base");
        let entry = crate::process::Cmd::new(
            "sh",
            [
                "-c",
                ENTRY,
                "dual-entry",
                logs.to_str().unwrap(),
                ready.to_str().unwrap(),
                base.to_str().unwrap(),
                "1",
                &paths,
            ],
        )
        .env("PATH", format!("{}:{host_path}", fake.display()))
        .run();
        assert!(entry.is_ok(), "{entry:?}");
        let run = |ready: &str, command: &[&str]| {
            let mut args = vec!["-c", AFTER_START_UP, "sh", ready];
            args.extend(command);
            crate::process::Cmd::new("sh", args).run().unwrap().stdout
        };
        let ready = ready.to_str().unwrap();
        assert_eq!(run(ready, &["python"]), "venv python\n");
        let path = run(ready, &["sh", "-c", "echo $PATH"]);
        assert!(path.starts_with(&format!("{paths}:")), "{path}");
        assert!(
            !run("", &["sh", "-c", "echo $PATH"]).contains(".venv"),
            "an older container: no path file read"
        );
    }

    #[test]
    fn names_are_data_in_a_file_never_code() {
        let user = HostUser {
            name: "$(touch /pwned)".into(),
            ..alice()
        };
        let passwd = with_user_first("", &user, "/h");
        assert_eq!(passwd, "$(touch /pwned):x:1000:1000::/h:/bin/sh\n");
        assert!(!entry_command("").concat().contains("pwned"));
        assert_eq!(entry_command("")[2], BOOT, "the script is fixed text");
        assert_eq!(entry_command("")[4], ENTRY, "the script is fixed text");
    }

    #[test]
    fn a_volume_is_handed_over_by_a_directory_entry_of_the_user_s() {
        let long = PathBuf::from(format!("/home/u/{}/node_modules", "d".repeat(120)));
        let user = HostUser {
            gid: 1001,
            ..alice()
        };
        let archive = owned_dirs_archive(std::slice::from_ref(&long), &user).unwrap();
        let mut read = tar::Archive::new(archive.as_slice());
        let entries: Vec<(String, tar::EntryType, u64, u64, u32)> = read
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let header = entry.header();
                (
                    entry.path().unwrap().display().to_string(),
                    header.entry_type(),
                    header.uid().unwrap(),
                    header.gid().unwrap(),
                    header.mode().unwrap(),
                )
            })
            .collect();
        let long = format!("{}/", long.strip_prefix("/").unwrap().display());
        assert_eq!(
            entries,
            [(long, tar::EntryType::Directory, 1000, 1001, 0o755)]
        );
    }

    #[test]
    fn only_a_regular_file_is_read_from_the_image() {
        let dir = owned_dirs_archive(&[PathBuf::from("/etc")], &alice()).unwrap();
        assert_eq!(first_regular_file(&dir), None, "a directory is no file");
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "passwd", "/home/alice/.ssh/id_rsa")
            .unwrap();
        assert_eq!(first_regular_file(&builder.into_inner().unwrap()), None);
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "passwd", &b"a:b"[..])
            .unwrap();
        assert_eq!(
            first_regular_file(&builder.into_inner().unwrap()).as_deref(),
            Some("a:b")
        );
    }
}
