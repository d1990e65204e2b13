//! `dual focus [WORKSPACE | --clear]`: which workspace plain
//! `http://localhost:PORT` reaches through the proxy (see `workspace::focus`).

use std::process::ExitCode;

use crate::cli::print;
use crate::workspace::{self, Store, focus};

pub fn run(name: Option<&str>, clear: bool) -> anyhow::Result<ExitCode> {
    if clear {
        focus::clear()?;
        print("no workspace in focus: plain localhost gets a page listing the workspaces\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(name) = name else {
        match focus::read() {
            Some(focused) => print(&format!("{focused}\n"))?,
            None => print("no workspace in focus; `dual focus WORKSPACE` sets one\n")?,
        }
        return Ok(ExitCode::SUCCESS);
    };
    let state = Store::open_default().load().map_err(crate::error::hinted)?;
    let workspace = workspace::resolve(&state, Some(name)).map_err(crate::error::hinted)?;
    let name = workspace.name();
    focus::set(&name)?;
    let ports = workspace::declared_ports(&state, workspace);
    let example = ports.first().copied().unwrap_or(3000);
    print(&format!(
        "focus: {name}; http://localhost:{example} reaches it through the proxy (within a second)\n"
    ))?;
    if crate::proxy::instance::running_pid().is_none() {
        eprintln!("warning: the proxy is not running; `dual proxy start` starts it");
    }
    Ok(ExitCode::SUCCESS)
}
