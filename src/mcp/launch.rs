//! The `launch` tool: the launch operation, its printed steps sent as
//! progress notifications, then a wait until the workspace is ready for an
//! agent: its services ready, and its page routed by the proxy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};
use serde_json::json;

use super::outcome::{Outcome, failure, hinted, panicked};
use super::tools;
use crate::engine::EngineKind;
use crate::error::HintExt as _;
use crate::ops::status::WorkspaceState;
use crate::printer::{Message, Printer};
use crate::workspace::Store;
use crate::workspace::services::ServiceState;

pub async fn launch(
    flag: Option<EngineKind>,
    args: tools::LaunchArgs,
    progress: Progress,
) -> Outcome {
    let wait_ready = args.wait_ready.unwrap_or(true);
    let limit = tools::seconds(
        args.timeout_seconds,
        tools::LAUNCH_TIMEOUT_DEFAULT,
        tools::LAUNCH_TIMEOUT_MAX,
        "timeout_seconds",
    )
    .map_err(|error| hinted(error, "pass a number of seconds within the bounds"))?;
    let (sender, receiver) = std::sync::mpsc::channel();
    let printer = Printer::channel(sender);
    let name = args.workspace.clone();
    let launching = tokio::task::spawn_blocking(move || {
        let options = crate::ops::launch::LaunchOptions {
            recreate: args.recreate,
            ..Default::default()
        };
        crate::ops::launch::launch_with(flag, Some(&name), options, &printer)
    });
    let warnings = progress.relay(receiver).await;
    let launched = launching.await.map_err(panicked)?.map_err(failure)?;
    let started_at = Instant::now();
    let mut ready = !wait_ready;
    let mut services_ready: Option<Instant> = None;
    let mut unrouted = false;
    let mut listed = None;
    let mut last = String::new();
    loop {
        let name = launched.workspace.clone();
        let status = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let state = Store::open_default().load().hinted()?;
            let all = crate::ops::status::status(flag, &state, &Printer::silent());
            Ok(all.into_iter().find(|w| w.name == name))
        })
        .await
        .map_err(panicked)?
        .map_err(failure)?;
        let Some(status) = status else { break };
        let (mut all_ready, mut summary) = readiness(&status);
        // Ready for an agent means its page answers: the proxy routes a
        // port the workspace listens on (a service without a ready
        // check is "ready" once started, before it binds). One that
        // listens on nothing is ready after ROUTE_GRACE all the same.
        if all_ready && !ready {
            let since = *services_ready.get_or_insert_with(Instant::now);
            let name = status.name.clone();
            let routed = tokio::task::spawn_blocking(move || proxy_routes_a_listening_port(&name))
                .await
                .unwrap_or(None);
            if routed == Some(false) {
                if since.elapsed() < ROUTE_GRACE {
                    all_ready = false;
                    summary = format!("{summary}; waiting for the proxy to route its port");
                } else {
                    unrouted = true;
                }
            }
        }
        if summary != last {
            progress.send(&summary).await;
            last = summary;
        }
        ready = ready || all_ready;
        listed = Some(status);
        if ready || started_at.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut notes = Vec::new();
    if unrouted {
        notes.push(format!(
            "its services run, but after {} s the proxy routes no port it listens on: a server bound to 127.0.0.1 inside cannot be reached (bind 0.0.0.0)",
            ROUTE_GRACE.as_secs()
        ));
    }
    if wait_ready && !ready {
        notes.push(format!(
            "not ready after {} s: {last}; `logs` shows what its services print",
            limit.as_secs()
        ));
    }
    let value = json!({
        "workspace": launched.workspace,
        "container": launched.container,
        "engine": launched.engine,
        "started": launched.started.describe(),
        "cloned_into": launched.cloned_into,
        "urls": listed.as_ref().map_or(&launched.urls, |l| &l.urls).iter().map(ToString::to_string).collect::<Vec<_>>(),
        "ready": ready,
        "services": listed.as_ref().map(|l| json!(l.services)),
        "sidecars": listed.as_ref().map(|l| json!(l.sidecars)),
        "notes": notes,
    });
    Ok((value, warnings))
}

/// Progress notifications for one request, where it asked for them.
pub struct Progress {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    step: AtomicUsize,
}

impl Progress {
    pub fn new(context: &RequestContext<RoleServer>) -> Progress {
        Progress {
            peer: context.peer.clone(),
            token: context.meta.get_progress_token(),
            step: AtomicUsize::new(0),
        }
    }

    async fn send(&self, message: &str) {
        let Some(token) = &self.token else { return };
        let step = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let param =
            ProgressNotificationParam::new(token.clone(), step as f64).with_message(message);
        let _ = self.peer.notify_progress(param).await;
    }

    /// Sends each line the operation prints as it comes, until it is done;
    /// returns its warnings.
    async fn relay(&self, receiver: std::sync::mpsc::Receiver<Message>) -> Vec<String> {
        let (forward, mut lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for message in receiver {
                if forward.send(message).is_err() {
                    break;
                }
            }
        });
        let mut warnings = Vec::new();
        while let Some(message) = lines.recv().await {
            match message {
                Message::Progress(text) | Message::Out(text) => self.send(text.trim_end()).await,
                Message::Warning(text) => {
                    self.send(&format!("warning: {}", text.trim_end())).await;
                    warnings.push(text);
                }
            }
        }
        warnings
    }
}

/// How long a launch whose services run waits for the proxy to route a
/// port of it.
const ROUTE_GRACE: Duration = Duration::from_secs(10);

/// Whether the running proxy routes a port workspace `name` listens on;
/// `None` when no proxy runs (nothing to wait for).
fn proxy_routes_a_listening_port(name: &str) -> Option<bool> {
    use crate::proxy::control::{Answer, Request, ask};
    let Ok(Answer::Status(status)) = ask(&Request::Status) else {
        return None;
    };
    // Not known to it yet: not routed yet.
    let Some(workspace) = status.workspaces.into_iter().find(|w| w.name == name) else {
        return Some(false);
    };
    Some(
        workspace
            .listening
            .reachable
            .iter()
            .any(|port| workspace.routes.contains_key(port)),
    )
}

/// Whether every service of a launched workspace is ready, and a line
/// saying where each stands.
fn readiness(status: &crate::ops::status::WorkspaceStatus) -> (bool, String) {
    if !status.state.is_running() {
        return (false, format!("workspace {}", status.state));
    }
    if matches!(status.state, WorkspaceState::SettingUp) {
        return (false, "setup is running".into());
    }
    let ready = status
        .services
        .iter()
        .all(|s| matches!(s.state, ServiceState::Running { .. }));
    let summary = if status.services.is_empty() {
        "running (no services)".to_owned()
    } else {
        status
            .services
            .iter()
            .map(|s| format!("{}: {}", s.name, service_word(&s.state)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    (ready, summary)
}

fn service_word(state: &ServiceState) -> String {
    match state {
        ServiceState::Waiting { on, .. } => format!("waiting for {on}"),
        ServiceState::Starting { .. } => "starting".into(),
        ServiceState::Running { .. } => "ready".into(),
        ServiceState::Restarting { code, .. } => format!("exited ({code}), restarting"),
        ServiceState::Stopped => "stopped".into(),
        ServiceState::NotStarted => "not started".into(),
        ServiceState::Unknown => "unknown".into(),
    }
}
