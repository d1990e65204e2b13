//! The one proxy of a user: a lock file that holds its pid (so that two
//! never run at once, and a CLI finds the one that runs), its log, and
//! starting and stopping it in the background.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::fs::{FlockOperation, flock};

use crate::engine::EngineKind;
use crate::error::Hinted;

fn lock_path() -> PathBuf {
    crate::paths::data_dir().join("proxy.lock")
}

pub fn log_path() -> PathBuf {
    crate::paths::data_dir().join("proxy.log")
}

/// Takes the proxy lock, or says who holds it. The lock file holds the pid;
/// the lock lasts as long as the returned file is open.
pub fn take_lock() -> anyhow::Result<Result<File, u32>> {
    let path = lock_path();
    std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("could not open `{}`", path.display()))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(Err(running_pid().unwrap_or(0)));
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(Ok(file))
}

/// The pid of the running proxy, if one holds the lock.
pub fn running_pid() -> Option<u32> {
    let path = lock_path();
    let file = File::open(&path).ok()?;
    // A shared lock is free only while no proxy holds its exclusive one.
    if flock(&file, FlockOperation::NonBlockingLockShared).is_ok() {
        let _ = flock(&file, FlockOperation::Unlock);
        return None;
    }
    std::fs::read_to_string(&path).ok()?.trim().parse().ok()
}

/// Starts the proxy in the background unless one runs; returns its pid.
pub fn start_background(flag: Option<EngineKind>) -> anyhow::Result<u32> {
    if let Some(pid) = running_pid() {
        return Ok(pid);
    }
    let dual = std::env::current_exe().context("could not find dual's own path")?;
    let mut args: Vec<&str> = Vec::new();
    if let Some(kind) = flag {
        args.extend(["--engine", kind.program()]);
    }
    args.push("proxy");
    std::fs::create_dir_all(crate::paths::data_dir())?;
    let child = crate::process::spawn_detached(&dual, &args, &log_path())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(pid) = running_pid() {
            return Ok(pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!(Hinted {
        message: format!("the proxy (pid {child}) did not come up within 5s"),
        hint: format!("see its log: {}", log_path().display()),
    })
}

/// Stops the running proxy (SIGTERM, then SIGKILL after 5 s); its pid, or
/// `None` when none ran.
pub fn stop_running() -> anyhow::Result<Option<u32>> {
    use rustix::process::{Pid, Signal, kill_process};
    let Some(pid) = running_pid() else {
        return Ok(None);
    };
    let target = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .context("the proxy's lock file holds no valid pid")?;
    let _ = kill_process(target, Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while running_pid().is_some() {
        if Instant::now() >= deadline {
            // It ignored SIGTERM.
            let _ = kill_process(target, Signal::KILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Some(pid))
}
