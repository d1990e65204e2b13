//! Runs a config's lifecycle hooks (devcontainer.json's) in the
//! workspace's container, as the user, in the clone, through the same exec
//! path as `setup`:
//! - `onCreateCommand`, `updateContentCommand`, `postCreateCommand` once per
//!   container: the container's id is recorded once they succeed, so a
//!   second launch (or one that waited for a concurrent one: `launch` holds
//!   a lock per workspace) does not run them again, and a container made
//!   anew (recreated) runs them again. One that fails runs again at the next
//!   launch, as `setup` does.
//! - `postStartCommand` each time `launch` started the container.
//! - `postAttachCommand` at `dual attach`.
//!
//! A hook of several named commands (the object form) runs them at once,
//! each line they print prefixed with its name, and waits for all; its
//! failure names the key, each entry that failed and its status.
//!
//! `initializeCommand` would run on the host: refused (see
//! `check_host_command`).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineKind};
use crate::error::{Hint, HintExt as _};
use crate::printer::Printer;
use crate::untrusted::shown_line;
use crate::workspace::config::{Config, ConfigError};
use crate::workspace::lifecycle::{Hook, HookCommand};
use crate::workspace::{self, Workspace};

/// How long a hook may run where nobody sees it (not on a terminal, or in
/// parallel, where its output is read by dual).
const HOOK_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often a wait looks at Ctrl-C and the deadline.
const POLL: Duration = Duration::from_millis(50);
/// A line of output longer than this is shown in pieces.
const MAX_LINE_BYTES: usize = 4096;

/// `onCreateCommand`, `updateContentCommand` and `postCreateCommand`,
/// once per container; `postStartCommand` when the container was
/// (re)started now (`started`).
pub fn run_at_launch(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    started: bool,
    printer: &Printer,
) -> anyhow::Result<()> {
    let lifecycle = &config.lifecycle;
    if !lifecycle.on_create.is_empty() {
        let container = engine
            .inspect_one(&workspace.container_name())
            .map_err(crate::error::hinted)?;
        if CreatedRecord::read(&workspace.name()).as_deref() != Some(container.id.as_str()) {
            for hook in &lifecycle.on_create {
                run_hook(engine, workspace, hook, true, printer)?;
            }
            if let Err(error) = CreatedRecord::write(&workspace.name(), &container.id) {
                printer.warn(format!(
                    "could not record that the create commands of `{}` ran ({error}): the next launch runs them again",
                    workspace.name()
                ));
            }
        }
    }
    if started && let Some(hook) = &lifecycle.post_start {
        run_hook(engine, workspace, hook, false, printer)?;
    }
    Ok(())
}

/// `postAttachCommand` of the workspace's config, before `dual attach`
/// attaches. A failure is a warning: the session is still attached.
pub fn attach_hook(flag: Option<EngineKind>, workspace: &Workspace, printer: &Printer) {
    let ran = Config::load(&workspace.path)
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            let Some(hook) = &config.lifecycle.post_attach else {
                return Ok(());
            };
            let engine = super::engine_for(flag, Some(workspace)).hinted()?;
            run_hook(&engine, workspace, hook, false, printer)
        });
    if let Err(error) = ran {
        let hint = crate::error::hint_of(&error)
            .map(|hint| format!("\nhint: {hint}"))
            .unwrap_or_default();
        printer.warn(format!("{error:#}{hint}"));
    }
}

/// devcontainer.json's `initializeCommand` would run on the host, where a
/// repo's code never runs: refused before anything is made, unless the user
/// skips it for this launch (`skip`), which is said.
///
/// Running it at the user's request was weighed and rejected: the text is
/// the branch's (a pull request's, an agent's), one confirmation would run
/// whatever a later commit puts there with the user's whole host account,
/// and what it usually does (create a `.env`, a network, a directory on the
/// host) a user can do by hand once, having read it.
pub fn check_host_command(
    workspace: &Workspace,
    config: &Config,
    skip: bool,
    printer: &Printer,
) -> anyhow::Result<()> {
    let Some(host) = &config.initialize_command else {
        return Ok(());
    };
    let shown = describe_hook(&host.hook);
    if skip {
        printer.warn(format!(
            "`initializeCommand` of `{}` not run (--skip-initialize-command): {shown}",
            host.file
        ));
        return Ok(());
    }
    Err(ConfigError::Invalid {
        path: workspace.path.join(&host.file),
        message: format!(
            "`initializeCommand` would run {shown} on this host, outside any container; dual runs nothing of a repo's on the host\nhint: if the workspace works without it, `dual launch --skip-initialize-command {}` launches without running it (for that launch); if you trust it, run it yourself in {} first",
            workspace.name(),
            workspace.path.display()
        ),
    }
    .into())
}

