//! Services: the long-running commands of `.dual.toml` (`[services.NAME]`),
//! kept running inside the workspace's container.
//!
//! Each service has a supervisor, a small POSIX shell loop started in the
//! container as the host user: it runs the command in its own process
//! group, writes its output to a log on the host (a bind mount), restarts it
//! with backoff when it exits, and records its state next to the log. Being
//! in the container, it outlives the terminal and the `dual` command that
//! started it, and needs no process of dual's on the host; whatever starts
//! the container (`launch`, `run`, the proxy after the engine returns) also
//! calls `ensure`, which starts what is missing and is safe to repeat.
//!
//! Logs stay bounded: the current file rolls over to `NAME.log.1` at
//! `LOG_LIMIT`, so a service keeps at most twice that on disk.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::Workspace;
use super::config::Config;
use crate::engine::{Engine, EngineError};

/// Where the logs directory is mounted in the container.
pub const LOG_MOUNT: &str = "/var/log/dual";
/// Where supervisors keep their bookkeeping (the container's tmpfs).
const SUPERVISION_DIR: &str = "/run/dual/services";
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

/// Stops every service of the container: each process group gets SIGTERM,
/// then SIGKILL after the grace period. Run as root by the container's main
/// process when the container is stopped.
pub fn stop_all_script() -> String {
    format!(
        r#"stop_services() {{
  for d in {SUPERVISION_DIR}/*/; do
    [ -d "$d" ] || continue
    : > "$d/stop"
    c=$(cat "$d/child" 2>/dev/null)
    [ -n "$c" ] && {{ kill -TERM -"$c" 2>/dev/null || kill -TERM "$c" 2>/dev/null; }}
  done
  i=0
  while [ "$i" -lt {ticks} ]; do
    alive=
    for d in {SUPERVISION_DIR}/*/; do [ -d "$d" ] && alive=1; done
    [ -z "$alive" ] && return 0
    sleep 0.1; i=$((i+1))
  done
  for d in {SUPERVISION_DIR}/*/; do
    c=$(cat "$d/child" 2>/dev/null)
    [ -n "$c" ] && {{ kill -KILL -"$c" 2>/dev/null || kill -KILL "$c" 2>/dev/null; }}
  done
}}
"#,
        ticks = STOP_GRACE_SECONDS * 10
    )
}

/// Run at each container start, as root: states left by the previous run
/// are stale (their processes died with it).
pub fn on_start_script() -> String {
    format!("rm -f {LOG_MOUNT}/*.state 2>/dev/null\n")
}

/// The supervisor and the script that starts, restarts and stops
/// supervisors: `sh -c SCRIPT dual-services MODE ONLY [NAME CWD COMMAND]...`.
/// MODE is `ensure` (start what is missing or changed, stop what is no
/// longer configured) or `restart` (also restart the services named in
/// ONLY, space-separated, or all when ONLY is `*`). Names and commands are
/// arguments, never part of the script.
fn control_script() -> String {
    format!(
        r#"mode=$1; only=$2; shift 2
base={SUPERVISION_DIR}; logs={LOG_MOUNT}; limit={LOG_LIMIT}
mkdir -p "$base" || exit 1

# The service's own process: runs the command ($1) with its output
# appended to the log ($3), rolled over to $3.1 at $limit bytes; its exit
# status goes to $2. dd, not head: it writes each read as it comes (GNU head
# holds a partial block), and stops when a read finds the stream ended.
run='limit=$4
{{ sh -c "$1" 2>&1; echo $? > "$2"; }} < /dev/null | {{
  used=$(wc -c < "$3" 2>/dev/null) || used=0
  while :; do
    if [ "$used" -ge "$limit" ]; then mv -f "$3" "$3.1"; used=0; fi
    room=$((limit - used)); block=16384
    [ "$room" -lt "$block" ] && block=$room
    dd bs="$block" count=$((room / block)) >> "$3" 2> /dev/null || exit 0
    now=$(wc -c < "$3" 2>/dev/null) || exit 0
    [ "$now" -eq "$used" ] && exit 0
    used=$now
  done
}}'

# Runs $3 in $2 until told to stop, restarting it with backoff (1 s doubling
# to 30 s; back to 1 s after a run of 10 s or more).
supervise() {{
  name=$1; dir=$2; cmd=$3
  d=$base/$name; log=$logs/$name.log; state=$logs/$name.state
  mkdir "$d" 2>/dev/null || return 0
  printf '%s' "$cmd" > "$d/cmd"; printf '%s' "$dir" > "$d/cwd"
  restarts=0; delay=1
  while [ -d "$d" ] && [ ! -e "$d/stop" ]; do
    printf '[dual] %s start: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$cmd" >> "$log"
    rm -f "$d/code"
    # Its own process group where the image has setsid, so that stopping it
    # reaches what it started (npm's node, a shell's children).
    if command -v setsid > /dev/null 2>&1; then
      (cd "$dir" && exec setsid sh -c "$run" dual-run "$cmd" "$d/code" "$log" "$limit") &
    else
      (cd "$dir" && exec sh -c "$run" dual-run "$cmd" "$d/code" "$log" "$limit") &
    fi
    child=$!
    echo "$child" > "$d/child"
    started=$(date +%s)
    echo "running $restarts $started $child" > "$state"
    wait "$child"
    [ -e "$d/stop" ] && break
    code=$(cat "$d/code" 2>/dev/null); code=${{code:-killed}}
    [ $(($(date +%s) - started)) -ge 10 ] && delay=1
    restarts=$((restarts + 1))
    echo "restarting $restarts $(date +%s) $code" > "$state"
    printf '[dual] %s exited (%s); restarting in %s s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$code" "$delay" >> "$log"
    i=0
    while [ "$i" -lt $((delay * 5)) ] && [ ! -e "$d/stop" ]; do sleep 0.2; i=$((i+1)); done
    delay=$((delay * 2)); [ "$delay" -gt 30 ] && delay=30
  done
  echo "stopped $restarts $(date +%s) -" > "$state"
  printf '[dual] %s stopped\n' "$(date '+%Y-%m-%d %H:%M:%S')" >> "$log"
  rm -rf "$d"
}}

stop_one() {{
  d=$base/$1
  [ -d "$d" ] || return 0
  : > "$d/stop"
  c=$(cat "$d/child" 2>/dev/null)
  [ -n "$c" ] && {{ kill -TERM -"$c" 2>/dev/null || kill -TERM "$c" 2>/dev/null; }}
  i=0
  while [ -d "$d" ] && [ "$i" -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done
  if [ -d "$d" ]; then
    [ -n "$c" ] && {{ kill -KILL -"$c" 2>/dev/null || kill -KILL "$c" 2>/dev/null; }}
    i=0
    while [ -d "$d" ] && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i+1)); done
    rm -rf "$d"
  fi
}}

wanted=' '
while [ "$#" -ge 3 ]; do
  name=$1; dir=$2; cmd=$3; shift 3
  wanted="$wanted$name "
  d=$base/$name
  if [ -d "$d" ]; then
    # Another start is writing it (cmd, then cwd): that one wins.
    [ -e "$d/cwd" ] || continue
    asked=
    if [ "$mode" = restart ]; then
      case " $only " in *" $name "*|" * ") asked=1 ;; esac
    fi
    if [ -z "$asked" ] && [ "$(cat "$d/cmd" 2>/dev/null)" = "$cmd" ] && [ "$(cat "$d/cwd" 2>/dev/null)" = "$dir" ]; then
      continue
    fi
    stop_one "$name"
  fi
  # `exec` redirects for good: a redirected function call would keep the
  # exec session's output open in copies, and `docker exec` would wait on it.
  (exec < /dev/null > /dev/null 2>&1; supervise "$name" "$dir" "$cmd") &
done
for d in "$base"/*/; do
  [ -d "$d" ] || continue
  name=${{d%/}}; name=${{name##*/}}
  case "$wanted" in *" $name "*) ;; *) stop_one "$name" ;; esac
done
"#,
        ticks = STOP_GRACE_SECONDS * 10
    )
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
    let mut command: Vec<OsString> = vec![
        "sh".into(),
        "-c".into(),
        control_script().into(),
        "dual-services".into(),
        mode.into(),
        only.into(),
    ];
    for (name, service) in &config.services {
        let dir = match &service.cwd {
            Some(cwd) => workspace.path.join(cwd),
            None => workspace.path.clone(),
        };
        command.push(name.into());
        command.push(dir.into());
        command.push(service.command.clone().into());
    }
    engine
        .exec_spec(&super::exec_spec(workspace, &command, false))
        .map(drop)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ServiceState {
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
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = Vec::new();
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return bytes;
    };
    if let Ok((mut file, _, _)) = crate::confined::open(dir, Path::new(name))
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        // A log never holds more than its limit; a file grown past that
        // by something else is not read whole.
        let _ = file.take(2 * LOG_LIMIT).read_to_end(&mut bytes);
    }
    bytes
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

