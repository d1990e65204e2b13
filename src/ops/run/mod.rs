//! Running a command in a workspace's container, in its clone, as the user
//! its commands run as: attached to a terminal (`dual run`, whose signals
//! reach the process inside), or held for a caller that may go away (the MCP
//! server's `run`: output kept in bounded memory, a timeout, and nothing
//! left running inside when it ends, however it ends).

pub mod bounded;

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineKind, ExecSpec};
use crate::error::{HintExt as _, Hinted};
use crate::workspace::{self, RUN_DIR, Workspace};

pub use bounded::Bounded;

/// Records its own pid (which `exec` keeps), drops records of processes that
/// are gone, then becomes the command (see the file's header).
const WRAPPER: &str = include_str!("wrapper.sh");

/// Sends signal `$1` to the process group recorded in `$2`.
const SIGNAL: &str = include_str!("signal.sh");

/// Runs the command marked, ending all it started when its stdin closes.
const HELD: &str = include_str!("held.sh");

/// How long a run that was told to end may take to go before its engine
/// command is killed.
const END_GRACE: Duration = Duration::from_secs(10);

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

/// Refuses a command that names another workspace's URL (see
/// `foreign_localhost`).
pub fn refuse_foreign_urls(workspace: &Workspace, command: &[OsString]) -> anyhow::Result<()> {
    let Some(host) = foreign_localhost(workspace, command) else {
        return Ok(());
    };
    let name = workspace.name();
    Err(Hinted {
        message: format!(
            "`{host}` is not `{name}`: inside its container every *.localhost name is the container's own loopback, so this would reach `{name}`'s own server, not `{host}`"
        ),
        hint: format!(
            "run it on the host, where {host} goes through dual's proxy (the shell integration does that by itself for a URL of another workspace)"
        ),
    }
    .into())
}

/// A command to run attached to a terminal, and where its pid is recorded
/// inside, for `pass_signal`.
pub struct Attached {
    pub spec: ExecSpec,
    pid_file: String,
}

/// `command` in `workspace`'s container, in `workdir`, stdin kept open and a
/// TTY where `tty`.
pub fn attached(
    workspace: &Workspace,
    command: &[OsString],
    workdir: PathBuf,
    tty: bool,
    env: Vec<(String, String)>,
) -> Attached {
    let pid_file = format!("{RUN_DIR}/run-{}-{}", std::process::id(), unique());
    let argv = script(WRAPPER, [pid_file.as_str()], command.iter().cloned());
    let spec = exec_in(workspace, &argv, workdir, env, tty);
    Attached { spec, pid_file }
}

/// Passes `signal` on to the process group of an attached command.
pub fn pass_signal(engine: &Engine, run: &Attached, signal: i32) -> anyhow::Result<()> {
    let spec = ExecSpec {
        container: run.spec.container.clone(),
        user: run.spec.user,
        command: script(SIGNAL, [signal.to_string().as_str(), &run.pid_file], []),
        ..ExecSpec::default()
    };
    engine.exec_spec(&spec)?;
    Ok(())
}

/// A command for `run_held`.
#[derive(Debug, Clone)]
pub struct HeldRun {
    pub argv: Vec<String>,
    /// Inside the clone: relative to its top, or an absolute path under it.
    pub cwd: Option<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// At most this many bytes of each of stdout and stderr are kept.
    pub output_limit: usize,
}

/// How a held run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The command exited (or was killed from inside).
    Exited,
    /// It ran past its timeout and was ended.
    TimedOut,
    /// The caller gave up on it, and it was ended.
    Cancelled,
}

/// What a held run did.
#[derive(Debug)]
pub struct RunReport {
    /// The command's exit status, as its shell reports it (128 + N: it was
    /// killed by signal N).
    pub exit_code: Option<i32>,
    pub ended: Ended,
    pub stdout: Bounded,
    pub stderr: Bounded,
    pub elapsed: Duration,
}

