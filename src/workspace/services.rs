//! Services: the long-running commands of `.dual.toml` (`[services.NAME]`),
//! kept running inside the workspace's container.
//!
//! Each service has a supervisor, a small POSIX shell program started in the
//! container as the host user (`dual-supervise NAME` in `ps`): it runs the
//! command in its own process group, writes its output to a log on the host
//! (a bind mount), restarts it with backoff when its main process exits
//! (ending the rest of its group first), and records its state next to the
//! log. Being in the container, it outlives the terminal and the `dual`
//! command that started it, and needs no process of dual's on the host;
//! whatever starts the container (`launch`, `run`, the proxy after the engine
//! returns) also calls `control`, which starts what is missing and is safe
//! to repeat.
//!
//! The programs are shell files, given to `sh` with their values as
//! arguments: `services.sh` (`dual-services`, run by `docker exec` for each
//! `control`), `supervise.sh` (`dual-supervise`, one per service) and
//! `entry.sh` (the container's main process, see `identity`).
//!
//! Their files, the one description of them:
//! - `/run/dual/dual-supervise` (tmpfs): `supervise.sh`, written by each
//!   `dual-services` (renamed into place) and run from there.
//! - `/run/dual/services/NAME/` ([`SUPERVISION_DIR`]): a supervisor's own
//!   directory; creating it is the lock that makes one supervisor per
//!   service. It holds `cmd` and `cwd` (what to run where; `cwd` is written
//!   last and says the others are whole), `ready` (its ready check: `port N`
//!   or `command LINE`, see [`ready_check`]), `after` (what it waits for, see
//!   [`waits_for`]), `child` (the pid of the service's
//!   main process, which is also its process group where the image has
//!   `setsid`), `out` (the FIFO from the service to its logger) and `stop`
//!   (created to ask the supervisor to stop for good). The supervisor
//!   removes the directory when it ends.
//! - `LOGS/NAME.log` and `LOGS/NAME.log.1` ([`LOG_MOUNT`], the host's
//!   [`logs_dir`]): the service's output and the supervisor's `[dual] …`
//!   lines; the current file rolls over to `.1` at [`LOG_LIMIT`], so a
//!   service keeps at most twice that on disk.
//! - `LOGS/NAME.state`: one line of `key=value` fields, replaced whole:
//!   `state=waiting restarts=N since=UNIX on=DEPENDENCY` (not started: what
//!   it depends on is not ready),
//!   `state=starting restarts=N since=UNIX pid=PID` (started; its ready
//!   check has not passed yet),
//!   `state=running restarts=N since=UNIX pid=PID [ready=UNIX]` (ready: its
//!   check passed, or it has none),
//!   `state=restarting restarts=N since=UNIX code=STATUS` (the main process
//!   ended with STATUS, 128+signal when killed) or
//!   `state=stopped restarts=N since=UNIX`. The entry clears them at each
//!   container start: a state from the previous run is stale. Supervisors
//!   read each other's: a service is ready for its dependents while its
//!   line says `running`.
//! - `/run/dual/ready`: see `identity::READY_FILE`.
//!
//! Ordering and readiness happen in the supervisor, not in dual: before
//! each start (the first, and each restart) it waits until what the service
//! `depends_on` is ready, so the order also holds when the engine or the
//! proxy starts the container again, and a service that exits while its
//! database is down waits for it instead of restarting in a loop. A
//! service dependency is ready when its state says `running`; a sidecar
//! one when something listens on its first port (read from
//! `/proc/net/tcp{,6}`: the sidecar shares the network namespace, and no
//! image needs `nc`). A sidecar's own ready check runs inside the sidecar,
//! which the supervisor cannot reach: a sidecar without a port counts as
//! ready, as `launch` already waited for it. `launch` does not wait for
//! services to be ready (a dev server's first build can take minutes, and
//! a check that never passes would look like a hung launch): `dual list`,
//! the browser and the proxy's starting page say `starting` until they are,
//! and the log says why every 10 s.
//!
//! `dual-supervise` gets its settings in its environment (`dual_base`,
//! `dual_logs`, `dual_limit`, `dual_grace`, lower-case: the container's, never
//! dual's own settings) and removes them before it starts the service.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::Workspace;
use super::config::{Config, Service, is_service_name};
use super::sidecars::Ready;
use crate::engine::{Engine, EngineError};

