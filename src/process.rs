//! The one runner for every external command dual starts (engine CLIs, git, …).
//!
//! Why one place: every call is logged with its shell-quoted argv, bounded by a
//! timeout, cancelled by Ctrl-C, and a failure becomes an error that carries the
//! argv, the exit status and the child's own stderr. duct's built-in status
//! check drops stderr (duct issue #94), so we run `unchecked()` and judge here.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::interrupt;

/// How often a waiting call looks at the interrupt flag.
const CANCEL_POLL: Duration = Duration::from_millis(25);

/// A command to run, with its captured output.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    /// Variables of dual's own environment the child does not get.
    env_removed: Vec<OsString>,
    dir: Option<std::path::PathBuf>,
    timeout: Duration,
    cancellable: bool,
    /// Fed to the child's stdin (else stdin is closed).
    stdin: Option<Vec<u8>>,
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// What a finished command printed, each stream cut to its newest bytes
/// (see `Cmd::output_keeping_last`).
#[derive(Debug)]
pub struct Kept {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Older bytes of stdout were dropped.
    pub stdout_cut: bool,
    pub stderr_cut: bool,
}

/// Everything `reader` gives, keeping only its last `cap` bytes (and at
/// most about twice that at any time); whether any were dropped.
fn keep_last(mut reader: impl io::Read, cap: usize) -> io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let read = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        kept.extend_from_slice(&chunk[..read]);
        // Dropped in batches: each byte is moved a bounded number of times.
        if kept.len() > 2 * cap {
            kept.drain(..kept.len() - cap);
            cut = true;
        }
    }
    if kept.len() > cap {
        kept.drain(..kept.len() - cap);
        cut = true;
    }
    Ok((kept, cut))
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Not run: an argument would change what the command does.
    #[error("refusing {what}: {why}")]
    Refused { what: String, why: &'static str },
    #[error("`{program}` was not found on PATH")]
    ProgramNotFound { program: String },
    #[error("could not start `{argv}`")]
    Spawn {
        argv: String,
        #[source]
        source: io::Error,
    },
    #[error("`{argv}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        argv: String,
        status: StatusText,
        stderr: String,
    },
    #[error("`{argv}` did not finish within {}s and was killed", .timeout.as_secs_f32())]
    TimedOut { argv: String, timeout: Duration },
    #[error("`{argv}` was interrupted")]
    Interrupted { argv: String },
}

