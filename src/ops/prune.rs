//! Finding what dual left behind, and removing it: containers and volumes
//! of workspaces that no longer exist, containers stuck in `created`,
//! abandoned probe containers, and workspaces whose branch was merged or
//! deleted upstream (when they hold no uncommitted or unpushed work).

use crate::engine::labels::{
    CacheLabels, KIND, KIND_ACCOUNTS, KIND_MEASURE, KIND_PROBE, KIND_WORKSPACE, MANAGED_FILTER,
    SidecarLabels, WorkspaceLabels, workspace_filters,
};
use crate::engine::model::ContainerState;
use crate::engine::{Engine, EngineKind};
use crate::error::HintExt as _;
use crate::printer::Printer;
use crate::workspace::git::{self, Upstream};
use crate::workspace::{State, Store};

/// One thing dual left behind, and why it counts as left behind.
#[derive(Debug, Clone)]
pub enum Leftover {
    Container {
        engine: EngineKind,
        id: String,
        why: String,
    },
    Volume {
        engine: EngineKind,
        name: String,
        why: String,
    },
    Workspace {
        name: String,
        why: String,
    },
}

impl Leftover {
    pub fn describe(&self) -> String {
        match self {
            Leftover::Container { engine, id, why } => {
                format!("container {} ({engine}): {why}", &id[..id.len().min(12)])
            }
            Leftover::Volume { engine, name, why } => format!("volume {name} ({engine}): {why}"),
            Leftover::Workspace { name, why } => format!("workspace {name}: {why}"),
        }
    }
}

/// What dual left behind on the engines in use (`flag`, else those of the
/// workspaces and the one selected) and among the workspaces.
pub fn leftovers(flag: Option<EngineKind>) -> anyhow::Result<Vec<Leftover>> {
    let state = Store::open_default().load().hinted()?;
    let mut kinds: Vec<EngineKind> = match flag {
        Some(kind) => vec![kind],
        None => state.workspaces.iter().filter_map(|w| w.engine).collect(),
    };
    if flag.is_none()
        && let Ok(engine) = Engine::select(None)
    {
        kinds.push(engine.kind());
    }
    kinds.sort_by_key(|k| k.program());
    kinds.dedup();

    let mut found = Vec::new();
    for kind in &kinds {
        found.extend(engine_leftovers(&Engine::new(*kind), &state)?);
    }
    found.extend(finished_workspaces(&state));
    Ok(found)
}

/// Removes `found` (workspaces as `destroy` does, refusing any that has
/// work no longer pushed).
pub fn remove(
    flag: Option<EngineKind>,
    found: &[Leftover],
    printer: &Printer,
) -> anyhow::Result<()> {
    for leftover in found {
        match leftover {
            Leftover::Container { engine, id, .. } => {
                Engine::new(*engine).remove(&[id]).hinted()?;
            }
            Leftover::Volume { engine, name, .. } => {
                Engine::new(*engine).volume_remove(&[name]).hinted()?;
            }
            Leftover::Workspace { name, .. } => {
                let destroyed = super::destroy::destroy(
                    flag,
                    Some(name),
                    false,
                    super::destroy::Consent::Nobody,
                    printer,
                )?;
                printer.out(format!("destroyed `{}`", destroyed.workspace));
            }
        }
    }
    Ok(())
}

