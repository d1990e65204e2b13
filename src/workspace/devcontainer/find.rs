//! Which devcontainer.json of a clone is read: the one `.dual.toml` names,
//! else the user's `DUAL_DEVCONTAINER`, else the usual places; several and
//! no choice is an error that lists them and says how to choose.
//!
//! Nothing here follows a link: a `.devcontainer` that is a link is not
//! listed, and a devcontainer.json that is one is found, then refused when
//! read (it could name `~/.ssh/id_rsa`, whose text a parse error would show).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::super::config::{ConfigError, DevcontainerChoice};
use super::super::config_file::{FILE_NAME, is_service_name};

const DIR: &str = ".devcontainer";
const FILE: &str = "devcontainer.json";
/// Entries of `.devcontainer` looked at for `NAME/devcontainer.json`.
const MAX_ENTRIES: usize = 1024;

/// The devcontainer.json to read, relative to `dir`, if any.
pub(super) fn find(
    dir: &Path,
    choice: &DevcontainerChoice,
    wanted: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    if is_link(dir, DIR) && *choice != DevcontainerChoice::Off {
        return Err(ConfigError::Read {
            path: dir.join(DIR),
            source: crate::confined::ConfinedError::Link(dir.join(DIR)),
        });
    }
    let named = |name: &str| format!("{DIR}/{name}/{FILE}");
    let exists = |relative: &str| crate::confined::exists(dir, Path::new(relative));
    match choice {
        DevcontainerChoice::Off => return Ok(None),
        DevcontainerChoice::Named(name) => {
            let file = named(name);
            if exists(&file) {
                return Ok(Some(file));
            }
            return Err(ConfigError::Invalid {
                path: dir.join(FILE_NAME),
                message: format!(
                    "`devcontainer`: the clone has no `{file}`{}\nhint: name one of them in `devcontainer = \"NAME\"`, or write `devcontainer = false`",
                    listed(&candidates(dir))
                ),
            });
        }
        DevcontainerChoice::Usual => {}
    }
    // The user's choice, where this clone has it (the variable applies to
    // every repo, and most have no such directory).
    if let Some(name) = wanted.filter(|name| is_service_name(name)) {
        let file = named(name);
        if exists(&file) {
            return Ok(Some(file));
        }
    }
    for usual in [format!("{DIR}/{FILE}"), format!(".{FILE}")] {
        if exists(&usual) {
            return Ok(Some(usual));
        }
    }
    let found = candidates(dir);
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(named(one))),
        several => Err(ConfigError::Invalid {
            path: dir.join(DIR),
            message: format!(
                "which devcontainer.json? the clone has several: {}{}\nhint: choose one with `DUAL_DEVCONTAINER=NAME dual launch`, or for the repo with `devcontainer = \"NAME\"` in {FILE_NAME} (`devcontainer = false` for none)",
                several
                    .iter()
                    .map(|name| format!("`{}`", named(name)))
                    .collect::<Vec<_>>()
                    .join(", "),
                wanted.map_or(String::new(), |name| format!(
                    " (`DUAL_DEVCONTAINER={}` names none of them)",
                    crate::untrusted::shown_line(name)
                ))
            ),
        }),
    }
}

/// Whether `name` in `dir` is a symbolic link (never followed to see).
fn is_link(dir: &Path, name: &str) -> bool {
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(dir, directory, Mode::empty())
        .and_then(|root| rustix::fs::statat(&root, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW))
        .is_ok_and(|stat| {
            rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Symlink
        })
}

/// ` (it has: `a`, `b`)` for an error, or nothing.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        return " (it has no `.devcontainer/NAME/devcontainer.json`)".into();
    }
    let names: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    format!(" (it has {})", names.join(", "))
}

/// The NAMEs of the clone's `.devcontainer/NAME/devcontainer.json`, sorted:
/// only names `devcontainer = "NAME"` can choose, only real directories.
fn candidates(dir: &Path) -> Vec<String> {
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let Ok(root) = rustix::fs::open(dir, directory, Mode::empty()) else {
        return Vec::new();
    };
    let Ok(devcontainer) =
        rustix::fs::openat(&root, DIR, directory | OFlags::NOFOLLOW, Mode::empty())
    else {
        return Vec::new();
    };
    let Ok(entries) = rustix::fs::Dir::read_from(&devcontainer) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .take(MAX_ENTRIES)
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_str()?;
            is_service_name(name).then(|| name.to_owned())
        })
        .filter(|name| crate::confined::exists(dir, &Path::new(DIR).join(name).join(FILE)))
        .collect();
    names.sort();
    names
}