impl CommandError {
    /// The child's stderr, when it ran and failed.
    pub fn stderr(&self) -> &str {
        match self {
            CommandError::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self, CommandError::Interrupted { .. })
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// An exit status as a user reads it: "exit status 1" or "killed by signal 9".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusText(pub ExitStatus);

impl fmt::Display for StatusText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::unix::process::ExitStatusExt;
        match (self.0.code(), self.0.signal()) {
            (Some(code), _) => write!(f, "exit status {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => write!(f, "{}", self.0),
        }
    }
}

impl Cmd {
    pub fn new<I, S>(program: impl Into<OsString>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Cmd {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            env_removed: Vec::new(),
            dir: None,
            timeout: Duration::from_secs(60),
            cancellable: true,
            stdin: None,
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The child does not inherit `key` from dual's environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env_removed.push(key.into());
        self
    }

    /// Runs in `dir` rather than dual's own working directory.
    pub fn dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Gives the child these bytes as its stdin.
    pub fn stdin_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// Cleanup must still run after Ctrl-C: such calls ignore the interrupt flag.
    pub fn uncancellable(mut self) -> Self {
        self.cancellable = false;
        self
    }

    pub fn argv(&self) -> Vec<&OsStr> {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .collect()
    }

    /// The argv as one shell-quoted line, for logs and errors.
    pub fn display(&self) -> String {
        self.argv()
            .into_iter()
            .map(|arg| quote(&arg.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The one place a child process is built: stdin closed (or given bytes;
    /// `stream_holding_stdin` gives a pipe), stderr captured, the status
    /// judged by us (duct's own check drops stderr), and a process group of
    /// its own.
    fn expression(&self) -> duct::Expression {
        let expression = match &self.stdin {
            Some(bytes) => self.bare_expression().stdin_bytes(bytes.clone()),
            None => self.bare_expression().stdin_null(),
        };
        captured(expression)
    }

    #[allow(clippy::disallowed_methods)]
    fn bare_expression(&self) -> duct::Expression {
        let mut expression = duct::cmd(self.resolved_program(), &self.args).unchecked();
        // (duct's innermost setting wins: only where the caller sets none.)
        if let Some(path) = self.default_path() {
            expression = expression.env("PATH", path);
        }
        for key in &self.env_removed {
            expression = expression.env_remove(key);
        }
        for (key, value) in &self.env {
            expression = expression.env(key, value);
        }
        if let Some(dir) = self.run_dir() {
            expression = expression.dir(dir);
        }
        expression
    }

    /// A program named without a path is looked up, and runs, on the host's
    /// PATH: never one of dual's shims (a caller may still set a PATH of its
    /// own, as the user's shell in a workspace gets).
    fn resolved_program(&self) -> OsString {
        match (host_path(), self.program.to_str()) {
            (Some(path), Some(name)) => find_in(name, path)
                .map(OsString::from)
                .unwrap_or_else(|| self.program.clone()),
            _ => self.program.clone(),
        }
    }

    /// The host's PATH, where the caller sets none.
    fn default_path(&self) -> Option<&'static OsStr> {
        host_path().filter(|_| !self.env.iter().any(|(key, _)| key == "PATH"))
    }

    /// The caller's directory, else `/` when dual's own was deleted (the
    /// clone `dual destroy` just removed): podman refuses to start there.
    fn run_dir(&self) -> Option<&Path> {
        match &self.dir {
            Some(dir) => Some(dir),
            None if std::env::current_dir().is_err() => Some(Path::new("/")),
            None => None,
        }
    }

    /// Starts the command with stdin, stdout and stderr all pipes of the
    /// caller's, in its own process group, killed with the thread that
    /// started it where `setpriv` is there (see `die_with_parent`). No
    /// timeout applies: the caller reads both outputs, waits, and kills.
    /// Built with std's `Command`: duct keeps no pipe of the caller's open.
    #[allow(clippy::disallowed_methods)]
    pub fn spawn_piped(&self) -> Result<std::process::Child, CommandError> {
        use std::os::unix::process::CommandExt;
        use std::process::Stdio;
        crate::log::debug(&format!("+ {} (piped)", self.display()));
        let held = die_with_parent(self);
        let mut command = std::process::Command::new(held.resolved_program());
        command
            .args(&held.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(path) = held.default_path() {
            command.env("PATH", path);
        }
        for key in &held.env_removed {
            command.env_remove(key);
        }
        for (key, value) in &held.env {
            command.env(key, value);
        }
        if let Some(dir) = held.run_dir() {
            command.current_dir(dir);
        }
        command.spawn().map_err(|source| self.spawn_error(source))
    }

    /// Runs attached to dual's own stdin, stdout and stderr, as a command the
    /// user typed. No timeout. Each signal dual receives meanwhile is handed
    /// to `on_signal` (to pass on to the real process), not acted on.
    /// `own_group` keeps a terminal's Ctrl-C from reaching the child directly.
    pub fn run_attached(
        &self,
        own_group: bool,
        on_signal: impl FnMut(i32),
    ) -> Result<ExitStatus, CommandError> {
        let never = || Ok::<(), std::convert::Infallible>(());
        self.run_attached_checked(own_group, on_signal, Duration::MAX, never)
            .map(|status| status.unwrap_or_else(|never| match never {}))
    }

    /// `run_attached`, and once it has run for `after`, `check` on a thread
    /// of its own: the command may be stuck on something that does not
    /// answer (an engine's daemon), which `check` can tell from a command
    /// that merely runs long. When `check` fails, the command is killed and
    /// its error returned.
    pub fn run_attached_checked<E: Send + 'static>(
        &self,
        own_group: bool,
        mut on_signal: impl FnMut(i32),
        after: Duration,
        check: impl FnOnce() -> Result<(), E> + Send + 'static,
    ) -> Result<Result<ExitStatus, E>, CommandError> {
        crate::log::debug(&format!("+ {} (attached)", self.display()));
        let mut expression = self.bare_expression();
        if own_group {
            expression = expression.before_spawn(own_process_group);
        }
        let handle = expression
            .start()
            .map_err(|source| self.spawn_error(source))?;
        let started = Instant::now();
        let mut check = Some(check);
        let (verdict_tx, verdict) = std::sync::mpsc::channel();
        loop {
            if let Some(signal) = interrupt::take_signal() {
                on_signal(signal);
            }
            if started.elapsed() >= after
                && let Some(check) = check.take()
            {
                let verdict_tx = verdict_tx.clone();
                std::thread::spawn(move || verdict_tx.send(check()));
            }
            if let Ok(Err(error)) = verdict.try_recv() {
                let _ = handle.kill();
                return Ok(Err(error));
            }
            match handle.wait_timeout(CANCEL_POLL) {
                Ok(Some(output)) => return Ok(Ok(output.status)),
                Ok(None) => continue,
                Err(source) => return Err(self.spawn_error(source)),
            }
        }
    }

    /// Runs to completion and returns the output whatever the exit status.
    pub fn output(&self) -> Result<Output, CommandError> {
        crate::log::debug(&format!("+ {}", self.display()));
        let started = Instant::now();
        let handle = self
            .expression()
            .stdout_capture()
            .start()
            .map_err(|source| self.spawn_error(source))?;
        let deadline = started + self.timeout;
        loop {
            let slice = self.wait_slice(&handle, deadline)?;
            match handle.wait_timeout(slice) {
                Ok(Some(output)) => {
                    let output = Output {
                        status: output.status,
                        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                        elapsed: started.elapsed(),
                    };
                    crate::log::debug(&format!(
                        "  {} in {:.0?}",
                        StatusText(output.status),
                        output.elapsed
                    ));
                    return Ok(output);
                }
                Ok(None) => continue,
                Err(source) => return Err(self.spawn_error(source)),
            }
        }
    }

    /// How long to wait for `handle` next: until `deadline`, in slices that
    /// look at the interrupt flag where the command is cancellable. Past the
    /// deadline, or once interrupted, the child is killed and this is the
    /// error.
    fn wait_slice(
        &self,
        handle: &duct::Handle,
        deadline: Instant,
    ) -> Result<Duration, CommandError> {
        if self.cancellable && interrupt::requested() {
            let _ = handle.kill();
            return Err(CommandError::Interrupted {
                argv: self.display(),
            });
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = handle.kill();
            return Err(CommandError::TimedOut {
                argv: self.display(),
                timeout: self.timeout,
            });
        }
        Ok(if self.cancellable {
            CANCEL_POLL.min(deadline - now)
        } else {
            deadline - now
        })
    }

    /// Runs and requires success; returns stdout's bytes, or `None` when
    /// it printed more than `cap` (the command is then killed, so a
    /// container's huge file never fills dual's memory).
    pub fn run_bytes_capped(&self, cap: u64) -> Result<Option<Vec<u8>>, CommandError> {
        use std::io::Read;
        crate::log::debug(&format!("+ {} (at most {cap} bytes)", self.display()));
        let handle = std::sync::Arc::new(
            self.expression()
                .reader()
                .map_err(|source| self.spawn_error(source))?,
        );
        let reading = std::sync::Arc::clone(&handle);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let read = (&*reading).take(cap + 1).read_to_end(&mut bytes);
            let _ = sender.send(read.map(|_| bytes));
        });
        let bytes = match receiver.recv_timeout(self.timeout) {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(source)) => {
                let _ = handle.kill();
                return Err(self.spawn_error(source));
            }
            Err(_) => {
                let _ = handle.kill();
                return Err(CommandError::TimedOut {
                    argv: self.display(),
                    timeout: self.timeout,
                });
            }
        };
        if bytes.len() as u64 > cap {
            let _ = handle.kill();
            return Ok(None);
        }
        // At the end of its output the child has exited: judge its status.
        match handle.try_wait() {
            Ok(Some(output)) if output.status.success() => Ok(Some(bytes)),
            Ok(Some(output)) => {
                Err(self.exited(output.status, &String::from_utf8_lossy(&output.stderr)))
            }
            Ok(None) => {
                let _ = handle.kill();
                Ok(None)
            }
            Err(source) => Err(self.spawn_error(source)),
        }
    }

    /// Runs to completion like `output`, but keeps only the last `cap` bytes
    /// of each stream, raw (a container's log of any length never fills
    /// dual's memory, and its newest part is the one wanted).
    pub fn output_keeping_last(&self, cap: usize) -> Result<Kept, CommandError> {
        crate::log::debug(&format!("+ {} (its last {cap} bytes)", self.display()));
        let started = Instant::now();
        let (stdout, stdout_writer) = io::pipe().map_err(|source| self.spawn_error(source))?;
        let (stderr, stderr_writer) = io::pipe().map_err(|source| self.spawn_error(source))?;
        let expression = match &self.stdin {
            Some(bytes) => self.bare_expression().stdin_bytes(bytes.clone()),
            None => self.bare_expression().stdin_null(),
        }
        .stdout_file(stdout_writer)
        .stderr_file(stderr_writer)
        .before_spawn(own_process_group);
        let handle = expression
            .start()
            .map_err(|source| self.spawn_error(source))?;
        // Our copies of the pipes' write ends: closed, so that the readers
        // end when the child does.
        drop(expression);
        let stdout = std::thread::spawn(move || keep_last(stdout, cap));
        let stderr = std::thread::spawn(move || keep_last(stderr, cap));
        let deadline = started + self.timeout;
        let status = loop {
            let slice = self.wait_slice(&handle, deadline)?;
            match handle.wait_timeout(slice) {
                Ok(Some(output)) => break output.status,
                Ok(None) => continue,
                Err(source) => return Err(self.spawn_error(source)),
            }
        };
        let joined = |reader: std::thread::JoinHandle<io::Result<(Vec<u8>, bool)>>| {
            reader
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a reader thread panicked")))
                .map_err(|source| self.spawn_error(source))
        };
        let (stdout, stdout_cut) = joined(stdout)?;
        let (stderr, stderr_cut) = joined(stderr)?;
        Ok(Kept {
            status,
            stdout,
            stderr,
            stdout_cut,
            stderr_cut,
        })
    }

    /// Starts a long-running command (an event stream) and returns its stdout
    /// as a reader. No timeout applies; dropping the reader kills the child.
    pub fn stream(&self) -> Result<duct::ReaderHandle, CommandError> {
        crate::log::debug(&format!("+ {} (streaming)", self.display()));
        die_with_parent(self)
            .expression()
            .reader()
            .map_err(|source| self.spawn_error(source))
    }

    /// `stream`, with the child's stdin a pipe that stays open until the
    /// returned writer is dropped: a command on another host (over ssh) can
    /// watch its stdin and end as soon as its caller goes away, where
    /// nothing else would tell it. Its stderr goes with stdout's when the
    /// command merges them itself (`2>&1`); else it is captured.
    pub fn stream_holding_stdin(
        &self,
    ) -> Result<(duct::ReaderHandle, std::io::PipeWriter), CommandError> {
        crate::log::debug(&format!("+ {} (streaming)", self.display()));
        let (stdin, writer) = std::io::pipe().map_err(|source| self.spawn_error(source))?;
        let reader = die_with_parent(self)
            .bare_expression()
            .stdin_file(stdin)
            .stderr_capture()
            .before_spawn(own_process_group)
            .reader()
            .map_err(|source| self.spawn_error(source))?;
        Ok((reader, writer))
    }

    /// Runs to completion and fails unless the exit status is zero.
    pub fn run(&self) -> Result<Output, CommandError> {
        let output = self.output()?;
        if output.success() {
            Ok(output)
        } else {
            Err(self.failed(&output))
        }
    }

    /// The error for a command that ran and exited unsuccessfully.
    pub fn failed(&self, output: &Output) -> CommandError {
        self.exited(output.status, &output.stderr)
    }

    pub fn exited(&self, status: ExitStatus, stderr: &str) -> CommandError {
        CommandError::Failed {
            argv: self.display(),
            status: StatusText(status),
            stderr: stderr.trim().to_owned(),
        }
    }

    fn spawn_error(&self, source: io::Error) -> CommandError {
        if source.kind() == io::ErrorKind::NotFound {
            CommandError::ProgramNotFound {
                program: self.program.to_string_lossy().into_owned(),
            }
        } else {
            CommandError::Spawn {
                argv: self.display(),
                source,
            }
        }
    }
}

/// stderr captured (into the error), and a process group of its own.
fn captured(expression: duct::Expression) -> duct::Expression {
    expression.stderr_capture().before_spawn(own_process_group)
}

/// Ctrl-C in a terminal signals its whole foreground process group. Captured
/// children get a group of their own so that only dual sees it and decides:
/// kill what may be killed, let a half-done `run` finish so cleanup finds it.
fn own_process_group(command: &mut std::process::Command) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    Ok(())
}

/// A stream (`events`) never ends by itself, and its own process group keeps
/// it from a terminal's signals: it must not outlive dual. `setpriv` (util-linux)
/// asks Linux to kill it when the thread that started it ends, and the
/// stream's reader lives there. It asks once it runs, a millisecond or so
/// after the spawn: a thread gone before that leaves the stream running.
/// Without `setpriv` the stream still ends when its reader is dropped, or at
/// its next write once dual is gone.
fn die_with_parent(command: &Cmd) -> Cmd {
    let Some(setpriv) = find_on_path("setpriv") else {
        crate::log::debug("no setpriv on PATH: an event stream may outlive a killed dual");
        return command.clone();
    };
    let mut args: Vec<OsString> = ["--pdeathsig", "KILL", "--"].map(OsString::from).into();
    args.push(command.program.clone());
    args.extend(command.args.iter().cloned());
    Cmd {
        program: setpriv.into_os_string(),
        args,
        ..command.clone()
    }
}

/// Replaces dual with `program` (as `exec` does in a shell): used by a shim
/// outside any workspace, so the host's own command runs with nothing of dual
/// left around it. Returns only on failure.
#[allow(clippy::disallowed_methods)]
pub fn exec_replace(program: &Path, args: &[OsString], path_env: Option<&OsStr>) -> CommandError {
    use std::os::unix::process::CommandExt;
    crate::log::debug(&format!("+ exec {}", quote(&program.to_string_lossy())));
    let mut command = std::process::Command::new(program);
    command.args(args);
    if let Some(path) = path_env {
        command.env("PATH", path);
    }
    let source = command.exec();
    CommandError::Spawn {
        argv: program.display().to_string(),
        source,
    }
}

/// Starts `program` detached from this terminal (own process group, stdin closed,
/// output appended to `log`) and returns its pid: a background service.
#[allow(clippy::disallowed_methods)]
pub fn spawn_detached(program: &Path, args: &[&str], log: &Path) -> Result<u32, CommandError> {
    use std::os::unix::process::CommandExt;
    let argv = format!("{} {}", quote(&program.to_string_lossy()), args.join(" "));
    crate::log::debug(&format!("+ {argv} (detached)"));
    let spawn_error = |source| CommandError::Spawn {
        argv: argv.clone(),
        source,
    };
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(spawn_error)?;
    let errors = output.try_clone().map_err(spawn_error)?;
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(output)
        .stderr(errors);
    // A process group of its own, out of the terminal's foreground: a
    // hangup signals only the session's leader and its foreground group, so
    // closing the terminal does not stop the service.
    command.process_group(0);
    command.spawn().map(|child| child.id()).map_err(spawn_error)
}

/// Quotes one word for a POSIX shell; plain words stay as they are.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Finds a program on the host's PATH (see `host_path`) the way a shell
/// would, without running it.
pub fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    find_in(program, host_path()?)
}

