//! `dual list [--json]`: every workspace with its state and URLs. The state
//! comes from the engine's labels, one `ps` per engine in use, not one call
//! per workspace; a container removed behind dual's back shows as stopped.

use std::collections::HashMap;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::print;
use crate::engine::labels::{WorkspaceLabels, workspace_filters};
use crate::engine::{ContainerSummary, Engine, EngineKind};
use crate::workspace::services::{self, ServiceState};
use crate::workspace::{self, State, Store};

#[derive(Debug, Serialize)]
pub struct Listed {
    pub name: String,
    pub repo: String,
    pub branch: String,
    /// `lazy` (no clone yet), `stopped` (by `dual stop`), `running`, `down`
    /// (not running, and not stopped by `dual stop`: the engine or the host
    /// restarted, or its container was stopped or removed by hand), or
    /// `unknown` (the engine does not answer).
    pub state: &'static str,
    pub path: String,
    pub urls: Vec<String>,
    pub engine: Option<EngineKind>,
    pub services: Vec<ListedService>,
    /// The TCP ports it listens on, reachable through the proxy.
    pub listening: Vec<u16>,
    /// Ports it listens on at 127.0.0.1 only (unreachable from outside).
    pub loopback_only: Vec<u16>,
    /// Plain `localhost` goes to it (`dual focus`).
    pub focus: bool,
}

#[derive(Debug, Serialize)]
pub struct ListedService {
    pub name: String,
    #[serde(flatten)]
    pub state: ServiceState,
}

/// This installation's workspace containers on one engine, by workspace name.
type ByName = HashMap<String, (WorkspaceLabels, ContainerSummary)>;

