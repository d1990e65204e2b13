//! `dual destroy [WORKSPACE] [--force]`: see `ops::destroy`. On a terminal
//! it asks before a sidecar's data goes; `--force` deletes without asking
//! (it already meant "throw away what would be lost": unpushed work).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use super::print;
use crate::engine::EngineKind;
use crate::ops::destroy::Consent;
use crate::printer::Printer;

pub fn run(
    flag: Option<EngineKind>,
    name: Option<&str>,
    force: bool,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let on_terminal =
        printer.is_terminal() && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let consent = if on_terminal {
        Consent::Ask(&ask)
    } else {
        Consent::Nobody
    };
    let destroyed = crate::ops::destroy::destroy(flag, name, force, consent, printer)?;
    let mut report = String::new();
    for line in &destroyed.removed {
        report.push_str(&format!("  deleted {line}\n"));
    }
    print(&format!("destroyed `{}`\n{report}", destroyed.workspace))?;
    Ok(ExitCode::SUCCESS)
}

/// `question [y/N]` on stderr, the answer from stdin.
fn ask(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes")
}
