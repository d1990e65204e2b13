//! `dual focus [WORKSPACE | --clear]`: which workspace plain
//! `http://localhost:PORT` reaches through the proxy (see `workspace::focus`).

use std::process::ExitCode;

use super::print;
use crate::workspace::focus::{self, Applied};
use crate::workspace::{self, Store};

pub fn run(name: Option<&str>, clear: bool) -> anyhow::Result<ExitCode> {
    if clear {
        let applied = focus::apply(None)?;
        print("no workspace in focus: plain localhost gets a page listing the workspaces\n")?;
        warn_unless_applied(&applied);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(name) = name else {
        // The running proxy's own view first; the kept choice else.
        let focused = match crate::proxy::control::ask(&crate::proxy::control::Request::Focus {
            set: None,
            clear: false,
        }) {
            Ok(crate::proxy::control::Answer::Focus { focus }) => focus,
            _ => focus::read(),
        };
        match focused {
            Some(focused) => print(&format!("{focused}\n"))?,
            None => print("no workspace in focus; `dual focus WORKSPACE` sets one\n")?,
        }
        return Ok(ExitCode::SUCCESS);
    };
    let state = Store::open_default().load().map_err(crate::error::hinted)?;
    let workspace = workspace::resolve(&state, Some(name)).map_err(crate::error::hinted)?;
    let name = workspace.name();
    let applied = focus::apply(Some(&name))?;
    let ports = workspace::declared_ports(&state, workspace);
    let example = ports.first().copied().unwrap_or(3000);
    let when = match applied {
        Applied::ByProxy => "now",
        Applied::NoProxy | Applied::NotTold(_) => "once the proxy starts",
    };
    print(&format!(
        "focus: {name}; http://localhost:{example} reaches it through the proxy ({when})\n"
    ))?;
    warn_unless_applied(&applied);
    Ok(ExitCode::SUCCESS)
}

fn warn_unless_applied(applied: &Applied) {
    match applied {
        Applied::ByProxy => {}
        Applied::NoProxy => eprintln!(
            "warning: the proxy is not running; the choice takes effect when it starts (`dual proxy start`)"
        ),
        Applied::NotTold(error) => eprintln!(
            "warning: the running proxy was not told: {error}; the choice takes effect when it starts again (`dual proxy stop`, then `dual proxy start`)"
        ),
    }
}