/// dual's PATH without dual's own shims directory. Every program dual runs
/// by name (docker, podman, git, ldd, ip, tmux …) is the host's: a shim
/// there, on the PATH of a shell in a workspace, would run whatever the
/// workspace's container calls by that name and hand its answer to dual.
pub fn host_path() -> Option<&'static OsStr> {
    static HOST_PATH: std::sync::OnceLock<Option<OsString>> = std::sync::OnceLock::new();
    HOST_PATH
        .get_or_init(|| {
            let path = std::env::var_os("PATH")?;
            Some(path_without_dir(&path, &crate::paths::shims_dir()))
        })
        .as_deref()
}

/// `path` without `dir`, however it is spelt there (a trailing slash, a
/// link to it).
pub fn path_without_dir(path: &OsStr, dir: &std::path::Path) -> OsString {
    let real = dir.canonicalize().ok();
    let kept: Vec<std::path::PathBuf> = std::env::split_paths(path)
        .filter(|entry| entry != dir && (real.is_none() || entry.canonicalize().ok() != real))
        .collect();
    std::env::join_paths(kept).unwrap_or_else(|_| path.to_owned())
}

/// Finds a program in the directories of a PATH-style list.
pub fn find_in(program: &str, path: &OsStr) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        let path = std::path::PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream whose reader is lost (never dropped, as when dual itself is
    /// killed) still ends with the thread that started it.
    #[test]
    fn a_stream_does_not_outlive_the_thread_that_started_it() {
        if find_on_path("setpriv").is_none() {
            eprintln!("!!!!! SKIPPED: no setpriv on PATH");
            return;
        }
        let pid = std::thread::spawn(|| {
            let reader = Cmd::new("sleep", ["30"]).stream().unwrap();
            let pid = reader.pids()[0];
            // As a stream's reader does, the thread lives on a while (past
            // the moment setpriv asks for the signal).
            std::thread::sleep(Duration::from_millis(300));
            std::mem::forget(reader);
            pid
        })
        .join()
        .unwrap();
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
            })
        };
        let ended = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !alive()
        });
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            ended,
            "the stream's process {pid} outlived its thread: {state} {cmdline:?}"
        );
    }

    #[test]
    fn quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("docker"), "docker");
        assert_eq!(quote("label=dual.managed=true"), "label=dual.managed=true");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
        assert_eq!(quote("{{json .}}"), "'{{json .}}'");
    }

    #[test]
    fn failure_carries_argv_status_and_stderr() {
        let cmd = Cmd::new("sh", ["-c", "echo oops >&2; exit 3"]);
        let error = cmd.run().unwrap_err();
        assert_eq!(error.stderr(), "oops");
        assert_eq!(
            error.to_string(),
            "`sh -c 'echo oops >&2; exit 3'` failed (exit status 3): oops"
        );
    }

    #[test]
    fn missing_program_is_its_own_error() {
        let error = Cmd::new("dual-no-such-program", ["x"]).run().unwrap_err();
        assert!(
            matches!(error, CommandError::ProgramNotFound { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_hung_command_is_killed_at_its_timeout() {
        let started = Instant::now();
        let error = Cmd::new("sleep", ["30"])
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        assert!(matches!(error, CommandError::TimedOut { .. }), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn capped_output_stops_reading_at_the_cap() {
        let hundred = Cmd::new("sh", ["-c", "head -c 100 /dev/zero"]);
        assert_eq!(hundred.run_bytes_capped(1000).unwrap().unwrap().len(), 100);
        assert_eq!(hundred.run_bytes_capped(10).unwrap(), None);
        // Endless output: read up to the cap, then the child is killed.
        let endless = Cmd::new("yes", ["x"]).timeout(Duration::from_secs(10));
        assert_eq!(endless.run_bytes_capped(4096).unwrap(), None);
        let failing = Cmd::new("sh", ["-c", "echo nope >&2; exit 3"]);
        let error = failing.run_bytes_capped(10).unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn kept_output_is_the_last_bytes_of_each_stream() {
        let both = Cmd::new("sh", ["-c", "printf 'a\\nb\\n'; printf ' warn\\n' >&2"]);
        let kept = both.output_keeping_last(100).unwrap();
        assert_eq!(
            (&kept.stdout[..], &kept.stderr[..]),
            (&b"a\nb\n"[..], &b" warn\n"[..])
        );
        assert!(!kept.stdout_cut && !kept.stderr_cut && kept.status.success());
        // A megabyte through a 1000-byte window: its end, and `cut`.
        let long = Cmd::new("sh", ["-c", "seq 200000; echo end >&2"]);
        let kept = long.output_keeping_last(1000).unwrap();
        assert_eq!(kept.stdout.len(), 1000);
        assert!(kept.stdout.ends_with(b"199999\n200000\n") && kept.stdout_cut);
        assert_eq!((&kept.stderr[..], kept.stderr_cut), (&b"end\n"[..], false));
        let failing = Cmd::new("sh", ["-c", "echo nope >&2; exit 3"]);
        let kept = failing.output_keeping_last(10).unwrap();
        assert_eq!(
            (kept.status.code(), &kept.stderr[..]),
            (Some(3), &b"nope\n"[..])
        );
    }

    #[test]
    fn output_keeps_stdout_and_trims_stderr() {
        let output = Cmd::new("sh", ["-c", "printf 'a\\nb\\n'; echo ' warn ' >&2"])
            .run()
            .unwrap();
        assert_eq!(output.stdout, "a\nb\n");
        assert_eq!(output.stderr, "warn");
    }
}
