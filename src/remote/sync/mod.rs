//! A workspace on a remote engine keeps its clone on this host; its
//! container on the engine's host bind-mounts a copy of it there, which
//! this module keeps in sync both ways.
//!
//! How (see research/remote-sync.md for the figures behind it): a watcher
//! on each side (`inotifywait -m -r`, the remote one over the workspace's
//! shared ssh connection) reports the paths that change; each batch of
//! them is one `unison -path …` run over that same connection, which
//! copies what changed, deletes what was deleted and, when both sides
//! changed a file, keeps both (the newer under its name, the other beside
//! it as `NAME (conflict on DATE)`, and the supervisor's log says so).
//! Unison never follows a link: links sync as links.
//!
//! Per workspace, a supervisor process (`dual remote-sync WORKSPACE`,
//! hidden, started detached by `start`) runs one loop per pair: the first
//! whole sync, then the watchers' batches, and after any failure (the link
//! dropped, the tool died) it starts again with backoff, at most 4 s apart
//! while the link is down. `stop` ends it and every process it started,
//! here and on the engine's host.

mod processes;
mod supervisor;
mod unison;
mod watch;

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Ssh, SshTarget};
use crate::error::Hinted;

pub use supervisor::run as run_supervisor;

/// Which way changes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Both ways; conflicting edits keep both.
    Both,
    /// Here to there only: changes there are overwritten.
    ToRemote,
    /// There to here only: changes here are overwritten.
    FromRemote,
}

impl Direction {
    fn watches_here(self) -> bool {
        self != Direction::FromRemote
    }

    fn watches_there(self) -> bool {
        self != Direction::ToRemote
    }
}

/// A directory here and its copy on the engine's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPair {
    /// An absolute directory on this host (no link).
    pub local: PathBuf,
    /// An absolute directory on the engine's host.
    pub remote: PathBuf,
    pub direction: Direction,
    /// Directories relative to both roots that never sync (`.git`, the
    /// anonymous volumes' `node_modules`).
    pub ignore: Vec<String>,
}

/// A workspace's three pairs: its clone both ways (without `.git` and its
/// anonymous volumes' directories), the clone's `.git` one way to the
/// engine's host (the container reads it; only this host changes it), and
/// its services' logs one way back.
pub fn workspace_pairs(
    clone: &Path,
    remote_clone: &Path,
    anonymous_volumes: &[String],
    logs: &Path,
    remote_logs: &Path,
) -> Vec<SyncPair> {
    let mut ignore = vec![".git".to_owned()];
    ignore.extend(anonymous_volumes.iter().cloned());
    vec![
        SyncPair {
            local: clone.to_owned(),
            remote: remote_clone.to_owned(),
            direction: Direction::Both,
            ignore,
        },
        SyncPair {
            local: clone.join(".git"),
            remote: remote_clone.join(".git"),
            direction: Direction::ToRemote,
            ignore: Vec::new(),
        },
        SyncPair {
            local: logs.to_owned(),
            remote: remote_logs.to_owned(),
            direction: Direction::FromRemote,
            ignore: Vec::new(),
        },
    ]
}

/// What `start` hands the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Config {
    target: SshTarget,
    identity: Option<PathBuf>,
    pairs: Vec<SyncPair>,
}

impl Config {
    fn ssh(&self) -> Ssh {
        Ssh::new(self.target.clone(), self.identity.clone())
    }
}

/// A fatal error the supervisor met, for `wait_initial` to return.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Failure {
    message: String,
    hint: String,
}

/// Where a workspace's sync keeps its files on this host: its lock (with
/// the supervisor's pid), config, log, unison's archives, the ssh wrapper.
pub fn state_dir(workspace: &str) -> PathBuf {
    crate::paths::data_dir().join("remote-sync").join(workspace)
}

/// Where it keeps unison's archives on the engine's host, relative to the
/// remote user's home.
pub fn remote_state_dir(workspace: &str) -> String {
    format!(".cache/dual-sync/{workspace}")
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn of(workspace: &str) -> Files {
        Files {
            dir: state_dir(workspace),
        }
    }
    fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
    /// Present once every pair's first whole sync is done.
    fn ready(&self) -> PathBuf {
        self.dir.join("ready")
    }
    /// A fatal error (`Failure` as JSON).
    fn failure(&self) -> PathBuf {
        self.dir.join("failure.json")
    }
    /// Conflicts kept both ways, one line each.
    fn conflicts(&self) -> PathBuf {
        self.dir.join("conflicts")
    }
    fn archives(&self) -> PathBuf {
        self.dir.join("unison")
    }
    fn ssh_wrapper(&self) -> PathBuf {
        self.dir.join("ssh")
    }
}

/// The log of a workspace's sync (what it copied, conflicts, failures).
pub fn log_path(workspace: &str) -> PathBuf {
    Files::of(workspace).log()
}

/// The conflicts a workspace's sync kept both sides of, one line each.
pub fn conflicts_path(workspace: &str) -> PathBuf {
    Files::of(workspace).conflicts()
}

