//! `dual prune [--yes]`: find what dual left behind (see `ops::prune`) and
//! remove it after showing the list and asking.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use super::print;
use crate::engine::EngineKind;
use crate::printer::Printer;

pub fn run(flag: Option<EngineKind>, yes: bool, printer: &Printer) -> anyhow::Result<ExitCode> {
    let found = crate::ops::prune::leftovers(flag)?;
    if found.is_empty() {
        print("nothing to prune\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let list: String = found
        .iter()
        .map(|l| format!("  {}\n", l.describe()))
        .collect();
    print(&format!("dual left these behind:\n{list}"))?;
    if !yes && !confirm(found.len())? {
        print("nothing removed\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::ops::prune::remove(flag, &found, printer)?;
    print(&format!("removed {} item(s)\n", found.len()))?;
    Ok(ExitCode::SUCCESS)
}

fn confirm(count: usize) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(crate::error::Hinted {
            message: "prune needs a yes before removing anything, and stdin is not a terminal"
                .into(),
            hint: "run `dual prune --yes` to remove the items listed above".into(),
        });
    }
    eprint!("remove these {count} item(s)? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