pub fn run(flag: Option<EngineKind>, json: bool) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load()?;
    let listed = list(flag, &state);
    let ports = crate::proxy::conflicts::ports_of_urls(
        listed
            .iter()
            .filter(|l| l.state == "running")
            .flat_map(|l| &l.urls),
    );
    for warning in crate::proxy::conflicts::warnings(&ports) {
        eprintln!("{warning}");
    }
    if json {
        print(&serde_json::to_string_pretty(&listed)?)?;
        print("\n")?;
    } else {
        print(&table(&listed))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn list(flag: Option<EngineKind>, dual_state: &State) -> Vec<Listed> {
    let workspaces = &dual_state.workspaces;
    let owner = workspace::owner_id();
    let mut engines: Vec<EngineKind> = workspaces
        .iter()
        .filter_map(|w| flag.or(w.engine))
        .collect();
    engines.sort_by_key(|kind| kind.program());
    engines.dedup();
    let mut containers: HashMap<EngineKind, Option<ByName>> = HashMap::new();
    for kind in engines {
        let found = Engine::new(kind)
            .ps(&workspace_filters(Some(&owner)))
            .map_err(|error| {
                // One line: what is wrong, and what to do.
                let fix = error
                    .hint()
                    .map_or(String::new(), |hint| format!("; {hint}"));
                eprintln!("warning: {error}, so states are unknown{fix}");
            })
            .ok()
            .map(|list| {
                list.into_iter()
                    .filter_map(|c| {
                        let labels = WorkspaceLabels::from_labels(&c.labels)?;
                        Some((labels.workspace.clone(), (labels, c)))
                    })
                    .collect()
            });
        containers.insert(kind, found);
    }
    // The running proxy looks every second; without one, look now.
    let listening = crate::proxy::listening::read().unwrap_or_else(|| listening_ports(&containers));
    let focus = crate::workspace::focus::read();
    let mut listed: Vec<Listed> = workspaces
        .iter()
        .map(|w| {
            let engine = flag.or(w.engine);
            let cloned = w.path.exists();
            let state = match engine.map(|kind| containers.get(&kind).and_then(Option::as_ref)) {
                _ if !cloned => "lazy",
                None => "stopped",
                Some(None) => "unknown",
                Some(Some(by_name)) => match by_name.get(&w.name()) {
                    // Only the container of this repo's branch counts.
                    Some((labels, container))
                        if labels.same_workspace(&workspace::labels(w, None))
                            && container.state == "running" =>
                    {
                        "running"
                    }
                    _ if w.stopped || w.engine.is_none() => "stopped",
                    _ => "down",
                },
            };
            let config = workspace::config_for_listing(dual_state, w);
            let services = services::states(&w.name(), &config, state == "running")
                .into_iter()
                .map(|(name, service)| ListedService {
                    name,
                    state: if state == "unknown" {
                        ServiceState::Unknown
                    } else {
                        service
                    },
                })
                .collect();
            let found = listening
                .get(&w.name())
                .filter(|_| state == "running")
                .cloned()
                .unwrap_or_default();
            let mut ports = config.known_ports();
            for port in &found.reachable {
                if !ports.contains(port) {
                    ports.push(*port);
                }
            }
            Listed {
                name: w.name(),
                repo: w.repo.clone(),
                branch: w.branch.clone(),
                state,
                path: w.path.display().to_string(),
                urls: workspace::urls(w, &ports),
                engine,
                services,
                listening: found.reachable.into_iter().collect(),
                loopback_only: found.loopback_only.into_iter().collect(),
                focus: focus.as_deref() == Some(w.name().as_str()),
            }
        })
        .collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    listed
}

/// What the running workspace containers listen on, by workspace name: one
/// `inspect` per engine for their process ids, then /proc.
fn listening_ports(
    containers: &HashMap<EngineKind, Option<ByName>>,
) -> HashMap<String, crate::sockets::Listening> {
    let mut found = HashMap::new();
    for (kind, by_name) in containers {
        let Some(by_name) = by_name else { continue };
        let ids: Vec<&str> = by_name
            .values()
            .filter(|(_, c)| c.state == "running")
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

fn table(listed: &[Listed]) -> String {
    if listed.is_empty() {
        return "no workspaces yet: `dual create BRANCH`, then `dual launch`\n".into();
    }
    let with_services = listed.iter().any(|l| !l.services.is_empty());
    let rows: Vec<[String; 5]> = listed
        .iter()
        .map(|l| {
            let services: Vec<String> = l
                .services
                .iter()
                .map(|s| format!("{} {}", s.name, s.state))
                .collect();
            [
                if l.focus {
                    format!("{} *", l.name)
                } else {
                    l.name.clone()
                },
                l.branch.clone(),
                l.state.to_owned(),
                services.join(", "),
                l.urls.join(" "),
            ]
        })
        .collect();
    let header = ["WORKSPACE", "BRANCH", "STATE", "SERVICES", "URLS"].map(str::to_owned);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    std::iter::once(&header)
        .chain(rows.iter())
        .map(|r| {
            let services = if with_services {
                format!("{:w$}  ", r[3], w = widths[3])
            } else {
                String::new()
            };
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {services}{}\n",
                r[0],
                r[1],
                r[2],
                r[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
            .trim_end()
            .to_owned()
                + "\n"
        })
        .chain(down_note(listed))
        .chain(
            listed
                .iter()
                .any(|l| l.focus)
                .then(|| "\n* in focus: plain http://localhost:PORT reaches it\n".to_owned()),
        )
        .chain(loopback_notes(listed))
        .collect()
}

/// A port bound to 127.0.0.1 inside looks up but never answers through
/// the proxy: say so, with the fix.
fn loopback_notes(listed: &[Listed]) -> impl Iterator<Item = String> + '_ {
    listed.iter().flat_map(|l| {
        l.loopback_only.iter().map(move |port| {
            format!(
                "note: {} listens on 127.0.0.1:{port} only, inside its container: the proxy cannot reach it; make the server listen on 0.0.0.0\n",
                l.name
            )
        })
    })
}

/// What `down` means, under the table when a workspace is down.
fn down_note(listed: &[Listed]) -> Option<String> {
    listed.iter().any(|l| l.state == "down").then(|| {
        "\ndown: not stopped with `dual stop`, but not running (its engine or the host restarted, or it was stopped by hand);\n      the proxy starts it again when the engine is back, or `dual launch WORKSPACE` does\n".to_owned()
    })
}