/// Starts syncing `pairs` for `workspace` in the background (a running
/// sync is stopped first, so a new set of pairs takes effect); its pid.
/// `wait_initial` then waits for the first copy.
pub fn start(workspace: &str, ssh: &Ssh, pairs: &[SyncPair]) -> anyhow::Result<u32> {
    check_workspace_name(workspace)?;
    for pair in pairs {
        check_pair(pair)?;
    }
    check_tools_here()?;
    stop(workspace)?;
    let files = Files::of(workspace);
    std::fs::create_dir_all(&files.dir)
        .with_context(|| format!("could not create `{}`", files.dir.display()))?;
    for pair in pairs {
        if pair.direction == Direction::FromRemote {
            std::fs::create_dir_all(&pair.local)
                .with_context(|| format!("could not create `{}`", pair.local.display()))?;
        }
        check_local_root(&pair.local)?;
    }
    for stale in [files.ready(), files.failure()] {
        let _ = std::fs::remove_file(stale);
    }
    let config = Config {
        target: ssh.target().clone(),
        identity: ssh.identity().map(Path::to_owned),
        pairs: pairs.to_vec(),
    };
    crate::files::write_atomic(&files.config(), &serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("could not write `{}`", files.config().display()))?;
    let dual = std::env::current_exe().context("could not find dual's own path")?;
    let child =
        crate::process::spawn_detached(&dual, &["remote-sync", "run", workspace], &files.log())?;
    // The supervisor takes its lock at once; until then it is not "running".
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(pid) = running_pid(workspace) {
            return Ok(pid);
        }
        if let Some(failure) = read_failure(&files) {
            anyhow::bail!(Hinted {
                message: failure.message,
                hint: failure.hint
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!(Hinted {
        message: format!("the sync of {workspace} (pid {child}) did not start within 5 s"),
        hint: format!("see its log: {}", files.log().display()),
    })
}

/// Whether a workspace's sync supervisor runs.
pub fn is_running(workspace: &str) -> bool {
    crate::files::Lock::holder_of(&Files::of(workspace).lock()).is_some()
}

/// The pid of a workspace's running supervisor, if one holds its lock.
pub fn running_pid(workspace: &str) -> Option<u32> {
    crate::files::Lock::holder_of(&Files::of(workspace).lock()).and_then(|holder| holder.0)
}

/// Waits until every pair's first whole sync is done (launch starts the
/// container only then), the supervisor failed, or `timeout` passed.
pub fn wait_initial(workspace: &str, timeout: Duration) -> anyhow::Result<()> {
    let files = Files::of(workspace);
    let deadline = Instant::now() + timeout;
    loop {
        if files.ready().exists() {
            return Ok(());
        }
        if let Some(failure) = read_failure(&files) {
            anyhow::bail!(Hinted {
                message: failure.message,
                hint: failure.hint
            });
        }
        if !is_running(workspace) {
            anyhow::bail!(Hinted {
                message: format!(
                    "the sync of {workspace} stopped before its first copy was done{}",
                    last_lines(&files.log())
                ),
                hint: format!(
                    "see its log: {}; `dual launch` starts it again",
                    files.log().display()
                ),
            });
        }
        if Instant::now() >= deadline {
            anyhow::bail!(Hinted {
                message: format!(
                    "the first copy of {workspace} to the engine's host did not finish within {} s{}",
                    timeout.as_secs(),
                    last_lines(&files.log())
                ),
                hint: format!(
                    "it goes on in the background; see its log: {}",
                    files.log().display()
                ),
            });
        }
        if crate::interrupt::requested() {
            anyhow::bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a workspace's sync: the supervisor (SIGTERM, then SIGKILL after
/// 5 s), then anything it started that is still there, here and on the
/// engine's host. Whether a supervisor was running.
pub fn stop(workspace: &str) -> anyhow::Result<bool> {
    use rustix::process::{Pid, Signal, kill_process};
    check_workspace_name(workspace)?;
    let pid = running_pid(workspace);
    if let Some(pid) = pid
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(Pid::from_raw)
    {
        let _ = kill_process(pid, Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_running(workspace) {
            if Instant::now() >= deadline {
                let _ = kill_process(pid, Signal::KILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let marker = processes::workspace_marker(&crate::workspace::owner_id(), workspace);
    processes::kill_here(&marker);
    let files = Files::of(workspace);
    if let Some(config) = std::fs::read(files.config())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Config>(&bytes).ok())
    {
        // A process there whose link dropped; unreachable now, it ends
        // when sshd there notices, or at the next start's clean-up.
        let ssh = config.ssh();
        if ssh.is_up() {
            let _ = ssh
                .command(&processes::kill_there_line(&marker))
                .timeout(Duration::from_secs(15))
                .uncancellable()
                .output();
        }
    }
    let _ = std::fs::remove_file(files.ready());
    Ok(pid.is_some())
}

fn read_failure(files: &Files) -> Option<Failure> {
    serde_json::from_slice(&std::fs::read(files.failure()).ok()?).ok()
}

/// The log's last lines, as `: …` after a message.
fn last_lines(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    if lines.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = lines.into_iter().rev().collect();
    format!(": {}", lines.join(" / "))
}

/// A workspace name is a directory name here and there and part of a
/// marker: letters, digits, `.`, `_`, `-`, not a dot alone.
fn check_workspace_name(workspace: &str) -> anyhow::Result<()> {
    let plain = !workspace.is_empty()
        && !workspace.starts_with(['.', '-'])
        && workspace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    anyhow::ensure!(
        plain,
        "`{}` is not a workspace name dual syncs (letters, digits, `.`, `_`, `-`)",
        workspace.escape_debug()
    );
    Ok(())
}

/// Paths unison and the remote shell read: absolute, normal components,
/// plain characters; ignored dirs relative, the same characters as
/// `.dual.toml` allows for volumes (unison reads `*?[{\` as patterns).
fn check_pair(pair: &SyncPair) -> anyhow::Result<()> {
    let plain_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@');
    for (side, path) in [
        ("here", &pair.local),
        ("on the engine's host", &pair.remote),
    ] {
        let text = path.to_str().unwrap_or_default();
        let normal = path.is_absolute()
            && path
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_)));
        anyhow::ensure!(
            normal && !text.is_empty() && text.chars().all(plain_char),
            "cannot sync `{}` {side}: a synced directory is an absolute path of letters, digits, `/`, `.`, `_`, `-`, `+`, `@`",
            path.display()
        );
    }
    for dir in &pair.ignore {
        let normal = !dir.is_empty()
            && Path::new(dir)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        anyhow::ensure!(
            normal && dir.chars().all(|c| plain_char(c) || c == ' ') && !dir.ends_with('/'),
            "cannot leave `{}` out of the sync: an ignored directory is a relative path inside the clone, of letters, digits, spaces, `/`, `.`, `_`, `-`, `+`, `@`",
            dir.escape_debug()
        );
    }
    Ok(())
}

/// A local root is a directory itself, never a link (unison would follow
/// a root that is one, out of the clone).
fn check_local_root(local: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(local)
        .with_context(|| format!("cannot sync `{}`", local.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "cannot sync `{}`: it is not a directory (a link is never followed)",
        local.display()
    );
    Ok(())
}

/// unison and inotifywait on this host.
fn check_tools_here() -> anyhow::Result<()> {
    for (program, package) in [("unison", "unison"), ("inotifywait", "inotify-tools")] {
        if crate::process::find_on_path(program).is_none() {
            anyhow::bail!(Hinted {
                message: format!(
                    "`{program}` is not installed on this host: a workspace on a remote engine needs it to sync its clone"
                ),
                hint: format!("install {package} (Debian/Ubuntu: apt-get install {package})"),
            });
        }
    }
    Ok(())
}

/// Appends a line to the conflicts file.
fn record_conflict(workspace: &str, line: &str) {
    let path = Files::of(workspace).conflicts();
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_s_pairs_leave_git_and_volumes_out_of_the_two_way_copy() {
        let pairs = workspace_pairs(
            Path::new("/h/dual/shop/main"),
            Path::new("/r/.dual/shop-main/clone"),
            &["node_modules".into(), "web/node_modules".into()],
            Path::new("/h/.local/share/dual/logs/shop-main"),
            Path::new("/r/.dual/shop-main/logs"),
        );
        assert_eq!(pairs[0].direction, Direction::Both);
        assert_eq!(
            pairs[0].ignore,
            [".git", "node_modules", "web/node_modules"]
        );
        assert_eq!(pairs[1].direction, Direction::ToRemote);
        assert_eq!(pairs[1].local, Path::new("/h/dual/shop/main/.git"));
        assert_eq!(pairs[1].remote, Path::new("/r/.dual/shop-main/clone/.git"));
        assert_eq!(pairs[2].direction, Direction::FromRemote);
        for pair in &pairs {
            check_pair(pair).unwrap();
        }
    }

    #[test]
    fn paths_that_would_be_read_as_patterns_or_options_are_refused() {
        let pair = |local: &str, remote: &str, ignore: &str| SyncPair {
            local: local.into(),
            remote: remote.into(),
            direction: Direction::Both,
            ignore: vec![ignore.into()],
        };
        assert!(check_pair(&pair("/a", "/b", "node_modules")).is_ok());
        assert!(check_pair(&pair("/a", "/b", "my dir/x")).is_ok());
        for bad in [
            pair("a", "/b", "x"),
            pair("/a", "b", "x"),
            pair("/a/../etc", "/b", "x"),
            pair("/a", "/b c", "x"),
            pair("/a", "/b;rm", "x"),
            pair("/a", "/b", "../x"),
            pair("/a", "/b", "/abs"),
            pair("/a", "/b", "*.js"),
            pair("/a", "/b", "{a,b}"),
            pair("/a", "/b", ""),
            pair("/a", "/b", "x/"),
        ] {
            assert!(check_pair(&bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn workspace_names_stay_plain() {
        assert!(check_workspace_name("shop-feat-auth").is_ok());
        for bad in ["", ".", "..", "a/b", "-x", "a b", "a\nb"] {
            assert!(check_workspace_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_link_is_no_root() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(check_local_root(&real).is_ok());
        assert!(check_local_root(&link).is_err());
    }
}
