//! `dual focus [WORKSPACE | --clear]`: which workspace plain
//! `http://localhost:PORT` reaches through the proxy (see `ops::focus`).

use std::process::ExitCode;

use super::print;
use crate::ops::focus::{self, Applied};

pub fn run(name: Option<&str>, clear: bool) -> anyhow::Result<ExitCode> {
    if clear {
        let applied = focus::clear()?;
        print("no workspace in focus: plain localhost gets a page listing the workspaces\n")?;
        warn_unless_applied(&applied);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(name) = name else {
        match focus::current() {
            Some(focused) => print(&format!("{focused}\n"))?,
            None => print("no workspace in focus; `dual focus WORKSPACE` sets one\n")?,
        }
        return Ok(ExitCode::SUCCESS);
    };
    let set = focus::set(name)?;
    let when = match set.applied {
        Applied::ByProxy => "now",
        Applied::NoProxy | Applied::NotTold(_) => "once the proxy starts",
    };
    print(&format!(
        "focus: {}; http://localhost:{} reaches it through the proxy ({when})\n",
        set.workspace, set.example_port
    ))?;
    warn_unless_applied(&set.applied);
    Ok(ExitCode::SUCCESS)
}

fn warn_unless_applied(applied: &Applied) {
    if let Some(warning) = applied.warning() {
        eprintln!("warning: {warning}");
    }
}
