//! Every workspace's state, as `dual list`, `dual urls`, and the browser show
//! it. The state comes from the engine's labels, one `ps` per engine in use,
//! not one call per workspace; a container removed behind dual's back shows
//! as down or stopped.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::engine::endpoint::Endpoint;
use crate::engine::labels::{SidecarLabels, WorkspaceLabels, owner_filters};
use crate::engine::model::ContainerState;
use crate::engine::{ContainerSummary, Engine, EngineKind};
use crate::printer::Printer;
use crate::workspace::services::{self, ServiceState};
use crate::workspace::stack::{self, SidecarStatus};
use crate::workspace::{self, State, WorkspaceUrl};

use super::setup::SetupRecord;

/// What a workspace is doing, as far as dual and its engine know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceState {
    /// Declared, no clone yet (`dual launch` makes it).
    Lazy,
    /// Stopped by `dual stop`, or never launched on an engine.
    Stopped,
    Running,
    /// Its container runs and its `setup` is running now.
    SettingUp,
    /// Its container runs, but its last `setup` failed (with this status);
    /// until a later launch's setup succeeds.
    SetupFailed {
        status: String,
    },
    /// Not running, and not stopped by `dual stop`: the engine or the host
    /// restarted, or its container was stopped or removed by hand.
    Down,
    /// The engine does not answer.
    Unknown,
    /// Not asked yet (the browser's first frame, before the engines answer).
    Checking,
}

impl WorkspaceState {
    /// The word in `dual list --json`: one per state, no spaces.
    pub fn key(&self) -> &'static str {
        match self {
            WorkspaceState::Lazy => "lazy",
            WorkspaceState::Stopped => "stopped",
            WorkspaceState::Running => "running",
            WorkspaceState::SettingUp => "setting-up",
            WorkspaceState::SetupFailed { .. } => "setup-failed",
            WorkspaceState::Down => "down",
            WorkspaceState::Unknown => "unknown",
            WorkspaceState::Checking => "checking",
        }
    }

    /// Its container runs (whatever its setup did): commands can run in it.
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            WorkspaceState::Running
                | WorkspaceState::SettingUp
                | WorkspaceState::SetupFailed { .. }
        )
    }
}

impl std::fmt::Display for WorkspaceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkspaceState::SettingUp => f.write_str("setting up"),
            WorkspaceState::SetupFailed { status } => write!(f, "setup failed ({status})"),
            WorkspaceState::Checking => f.write_str("…"),
            other => f.write_str(other.key()),
        }
    }
}

impl Serialize for WorkspaceState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.key())
    }
}

/// One workspace as `dual list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceStatus {
    pub name: String,
    pub repo: String,
    pub branch: String,
    pub state: WorkspaceState,
    /// How its last setup ended, where it failed (`exit status 1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_failure: Option<String>,
    pub path: String,
    pub urls: Vec<WorkspaceUrl>,
    pub engine: Option<EngineKind>,
    /// `remote: user@host` for a workspace on another engine host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    pub services: Vec<ServiceStatus>,
    /// Its sidecars (a database, a cache) and their containers' states.
    pub sidecars: Vec<SidecarStatus>,
    /// The TCP ports it listens on, reachable through the proxy.
    pub listening: Vec<u16>,
    /// Ports it listens on at 127.0.0.1 only (unreachable from outside).
    pub loopback_only: Vec<u16>,
    /// Ports it listens on that do not speak HTTP (a database): no URL, not
    /// routed by the proxy (see `proxy::port_kinds`).
    pub tcp_ports: Vec<u16>,
    /// Plain `localhost` goes to it (`dual focus`).
    pub focus: bool,
}

impl WorkspaceStatus {
    /// The ports of its URLs.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.urls.iter().map(|url| url.port)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    #[serde(flatten)]
    pub state: ServiceState,
}

/// An engine, and the other host it is on (`None`: as the user's settings
/// say, this host for most).
type EngineAt = (EngineKind, Option<Endpoint>);

/// The engine a workspace's container is asked for: the flag's, else the
/// one (and host) it was launched on.
fn engine_at(flag: Option<EngineKind>, workspace: &workspace::Workspace) -> Option<EngineAt> {
    let kind = flag.or(workspace.engine)?;
    let endpoint = workspace
        .endpoint
        .clone()
        .filter(|_| workspace.engine == Some(kind));
    Some((kind, endpoint))
}

/// `remote: user@host`, for a workspace launched on another host.
fn remote_label(workspace: &workspace::Workspace) -> Option<String> {
    let kind = workspace.engine?;
    workspace.endpoint.as_ref()?.location(kind).ok()?.label()
}

/// This installation's workspace containers on one engine, by workspace name.
type ByName = HashMap<String, (WorkspaceLabels, ContainerSummary)>;