fn engine_leftovers(engine: &Engine, state: &State) -> anyhow::Result<Vec<Leftover>> {
    let kind = engine.kind();
    let owner = crate::workspace::owner_id();
    let mut found = Vec::new();
    for container in engine.ps(&[MANAGED_FILTER]).hinted()? {
        // A sidecar's container is its workspace's as much as the
        // workspace's own (and so is one made to copy a sidecar's data).
        let sidecar = SidecarLabels::from_labels(&container.labels);
        let workspace = WorkspaceLabels::from_labels(&container.labels)
            .or_else(|| sidecar.as_ref().map(|s| s.workspace.clone()));
        let why = match (container.labels.get(KIND).map(String::as_str), workspace) {
            // Another installation's (another user, another DUAL_HOME): not ours to judge.
            (_, Some(labels)) if labels.owner != owner => None,
            // Its name may be in the state for another repo's branch.
            (_, Some(labels)) if !is_live(state, &labels) => Some(format!(
                "its workspace `{}` (branch `{}` of `{}`) no longer exists",
                labels.workspace, labels.branch, labels.repo
            )),
            (Some(KIND_PROBE), _) if crate::verify::cleanup::is_abandoned(&container.labels) => {
                Some("a probe container whose `dual verify` is gone".into())
            }
            (Some(KIND_ACCOUNTS), _) if crate::verify::cleanup::is_abandoned(&container.labels) => {
                Some("made to read an image's accounts by a `dual launch` that is gone".into())
            }
            (Some(KIND_MEASURE), _) if crate::verify::cleanup::is_abandoned(&container.labels) => {
                Some("made to measure a volume by a `dual destroy` that is gone".into())
            }
            // A copy of a sidecar's data runs once to its end: one that
            // ended and is still there is one a killed launch left.
            _ if sidecar.as_ref().is_some_and(|s| s.name.ends_with(".copy"))
                && matches!(
                    container.state,
                    ContainerState::Exited | ContainerState::Dead
                ) =>
            {
                Some("made to copy a sidecar's data by a `dual launch` that did not finish".into())
            }
            (Some(KIND_WORKSPACE), _) if container.state == ContainerState::Created => {
                Some("stuck in `created`: it never started".into())
            }
            _ => None,
        };
        if let Some(why) = why {
            found.push(Leftover::Container {
                engine: kind,
                id: container.id,
                why,
            });
        }
    }
    // Owned as destroy owns them: by their labels, never by their names
    // (a sidecar's data volume is `dual-{ws}.{sidecar}.{volume}`). A volume
    // of a workspace in the state stays, whatever its config says now.
    for volume in engine.volumes(&workspace_filters(Some(&owner))).hinted()? {
        let Some(labels) = WorkspaceLabels::from_labels(&volume.labels) else {
            continue;
        };
        if !is_live(state, &labels) {
            found.push(Leftover::Volume {
                engine: kind,
                name: volume.name,
                why: format!(
                    "its workspace `{}` (branch `{}` of `{}`) no longer exists",
                    labels.workspace, labels.branch, labels.repo
                ),
            });
        }
    }
    found.extend(stale_caches(engine, state, &owner)?);
    Ok(found)
}

/// Cache volumes (see `workspace::caches`) no workspace will use again: a
/// repo's, once the repo is no longer registered; the installation's own,
/// once no repo is. A registered repo's stays, with or without
/// workspaces: the next workspace is the one it is for.
fn stale_caches(engine: &Engine, state: &State, owner: &str) -> anyhow::Result<Vec<Leftover>> {
    let mut found = Vec::new();
    for volume in engine.volumes(&CacheLabels::filters(owner)).hinted()? {
        let Some(labels) = CacheLabels::from_labels(&volume.labels) else {
            continue;
        };
        let why = match &labels.repo {
            Some(repo) if !state.repos.contains_key(repo) => {
                format!("package managers' cache of repo `{repo}`, which is no longer registered")
            }
            None if state.repos.is_empty() => {
                "package managers' cache shared by your repos, and none is registered".into()
            }
            _ => continue,
        };
        found.push(Leftover::Volume {
            engine: engine.kind(),
            name: volume.name,
            why,
        });
    }
    Ok(found)
}

/// Whether the workspace `labels` name is one in the state (its name may
/// be there for another repo's branch: every label must agree).
fn is_live(state: &State, labels: &WorkspaceLabels) -> bool {
    state
        .workspace(&labels.workspace)
        .is_some_and(|w| crate::workspace::labels(w, None).same_workspace(labels))
}

fn finished_workspaces(state: &State) -> Vec<Leftover> {
    let mut found = Vec::new();
    for workspace in &state.workspaces {
        let Some(repo) = state.repos.get(&workspace.repo) else {
            continue;
        };
        if workspace.branch == repo.default_branch || !workspace.path.exists() {
            continue;
        }
        let status = git::upstream_status(
            &repo.source,
            &workspace.branch,
            &repo.default_branch,
            &workspace.path,
        );
        let why = match status {
            Some(Upstream::Merged) => "its branch is merged into the default branch upstream",
            // Only a branch that was there once: a new one was never pushed.
            Some(Upstream::Deleted)
                if git::tracks_remote_branch(&workspace.path, &workspace.branch) =>
            {
                "its branch was deleted upstream"
            }
            _ => continue,
        };
        let clean = git::uncommitted(&workspace.path).is_ok_and(|l| l.is_empty())
            && git::unpushed(&workspace.path).is_ok_and(|l| l.is_empty());
        if clean {
            found.push(Leftover::Workspace {
                name: workspace.name(),
                why: why.into(),
            });
        }
    }
    found
}