/// Where the logs directory is mounted in the container.
pub const LOG_MOUNT: &str = "/var/log/dual";
/// Where supervisors keep their bookkeeping (the container's tmpfs).
pub const SUPERVISION_DIR: &str = "/run/dual/services";
/// A log rolls over past this many bytes.
pub const LOG_LIMIT: u64 = 1024 * 1024;
/// How long a service gets between SIGTERM and SIGKILL.
pub const STOP_GRACE_SECONDS: u32 = 4;

/// The host directory with a workspace's service logs and states.
pub fn logs_dir(workspace: &str) -> PathBuf {
    crate::paths::data_dir().join("logs").join(workspace)
}

pub fn log_file(workspace: &str, service: &str) -> PathBuf {
    logs_dir(workspace).join(format!("{service}.log"))
}

/// `dual-services`: starts, restarts and stops supervisors (its header says
/// how it is called).
const CONTROL: &str = include_str!("services.sh");
/// `dual-supervise`: one service's supervisor.
const SUPERVISE: &str = include_str!("supervise.sh");

/// The arguments of `dual-services` before the services' own: the
/// supervisor's text and where things go.
fn control_args(base: &str, logs: &str, limit: u64) -> Vec<OsString> {
    vec![
        "sh".into(),
        "-c".into(),
        CONTROL.into(),
        "dual-services".into(),
        SUPERVISE.into(),
        base.into(),
        logs.into(),
        limit.to_string().into(),
        STOP_GRACE_SECONDS.to_string().into(),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control<'a> {
    /// Start what is missing or changed; stop what is gone from the config.
    Ensure,
    /// Also restart these (all when empty).
    Restart(&'a [String]),
}

/// Brings the container's services in line with `config` (see `Control`).
/// Returns once each supervisor is started, not once each service listens.
pub fn control(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    control: Control<'_>,
) -> Result<(), EngineError> {
    let (mode, only) = match control {
        Control::Ensure => ("ensure", String::new()),
        Control::Restart([]) => ("restart", "*".to_owned()),
        Control::Restart(names) => ("restart", names.join(" ")),
    };
    let mut command = control_args(SUPERVISION_DIR, LOG_MOUNT, LOG_LIMIT);
    command.push(mode.into());
    command.push(only.into());
    for name in start_order(config) {
        let service = &config.services[name];
        let dir = match &service.cwd {
            Some(cwd) => workspace.path.join(cwd),
            None => workspace.path.clone(),
        };
        command.push(name.into());
        command.push(dir.into());
        command.push(service.command.clone().into());
        command.push(ready_check(service).into());
        command.push(waits_for(config, service).into());
    }
    engine
        .exec_spec(&super::exec_spec(workspace, &command, false))
        .map(drop)
}

/// The services in the order to start them in: each after the services it
/// depends on, else by name. (`Config` refuses a cycle; one here would
/// only change the order.)
fn start_order(config: &Config) -> Vec<&str> {
    fn visit<'a>(
        name: &'a str,
        config: &'a Config,
        seen: &mut Vec<&'a str>,
        order: &mut Vec<&'a str>,
    ) {
        if seen.contains(&name) {
            return;
        }
        seen.push(name);
        for dependency in &config.services[name].depends_on {
            if let Some((dependency, _)) = config.services.get_key_value(dependency) {
                visit(dependency, config, seen, order);
            }
        }
        order.push(name);
    }
    let (mut seen, mut order) = (Vec::new(), Vec::new());
    for name in config.services.keys() {
        visit(name, config, &mut seen, &mut order);
    }
    order
}

/// The service's ready check as its supervisor reads it: `port N`,
/// `command LINE` (run with `sh -c` in the service's directory: the words
/// of `ready = "..."`, quoted back into a line) or empty (ready once
/// started).
fn ready_check(service: &Service) -> String {
    match &service.ready {
        None => String::new(),
        Some(Ready::Port(port)) => format!("port {port}"),
        Some(Ready::Command(check)) => match check.test.as_slice() {
            [sh, dash_c, line] if sh == "sh" && dash_c == "-c" => format!("command {line}"),
            words => format!("command {}", shell_words::join(words)),
        },
    }
}

/// What the service waits for before it starts, as its supervisor reads
/// it: `NAME` for a service, `NAME:PORT` for a sidecar with a port (its
/// first). A sidecar without one is left out: `launch` waited for it.
fn waits_for(config: &Config, service: &Service) -> String {
    let mut words = Vec::new();
    for name in service
        .depends_on
        .iter()
        .filter(|name| is_service_name(name))
    {
        if config.services.contains_key(name) {
            words.push(name.clone());
        } else if let Some(port) = config.sidecars.get(name).and_then(|s| s.ports.first()) {
            words.push(format!("{name}:{port}"));
        }
    }
    words.join(" ")
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ServiceState {
    /// Not started: what it depends on is not ready (`on`: the first that
    /// is not).
    Waiting {
        restarts: u32,
        on: String,
    },
    /// Started; its ready check has not passed yet.
    Starting {
        restarts: u32,
        since: u64,
    },
    /// Ready: its check passed, or it has none and started.
    Running {
        restarts: u32,
        since: u64,
    },
    /// Exited on its own (`code`: its exit status, or how it ended); started
    /// again after a backoff.
    Restarting {
        restarts: u32,
        code: String,
    },
    Stopped,
    /// Configured, but no supervisor has written a state (not started yet,
    /// or the workspace is not running).
    NotStarted,
    /// The engine does not answer: nobody knows.
    Unknown,
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceState::Waiting { on, .. } => write!(f, "waiting for {on}"),
            ServiceState::Starting { restarts: 0, .. } => f.write_str("starting"),
            ServiceState::Starting { restarts, .. } => write!(f, "starting ({restarts} restarts)"),
            ServiceState::Running { restarts: 0, .. } => f.write_str("running"),
            ServiceState::Running { restarts, .. } => write!(f, "running ({restarts} restarts)"),
            ServiceState::Restarting { code, .. } => write!(f, "restarting (exited {code})"),
            ServiceState::Stopped => f.write_str("stopped"),
            ServiceState::NotStarted => f.write_str("not started"),
            ServiceState::Unknown => f.write_str("unknown"),
        }
    }
}

