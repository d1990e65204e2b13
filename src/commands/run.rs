//! `dual run [--] CMD…`: run a command in the container of the workspace
//! around the current directory, in the same directory inside, as the host
//! user. A TTY when stdin and stdout are terminals; stdin piped otherwise.
//! The exit status passes through, and signals reach the process inside:
//! `exec` passes none on by itself, so the command records its pid in a tmpfs
//! and dual delivers each signal it gets to that process group.

use crate::error::HintExt as _;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use crate::engine::{Engine, EngineKind};
use crate::workspace::{self, Store, Workspace};

pub fn run(
    flag: Option<EngineKind>,
    name: Option<&str>,
    command: &[OsString],
) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load().hinted()?;
    let workspace = workspace::resolve(&state, name).hinted()?;
    run_in(flag, workspace, command)
}

pub fn run_in(
    flag: Option<EngineKind>,
    workspace: &Workspace,
    command: &[OsString],
) -> anyhow::Result<ExitCode> {
    crate::ops::run::refuse_foreign_urls(workspace, command)?;
    let engine = super::engine_for(flag, Some(workspace))?;
    let here = workspace::current_dir().unwrap_or_else(|_| workspace.path.clone());
    let workdir = if here.starts_with(&workspace.path) {
        here
    } else {
        workspace.path.clone()
    };
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut env = Vec::new();
    if tty && let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".to_owned(), term));
    }
    let run = crate::ops::run::attached(workspace, command, workdir, tty, env);
    let spec = &run.spec;
    let mut signals = 0;
    // A daemon that hangs leaves `exec` waiting forever: once the command
    // has run for the engine's timeout, ask the engine whether it answers.
    let probe = {
        let (engine, container) = (engine.clone(), spec.container.clone());
        move || engine.inspect(&[&container]).map(drop)
    };
    // Its own process group only without a terminal on stdin: one in the
    // background reading the terminal is stopped (SIGTTIN), which hung
    // `x=$(npm -v)` typed at a prompt.
    let own_group = !std::io::stdin().is_terminal();
    let status = engine.exec_cmd(spec).run_attached_checked(
        own_group,
        |signal| {
            signals += 1;
            // A third Ctrl-C means it: kill what ignores the polite ones.
            let signal = if signals >= 3 { libc::SIGKILL } else { signal };
            if let Err(error) = crate::ops::run::pass_signal(&engine, &run, signal) {
                eprintln!("dual: could not pass signal {signal} on: {error}");
            }
        },
        engine.status_timeout(),
        probe,
    )?;
    let status = status.hinted()?;
    if let Some(code) = status.code() {
        if code != 0 {
            explain_failure(&engine, workspace);
        }
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(ExitCode::from(
        128 + u8::try_from(status.signal().unwrap_or(1)).unwrap_or(1),
    ))
}

/// After a failed command: when the workspace is not running, or its
/// engine does not answer, say so (the engine's own message is terse).
fn explain_failure(engine: &Engine, workspace: &Workspace) {
    match engine.inspect(&[&workspace.container_name()]) {
        Ok(found) if found.first().is_some_and(|c| c.running) => {}
        Ok(_) => eprintln!(
            "dual: workspace `{}` is not running\nhint: start it with `dual launch {}`",
            workspace.name(),
            workspace.name()
        ),
        Err(error) => eprintln!(
            "dual: {error}{}",
            error
                .hint()
                .map_or(String::new(), |hint| format!("\nhint: {hint}"))
        ),
    }
}