/// Every workspace of `dual_state`, sorted by name. An engine that does not
/// answer is a warning on `printer`, and its workspaces' states `Unknown`.
pub fn status(
    flag: Option<EngineKind>,
    dual_state: &State,
    printer: &Printer,
) -> Vec<WorkspaceStatus> {
    let workspaces = &dual_state.workspaces;
    let owner = workspace::owner_id();
    let mut engines: Vec<EngineAt> = workspaces
        .iter()
        .filter_map(|w| engine_at(flag, w))
        .collect();
    engines.sort_by(|a, b| {
        let url = |at: &EngineAt| at.1.as_ref().map(|e| e.url.clone());
        (a.0.program(), url(a)).cmp(&(b.0.program(), url(b)))
    });
    engines.dedup();
    // The running proxy's live view: which engines answer it now, what each
    // workspace listens on, the focus. One round trip; none without a proxy.
    let live = crate::proxy::control::status();
    let mut containers: HashMap<EngineAt, Option<ByName>> = HashMap::new();
    // Dual's sidecar containers on each engine (any workspace's).
    let mut sidecar_containers: HashMap<EngineAt, Vec<ContainerSummary>> = HashMap::new();
    for at in engines {
        let kind = at.0;
        let url = at.1.as_ref().map(|endpoint| endpoint.url.as_str());
        let away = live.as_ref().is_some_and(|live| {
            live.engines
                .iter()
                .any(|e| e.engine == kind && e.remote.as_deref() == url && !e.reachable)
        });
        if away {
            // Asking it would only wait out its timeout.
            printer.warn(format!(
                "{kind} does not answer dual's proxy (it keeps the last routes and retries), so states are unknown; check that {kind} runs: `{} info`",
                kind.program()
            ));
            containers.insert(at, None);
            continue;
        }
        // One `ps` for the workspaces' containers and their sidecars.
        let found = Engine::new(kind)
            .at(at.1.clone())
            .ps(&owner_filters(&owner))
            .map_err(|error| {
                // One line: what is wrong, and what to do.
                let fix = error
                    .hint()
                    .map_or(String::new(), |hint| format!("; {hint}"));
                printer.warn(format!("{error}, so states are unknown{fix}"));
            })
            .ok()
            .map(|list| {
                let (sidecars, workspaces): (Vec<_>, Vec<_>) = list
                    .into_iter()
                    .partition(|c| SidecarLabels::from_labels(&c.labels).is_some());
                sidecar_containers.insert(at.clone(), sidecars);
                workspaces
                    .into_iter()
                    .filter_map(|c| {
                        let labels = WorkspaceLabels::from_labels(&c.labels)?;
                        Some((labels.workspace.clone(), (labels, c)))
                    })
                    .collect()
            });
        containers.insert(at, found);
    }
    // The running proxy looks every second, and knows which ports speak
    // HTTP; without one, look now.
    let (listening, focus): (HashMap<String, Found>, _) = match live {
        Some(live) => (
            live.workspaces
                .into_iter()
                .map(|w| {
                    let found = Found {
                        routed: Some(w.routes.keys().copied().collect()),
                        tcp: w.tcp_ports,
                        listening: w.listening,
                    };
                    (w.name, found)
                })
                .collect(),
            live.focus,
        ),
        None => (
            listening_ports(&containers)
                .into_iter()
                .map(|(name, listening)| (name, Found::unprobed(listening)))
                .collect(),
            workspace::focus::read(),
        ),
    };
    let mut listed: Vec<WorkspaceStatus> = workspaces
        .iter()
        .map(|w| {
            let at = engine_at(flag, w);
            let engine = at.as_ref().map(|at| at.0);
            let cloned = w.path.exists();
            let state = match at
                .as_ref()
                .map(|at| containers.get(at).and_then(Option::as_ref))
            {
                _ if !cloned => WorkspaceState::Lazy,
                None => WorkspaceState::Stopped,
                Some(None) => WorkspaceState::Unknown,
                Some(Some(by_name)) => match by_name.get(&w.name()) {
                    // Only the container of this repo's branch counts.
                    Some((labels, container))
                        if labels.same_workspace(&workspace::labels(w, None))
                            && container.state == ContainerState::Running =>
                    {
                        match SetupRecord::read(&w.name()) {
                            Some(SetupRecord::Running { .. }) => WorkspaceState::SettingUp,
                            Some(SetupRecord::Failed { status }) => {
                                WorkspaceState::SetupFailed { status }
                            }
                            None => WorkspaceState::Running,
                        }
                    }
                    _ if w.stopped || w.engine.is_none() => WorkspaceState::Stopped,
                    _ => WorkspaceState::Down,
                },
            };
            let running = state.is_running();
            let config = workspace::config_for_listing(dual_state, w);
            let services = services::states(&w.name(), &config, running)
                .into_iter()
                .map(|(name, service)| ServiceStatus {
                    name,
                    state: if state == WorkspaceState::Unknown {
                        ServiceState::Unknown
                    } else {
                        service
                    },
                })
                .collect();
            let sidecars = at
                .as_ref()
                .and_then(|at| sidecar_containers.get(at))
                .map(|found| stack::statuses(w, &config, found))
                .unwrap_or_else(|| stack::statuses(w, &config, &[]));
            let found = listening
                .get(&w.name())
                .filter(|_| running)
                .cloned()
                .unwrap_or_default();
            let mut ports = config.known_ports();
            for port in &found.listening.reachable {
                if !ports.contains(port) && found.is_web(*port) {
                    ports.push(*port);
                }
            }
            let tcp_ports = found
                .tcp
                .iter()
                .copied()
                .filter(|port| !ports.contains(port))
                .collect();
            WorkspaceStatus {
                name: w.name(),
                repo: w.repo.clone(),
                branch: w.branch.clone(),
                setup_failure: match &state {
                    WorkspaceState::SetupFailed { status } => Some(status.clone()),
                    _ => None,
                },
                state,
                path: w.path.display().to_string(),
                urls: workspace::urls(w, &ports),
                engine,
                remote: remote_label(w),
                services,
                sidecars,
                listening: found.listening.reachable.into_iter().collect(),
                loopback_only: found.listening.loopback_only.into_iter().collect(),
                tcp_ports,
                focus: focus.as_deref() == Some(w.name().as_str()),
            }
        })
        .collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    listed
}