fn parse_state(text: &str) -> ServiceState {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let number = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .unwrap_or(0)
    };
    match fields.first().copied() {
        Some("running") => ServiceState::Running {
            restarts: number(1) as u32,
            since: number(2),
        },
        Some("restarting") => ServiceState::Restarting {
            restarts: number(1) as u32,
            code: fields.get(3).unwrap_or(&"?").to_string(),
        },
        Some("stopped") => ServiceState::Stopped,
        _ => ServiceState::NotStarted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_read_from_the_supervisors_lines() {
        assert_eq!(
            parse_state("running 0 1700000000 42\n"),
            ServiceState::Running {
                restarts: 0,
                since: 1_700_000_000
            }
        );
        assert_eq!(
            parse_state("restarting 3 1700000000 137\n").to_string(),
            "restarting (exited 137)"
        );
        assert_eq!(parse_state("stopped 1 1 -\n"), ServiceState::Stopped);
        assert_eq!(parse_state(""), ServiceState::NotStarted);
    }

    /// The control script, run by the host's sh in a scratch directory
    /// standing in for the container's: a service runs, its output lands in
    /// its log, it is restarted when it exits, and stopped on request.
    #[test]
    fn the_supervisor_runs_restarts_and_stops_a_service() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("services");
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let script = control_script()
            .replace(SUPERVISION_DIR, &base.display().to_string())
            .replace(LOG_MOUNT, &logs.display().to_string());
        let run = |mode: &str, args: &[&str]| run_control(&script, mode, args);
        let cwd = dir.path().display().to_string();
        // Exits at once the first time, then stays up.
        let command = "echo hello $(pwd); if [ -e ran ]; then exec sleep 30; fi; touch ran; exit 3";
        run("ensure", &["web", &cwd, command]);
        let state = logs.join("web.state");
        let until = |what: &str| {
            for _ in 0..100 {
                if std::fs::read_to_string(&state).is_ok_and(|s| s.starts_with(what)) {
                    return std::fs::read_to_string(&state).unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            panic!("never {what}: {:?}", std::fs::read_to_string(&state));
        };
        let running = until("running 1 ");
        let log = std::fs::read_to_string(logs.join("web.log")).unwrap();
        assert!(log.contains(&format!("hello {cwd}")), "{log}");
        assert!(log.contains("exited (3); restarting in 1 s"), "{log}");
        // Ensure again: already running, left alone.
        run("ensure", &["web", &cwd, command]);
        assert_eq!(std::fs::read_to_string(&state).unwrap(), running);
        let child: u32 = running.split_whitespace().nth(3).unwrap().parse().unwrap();
        // Gone from the config: stopped, its process group too.
        run("ensure", &[]);
        until("stopped");
        assert!(!base.join("web").exists());
        let sleeper_gone = (0..40).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            !group_alive(child)
        });
        assert!(
            sleeper_gone,
            "the service's process group {child} outlived its stop"
        );
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
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let limit = 100_000;
        let script = control_script()
            .replace(SUPERVISION_DIR, &dir.path().join("s").display().to_string())
            .replace(LOG_MOUNT, &logs.display().to_string())
            .replace(&format!("limit={LOG_LIMIT}"), &format!("limit={limit}"));
        let command = "yes 0123456789 | head -c 450000; exec sleep 30";
        let cwd = dir.path().display().to_string();
        run_control(&script, "ensure", &["chat", &cwd, command]);
        let log = logs.join("chat.log");
        let older = logs.join("chat.log.1");
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
        run_control(&script, "ensure", &[]);
    }

    /// The control script (with test paths) run by the host's sh.
    fn run_control(script: &str, mode: &str, services: &[&str]) {
        let mut args = vec!["-c", script, "dual-services", mode, ""];
        args.extend(services);
        crate::process::Cmd::new("sh", args).run().unwrap();
    }
}
