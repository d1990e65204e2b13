//! `dual stop [WORKSPACE]`: stop its container; the clone stays and
//! `dual launch` starts it again.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::print;
use crate::engine::EngineKind;
use crate::workspace::{self, Store};

pub fn run(flag: Option<EngineKind>, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load()?;
    let workspace = workspace::resolve(&state, name)?;
    let engine = super::engine_for(flag, Some(workspace))?;
    engine.stop(&workspace.container_name(), Duration::from_secs(3))?;
    print(&format!(
        "stopped `{}`; `dual launch {}` starts it again\n",
        workspace.name(),
        workspace.name()
    ))?;
    Ok(ExitCode::SUCCESS)
}
