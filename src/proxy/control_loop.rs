//! The control loop's state, all of it its own, and how it takes what the
//! engine tasks, discovery, the file watch and control clients post: each
//! message is handled at once, from memory, with nothing awaited but the
//! worker threads opening a listener.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::control::{self, Answer, Asked, Event, Request};
use super::engines::Outage;
use super::listeners::Listeners;
use super::routes::Found;
use super::routes::Table;
use super::tcp_forward::{Forwards, Refusal as ForwardRefusal};
use super::tunnels::{Tunnel, Tunneled};
use super::{Posted, log};
use crate::engine::{Container, EngineKind};

/// The longest workspace name a focus request may carry.
const MAX_NAME: usize = 255;

/// The routes of every engine's containers in one table. A workspace seen
/// on two engines (relaunched on the other) routes to the running one.
/// Routes on another engine host go through its tunnel (`tunneled[i]`,
/// `None` for this host's engines): the addresses each tunnel is asked
/// for are returned beside the table.
fn merged_table(
    kinds: &[EngineKind],
    containers: &[Vec<Container>],
    found: &Found,
    tunneled: &[Option<Tunneled>],
) -> (Table, Vec<BTreeSet<SocketAddr>>) {
    let mut table = Table::default();
    let mut wanted = Vec::new();
    for ((kind, containers), tunneled) in kinds.iter().zip(containers).zip(tunneled) {
        let mut part = Table::from_containers(containers, found);
        let mut addresses = BTreeSet::new();
        for route in part.routes.values_mut() {
            route.engine = Some(*kind);
            if let Some(tunneled) = tunneled {
                addresses.extend(route.targets.values().chain(route.tcp_targets.values()));
                through_tunnel(&mut route.targets, tunneled);
                through_tunnel(&mut route.tcp_targets, tunneled);
            }
        }
        wanted.push(addresses);
        for (name, route) in part.routes {
            let keep_existing = table
                .routes
                .get(&name)
                .is_some_and(|existing| existing.running || !route.running);
            if !keep_existing {
                table.routes.insert(name, route);
            }
        }
    }
    (table, wanted)
}

/// Each remote address by where the tunnel reaches it here; one with no
/// forward yet is not routed (yet).
fn through_tunnel(targets: &mut BTreeMap<u16, SocketAddr>, tunneled: &Tunneled) {
    targets.retain(|_, target| match tunneled.get(target) {
        Some(local) => {
            *target = *local;
            true
        }
        None => false,
    });
}

/// The control loop's state: all of it is its own, and it is changed only
/// by what is posted to it.
pub(super) struct Core {
    pub(super) kinds: Vec<EngineKind>,
    pub(super) outages: Vec<Arc<Outage>>,
    pub(super) containers: Vec<Vec<Container>>,
    /// Every engine's containers, for discovery.
    pub(super) containers_tx: watch::Sender<Arc<Vec<Container>>>,
    pub(super) found: Found,
    pub(super) focus: Option<String>,
    pub(super) current: Arc<Table>,
    pub(super) table_tx: watch::Sender<Arc<Table>>,
    pub(super) listeners: Listeners,
    pub(super) control: control::Server,
    /// `dual forward`'s raw TCP forwards (see `tcp_forward`).
    pub(super) forwards: Forwards,
    /// Each engine's tunnel, for one on another host (see `tunnels`), and
    /// what it reaches.
    pub(super) tunnels: Vec<Option<Tunnel>>,
    pub(super) tunneled: Vec<Option<Tunneled>>,
    /// Each engine's host address, for one on another host.
    pub(super) remotes: Vec<Option<String>>,
}

impl Core {
    /// Builds the table again; on a change, hands it to the connections,
    /// opens and closes listeners, and tells subscribers.
    pub(super) async fn refresh(&mut self) {
        let (mut next, wanted) =
            merged_table(&self.kinds, &self.containers, &self.found, &self.tunneled);
        for (tunnel, addresses) in self.tunnels.iter().zip(wanted) {
            if let Some(tunnel) = tunnel {
                tunnel.want(addresses);
            }
        }
        next.focus = self.focus.clone();
        if next == *self.current {
            return;
        }
        log_changes(&self.current, &next);
        let routes_changed = next.routes != self.current.routes;
        self.current = Arc::new(next);
        let _ = self.table_tx.send(Arc::clone(&self.current));
        if routes_changed {
            self.control.publish(Event::Routes {
                workspaces: control::workspaces_of(&self.current),
            });
            if self.listeners.sync(&self.current.live_ports()).await {
                self.publish_conflicts();
            }
        }
    }

    pub(super) fn publish_conflicts(&self) {
        self.control.publish(Event::Conflicts {
            conflicts: self.listeners.conflicts.values().cloned().collect(),
        });
    }

