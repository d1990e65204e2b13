//! `dual launch [WORKSPACE] [--recreate]`: see `ops::launch`, which prints
//! each step as it is done.

use std::process::ExitCode;

use crate::engine::EngineKind;
use crate::printer::Printer;

pub fn run(
    flag: Option<EngineKind>,
    name: Option<&str>,
    recreate: bool,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    crate::ops::launch::launch(flag, name, recreate, printer)?;
    Ok(ExitCode::SUCCESS)
}
