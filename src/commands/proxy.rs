//! `dual proxy [start|stop|status]`: the reverse proxy in the foreground, or
//! as a background service with a lock so that two never run at once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::{ProxyAction, print};
use crate::engine::{Engine, EngineKind};
use crate::error::Hinted;

fn lock_path() -> PathBuf {
    crate::paths::data_dir().join("proxy.lock")
}

pub fn log_path() -> PathBuf {
    crate::paths::data_dir().join("proxy.log")
}

/// Takes the proxy lock, or says who holds it. The lock file holds the pid.
fn take_lock() -> anyhow::Result<Result<File, u32>> {
    let path = lock_path();
    std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("could not open `{}`", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
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
    // SAFETY: probing the lock with a non-blocking shared flock.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        // SAFETY: releasing the probe.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return None;
    }
    std::fs::read_to_string(&path).ok()?.trim().parse().ok()
}

pub fn run(flag: Option<EngineKind>, action: Option<ProxyAction>) -> anyhow::Result<ExitCode> {
    match action {
        None => foreground(flag),
        Some(ProxyAction::Start) => {
            let pid = start_background(flag)?;
            print(&format!(
                "proxy running (pid {pid}); log: {}\n",
                log_path().display()
            ))?;
            warn_conflicts();
            Ok(ExitCode::SUCCESS)
        }
        Some(ProxyAction::Stop) => stop(),
        Some(ProxyAction::Status) => {
            match running_pid() {
                Some(pid) => {
                    print(&format!(
                        "proxy running (pid {pid}); log: {}\n",
                        log_path().display()
                    ))?;
                    warn_conflicts();
                }
                None => {
                    print("proxy not running; `dual proxy start` starts it\n")?;
                    return Ok(ExitCode::from(3));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The ports the proxy found held by another program, and the workspaces'
/// declared ports held now.
fn warn_conflicts() {
    let mut ports: Vec<u16> = crate::proxy::conflicts::read()
        .iter()
        .map(|c| c.port)
        .collect();
    if let Ok(state) = crate::workspace::Store::open_default().load() {
        for workspace in &state.workspaces {
            ports.extend(crate::workspace::declared_ports(&state, workspace));
        }
    }
    ports.sort_unstable();
    ports.dedup();
    crate::proxy::conflicts::warn(&ports);
}

fn foreground(flag: Option<EngineKind>) -> anyhow::Result<ExitCode> {
    let _lock = match take_lock()? {
        Ok(lock) => lock,
        Err(pid) => anyhow::bail!(Hinted {
            message: format!("a dual proxy is already running (pid {pid})"),
            hint: "`dual proxy status` shows it; `dual proxy stop` stops it".into(),
        }),
    };
    // The engine asked for (or found) first; then every other one on PATH:
    // workspaces on docker and on podman are all routed by this proxy.
    let first = Engine::select(flag)?;
    let mut engines = vec![first.clone()];
    for kind in EngineKind::chosen_or_installed(None) {
        if kind != first.kind() {
            engines.push(Engine::new(kind));
        }
    }
    crate::proxy::run(crate::proxy::Options::loopback(
        engines,
        Some(crate::workspace::owner_id()),
    ))?;
    Ok(ExitCode::SUCCESS)
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

fn stop() -> anyhow::Result<ExitCode> {
    let Some(pid) = running_pid() else {
        print("proxy not running\n")?;
        return Ok(ExitCode::SUCCESS);
    };
    let pid_t = i32::try_from(pid).context("a pid fits an i32")?;
    // SAFETY: signalling the process that holds the proxy lock.
    unsafe { libc::kill(pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while running_pid().is_some() {
        if Instant::now() >= deadline {
            // SAFETY: as above; it ignored SIGTERM.
            unsafe { libc::kill(pid_t, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    print(&format!("proxy stopped (pid {pid})\n"))?;
    Ok(ExitCode::SUCCESS)
}