/// Each configured service's state, as its supervisor last wrote it; all
/// `Stopped` when the container does not run (the states on disk are
/// then stale).
pub fn states(workspace: &str, config: &Config, running: bool) -> Vec<(String, ServiceState)> {
    let dir = logs_dir(workspace);
    config
        .services
        .keys()
        .map(|name| {
            let state = if running {
                read_state(&dir.join(format!("{name}.state")))
            } else {
                ServiceState::Stopped
            };
            (name.clone(), state)
        })
        .collect()
}

/// A log's bytes from `offset` on (at most twice `LOG_LIMIT`). The logs
/// directory is the container's to write: a link or a FIFO there reads as
/// empty (see `confined`), never as the host file it points to.
pub fn read_log_from(path: &Path, offset: u64) -> Vec<u8> {
    open_log(path).map_or_else(Vec::new, |log| log.read_from(offset))
}

/// A log opened for reading (as `read_log_from` does), with what names the
/// file: rolled over, `NAME.log` becomes `NAME.log.1`, the same file.
pub fn open_log(path: &Path) -> Option<OpenLog> {
    use std::os::unix::fs::MetadataExt as _;
    let (dir, name) = (path.parent()?, path.file_name()?);
    let (file, size, _) = crate::confined::open(dir, Path::new(name)).ok()?;
    let metadata = file.metadata().ok()?;
    let born = metadata
        .created()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        });
    Some(OpenLog {
        file,
        id: LogId {
            inode: metadata.ino(),
            born,
        },
        size,
    })
}

/// Which file a log is. The inode alone is not enough: a file removed at
/// the second roll-over frees its inode, and ext4 gives it to the next
/// file created there at once; its birth time (nanoseconds; 0 where the
/// filesystem keeps none) tells the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogId {
    pub inode: u64,
    pub born: u64,
}

#[derive(Debug)]
pub struct OpenLog {
    file: std::fs::File,
    pub id: LogId,
    /// Its size when opened.
    pub size: u64,
}

impl OpenLog {
    /// Its bytes from `offset` on (at most twice `LOG_LIMIT`).
    pub fn read_from(mut self, offset: u64) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let mut bytes = Vec::new();
        if self.file.seek(SeekFrom::Start(offset)).is_ok() {
            // A log never holds more than its limit; a file grown past that
            // by something else is not read whole.
            let _ = self.file.take(2 * LOG_LIMIT).read_to_end(&mut bytes);
        }
        bytes
    }
}

