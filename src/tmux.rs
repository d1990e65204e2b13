//! One tmux session per workspace, named after it, started in its clone
//! with dual's shell integration on PATH, so `npm`, `python`, `curl`, …
//! typed there run in the workspace's container.

use std::ffi::OsString;

use crate::process::Cmd;
use crate::workspace::Workspace;

pub fn available() -> bool {
    crate::process::find_on_path("tmux").is_some()
}

/// Whether dual runs inside a tmux client (then it switches that client
/// rather than nesting another).
pub fn inside() -> bool {
    std::env::var_os("TMUX").is_some_and(|v| !v.is_empty())
}

pub fn session_exists(name: &str) -> bool {
    Cmd::new("tmux", ["has-session", "-t", &format!("={name}")])
        .run()
        .is_ok()
}

/// Creates the workspace's session (detached) unless it exists.
pub fn ensure_session(workspace: &Workspace) -> anyhow::Result<()> {
    let name = workspace.name();
    if session_exists(&name) {
        return Ok(());
    }
    // The user's shell with dual's rc file (the shims must exist for PATH
    // to route anything).
    let shell = crate::shell::session::interactive_shell()?;
    let mut args: Vec<OsString> = vec![
        "new-session".into(),
        "-d".into(),
        "-s".into(),
        name.clone().into(),
        "-c".into(),
        workspace.path.clone().into(),
    ];
    for (key, value) in &shell.env {
        let mut pair = OsString::from(format!("{key}="));
        pair.push(value);
        args.extend(["-e".into(), pair]);
    }
    // A tmux server started elsewhere does not have dual's settings.
    for key in crate::settings::FOR_TMUX {
        if let Ok(value) = std::env::var(key) {
            args.push("-e".into());
            args.push(format!("{key}={value}").into());
        }
    }
    // Not a login shell: a login shell's profile (Debian's /etc/profile)
    // sets PATH afresh, without the shims. The same line starts the
    // session's later windows and panes (its `default-command`, which tmux
    // runs with its `default-shell`, so that is sh too): a plain shell
    // there would read the user's rc files without dual's after them.
    let line = shell.sh_line();
    args.extend(["/bin/sh", "-c", &line].map(OsString::from));
    // (`=NAME:`, the session by its exact name: set-option's -t is a pane,
    // where tmux 3.3 finds no `=NAME`; and without -t, run from a pane,
    // it would set the options of that pane's session, from TMUX_PANE.)
    let target = format!("={name}:");
    for (option, value) in [("default-shell", "/bin/sh"), ("default-command", &line)] {
        args.extend([";", "set-option", "-t", &target, option, value].map(OsString::from));
    }
    Cmd::new("tmux", args).run()?;
    Ok(())
}

/// Attaches the terminal to the session, or switches the tmux client dual
/// runs in to it. Attaching returns when the user detaches.
pub fn attach(name: &str) -> anyhow::Result<()> {
    let target = format!("={name}");
    if inside() {
        Cmd::new("tmux", ["switch-client", "-t", &target]).run()?;
    } else {
        let status =
            Cmd::new("tmux", ["attach-session", "-t", &target]).run_attached(false, |_| {})?;
        if !status.success() {
            anyhow::bail!("tmux could not attach to session `{name}`");
        }
    }
    Ok(())
}

/// Ends the workspace's session, if it has one (after `stop` or `destroy`).
pub fn end_session(name: &str) {
    if available() && session_exists(name) {
        let _ = Cmd::new("tmux", ["kill-session", "-t", &format!("={name}")]).run();
    }
}