    pub(super) async fn take(&mut self, posted: Posted) {
        match posted {
            Posted::Loaded { engine, containers } => {
                self.containers[engine] = containers;
                let all: Vec<Container> = self.containers.iter().flatten().cloned().collect();
                let _ = self.containers_tx.send(Arc::new(all));
                self.refresh().await;
            }
            Posted::Tunneled { engine, map } => {
                self.tunneled[engine] = Some(map);
                self.refresh().await;
            }
            Posted::Reachable { engine, reachable } => {
                self.control.publish(Event::Engine {
                    engine: self.kinds[engine],
                    reachable,
                });
            }
            Posted::Found(found) => {
                self.found = found;
                self.control.publish(Event::Listening {
                    listening: self.found.listening.clone().into_iter().collect(),
                });
                self.refresh().await;
            }
            Posted::Holder {
                port,
                address,
                holder,
            } => {
                if self.listeners.named(port, address, holder) {
                    self.publish_conflicts();
                }
            }
            Posted::Asked(Asked { request, reply }) => {
                let answer = self.answer(request).await;
                let _ = reply.send(answer);
            }
            Posted::Changed(event) => self.control.publish(event),
        }
    }

    /// The answer to a control request; a focus change is answered once
    /// the connections have the table with it.
    async fn answer(&mut self, request: Request) -> Answer {
        match request {
            Request::Status => Answer::Status(control::ProxyStatus {
                pid: std::process::id(),
                engines: self
                    .kinds
                    .iter()
                    .zip(&self.outages)
                    .zip(&self.remotes)
                    .map(|((kind, outage), remote)| control::EngineStatus {
                        engine: *kind,
                        reachable: !outage.is_away(),
                        remote: remote.clone(),
                    })
                    .collect(),
                workspaces: control::workspaces_of(&self.current),
                focus: self.focus.clone(),
                conflicts: self.listeners.conflicts.values().cloned().collect(),
            }),
            Request::Listening => Answer::Listening {
                listening: self.found.listening.clone().into_iter().collect(),
            },
            Request::Conflicts => Answer::Conflicts {
                conflicts: self.listeners.conflicts.values().cloned().collect(),
            },
            Request::Focus { set, clear } => {
                let wanted = match (set, clear) {
                    (Some(_), true) => {
                        return Answer::Error {
                            error: "a focus request with both `set` and `clear`".into(),
                        };
                    }
                    (Some(name), false) if name.is_empty() || name.len() > MAX_NAME => {
                        return Answer::Error {
                            error: format!("a workspace name of 1 to {MAX_NAME} bytes"),
                        };
                    }
                    (Some(name), false) => Some(Some(name)),
                    (None, true) => Some(None),
                    (None, false) => None,
                };
                if let Some(focus) = wanted
                    && focus != self.focus
                {
                    log(&format!("focus: {}", focus.as_deref().unwrap_or("none")));
                    self.focus = focus;
                    self.refresh().await;
                    self.control.publish(Event::Focus {
                        focus: self.focus.clone(),
                    });
                }
                Answer::Focus {
                    focus: self.focus.clone(),
                }
            }
            // Served by the connection itself (see `control`).
            Request::Subscribe => Answer::Error {
                error: "subscribe is answered by the connection".into(),
            },
            Request::ForwardAdd {
                workspace,
                port,
                local,
            } => {
                if workspace.is_empty() || workspace.len() > MAX_NAME {
                    return Answer::ForwardRefused {
                        refusal: ForwardRefusal::Invalid {
                            error: format!("a workspace name of 1 to {MAX_NAME} bytes"),
                        },
                    };
                }
                let containers = self.containers.iter().flatten();
                let http_ports = self.current.live_ports();
                match self
                    .forwards
                    .add(&workspace, port, local, containers, &http_ports)
                {
                    Ok(added) => Answer::Forwarded(added),
                    Err(refusal) => Answer::ForwardRefused { refusal },
                }
            }
            Request::ForwardList => Answer::Forwards {
                forwards: self.forwards.list(),
            },
            Request::ForwardRemove { local, workspace } => Answer::Forwards {
                forwards: self.forwards.remove(local, workspace.as_deref()).await,
            },
        }
    }
}

fn log_changes(old: &Table, new: &Table) {
    for (name, route) in &new.routes {
        if old.routes.get(name) == Some(route) {
            continue;
        }
        if route.running {
            let targets: Vec<String> = route
                .targets
                .iter()
                .map(|(port, target)| format!(":{port} → {target}"))
                .collect();
            log(&format!("route {name}: {}", targets.join(", ")));
        } else {
            log(&format!("route {name}: stopped (answers 502)"));
        }
    }
    for name in old
        .routes
        .keys()
        .filter(|name| !new.routes.contains_key(*name))
    {
        log(&format!("route {name}: removed"));
    }
}
