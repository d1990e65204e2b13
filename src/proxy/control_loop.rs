//! The control loop's state, all of it its own, and how it takes what the
//! engine tasks, discovery, the file watch and control clients post: each
//! message is handled at once, from memory, with nothing awaited but the
//! worker threads opening a listener.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::control::{self, Answer, Asked, Event, Request};
use super::discovery::{self, Watched};
use super::engines::Outage;
use super::listeners::Listeners;
use super::routes::Found;
use super::routes::Table;
use super::tcp_forward::{Forwards, Refusal as ForwardRefusal};
use super::tunnels::{Tunnel, Tunneled};
use super::{Posted, log};
use crate::engine::labels::WorkspaceLabels;
use crate::engine::{Container, EngineKind};

/// The longest workspace name a focus request may carry.
const MAX_NAME: usize = 255;

/// The routes of every engine's containers in one table. A workspace seen
/// on two engines (relaunched on the other) routes to the running one.
/// Routes on another engine host go through its tunnel (`tunneled[i]`,
/// `None` for this host's engines): the addresses each tunnel is asked
/// for are returned beside the table: the routes', and those of the ports
/// found listening there that are probed (see `port_kinds`), since a probe
/// goes through the tunnel too.
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
        if tunneled.is_some() {
            addresses.extend(probed_addresses(containers, found));
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

/// Where the ports found listening in running workspace containers are
/// reached from their engine's host, for those that are probed.
fn probed_addresses<'a>(
    containers: &'a [Container],
    found: &'a Found,
) -> impl Iterator<Item = SocketAddr> + 'a {
    containers
        .iter()
        .filter(|c| c.running)
        .filter_map(|container| {
            let labels = WorkspaceLabels::from_labels(&container.labels)?;
            let listening = found.listening.get(&labels.workspace)?;
            let probed: Vec<SocketAddr> = discovery::probed_ports(container, &labels, listening)
                .map(|(_, target)| target)
                .collect();
            Some(probed)
        })
        .flatten()
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
    /// Every engine's containers and tunnels, for discovery.
    pub(super) watched_tx: watch::Sender<Arc<Watched>>,
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

    /// Hands discovery the containers and tunnels as they are now.
    fn tell_discovery(&self) {
        let _ = self.watched_tx.send(Arc::new(Watched {
            containers: self.containers.clone(),
            tunneled: self.tunneled.clone(),
        }));
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
                self.tell_discovery();
                self.refresh().await;
            }
            Posted::Tunneled { engine, map } => {
                self.tunneled[engine] = Some(map);
                self.tell_discovery();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::test_container;
    use crate::proxy::port_kinds::PortKind;
    use crate::sockets::Listening;
    use std::collections::HashMap;

    #[test]
    fn a_remote_engine_s_tunnel_reaches_its_routes_and_the_ports_to_probe() {
        let container = test_container("shop-a", true, Some([172, 17, 0, 2]), &[3000], &[]);
        let there = |port: u16| SocketAddr::from(([172, 17, 0, 2], port));
        // Far more undeclared ports than are probed.
        let reachable = (5000..5000 + 2 * discovery::MAX_PROBED as u16).chain([3000]);
        let found = Found {
            listening: HashMap::from([(
                "shop-a".to_owned(),
                Listening {
                    reachable: reachable.collect(),
                    ..Listening::default()
                },
            )]),
            kinds: HashMap::from([(
                "shop-a".to_owned(),
                BTreeMap::from([(5000, PortKind::Http), (5001, PortKind::Tcp)]),
            )]),
        };
        let merged = |tunneled: Option<Tunneled>| {
            merged_table(
                &[EngineKind::Docker],
                std::slice::from_ref(&vec![container.clone()]),
                &found,
                &[tunneled],
            )
        };
        // No forward yet: each asked for, none routed.
        let (table, wanted) = merged(Some(Tunneled::new()));
        let wanted = &wanted[0];
        assert!(wanted.contains(&there(3000)), "the declared port's route");
        assert!(wanted.contains(&there(5002)), "a port not judged yet");
        assert_eq!(wanted.len(), 1 + discovery::MAX_PROBED, "bounded");
        assert!(table.routes["shop-a"].targets.is_empty());
        // Forwarded: routes go through the forwards.
        let tunneled: Tunneled = wanted
            .iter()
            .zip(41000..)
            .map(|(remote, local)| (*remote, SocketAddr::from(([127, 0, 0, 1], local))))
            .collect();
        let (table, _) = merged(Some(tunneled.clone()));
        let route = &table.routes["shop-a"];
        assert_eq!(route.targets[&3000], tunneled[&there(3000)]);
        assert_eq!(route.targets[&5000], tunneled[&there(5000)]);
        assert_eq!(route.tcp_targets[&5001], tunneled[&there(5001)]);
        assert!(!route.targets.contains_key(&5002), "not judged yet");
        // A local engine's containers need no tunnel.
        let (table, wanted) = merged(None);
        assert!(wanted[0].is_empty());
        assert_eq!(table.routes["shop-a"].targets[&5000], there(5000));
    }
}
