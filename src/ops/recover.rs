//! Recovering dual's state when its file is lost or corrupt.
//! Workspaces come back from the engine's labels (this installation's
//! containers) and from the clones under the workspace root; repos from the
//! clones' `origin`. What cannot be known (workspaces never launched) is
//! said, not guessed. With a readable state, it only adds what is missing.

use crate::engine::labels::{WorkspaceLabels, workspace_filters};
use crate::engine::model::ContainerState;
use crate::engine::{Engine, EngineKind};
use crate::error::WithHint;
use crate::printer::Printer;
use crate::workspace::RepoSource;
use crate::workspace::{self, Repo, State, Store, Workspace, git, names};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A workspace as found on the engine or on disk.
struct Found {
    repo: String,
    branch: String,
    label: String,
    engine: Option<EngineKind>,
    user: Option<(u32, u32)>,
    /// Its container was not running: whether `dual stop` did that is not
    /// known, so it counts as stopped (the proxy does not start it).
    stopped: bool,
}

/// What `recover` did.
#[derive(Debug)]
pub struct Recovered {
    /// Where the unreadable state file was kept.
    pub aside: Option<PathBuf>,
    pub workspaces_added: usize,
    pub repos_added: usize,
    /// What could not be recovered, or was skipped, and why.
    pub notes: Vec<String>,
}

/// Rebuilds the state from the engines (`flag`, else every installed one)
/// and the clones under the workspace root; adds only what is missing.
pub fn recover(flag: Option<EngineKind>, _printer: &Printer) -> anyhow::Result<Recovered> {
    let root = crate::paths::workspace_root();
    let mut notes = Vec::new();
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    for (kind, labels, running) in engine_workspaces(flag, &mut notes) {
        let Some(label) = labels
            .workspace
            .strip_prefix(&format!("{}-", labels.repo))
            .map(str::to_owned)
        else {
            notes.push(format!(
                "container of `{}` on {kind}: its labels do not name its repo; skipped",
                labels.workspace
            ));
            continue;
        };
        found.insert(
            labels.workspace.clone(),
            Found {
                repo: labels.repo,
                branch: labels.branch,
                label,
                engine: Some(kind),
                user: labels.user,
                stopped: !running,
            },
        );
    }
    let mut repos: BTreeMap<String, Repo> = BTreeMap::new();
    for clone in clones(&root) {
        let (Some(repo), Some(label)) = (dir_name(clone.parent()), dir_name(Some(&clone))) else {
            continue;
        };
        match repo_of_clone(&repo, &clone) {
            Some(found_repo) => {
                repos.entry(repo.clone()).or_insert(found_repo);
            }
            None => notes.push(format!(
                "`{}`: no readable `origin`, so its repo cannot be registered again",
                clone.display()
            )),
        }
        let name = format!("{repo}-{label}");
        if found.contains_key(&name) {
            continue;
        }
        match git::current_branch(&clone) {
            Ok(branch) => {
                found.insert(
                    name,
                    Found {
                        repo,
                        branch,
                        label,
                        engine: None,
                        user: None,
                        stopped: false,
                    },
                );
            }
            Err(_) => notes.push(format!(
                "`{}`: not on a branch; `dual create` it again",
                clone.display()
            )),
        }
    }

    let store = Store::open_default();
    let ((workspaces_added, repos_added), aside) =
        store.update_recovering(|state: &mut State| -> Result<(usize, usize), WithHint> {
            let mut repos_added = 0;
            for (name, repo) in repos {
                if let std::collections::btree_map::Entry::Vacant(entry) = state.repos.entry(name) {
                    entry.insert(repo);
                    repos_added += 1;
                }
            }
            let mut workspaces_added = 0;
            for (name, found) in found {
                if state.workspace(&name).is_some() {
                    continue;
                }
                state.workspaces.push(Workspace {
                    path: root.join(&found.repo).join(&found.label),
                    // Its container exists: it was launched, and its setup ran then.
                    setup_done: found.engine.is_some(),
                    stopped: found.stopped,
                    repo: found.repo,
                    branch: found.branch,
                    label: found.label,
                    engine: found.engine,
                    // Found on this host's engines only.
                    endpoint: None,
                    user: found.user,
                    // Read from the clone until its next launch.
                    routed: None,
                    data_from: None,
                });
                workspaces_added += 1;
            }
            Ok((workspaces_added, repos_added))
        })?;

    Ok(Recovered {
        aside,
        workspaces_added,
        repos_added,
        notes,
    })
}

/// This installation's workspace containers on every engine that answers.
fn engine_workspaces(
    flag: Option<EngineKind>,
    notes: &mut Vec<String>,
) -> Vec<(EngineKind, WorkspaceLabels, bool)> {
    let owner = workspace::owner_id();
    let mut found = Vec::new();
    for kind in EngineKind::chosen_or_installed(flag) {
        match Engine::new(kind).ps(&workspace_filters(Some(&owner))) {
            Ok(containers) => found.extend(containers.iter().filter_map(|c| {
                let labels = WorkspaceLabels::from_labels(&c.labels)?;
                Some((kind, labels, c.state == ContainerState::Running))
            })),
            Err(error) => notes.push(format!(
                "{kind} did not answer ({error}): its containers were not read"
            )),
        }
    }
    found
}

/// `{root}/{repo}/{label}` directories holding a git clone.
fn clones(root: &Path) -> Vec<PathBuf> {
    let Ok(repos) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut clones: Vec<PathBuf> = repos
        .flatten()
        .filter_map(|repo| std::fs::read_dir(repo.path()).ok())
        .flat_map(|labels| labels.flatten().map(|entry| entry.path()))
        .filter(|path| path.join(".git").exists())
        .collect();
    clones.sort();
    clones
}

fn dir_name(path: Option<&Path>) -> Option<String> {
    let name = path?.file_name()?.to_str()?;
    // Hidden entries are partial clones (see launch::clone_atomically).
    (!name.starts_with('.') && names::sanitize(name) == name).then(|| name.to_owned())
}

/// The repo a clone was made from: its `origin`, and the default branch as
/// the clone recorded it.
fn repo_of_clone(name: &str, clone: &Path) -> Option<Repo> {
    let source = RepoSource::from(git::origin(clone).ok()?);
    let default_branch = git::origin_head(clone)
        .ok()
        .or_else(|| git::default_branch(&source).ok())?;
    Some(Repo {
        name: name.to_owned(),
        source,
        default_branch,
    })
}
