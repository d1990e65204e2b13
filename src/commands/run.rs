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

use crate::engine::{Engine, EngineKind, ExecSpec};
use crate::workspace::{self, RUN_DIR, Store, Workspace};

/// Records its own pid (which `exec` keeps), drops records of processes that
/// are gone, then becomes the command (see the file's header).
const WRAPPER: &str = include_str!("run-wrapper.sh");

/// Sends signal `$1` to the process group recorded in `$2`.
const SIGNAL: &str = include_str!("run-signal.sh");

pub fn run(
    flag: Option<EngineKind>,
    name: Option<&str>,
    command: &[OsString],
) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load().hinted()?;
    let workspace = workspace::resolve(&state, name).hinted()?;
    run_in(flag, workspace, command)
}

/// The first `*.localhost` name in `args` that is not `workspace`'s own:
/// inside its container every such name is its own loopback (curl and
/// browsers resolve `*.localhost` there without asking), so a request to
/// another workspace's URL would get this workspace's answer.
pub fn foreign_localhost(workspace: &Workspace, args: &[OsString]) -> Option<String> {
    let own = format!("{}.localhost", workspace.name());
    args.iter().find_map(|arg| {
        let arg = arg.to_str()?;
        if arg.contains(char::is_whitespace) {
            return None;
        }
        let rest = arg.split_once("://").map_or(arg, |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next()?;
        let host = authority.rsplit('@').next()?;
        let host = match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        (host.ends_with(".localhost") && host != own).then_some(host)
    })
}

pub fn run_in(
    flag: Option<EngineKind>,
    workspace: &Workspace,
    command: &[OsString],
) -> anyhow::Result<ExitCode> {
    if let Some(host) = foreign_localhost(workspace, command) {
        anyhow::bail!(crate::error::Hinted {
            message: format!(
                "`{host}` is not `{}`: inside its container every *.localhost name is the container's own loopback, so this would reach `{}`'s own server, not `{host}`",
                workspace.name(),
                workspace.name()
            ),
            hint: format!(
                "run it on the host, where {host} goes through dual's proxy (the shell integration does that by itself for a URL of another workspace)"
            ),
        });
    }
    let engine = super::engine_for(flag, Some(workspace))?;
    let here = workspace::current_dir().unwrap_or_else(|_| workspace.path.clone());
    let workdir = if here.starts_with(&workspace.path) {
        here
    } else {
        workspace.path.clone()
    };
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let pid_file = format!("{RUN_DIR}/run-{}-{}", std::process::id(), nanos());
    let mut argv: Vec<OsString> = vec![
        "sh".into(),
        "-c".into(),
        WRAPPER.into(),
        "sh".into(),
        pid_file.clone().into(),
    ];
    argv.extend(command.iter().cloned());
    let argv = workspace::after_start_up(workspace, &argv);
    let mut env = Vec::new();
    if tty && let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".to_owned(), term));
    }
    let spec = ExecSpec {
        container: workspace.container_name(),
        workdir: Some(workdir),
        user: workspace.user,
        env,
        interactive: true,
        tty,
        command: argv,
    };
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
    let status = engine.exec_cmd(&spec).run_attached_checked(
        own_group,
        |signal| {
            signals += 1;
            // A third Ctrl-C means it: kill what ignores the polite ones.
            let signal = if signals >= 3 { libc::SIGKILL } else { signal };
            forward(&engine, &spec, &pid_file, signal);
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

fn forward(engine: &Engine, run: &ExecSpec, pid_file: &str, signal: i32) {
    let spec = ExecSpec {
        container: run.container.clone(),
        user: run.user,
        command: vec![
            "sh".into(),
            "-c".into(),
            SIGNAL.into(),
            "sh".into(),
            signal.to_string().into(),
            pid_file.into(),
        ],
        ..ExecSpec::default()
    };
    if let Err(error) = engine.exec_spec(&spec) {
        eprintln!("dual: could not pass signal {signal} on: {error}");
    }
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

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_urls_of_other_workspaces_only() {
        let workspace = Workspace {
            repo: "shop".into(),
            branch: "a".into(),
            label: "a".into(),
            path: "/w/shop/a".into(),
            setup_done: false,
            engine: None,
            endpoint: None,
            user: None,
            stopped: false,
            routed: None,
            data_from: None,
        };
        let found = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            foreign_localhost(&workspace, &args)
        };
        assert_eq!(
            found(&["-s", "http://shop-b.localhost:5000/x"]).as_deref(),
            Some("shop-b.localhost")
        );
        assert_eq!(
            found(&["shop-b.localhost:5000"]).as_deref(),
            Some("shop-b.localhost")
        );
        assert_eq!(
            found(&["https://u:p@Shop-B.LOCALHOST./"]).as_deref(),
            Some("shop-b.localhost")
        );
        assert_eq!(
            found(&["http://shop-a.localhost:5000/"]),
            None,
            "its own URL"
        );
        assert_eq!(found(&["http://localhost:5000/", "127.0.0.1:3000"]), None);
        assert_eq!(found(&["-H", "Host: shop-b.localhost"]), None);
        assert_eq!(found(&["http://example.com/shop-b.localhost"]), None);
    }
}