/// A hook's commands, for a message: `` `cmd` `` or `` `a`: `x`, `b`: `y` ``.
fn describe_hook(hook: &Hook) -> String {
    hook.commands
        .iter()
        .map(|(name, command)| match name {
            Some(name) => format!("{}: `{}`", shown_line(name), describe(command)),
            None => format!("`{}`", describe(command)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A command as one line, escaped, at most ~120 characters.
fn describe(command: &HookCommand) -> String {
    let text = match command {
        HookCommand::Shell(line) => line.clone(),
        HookCommand::Argv(words) => words
            .iter()
            .map(|word| crate::process::quote(word))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let shown = shown_line(&text);
    let mut short: String = shown.chars().take(120).collect();
    if short.len() < shown.len() {
        short.push('…');
    }
    short
}

/// One command of a hook that failed.
#[derive(Debug)]
pub struct Failure {
    /// Its name in the object form.
    pub entry: Option<String>,
    pub command: String,
    pub status: String,
}

/// A lifecycle hook failed: its key, each entry that failed and how.
#[derive(Debug, thiserror::Error)]
#[error("`{key}` failed in `{workspace}`: {}", describe_failures(.failures))]
pub struct HookFailed {
    pub workspace: String,
    pub key: String,
    pub failures: Vec<Failure>,
    /// It runs once per container (and so again at the next launch).
    pub once: bool,
}

fn describe_failures(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|failure| match &failure.entry {
            Some(entry) => format!(
                "entry `{}` (`{}`) ended with {}",
                shown_line(entry),
                failure.command,
                failure.status
            ),
            None => format!("`{}` ended with {}", failure.command, failure.status),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Hint for HookFailed {
    fn hint(&self) -> Option<String> {
        Some(if self.once {
            format!(
                "fix it (in the repo's devcontainer.json, or what it runs) and `dual launch {}` again: it runs until it succeeds once in this container",
                self.workspace
            )
        } else {
            format!(
                "fix it (in the repo's devcontainer.json, or what it runs); `dual stop {0}` and `dual launch {0}` run it again",
                self.workspace
            )
        })
    }
}

/// Runs `hook`: its one command as `setup` runs (attached on a terminal),
/// or its named commands at once, their lines prefixed.
fn run_hook(
    engine: &Engine,
    workspace: &Workspace,
    hook: &Hook,
    once: bool,
    printer: &Printer,
) -> anyhow::Result<()> {
    printer.out(format!("running {}: {}", hook.key, describe_hook(hook)));
    let failures = match hook.commands.as_slice() {
        [(None, command)] => {
            let status = run_one(engine, workspace, &hook.key, command, printer)?;
            (!status.success())
                .then(|| Failure {
                    entry: None,
                    command: describe(command),
                    status: crate::process::StatusText(status).to_string(),
                })
                .into_iter()
                .collect()
        }
        commands => run_parallel(engine, workspace, commands, printer)?,
    };
    if failures.is_empty() {
        return Ok(());
    }
    Err(crate::error::hinted(HookFailed {
        workspace: workspace.name(),
        key: hook.key.clone(),
        failures,
        once,
    }))
}

/// The argv to exec for `command`.
fn argv(command: &HookCommand) -> Vec<std::ffi::OsString> {
    match command {
        HookCommand::Shell(line) => vec!["sh".into(), "-c".into(), line.into()],
        HookCommand::Argv(words) => words.iter().map(Into::into).collect(),
    }
}

/// One command, as `setup` runs: attached to the terminal where there is
/// one, else its output as progress lines once it ends.
fn run_one(
    engine: &Engine,
    workspace: &Workspace,
    key: &str,
    command: &HookCommand,
    printer: &Printer,
) -> anyhow::Result<std::process::ExitStatus> {
    let argv = argv(command);
    if !printer.is_terminal() {
        let spec = workspace::exec_spec(workspace, &argv, false);
        let output = engine.exec_cmd(&spec).timeout(HOOK_TIMEOUT).output()?;
        for line in output.stdout.lines().chain(output.stderr.lines()) {
            printer.progress(format!("{key}: {}", shown_line(line)));
        }
        return Ok(output.status);
    }
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let spec = workspace::exec_spec(workspace, &argv, tty);
    Ok(engine.exec_cmd(&spec).run_attached(!tty, |_| {})?)
}

/// A line command `.0` printed (the channel closes once all have ended).
struct Line(usize, String);

/// Named commands at once, each line they print (stdout and stderr, in
/// order) prefixed with the name; waits for all. The failures, if any.
fn run_parallel(
    engine: &Engine,
    workspace: &Workspace,
    commands: &[(Option<String>, HookCommand)],
    printer: &Printer,
) -> anyhow::Result<Vec<Failure>> {
    // Their stderr joins their stdout inside, so that each line comes in
    // the order it was printed.
    let merged = |command: &HookCommand| {
        let mut words: Vec<std::ffi::OsString> = vec![
            "sh".into(),
            "-c".into(),
            "exec 2>&1; exec \"$@\"".into(),
            "sh".into(),
        ];
        words.extend(argv(command));
        words
    };
    // Started here, on the thread that waits for them (the stream dies with
    // the thread that started it).
    let mut started = Vec::with_capacity(commands.len());
    for (_, command) in commands {
        let spec = workspace::exec_spec(workspace, &merged(command), false);
        match engine.exec_cmd(&spec).stream() {
            Ok(handle) => started.push(handle),
            Err(error) => {
                for handle in &started {
                    let _ = handle.kill();
                }
                return Err(error.into());
            }
        }
    }
    let names: Vec<String> = commands
        .iter()
        .map(|(name, _)| shown_line(name.as_deref().unwrap_or("-")))
        .collect();
    let stopped = std::thread::scope(|scope| {
        let (sender, events) = mpsc::channel();
        for (index, handle) in started.iter().enumerate() {
            let sender = sender.clone();
            scope.spawn(move || read_lines(handle, index, &sender));
        }
        drop(sender);
        let deadline = Instant::now() + HOOK_TIMEOUT;
        let mut stopped = None;
        loop {
            match events.recv_timeout(POLL) {
                Ok(Line(index, line)) => {
                    printer.progress(format!("{}: {}", names[index], shown_line(&line)));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let why = if crate::interrupt::requested() {
                        Some("interrupted")
                    } else if Instant::now() >= deadline {
                        Some("timed out")
                    } else {
                        None
                    };
                    if let Some(why) = why.filter(|_| stopped.is_none()) {
                        for handle in &started {
                            let _ = handle.kill();
                        }
                        stopped = Some(why);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        stopped
    });
    let mut failures = Vec::new();
    for ((name, command), handle) in commands.iter().zip(&started) {
        let status = match (stopped, handle.try_wait()) {
            (Some(why), _) => why.to_owned(),
            (None, Ok(Some(output))) if output.status.success() => continue,
            (None, Ok(Some(output))) => crate::process::StatusText(output.status).to_string(),
            (None, Ok(None)) => "no exit status".to_owned(),
            (None, Err(error)) => format!("no exit status ({error})"),
        };
        failures.push(Failure {
            entry: name.clone(),
            command: describe(command),
            status,
        });
    }
    if let Some("interrupted") = stopped {
        anyhow::bail!(crate::error::Hinted {
            message: "interrupted: the lifecycle commands were stopped".into(),
            hint: "`dual launch` runs them again".into(),
        });
    }
    Ok(failures)
}

/// Sends each line `handle` prints (long ones in pieces) until it ends.
fn read_lines(handle: &duct::ReaderHandle, index: usize, sender: &mpsc::Sender<Line>) {
    let mut reader = handle;
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        pending.extend_from_slice(&buffer[..read]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            let _ = sender.send(Line(index, text.trim_end_matches('\r').to_owned()));
        }
        while pending.len() > MAX_LINE_BYTES {
            let piece: Vec<u8> = pending.drain(..MAX_LINE_BYTES).collect();
            let _ = sender.send(Line(index, String::from_utf8_lossy(&piece).into_owned()));
        }
    }
    if !pending.is_empty() {
        let _ = sender.send(Line(index, String::from_utf8_lossy(&pending).into_owned()));
    }
}

/// Which container a workspace's once-per-container commands succeeded in:
/// one small file per workspace under dual's data dir, replaced atomically.
struct CreatedRecord;

#[derive(serde::Serialize, serde::Deserialize)]
struct Created {
    container: String,
}

impl CreatedRecord {
    fn path(workspace: &str) -> PathBuf {
        crate::paths::data_dir()
            .join("lifecycle")
            .join(format!("{workspace}.json"))
    }

    fn read(workspace: &str) -> Option<String> {
        let bytes = std::fs::read(CreatedRecord::path(workspace)).ok()?;
        let created: Created = serde_json::from_slice(&bytes).ok()?;
        Some(created.container)
    }

    fn write(workspace: &str, container: &str) -> std::io::Result<()> {
        let path = CreatedRecord::path(workspace);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = serde_json::to_vec(&Created {
            container: container.to_owned(),
        })
        .map_err(std::io::Error::other)?;
        crate::files::write_atomic(&path, &bytes)
    }
}

/// Forgets that a workspace's create commands ran (it is destroyed).
pub fn forget(workspace: &str) {
    let _ = std::fs::remove_file(CreatedRecord::path(workspace));
}
