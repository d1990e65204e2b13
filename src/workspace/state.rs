//! dual's own record of repos and workspaces: one versioned JSON file.
//!
//! Every change is read-modify-write under an exclusive `flock`, written to a
//! temporary file and renamed into place, so two `dual` commands at once never
//! lose each other's work and a crash never leaves half a file. A file dual
//! cannot read (corrupt, or from a newer dual) is an error and is never
//! overwritten. The engine's labels stay the truth about containers; this file
//! only says which workspaces exist and where their clones are.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;
/// How long a command waits for another one to finish with the state.
const LOCK_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub repos: BTreeMap<String, Repo>,
    #[serde(default)]
    pub workspaces: Vec<Workspace>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Repo {
    pub name: String,
    /// An absolute path to a local repository, or a URL.
    pub source: String,
    pub default_branch: String,
}

impl Repo {
    pub fn is_local(&self) -> bool {
        self.source.starts_with('/')
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Workspace {
    pub repo: String,
    pub branch: String,
    /// The branch's DNS-safe label (see `names`).
    pub label: String,
    /// The clone, `{workspace_root}/{repo}/{label}`.
    pub path: PathBuf,
    /// The config's `setup` ran to success in this workspace's container.
    #[serde(default)]
    pub setup_done: bool,
    /// The engine its container was launched on: later commands use the
    /// same one without detecting again.
    #[serde(default)]
    pub engine: Option<crate::engine::EngineKind>,
}

impl Workspace {
    /// `{repo}-{label}`: its hostname, container name stem and URL label.
    pub fn name(&self) -> String {
        format!("{}-{}", self.repo, self.label)
    }

    pub fn container_name(&self) -> String {
        format!("dual-{}", self.name())
    }
}

impl State {
    pub fn workspace(&self, name: &str) -> Option<&Workspace> {
        self.workspaces.iter().find(|w| w.name() == name)
    }

    pub fn workspace_mut(&mut self, name: &str) -> Option<&mut Workspace> {
        self.workspaces.iter_mut().find(|w| w.name() == name)
    }

    /// The workspace whose clone holds `dir`, if any.
    pub fn workspace_at(&self, dir: &Path) -> Option<&Workspace> {
        self.workspaces
            .iter()
            .filter(|w| dir.starts_with(&w.path))
            .max_by_key(|w| w.path.as_os_str().len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("dual's state file `{}` is corrupt: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("dual's state file `{}` was written by a newer dual (format {found}; this dual reads {VERSION})", .path.display())]
    TooNew { path: PathBuf, found: u32 },
    #[error("could not {action} `{}`", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another dual command (pid {holder}) has held the state lock for over {}s", LOCK_WAIT.as_secs())]
    Locked { holder: String },
}

impl StateError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StateError::Corrupt { path, .. } => Some(format!(
                "dual left it untouched; move it aside (`mv {0} {0}.broken`) and register your repos again with `dual add` (clones and containers are kept)",
                path.display()
            )),
            StateError::TooNew { .. } => {
                Some("upgrade dual (`cargo install --path .` in a newer checkout)".into())
            }
            StateError::Locked { holder } => Some(format!(
                "wait for it to finish, or stop it (`kill {holder}`) if it hangs"
            )),
            StateError::Io { .. } => None,
        }
    }
}

/// The state file and its lock.
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(path: PathBuf) -> Self {
        Store { path }
    }

    pub fn open_default() -> Self {
        Store::new(crate::paths::state_file())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state; a missing file is an empty state.
    pub fn load(&self) -> Result<State, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: VERSION,
                    ..State::default()
                });
            }
            Err(source) => return Err(self.io("read", source)),
        };
        let corrupt = |reason: String| StateError::Corrupt {
            path: self.path.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        let found = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| corrupt("it has no `version`".into()))?;
        if found > u64::from(VERSION) {
            return Err(StateError::TooNew {
                path: self.path.clone(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
    }

    /// Read-modify-write under the lock. `change` sees the latest state; if it
    /// fails, nothing is written.
    pub fn update<T, E>(&self, change: impl FnOnce(&mut State) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StateError>,
    {
        let _lock = self.lock()?;
        let mut state = self.load()?;
        let result = change(&mut state)?;
        self.write(&state)?;
        Ok(result)
    }

    fn write(&self, state: &State) -> Result<(), StateError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let temporary = dir.join(format!(".state.json.{}.tmp", std::process::id()));
        let mut text = serde_json::to_string_pretty(state).unwrap_or_default();
        text.push('\n');
        let written = (|| {
            let mut file = File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)
        })();
        written.map_err(|source| {
            let _ = std::fs::remove_file(&temporary);
            self.io("write", source)
        })
    }

    fn lock(&self) -> Result<File, StateError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|source| self.io("create the directory of", source))?;
        let lock_path = dir.join("state.lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|source| self.io("open the lock next to", source))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            // SAFETY: flock on a file descriptor we own.
            let locked =
                unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            if locked {
                let _ = file.set_len(0);
                let _ = write!(file, "{}", std::process::id());
                return Ok(file);
            }
            if Instant::now() >= deadline {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                return Err(StateError::Locked {
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> StateError {
        StateError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state.json"));
        (dir, store)
    }

    fn workspace(branch: &str) -> Workspace {
        Workspace {
            repo: "shop".into(),
            branch: branch.into(),
            label: branch.replace('/', "-"),
            path: PathBuf::from(format!("/w/shop/{}", branch.replace('/', "-"))),
            setup_done: false,
            engine: None,
        }
    }

    #[test]
    fn missing_file_is_an_empty_state_and_updates_persist() {
        let (_dir, store) = store();
        assert!(store.load().unwrap().workspaces.is_empty());
        store
            .update(|state| {
                state.workspaces.push(workspace("feat/a"));
                Ok::<_, StateError>(())
            })
            .unwrap();
        let state = store.load().unwrap();
        assert_eq!(state.version, VERSION);
        assert_eq!(state.workspace("shop-feat-a").unwrap().branch, "feat/a");
    }

    #[test]
    fn a_failed_change_writes_nothing() {
        let (_dir, store) = store();
        let result: Result<(), StateError> = store.update(|state| {
            state.workspaces.push(workspace("lost"));
            Err(StateError::Locked {
                holder: "test".into(),
            })
        });
        assert!(result.is_err());
        assert!(store.load().unwrap().workspaces.is_empty());
    }

    #[test]
    fn corrupt_and_newer_files_are_refused_and_kept() {
        let (_dir, store) = store();
        std::fs::write(store.path(), "{ not json").unwrap();
        let error = store.load().unwrap_err();
        assert!(matches!(error, StateError::Corrupt { .. }), "{error}");
        assert!(error.hint().unwrap().contains("mv "));
        let result = store.update(|_| Ok::<_, StateError>(()));
        assert!(result.is_err());
        assert_eq!(
            std::fs::read_to_string(store.path()).unwrap(),
            "{ not json",
            "never overwritten"
        );

        std::fs::write(
            store.path(),
            r#"{"version": 99, "repos": {}, "workspaces": []}"#,
        )
        .unwrap();
        assert!(matches!(
            store.load().unwrap_err(),
            StateError::TooNew { found: 99, .. }
        ));
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let (_dir, store) = store();
        let store = std::sync::Arc::new(store);
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let store = std::sync::Arc::clone(&store);
                std::thread::spawn(move || {
                    store
                        .update(|state| {
                            state.workspaces.push(workspace(&format!("b{i}")));
                            Ok::<_, StateError>(())
                        })
                        .unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(store.load().unwrap().workspaces.len(), 16);
    }

    #[test]
    fn workspace_at_picks_the_clone_holding_a_directory() {
        let state = State {
            version: VERSION,
            repos: BTreeMap::new(),
            workspaces: vec![workspace("a"), workspace("ab")],
        };
        assert_eq!(
            state
                .workspace_at(Path::new("/w/shop/ab/src"))
                .unwrap()
                .branch,
            "ab"
        );
        assert_eq!(
            state.workspace_at(Path::new("/w/shop/a")).unwrap().branch,
            "a"
        );
        assert!(state.workspace_at(Path::new("/w/shop")).is_none());
    }
}
