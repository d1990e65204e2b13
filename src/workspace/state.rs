//! dual's own record of repos and workspaces: one versioned JSON file.
//!
//! Every change is read-modify-write under an exclusive lock, written to a
//! temporary file and renamed into place, so two `dual` commands at once never
//! lose each other's work and a crash never leaves half a file. A file dual
//! cannot read (corrupt, or from a newer dual) is an error and is never
//! overwritten. The engine's labels stay the truth about containers; this file
//! only says which workspaces exist and where their clones are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::files::{Lock, LockError};

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
    pub source: RepoSource,
    pub default_branch: String,
}

impl Repo {
    pub fn is_local(&self) -> bool {
        self.source.local_path().is_some()
    }
}

/// Where a registered repo is cloned from. The state file keeps it as the
/// text the user gave: an absolute path, or anything else (a URL, `host:path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RepoSource {
    /// A checkout on this host (the user's own: dual never writes to it).
    Path(PathBuf),
    Url(String),
}

impl RepoSource {
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            RepoSource::Path(path) => Some(path),
            RepoSource::Url(_) => None,
        }
    }

    /// As git takes it, after `--`.
    pub fn as_os_str(&self) -> &std::ffi::OsStr {
        match self {
            RepoSource::Path(path) => path.as_os_str(),
            RepoSource::Url(url) => url.as_ref(),
        }
    }
}

impl From<String> for RepoSource {
    fn from(text: String) -> RepoSource {
        if text.starts_with('/') {
            RepoSource::Path(PathBuf::from(text))
        } else {
            RepoSource::Url(text)
        }
    }
}

impl From<RepoSource> for String {
    fn from(source: RepoSource) -> String {
        source.to_string()
    }
}

impl std::fmt::Display for RepoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepoSource::Path(path) => write!(f, "{}", path.display()),
            RepoSource::Url(url) => f.write_str(url),
        }
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
    /// The engine host it was launched on, when not this host's own daemon
    /// (`DOCKER_HOST=ssh://…`, a context, a podman connection): every later
    /// call for it goes there, whatever the shell's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<crate::engine::endpoint::Endpoint>,
    /// The uid and gid commands run as in its container, recorded when the
    /// container was made; `None` for a container whose own user is the
    /// user (made by an older dual).
    #[serde(default)]
    pub user: Option<(u32, u32)>,
    /// Stopped with `dual stop` (and not launched since): it stays stopped
    /// when the engine comes back, where other workspaces are started again.
    #[serde(default)]
    pub stopped: bool,
    /// The `extra_commands` its `.dual.toml` named at its last launch,
    /// checked: what its shims route until the next launch, whatever the
    /// container writes into the clone meanwhile. `None`: launched by an
    /// older dual (its clone's config is read instead).
    #[serde(default)]
    pub routed: Option<Vec<String>>,
    /// The workspace (by name) whose sidecars' data this one's start
    /// with (`dual create --from`); `None`: the config's `data_from`,
    /// else the repo's default branch's workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_from: Option<String>,
}

#[cfg(test)]
impl Workspace {
    /// Branch `branch` of `repo`, cloned at `path`, as tests need one.
    pub fn for_test(repo: &str, branch: &str, path: &str) -> Workspace {
        Workspace {
            repo: repo.into(),
            branch: branch.into(),
            label: branch.replace('/', "-"),
            path: PathBuf::from(path),
            setup_done: false,
            stopped: false,
            routed: None,
            data_from: None,
            engine: None,
            endpoint: None,
            user: None,
        }
    }
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
    /// The workspace whose clone holds `dir` (a path with its links
    /// resolved), whether its path was recorded with links or without.
    pub fn workspace_at(&self, dir: &Path) -> Option<&Workspace> {
        self.workspaces
            .iter()
            .filter_map(|w| {
                if dir.starts_with(&w.path) {
                    return Some((w, w.path.as_os_str().len()));
                }
                let real = w.path.canonicalize().ok()?;
                dir.starts_with(&real).then(|| (w, real.as_os_str().len()))
            })
            .max_by_key(|(_, length)| *length)
            .map(|(w, _)| w)
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
            StateError::Corrupt { .. } => Some(
                "dual left it untouched; `dual recover` keeps it aside and rebuilds the state from the engine's labels and the clones on disk".into(),
            ),
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

/// Takes the exclusive lock on `path` (created if missing), waiting up to
/// [`LOCK_WAIT`] for another dual command, whose pid the error names.
fn lock_file(path: &Path) -> Result<Lock, StateError> {
    Lock::exclusive(path, LOCK_WAIT).map_err(|error| match error {
        LockError::Held { holder, .. } | LockError::TimedOut { holder, .. } => StateError::Locked {
            holder: holder
                .0
                .map_or_else(|| "unknown".into(), |pid| pid.to_string()),
        },
        LockError::Io {
            action,
            path,
            source,
        } => StateError::Io {
            action,
            path,
            source,
        },
    })
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
        let mut text = serde_json::to_string_pretty(state).unwrap_or_default();
        text.push('\n');
        crate::files::write_atomic(&self.path, text.as_bytes())
            .map_err(|source| self.io("write", source))
    }

    /// Read-modify-write like [`Store::update`], but a corrupt file is moved
    /// aside (to the returned path) and `change` starts from an empty state.
    /// A file from a newer dual is still refused.
    pub fn update_recovering<T, E>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, E>,
    ) -> Result<(T, Option<PathBuf>), E>
    where
        E: From<StateError>,
    {
        let _lock = self.lock()?;
        let (mut state, aside) = match self.load() {
            Ok(state) => (state, None),
            Err(StateError::Corrupt { .. }) => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let aside = self.path.with_extension(format!("json.broken-{stamp}"));
                std::fs::rename(&self.path, &aside)
                    .map_err(|source| self.io("move aside", source))?;
                let empty = State {
                    version: VERSION,
                    ..State::default()
                };
                (empty, Some(aside))
            }
            Err(other) => return Err(other.into()),
        };
        let result = change(&mut state)?;
        self.write(&state)?;
        Ok((result, aside))
    }

    fn lock(&self) -> Result<Lock, StateError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        lock_file(&dir.join("state.lock"))
    }

    /// Holds one workspace's launch: a second `launch` of it waits, then
    /// finds the work done, so `setup` runs once however many start at once.
    pub fn lock_workspace(&self, name: &str) -> Result<Lock, StateError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        lock_file(&dir.join("locks").join(format!("{name}.lock")))
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
        Workspace::for_test(
            "shop",
            branch,
            &format!("/w/shop/{}", branch.replace('/', "-")),
        )
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
        assert!(error.hint().unwrap().contains("`dual recover`"));
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
    fn recovering_keeps_a_corrupt_file_aside_and_starts_empty() {
        let (dir, store) = store();
        std::fs::write(store.path(), "{ not json").unwrap();
        let ((), aside) = store
            .update_recovering(|state| {
                assert!(state.workspaces.is_empty());
                state.workspaces.push(workspace("found"));
                Ok::<_, StateError>(())
            })
            .unwrap();
        let aside = aside.expect("the corrupt file was moved aside");
        assert!(aside.starts_with(dir.path()), "{}", aside.display());
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), "{ not json");
        assert_eq!(store.load().unwrap().workspaces.len(), 1);
        // A readable file is kept and added to.
        let ((), again) = store
            .update_recovering(|state| {
                state.workspaces.push(workspace("more"));
                Ok::<_, StateError>(())
            })
            .unwrap();
        assert_eq!(again, None);
        assert_eq!(store.load().unwrap().workspaces.len(), 2);
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
