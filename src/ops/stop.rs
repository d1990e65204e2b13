//! Stopping a workspace's container: the clone stays, and launching starts
//! it again.

use std::time::Duration;

use crate::engine::EngineKind;
use crate::error::{HintExt as _, WithHint};
use crate::printer::Printer;
use crate::workspace::{self, Store};

/// What `stop` did: the workspace it stopped.
#[derive(Debug)]
pub struct Stopped {
    pub workspace: String,
}

pub fn stop(
    flag: Option<EngineKind>,
    name: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<Stopped> {
    let store = Store::open_default();
    let state = store.load().hinted()?;
    let workspace = workspace::resolve(&state, name).hinted()?;
    let engine = super::engine_for(flag, Some(workspace)).hinted()?;
    printer.detail(format!("stopping `{}`", workspace.container_name()));
    // The container's main process gives its services their grace period.
    let grace = u64::from(workspace::services::STOP_GRACE_SECONDS) + 2;
    engine
        .stop(&workspace.container_name(), Duration::from_secs(grace))
        .hinted()?;
    // After it: its services close their connections to them first.
    workspace::stack::stop(&engine, workspace).hinted()?;
    // What it wrote last has come back; nothing changes there until the
    // next launch, which syncs again.
    if workspace.endpoint.is_some() {
        super::remote_host::stop_sync(workspace);
    }
    let stopped = workspace.name();
    crate::tmux::end_session(&stopped);
    store.update(|state| -> Result<(), WithHint> {
        if let Some(record) = state.workspace_mut(&stopped) {
            record.stopped = true;
        }
        Ok(())
    })?;
    Ok(Stopped { workspace: stopped })
}
