//! `dual launch [WORKSPACE] [--recreate] [--skip-initialize-command]`: see
//! `ops::launch`, which prints each step as it is done.

use std::process::ExitCode;

use crate::engine::EngineKind;
use crate::ops::launch::LaunchOptions;
use crate::printer::Printer;

pub fn run(
    flag: Option<EngineKind>,
    name: Option<&str>,
    options: LaunchOptions,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    crate::ops::launch::launch_with(flag, name, options, printer)?;
    Ok(ExitCode::SUCCESS)
}
