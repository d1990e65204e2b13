//! Removing a workspace: its container, its volumes, its home, its logs,
//! the clone and the state entry. Refuses, unless forced, when the clone
//! holds uncommitted or unpushed work; never deletes outside the workspace
//! root.

use anyhow::Context;

use crate::engine::EngineKind;
use crate::engine::labels::WorkspaceLabels;
use crate::error::{HintExt as _, WithHint};
use crate::printer::Printer;
use crate::workspace::{self, Store, WorkspaceError, git};

/// What `destroy` did: the workspace it removed.
#[derive(Debug)]
pub struct Destroyed {
    pub workspace: String,
}

pub fn destroy(
    flag: Option<EngineKind>,
    name: Option<&str>,
    force: bool,
    printer: &Printer,
) -> anyhow::Result<Destroyed> {
    let store = Store::open_default();
    let state = store.load().hinted()?;
    let workspace = workspace::resolve(&state, name).hinted()?.clone();
    let cloned = workspace.path.exists();
    if cloned && !force {
        let mut work: Vec<String> = git::uncommitted(&workspace.path)?
            .into_iter()
            .map(|line| format!("uncommitted: {line}"))
            .collect();
        work.extend(
            git::unpushed(&workspace.path)?
                .into_iter()
                .map(|line| format!("unpushed: {line}")),
        );
        if !work.is_empty() {
            return Err(crate::error::hinted(WorkspaceError::Unsafe {
                name: workspace.name(),
                work,
            }));
        }
    }
    let root = crate::paths::workspace_root();
    let clone = if cloned {
        Some(workspace::check_inside_root(&workspace.path, &root).hinted()?)
    } else {
        None
    };

    if workspace.engine.is_some() || flag.is_some() {
        let engine = super::engine_for(flag, Some(&workspace)).hinted()?;
        let container = workspace.container_name();
        printer.detail(format!("removing `{container}` and its volumes"));
        // Only this workspace's: another installation, or (in an older
        // state) another repo's workspace, may use the same name.
        let mine = workspace::labels(&workspace, None);
        if let Some(found) = engine.inspect(&[&container]).hinted()?.pop()
            && WorkspaceLabels::from_labels(&found.labels).is_some_and(|l| l.same_workspace(&mine))
        {
            engine.remove(&[&container]).hinted()?;
        }
        let volumes = engine.volume_names(&mine.filters()).hinted()?;
        engine
            .volume_remove(&volumes.iter().map(String::as_str).collect::<Vec<_>>())
            .hinted()?;
    }
    if let Some(clone) = clone {
        printer.detail(format!("deleting {}", clone.display()));
        std::fs::remove_dir_all(&clone)
            .with_context(|| format!("could not delete `{}`", clone.display()))?;
    }
    let name = workspace.name();
    let _ = std::fs::remove_dir_all(crate::paths::workspace_home(&name));
    let _ = std::fs::remove_dir_all(crate::workspace::services::logs_dir(&name));
    let _ = super::setup::SetupRecord::clear(&name);
    crate::tmux::end_session(&name);
    store.update(|state| -> Result<(), WithHint> {
        state.workspaces.retain(|w| w.name() != name);
        Ok(())
    })?;
    Ok(Destroyed { workspace: name })
}
