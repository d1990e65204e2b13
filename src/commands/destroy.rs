//! `dual destroy [WORKSPACE] [--force]`: see `ops::destroy`.

use std::process::ExitCode;

use super::print;
use crate::engine::EngineKind;
use crate::printer::Printer;

pub fn run(
    flag: Option<EngineKind>,
    name: Option<&str>,
    force: bool,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let destroyed = crate::ops::destroy::destroy(flag, name, force, printer)?;
    print(&format!("destroyed `{}`\n", destroyed.workspace))?;
    Ok(ExitCode::SUCCESS)
}
