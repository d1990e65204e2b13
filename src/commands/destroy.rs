//! `dual destroy [WORKSPACE] [--force]`: remove the container, its volumes,
//! its home, the clone and the state entry. Refuses, without `--force`, when
//! the clone holds uncommitted or unpushed work; never deletes outside the
//! workspace root.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::print;
use crate::engine::EngineKind;
use crate::engine::labels::WorkspaceLabels;
use crate::workspace::{self, Store, WorkspaceError, git};

pub fn run(flag: Option<EngineKind>, name: Option<&str>, force: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open_default();
    let state = store.load()?;
    let workspace = workspace::resolve(&state, name)?.clone();
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
            return Err(WorkspaceError::Unsafe {
                name: workspace.name(),
                work,
            }
            .into());
        }
    }
    let root = crate::paths::workspace_root();
    let clone = if cloned {
        Some(workspace::check_inside_root(&workspace.path, &root)?)
    } else {
        None
    };

    if workspace.engine.is_some() || flag.is_some() {
        let engine = super::engine_for(flag, Some(&workspace))?;
        let container = workspace.container_name();
        // Only this workspace's: another installation, or (in an older
        // state) another repo's workspace, may use the same name.
        let mine = workspace::labels(&workspace, None);
        if let Some(found) = engine.inspect(&[&container])?.pop()
            && WorkspaceLabels::from_labels(&found.labels).is_some_and(|l| l.same_workspace(&mine))
        {
            engine.remove(&[&container])?;
        }
        let volumes = engine.volume_names(&mine.filters())?;
        engine.volume_remove(&volumes.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    if let Some(clone) = clone {
        std::fs::remove_dir_all(&clone)
            .with_context(|| format!("could not delete `{}`", clone.display()))?;
    }
    let _ = std::fs::remove_dir_all(crate::paths::workspace_home(&workspace.name()));
    let _ = std::fs::remove_dir_all(crate::workspace::services::logs_dir(&workspace.name()));
    crate::tmux::end_session(&workspace.name());
    store.update(|state| -> anyhow::Result<()> {
        state.workspaces.retain(|w| w.name() != workspace.name());
        Ok(())
    })?;
    print(&format!("destroyed `{}`\n", workspace.name()))?;
    Ok(ExitCode::SUCCESS)
}
