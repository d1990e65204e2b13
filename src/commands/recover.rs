//! `dual recover`: rebuild dual's state when its file is lost or corrupt
//! (see `ops::recover`).

use std::process::ExitCode;

use super::print;
use crate::engine::EngineKind;
use crate::printer::Printer;

pub fn run(flag: Option<EngineKind>, printer: &Printer) -> anyhow::Result<ExitCode> {
    let recovered = crate::ops::recover::recover(flag, printer)?;
    let mut report = String::new();
    if let Some(aside) = &recovered.aside {
        report.push_str(&format!(
            "the unreadable state file was kept as {}\n",
            aside.display()
        ));
    }
    report.push_str(&format!(
        "recovered {} workspace(s) of {} repo(s)\n",
        recovered.workspaces_added, recovered.repos_added
    ));
    for note in &recovered.notes {
        report.push_str(&format!("  note: {note}\n"));
    }
    report.push_str(
        "not recoverable: workspaces that were never launched (no clone, no container): `dual create` them again\n",
    );
    print(&report)?;
    Ok(ExitCode::SUCCESS)
}