/// Runs `request` in `workspace`'s container and waits for it, its output
/// kept in bounded memory. It ends at its timeout, or once `give_up` says
/// so (polled); either way, and when dual itself goes away, everything it
/// started inside is killed (see `held.sh`).
pub fn run_held(
    flag: Option<EngineKind>,
    workspace: &Workspace,
    request: &HeldRun,
    give_up: &dyn Fn() -> bool,
) -> anyhow::Result<RunReport> {
    let command = checked_command(workspace, request)?;
    let workdir = workdir(workspace, request.cwd.as_deref())?;
    let env = checked_env(&request.env)?;
    let engine = super::engine_for(flag, Some(workspace)).hinted()?;

    let id = format!("r{}x{}z", std::process::id(), unique());
    let argv = script(HELD, [id.as_str()], command);
    let spec = exec_in(workspace, &argv, workdir, env, false);
    let started = Instant::now();
    let mut child = engine.exec_cmd(&spec).spawn_piped()?;
    let held_stdin = child.stdin.take();
    let stdout = keep(child.stdout.take(), request.output_limit);
    let stderr = keep(child.stderr.take(), request.output_limit);

    let deadline = started + request.timeout;
    let mut ended = Ended::Exited;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            ended = Ended::TimedOut;
            break None;
        }
        if give_up() {
            ended = Ended::Cancelled;
            break None;
        }
        // Short commands are most: look often at first.
        let pause = if started.elapsed() < Duration::from_millis(500) {
            2
        } else {
            20
        };
        std::thread::sleep(Duration::from_millis(pause));
    };
    // Closing its stdin ends it inside (held.sh's watcher).
    drop(held_stdin);
    let status = match status {
        Some(status) => Some(status),
        None => wait_ended(&engine, &spec, &id, &mut child),
    };
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status.and_then(|s| s.code().or_else(|| s.signal().map(|n| 128 + n)));
    let report = RunReport {
        exit_code,
        ended,
        stdout: stdout.join().unwrap_or_else(|_| Bounded::new(0)),
        stderr: stderr.join().unwrap_or_else(|_| Bounded::new(0)),
        elapsed: started.elapsed(),
    };
    // Not asked before (one engine call less per run): a failure that may
    // be the engine's own refusal is checked after.
    if report.exit_code != Some(0) && report.stdout.total() == 0 && report.stderr.total() < 4096 {
        require_running(&engine, workspace)?;
    }
    Ok(report)
}