/// Whether a supervisor ever wrote a state for this workspace (a service
/// may still run that `.dual.toml` no longer names).
pub fn any_state(workspace: &str) -> bool {
    std::fs::read_dir(logs_dir(workspace)).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.path().extension().is_some_and(|ext| ext == "state"))
    })
}

fn read_state(path: &Path) -> ServiceState {
    // Written in the container: never read through a link it planted.
    let text = path
        .parent()
        .zip(path.file_name())
        .and_then(|(dir, name)| crate::confined::read_text(dir, Path::new(name), 4096).ok());
    let Some(text) = text else {
        return ServiceState::NotStarted;
    };
    parse_state(&text)
}

/// A state line's `key=value` fields (see the module's header). A line in
/// the positional form an older dual wrote (`running N SINCE PID`), from a
/// supervisor it started that still runs, is read too.
fn parse_state(text: &str) -> ServiceState {
    let line = text.lines().next().unwrap_or("");
    let fields: Vec<(&str, &str)> = if line.contains('=') {
        line.split_whitespace()
            .filter_map(|field| field.split_once('='))
            .collect()
    } else {
        let mut words = line.split_whitespace();
        let state = words.next().unwrap_or("");
        let keys = [
            "restarts",
            "since",
            if state == "running" { "pid" } else { "code" },
        ];
        std::iter::once(("state", state))
            .chain(keys.into_iter().zip(words))
            .collect()
    };
    let field = |key: &str| {
        fields
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
    };
    let number = |key: &str| field(key).and_then(|value| value.parse().ok());
    let restarts = number("restarts").and_then(|n: u64| u32::try_from(n).ok());
    match (field("state"), restarts) {
        (Some("waiting"), Some(restarts)) => ServiceState::Waiting {
            restarts,
            // A name of the config's, written back by the container.
            on: field("on")
                .filter(|on| is_service_name(on))
                .unwrap_or("?")
                .to_owned(),
        },
        (Some("starting"), Some(restarts)) => ServiceState::Starting {
            restarts,
            since: number("since").unwrap_or(0),
        },
        (Some("running"), Some(restarts)) => ServiceState::Running {
            restarts,
            since: number("since").unwrap_or(0),
        },
        (Some("restarting"), Some(restarts)) => ServiceState::Restarting {
            restarts,
            // Shown in `dual list` and the browser: only a status or a
            // signal's word, never the container's escape sequences.
            code: field("code")
                .filter(|code| code.len() <= 16 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
                .unwrap_or("?")
                .to_owned(),
        },
        (Some("stopped"), _) => ServiceState::Stopped,
        _ => ServiceState::NotStarted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_read_from_the_supervisors_lines() {
        assert_eq!(
            parse_state("state=running restarts=0 since=1700000000 pid=42\n"),
            ServiceState::Running {
                restarts: 0,
                since: 1_700_000_000
            }
        );
        assert_eq!(
            parse_state("state=restarting restarts=3 since=1700000000 code=137\n").to_string(),
            "restarting (exited 137)"
        );
        // Fields by name, in any order; one without a count is no state.
        assert_eq!(
            parse_state("pid=42 since=5 restarts=2 state=running"),
            ServiceState::Running {
                restarts: 2,
                since: 5
            }
        );
        assert_eq!(
            parse_state("state=running since=5 pid=42"),
            ServiceState::NotStarted
        );
        assert_eq!(
            parse_state("state=stopped restarts=1 since=1\n"),
            ServiceState::Stopped
        );
        assert_eq!(parse_state(""), ServiceState::NotStarted);
        // The container writes the line: a code that is not a plain word
        // (an escape sequence for the user's terminal) is not shown.
        assert_eq!(
            parse_state("state=restarting restarts=1 code=\x1b]52;c;eA==\x07").to_string(),
            "restarting (exited ?)"
        );
        assert_eq!(
            parse_state("state=exploded restarts=1"),
            ServiceState::NotStarted
        );
    }

    #[test]
    fn an_older_supervisors_positional_lines_are_still_read() {
        assert_eq!(
            parse_state("running 1 1700000000 42\n"),
            ServiceState::Running {
                restarts: 1,
                since: 1_700_000_000
            }
        );
        assert_eq!(
            parse_state("restarting 3 1700000000 killed\n").to_string(),
            "restarting (exited killed)"
        );
        assert_eq!(parse_state("stopped 1 1 -\n"), ServiceState::Stopped);
    }

    /// The state line's `key=value` fields.
    fn fields(line: &str) -> std::collections::HashMap<String, String> {
        line.split_whitespace()
            .filter_map(|field| field.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }

    /// Polls `state` until it starts with `what`; its text.
    fn until(state: &Path, what: &str) -> String {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(state)
                && text.starts_with(what)
            {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("never {what}: {:?}", std::fs::read_to_string(state));
    }

    /// The control script, run by the host's sh in a scratch directory
    /// standing in for the container's: a service runs, its output lands in
    /// its log, it is restarted when it exits, and stopped on request.
    #[test]
    fn the_supervisor_runs_restarts_and_stops_a_service() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(&dir, LOG_LIMIT);
        let cwd = dir.path().display().to_string();
        // Exits at once the first time, then stays up.
        let command = "echo hello $(pwd); if [ -e ran ]; then exec sleep 30; fi; touch ran; exit 3";
        scratch.control("ensure", &["web", &cwd, command, "", ""]);
        let state = scratch.logs.join("web.state");
        let running = until(&state, "state=running restarts=1 ");
        let log = std::fs::read_to_string(scratch.logs.join("web.log")).unwrap();
        assert!(log.contains(&format!("hello {cwd}")), "{log}");
        assert!(log.contains("exited (3); restarting in 1 s"), "{log}");
        // Ensure again: already running, left alone.
        scratch.control("ensure", &["web", &cwd, command, "", ""]);
        assert_eq!(std::fs::read_to_string(&state).unwrap(), running);
        let child: u32 = fields(&running)["pid"].parse().unwrap();
        // Gone from the config: stopped, its process group too.
        scratch.control("ensure", &[]);
        until(&state, "state=stopped");
        assert!(!scratch.base.join("web").exists());
        let sleeper_gone = (0..40).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            !group_alive(child)
        });
        assert!(
            sleeper_gone,
            "the service's process group {child} outlived its stop"
        );
    }

    /// A service whose main process dies while a process it started still
    /// holds its output (runserver's reloader child): the rest of the group
    /// is ended, the restart counted, and the service started again.
    #[test]
    fn a_service_whose_main_process_dies_is_ended_whole_and_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(&dir, LOG_LIMIT);
        let cwd = dir.path().display().to_string();
        let command = "sleep 300 & echo $! > child.pid; exec sleep 300";
        scratch.control("ensure", &["web", &cwd, command, "", ""]);
        let state = scratch.logs.join("web.state");
        let running = until(&state, "state=running restarts=0 ");
        let main: i32 = fields(&running)["pid"].parse().unwrap();
        let pid_file = dir.path().join("child.pid");
        let read_child = || {
            (0..100)
                .find_map(|_| {
                    let pid = std::fs::read_to_string(&pid_file)
                        .ok()?
                        .trim()
                        .parse::<i32>()
                        .ok();
                    if pid.is_none() {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    pid
                })
                .expect("the service never wrote its child's pid")
        };
        let first_child = read_child();
        std::fs::remove_file(&pid_file).unwrap();
        let pid = rustix::process::Pid::from_raw(main).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        let restarted = until(&state, "state=running restarts=1 ");
        assert_ne!(fields(&restarted)["pid"], main.to_string());
        let gone = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            !process_alive(first_child)
        });
        assert!(gone, "the dead service's child {first_child} still runs");
        let log = std::fs::read_to_string(scratch.logs.join("web.log")).unwrap();
        assert!(log.contains("exited (137); restarting"), "{log}");
        let second_child = read_child();
        assert!(process_alive(second_child));
        scratch.control("ensure", &[]);
        until(&state, "state=stopped");
    }

    fn process_alive(pid: i32) -> bool {
        // A zombie is gone for this purpose (nobody has reaped it yet).
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    }

    /// Whether any process other than a zombie is in process group `group`.
    fn group_alive(group: u32) -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let after_name = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string()
        })
    }

    #[test]
    fn a_chatty_service_keeps_two_bounded_logs() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 100_000;
        let scratch = Scratch::new(&dir, limit);
        let command = "yes 0123456789 | head -c 450000; exec sleep 30";
        let cwd = dir.path().display().to_string();
        scratch.control("ensure", &["chat", &cwd, command, "", ""]);
        let log = scratch.logs.join("chat.log");
        let older = scratch.logs.join("chat.log.1");
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        // The supervisor's start line, then 450,000 bytes through a
        // 100,000-byte log: rolled over four times.
        let start_line = "[dual] 2026-01-01 00:00:00 start: ".len() + command.len() + 1;
        let expected = (start_line + 450_000) as u64 % limit;
        let done = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            size(&log) == expected && size(&older) == limit
        });
        assert!(
            done,
            "log {} bytes, older {} bytes",
            size(&log),
            size(&older)
        );
        let text = std::fs::read_to_string(&log).unwrap();
        // Cut mid-line at each rollover and at the command's 450,000th byte.
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1..lines.len() - 1]
                .iter()
                .all(|line| *line == "0123456789")
        );
        scratch.control("ensure", &[]);
    }

    /// Polls `path` until it contains `what`, for up to `seconds`; its text.
    fn until_contains(path: &Path, what: &str, seconds: u64) -> String {
        for _ in 0..seconds * 20 {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.contains(what)
            {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("never {what}: {:?}", std::fs::read_to_string(path));
    }

    /// `b` waits for service `a`, which is `starting` until its ready
    /// command passes (a file the test creates): only then is `a` running
    /// and `b` started, which sees the file.
    #[test]
    fn a_service_starts_once_the_service_it_depends_on_is_ready() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(&dir, LOG_LIMIT);
        let cwd = dir.path().display().to_string();
        let b = "if [ -e gate ]; then echo saw the gate; fi; exec sleep 30";
        scratch.control(
            "ensure",
            &[
                "a",
                &cwd,
                "exec sleep 30",
                "command test -e gate",
                "",
                "b",
                &cwd,
                b,
                "",
                "a",
            ],
        );
        let (a_state, b_state) = (scratch.logs.join("a.state"), scratch.logs.join("b.state"));
        until(&a_state, "state=starting restarts=0 ");
        let waiting = until(&b_state, "state=waiting restarts=0 ");
        assert_eq!(fields(&waiting)["on"], "a");
        // Still waiting a while later: not a race the test won.
        std::thread::sleep(std::time::Duration::from_secs(1));
        assert!(
            std::fs::read_to_string(&b_state)
                .unwrap()
                .starts_with("state=waiting")
        );
        std::fs::write(dir.path().join("gate"), "").unwrap();
        let running = until(&a_state, "state=running restarts=0 ");
        assert!(fields(&running).contains_key("ready"), "{running}");
        until(&b_state, "state=running restarts=0 ");
        let log = until_contains(&scratch.logs.join("b.log"), "saw the gate", 5);
        assert!(log.contains("waiting for service a"), "{log}");
        let a_log = std::fs::read_to_string(scratch.logs.join("a.log")).unwrap();
        assert!(a_log.contains("ready after"), "{a_log}");
        scratch.control("ensure", &[]);
        until(&b_state, "state=stopped");
    }

    /// A sidecar's port, and a service's own `ready` port, are read from
    /// /proc/net/tcp (here the host's, the test's listeners): `web` waits
    /// for `db`, then is `starting` until it listens itself. When `db` is
    /// gone and `web` exits, it waits for `db` again instead of restarting.
    #[test]
    fn ports_are_found_listening_in_proc_and_a_dependent_waits_for_its_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(&dir, LOG_LIMIT);
        let cwd = dir.path().display().to_string();
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (db_port, web_port) = (free(), free());
        let ready = format!("port {web_port}");
        let after = format!("db:{db_port}");
        scratch.control("ensure", &["web", &cwd, "exec sleep 30", &ready, &after]);
        let state = scratch.logs.join("web.state");
        let waiting = until(&state, "state=waiting restarts=0 ");
        assert_eq!(fields(&waiting)["on"], "db");
        let db = std::net::TcpListener::bind(("127.0.0.1", db_port)).unwrap();
        let starting = until(&state, "state=starting restarts=0 ");
        let web = std::net::TcpListener::bind(("::1", web_port))
            .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", web_port)))
            .unwrap();
        until(&state, "state=running restarts=0 ");
        drop((db, web));
        let pid: i32 = fields(&starting)["pid"].parse().unwrap();
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        until(&state, "state=restarting restarts=1 ");
        let waiting = until(&state, "state=waiting restarts=1 ");
        assert_eq!(fields(&waiting)["on"], "db");
        let log = std::fs::read_to_string(scratch.logs.join("web.log")).unwrap();
        assert_eq!(log.matches("start: ").count(), 1, "{log}");
        assert!(
            log.contains(&format!("waiting for sidecar db (localhost:{db_port})")),
            "{log}"
        );
        scratch.control("ensure", &[]);
        until(&state, "state=stopped");
    }

    /// A check that never passes: `starting` for good, one line about it
    /// in the log every 10 s, and a check that hangs is ended.
    #[test]
    fn a_ready_check_that_never_passes_leaves_the_service_starting_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(&dir, LOG_LIMIT);
        let cwd = dir.path().display().to_string();
        scratch.control(
            "ensure",
            &["web", &cwd, "exec sleep 60", "command sleep 20", ""],
        );
        let log_path = scratch.logs.join("web.log");
        let log = until_contains(&log_path, "not ready after", 20);
        assert!(
            log.contains("`sleep 20` exited 137; still starting"),
            "{log}"
        );
        assert_eq!(log.matches("not ready after").count(), 1, "{log}");
        let state = std::fs::read_to_string(scratch.logs.join("web.state")).unwrap();
        assert!(state.starts_with("state=starting restarts=0 "), "{state}");
        scratch.control("ensure", &[]);
        until(&scratch.logs.join("web.state"), "state=stopped");
        // The watcher's check went with it.
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(log.ends_with("stopped\n"), "{log}");
    }

    #[test]
    fn services_start_after_theirs_and_tell_their_supervisor_what_to_wait_for() {
        let text = r#"
            [services.web]
            command = "serve"
            depends_on = ["api", "db", "cache"]
            ready = "curl -sf 'localhost:3000/up'"
            [services.api]
            command = "api"
            depends_on = ["db"]
            ready = 4000
            [services.worker]
            command = "work"
            ready = ["sh", "-c", "test -e up || exit 1"]
            [sidecars.db]
            image = "postgres:16"
            ready = 5432
            [sidecars.cache]
            image = "redis:7"
            ready = "redis-cli ping"
        "#;
        let config = Config::parse(text, Path::new(".dual.toml")).unwrap();
        assert_eq!(start_order(&config), ["api", "web", "worker"]);
        let service = |name: &str| &config.services[name];
        assert_eq!(waits_for(&config, service("web")), "api db:5432");
        assert_eq!(waits_for(&config, service("worker")), "");
        assert_eq!(ready_check(service("api")), "port 4000");
        assert_eq!(
            ready_check(service("web")),
            "command curl -sf localhost:3000/up"
        );
        assert_eq!(
            ready_check(service("worker")),
            "command test -e up || exit 1"
        );
        assert_eq!(
            parse_state("state=waiting restarts=0 since=5 on=api").to_string(),
            "waiting for api"
        );
        assert_eq!(
            parse_state("state=waiting restarts=0 since=5 on=\x1b[2J").to_string(),
            "waiting for ?"
        );
        assert_eq!(
            parse_state("state=starting restarts=2 since=5 pid=9"),
            ServiceState::Starting {
                restarts: 2,
                since: 5
            }
        );
    }

    /// A scratch directory standing in for the container's: the
    /// supervisors' directory and the logs.
    struct Scratch {
        base: PathBuf,
        logs: PathBuf,
        limit: u64,
    }

    impl Scratch {
        fn new(dir: &tempfile::TempDir, limit: u64) -> Scratch {
            let logs = dir.path().join("logs");
            std::fs::create_dir_all(&logs).unwrap();
            Scratch {
                base: dir.path().join("run/services"),
                logs,
                limit,
            }
        }

        /// The control script run by the host's sh, as `control` runs it in
        /// a container.
        fn control(&self, mode: &str, services: &[&str]) {
            let mut args = control_args(
                &self.base.display().to_string(),
                &self.logs.display().to_string(),
                self.limit,
            );
            args.extend([mode.into(), "".into()]);
            args.extend(services.iter().map(OsString::from));
            crate::process::Cmd::new(args.remove(0), args)
                .run()
                .unwrap();
        }
    }
}
