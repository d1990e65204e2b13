//! `dual stop [WORKSPACE]`: see `ops::stop`.

use std::process::ExitCode;

use super::print;
use crate::engine::EngineKind;
use crate::printer::Printer;

pub fn run(
    flag: Option<EngineKind>,
    name: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let stopped = crate::ops::stop::stop(flag, name, printer)?;
    print(&format!(
        "stopped `{0}`; `dual launch {0}` starts it again\n",
        stopped.workspace
    ))?;
    Ok(ExitCode::SUCCESS)
}