/// After its stdin closed: the run's end, within `END_GRACE`; else its
/// marked processes are ended by a second exec, and the engine command is
/// killed.
fn wait_ended(
    engine: &Engine,
    spec: &ExecSpec,
    id: &str,
    child: &mut std::process::Child,
) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + END_GRACE;
    while Instant::now() < until {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    let end = ExecSpec {
        container: spec.container.clone(),
        user: spec.user,
        command: script(HELD, ["--end", id], []),
        ..ExecSpec::default()
    };
    if let Err(error) = engine.exec_spec(&end) {
        crate::log::debug(&format!("could not end run {id}: {error}"));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// A thread reading `stream` to its end into a `Bounded` of `limit` bytes.
fn keep(
    stream: Option<impl std::io::Read + Send + 'static>,
    limit: usize,
) -> std::thread::JoinHandle<Bounded> {
    std::thread::spawn(move || {
        let mut kept = Bounded::new(limit);
        let Some(mut stream) = stream else {
            return kept;
        };
        let mut buffer = vec![0; 64 * 1024];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => kept.push(&buffer[..n]),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        kept
    })
}

fn checked_command(workspace: &Workspace, request: &HeldRun) -> anyhow::Result<Vec<OsString>> {
    if request.argv.is_empty() || request.argv[0].is_empty() {
        anyhow::bail!(Hinted {
            message: "no command to run: `argv` is empty".into(),
            hint: "pass the program and its arguments, e.g. [\"npm\", \"test\"]; for a shell line, [\"sh\", \"-c\", \"LINE\"]".into(),
        });
    }
    if request.argv.iter().any(|arg| arg.contains('\0')) {
        anyhow::bail!(Hinted {
            message: "an argument of the command holds a NUL byte".into(),
            hint: "remove it: no program can receive it".into(),
        });
    }
    let command: Vec<OsString> = request.argv.iter().map(OsString::from).collect();
    refuse_foreign_urls(workspace, &command)?;
    Ok(command)
}

/// Environment variables for the command: names a shell can take, values
/// without NUL, and never the run's own mark.
fn checked_env(env: &[(String, String)]) -> anyhow::Result<Vec<(String, String)>> {
    for (name, value) in env {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || name == "DUAL_RUN_ID" {
            anyhow::bail!(Hinted {
                message: format!("`{name}` is not an environment variable name a command can get"),
                hint: "use letters, digits and `_`, not starting with a digit (and not DUAL_RUN_ID, dual's own)".into(),
            });
        }
        if value.contains('\0') {
            anyhow::bail!(Hinted {
                message: format!("the value of `{name}` holds a NUL byte"),
                hint: "remove it: no program can receive it".into(),
            });
        }
    }
    Ok(env.to_vec())
}

/// The directory to run in: the clone's top, or `cwd` inside it.
fn workdir(workspace: &Workspace, cwd: Option<&str>) -> anyhow::Result<PathBuf> {
    let Some(cwd) = cwd.filter(|c| !c.is_empty()) else {
        return Ok(workspace.path.clone());
    };
    let path = Path::new(cwd);
    let relative = path.strip_prefix(&workspace.path).unwrap_or(path);
    let inside = !relative.is_absolute()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        anyhow::bail!(Hinted {
            message: format!(
                "`{cwd}` is not a directory inside `{}`'s clone ({})",
                workspace.name(),
                workspace.path.display()
            ),
            hint: "give a path relative to the clone's top (`packages/web`), without `..`".into(),
        });
    }
    Ok(workspace.path.join(relative))
}

fn require_running(engine: &Engine, workspace: &Workspace) -> anyhow::Result<()> {
    let found = engine.inspect(&[&workspace.container_name()]).hinted()?;
    if found.first().is_some_and(|c| c.running) {
        return Ok(());
    }
    Err(Hinted {
        message: format!("workspace `{}` is not running", workspace.name()),
        hint: format!("launch it first (`dual launch {}`)", workspace.name()),
    }
    .into())
}

/// `argv` in `workspace`'s container, in `workdir`, as its user, after the
/// container's start-up; stdin kept open.
fn exec_in(
    workspace: &Workspace,
    argv: &[OsString],
    workdir: PathBuf,
    env: Vec<(String, String)>,
    tty: bool,
) -> ExecSpec {
    ExecSpec {
        container: workspace.container_name(),
        workdir: Some(workdir),
        user: workspace.user,
        env,
        interactive: true,
        tty,
        command: workspace::after_start_up(workspace, argv),
    }
}

/// `sh -c SCRIPT sh ARGS… COMMAND…`: one of our scripts, its own
/// arguments, then the command it runs (if any).
fn script<'a>(
    script: &str,
    args: impl IntoIterator<Item = &'a str>,
    command: impl IntoIterator<Item = OsString>,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = ["sh", "-c", script, "sh"].map(OsString::from).into();
    argv.extend(args.into_iter().map(OsString::from));
    argv.extend(command);
    argv
}

/// A number no other run of this process has had.
fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> Workspace {
        Workspace {
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
        }
    }

    #[test]
    fn finds_urls_of_other_workspaces_only() {
        let workspace = workspace();
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

    #[test]
    fn a_working_directory_stays_inside_the_clone() {
        let workspace = workspace();
        let at = |cwd: Option<&str>| workdir(&workspace, cwd).map_err(|e| e.to_string());
        assert_eq!(at(None).unwrap(), Path::new("/w/shop/a"));
        assert_eq!(at(Some("web/src")).unwrap(), Path::new("/w/shop/a/web/src"));
        assert_eq!(
            at(Some("/w/shop/a/web")).unwrap(),
            Path::new("/w/shop/a/web")
        );
        for outside in ["../b", "/etc", "web/../../b", "/w/shop/b"] {
            let error = at(Some(outside)).unwrap_err();
            assert!(
                error.contains("not a directory inside"),
                "{outside}: {error}"
            );
        }
    }

    #[test]
    fn environment_names_are_checked() {
        let env = |name: &str, value: &str| checked_env(&[(name.into(), value.into())]);
        assert!(env("NODE_ENV", "test").is_ok());
        assert!(env("_X1", "a=b\nc").is_ok());
        for bad in ["", "1X", "A-B", "A=B", "DUAL_RUN_ID", "--privileged"] {
            assert!(env(bad, "x").is_err(), "{bad}");
        }
        assert!(env("A", "x\0y").is_err());
    }
}
