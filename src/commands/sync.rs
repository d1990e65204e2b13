//! `dual sync [WORKSPACE]`: see `ops::sync`, which prints a line per file.

use std::process::ExitCode;

use crate::printer::Printer;

pub fn run(name: Option<&str>, printer: &Printer) -> anyhow::Result<ExitCode> {
    crate::ops::sync::sync(name, printer)?;
    Ok(ExitCode::SUCCESS)
}
