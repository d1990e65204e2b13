//! Syncing shared files: copy the repo's shared files (`shared_files` in
//! `.dual.toml`: `.env.local` and the like, which git does not carry) from
//! the repo's shared store into its workspaces. A file missing from the store
//! is taken from the registered local repo when it has one.
//!
//! The clone is the container's to write, and the source repo's files are
//! the branch's: every path is resolved without following a link (see
//! `confined`), so a planted `.env.local -> ~/.bashrc` is refused, named,
//! and never written through or read.
//!
//! Which files may be copied is the user's to say, not the branch's: a
//! clone's `.dual.toml` could name any untracked secret of the user's own
//! checkout (`secrets/master.key`). For a local repo, only the files that
//! the source's own `.dual.toml` lists are copied; for a URL, only what the
//! user put in the store.

use std::path::Path;

use crate::confined::{self, ConfinedError};
use crate::error::HintExt as _;
use crate::printer::Printer;
use crate::workspace::config::Config;
use crate::workspace::{self, Store, Workspace};

/// A shared file larger than this is not copied (they are small settings).
const SHARED_FILE_LIMIT: u64 = 16 * 1024 * 1024;

/// What `sync` did: one line per file, and how many it copied.
#[derive(Debug, Default)]
pub struct Synced {
    pub copied: usize,
}

/// Copies the shared files into workspace `name` (else the one around the
/// current directory, else every cloned one). Each file copied or skipped
/// is a result line on `printer`, each refused one a warning; any refusal
/// makes it an error, once all the others are copied.
pub fn sync(name: Option<&str>, printer: &Printer) -> anyhow::Result<Synced> {
    let state = Store::open_default().load().hinted()?;
    let targets: Vec<&Workspace> = match name {
        Some(_) => vec![workspace::resolve(&state, name).hinted()?],
        None => match workspace::resolve(&state, None) {
            Ok(one) => vec![one],
            Err(_) => state
                .workspaces
                .iter()
                .filter(|w| w.path.exists())
                .collect(),
        },
    };
    let mut copied = 0;
    let mut refused = 0;
    for workspace in targets {
        if !workspace.path.exists() {
            printer.out(format!("{}: not cloned yet, skipped", workspace.name()));
            continue;
        }
        let config = Config::load(&workspace.path)?;
        let store = crate::paths::shared_dir(&workspace.repo);
        let source = state
            .repos
            .get(&workspace.repo)
            .and_then(|r| r.source.local_path().map(Path::to_owned));
        // What the user's own checkout shares; `None` for a URL (the store).
        let allowed = match &source {
            Some(source) => Some(Config::load(source)?.shared_files),
            None => None,
        };
        for name in &config.shared_files {
            let file = Path::new(name);
            if let (Some(allowed), Some(source)) = (&allowed, &source)
                && !allowed.contains(name)
            {
                printer.warn(format!(
                    "{}: `{name}` not synced: this branch's .dual.toml lists it, `{}` does not; dual copies only the shared files your own checkout lists",
                    workspace.name(),
                    source.join(crate::workspace::config::FILE_NAME).display()
                ));
                refused += 1;
                continue;
            }
            match sync_one(&store, source.as_deref(), &workspace.path, file) {
                Ok(true) => {
                    printer.out(format!("{}: {}", workspace.name(), file.display()));
                    copied += 1;
                }
                Ok(false) => printer.out(format!(
                    "{}: `{}` is not in {} yet, skipped",
                    workspace.name(),
                    file.display(),
                    store.display()
                )),
                Err(error) => {
                    printer.warn(format!(
                        "{}: `{}` not synced: {error}",
                        workspace.name(),
                        file.display()
                    ));
                    refused += 1;
                }
            }
        }
    }
    printer.out(format!("synced {copied} file(s)"));
    if refused > 0 {
        anyhow::bail!(crate::error::Hinted {
            message: format!("{refused} shared file(s) were refused"),
            hint: "a shared file must be listed by the source repo's own .dual.toml, and be a regular file at a path without symbolic links in the store, the source repo and the clone; a link may have been planted by the branch's own code".into(),
        });
    }
    Ok(Synced { copied })
}

/// Copies `file` from the store (filled from the source repo when missing)
/// into the clone. `Ok(false)`: neither has it.
fn sync_one(
    store: &Path,
    source: Option<&Path>,
    clone: &Path,
    file: &Path,
) -> Result<bool, ConfinedError> {
    std::fs::create_dir_all(store).map_err(|source| ConfinedError::Io {
        path: store.to_owned(),
        source,
    })?;
    let stored = match confined::read(store, file, SHARED_FILE_LIMIT) {
        Ok(stored) => stored,
        Err(error) if error.is_not_found() => {
            let Some(source) = source else {
                return Ok(false);
            };
            match confined::read(source, file, SHARED_FILE_LIMIT) {
                Ok((bytes, mode)) => {
                    confined::write(store, file, &bytes, mode)?;
                    (bytes, mode)
                }
                Err(error) if error.is_not_found() => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        Err(error) => return Err(error),
    };
    let (bytes, mode) = stored;
    confined::write(clone, file, &bytes, mode)?;
    Ok(true)
}