/// The rows as dual's state file has them, without asking an engine: for a
/// first frame at once, states `Checking` (or `Lazy`).
pub fn skeleton(dual_state: &State) -> Vec<WorkspaceStatus> {
    let focus = workspace::focus::read();
    dual_state
        .workspaces
        .iter()
        .map(|w| WorkspaceStatus {
            name: w.name(),
            repo: w.repo.clone(),
            branch: w.branch.clone(),
            state: if w.path.exists() {
                WorkspaceState::Checking
            } else {
                WorkspaceState::Lazy
            },
            setup_failure: None,
            path: w.path.display().to_string(),
            urls: workspace::urls(w, &workspace::declared_ports(dual_state, w)),
            engine: w.engine,
            remote: remote_label(w),
            services: Vec::new(),
            sidecars: Vec::new(),
            listening: Vec::new(),
            loopback_only: Vec::new(),
            tcp_ports: Vec::new(),
            focus: focus.as_deref() == Some(w.name().as_str()),
        })
        .collect()
}

/// What a workspace listens on, and which of those ports speak HTTP.
#[derive(Debug, Clone, Default)]
struct Found {
    listening: crate::sockets::Listening,
    /// The ports the running proxy routes; `None` without a proxy.
    routed: Option<BTreeSet<u16>>,
    /// The ports that do not speak HTTP.
    tcp: Vec<u16>,
}

impl Found {
    /// Without a proxy there is no probe: only the well-known database
    /// ports are known not to be HTTP.
    fn unprobed(listening: crate::sockets::Listening) -> Found {
        let tcp = listening
            .reachable
            .iter()
            .copied()
            .filter(|port| crate::proxy::port_kinds::well_known_tcp(*port))
            .collect();
        Found {
            listening,
            routed: None,
            tcp,
        }
    }

    /// Whether a found port gets a URL: the proxy routes it (it speaks
    /// HTTP), or without a proxy, it is not known not to.
    fn is_web(&self, port: u16) -> bool {
        match &self.routed {
            Some(routed) => routed.contains(&port),
            None => !self.tcp.contains(&port),
        }
    }
}

/// What the running workspace containers listen on, by workspace name: one
/// `inspect` per engine for their process ids, then /proc.
fn listening_ports(
    containers: &HashMap<EngineAt, Option<ByName>>,
) -> HashMap<String, crate::sockets::Listening> {
    let mut found = HashMap::new();
    for ((kind, endpoint), by_name) in containers {
        // Another host's processes are not in this host's /proc.
        let Some(by_name) = by_name.as_ref().filter(|_| endpoint.is_none()) else {
            continue;
        };
        let ids: Vec<&str> = by_name
            .values()
            .filter(|(_, c)| c.state == ContainerState::Running)
            .map(|(_, c)| c.id.as_str())
            .collect();
        if ids.is_empty() {
            continue;
        }
        if let Ok(inspected) = Engine::new(*kind).inspect(&ids) {
            found.extend(crate::proxy::discover(&inspected));
        }
    }
    found
}
