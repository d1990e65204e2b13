//! `dual stop [WORKSPACE]`: stop its container; the clone stays and
//! `dual launch` starts it again.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::print;
use crate::engine::EngineKind;
use crate::workspace::{self, Store};

pub fn run(flag: Option<EngineKind>, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let store = Store::open_default();
    let state = store.load()?;
    let workspace = workspace::resolve(&state, name)?;
    let engine = super::engine_for(flag, Some(workspace))?;
    // The container's main process gives its services their grace period.
    let grace = u64::from(workspace::services::STOP_GRACE_SECONDS) + 2;
    engine.stop(&workspace.container_name(), Duration::from_secs(grace))?;
    let stopped = workspace.name();
    crate::tmux::end_session(&stopped);
    store.update(|state| -> anyhow::Result<()> {
        if let Some(record) = state.workspace_mut(&stopped) {
            record.stopped = true;
        }
        Ok(())
    })?;
    print(&format!(
        "stopped `{}`; `dual launch {}` starts it again\n",
        workspace.name(),
        workspace.name()
    ))?;
    Ok(ExitCode::SUCCESS)
}
