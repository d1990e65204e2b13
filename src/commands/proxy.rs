//! `dual proxy [start|stop|status]`: the reverse proxy in the foreground, or
//! as a background service with a lock so that two never run at once.

use std::process::ExitCode;

use super::print;
use crate::cli::ProxyAction;
use crate::engine::{Engine, EngineKind};
use crate::error::Hinted;
use crate::proxy::instance::{self, log_path, running_pid, start_background, take_lock};

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
                    warn_engines_away(pid);
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

/// What the running proxy says of its engines: one that does not answer
/// leaves its workspaces' routes as it last told them.
fn warn_engines_away(pid: u32) {
    let Some(status) = crate::proxy::control::status() else {
        eprintln!(
            "warning: the proxy (pid {pid}) does not answer on its control socket `{}`; `dual proxy stop`, then `dual proxy start`, starts a fresh one",
            crate::proxy::control::socket_path().display()
        );
        return;
    };
    for engine in status.engines.iter().filter(|e| !e.reachable) {
        eprintln!(
            "warning: {} does not answer the proxy; its workspaces keep the routes it last gave, and the proxy follows it again once it answers",
            engine.engine.program()
        );
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
    for warning in crate::proxy::conflicts::warnings(&ports) {
        eprintln!("{warning}");
    }
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
    let first = Engine::select(flag).map_err(crate::error::hinted)?;
    let mut engines = vec![first.clone()];
    for kind in EngineKind::chosen_or_installed(None) {
        if kind != first.kind() {
            engines.push(Engine::new(kind));
        }
    }
    // And every other host a workspace was launched on.
    engines.extend(remote_engines());
    crate::proxy::run(crate::proxy::Options::loopback(
        engines,
        Some(crate::workspace::owner_id()),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The engines on other hosts that workspaces were launched on, each once.
fn remote_engines() -> Vec<Engine> {
    let Ok(state) = crate::workspace::Store::open_default().load() else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    state
        .workspaces
        .iter()
        .filter_map(|w| Some((w.engine?, w.endpoint.clone()?)))
        .filter(|(kind, endpoint)| seen.insert((*kind, endpoint.url.clone())))
        .map(|(kind, endpoint)| Engine::new(kind).at(Some(endpoint)))
        .collect()
}

fn stop() -> anyhow::Result<ExitCode> {
    match instance::stop_running()? {
        Some(pid) => print(&format!("proxy stopped (pid {pid})\n"))?,
        None => print("proxy not running\n")?,
    }
    Ok(ExitCode::SUCCESS)
}
