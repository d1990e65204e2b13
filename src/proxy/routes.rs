//! The route table: which workspace name goes to which container address.
//! Built from the engine's own view of dual's labelled containers, never
//! from anything a request says, so the proxy can only reach those.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use crate::engine::Container;
use crate::engine::labels::WorkspaceLabels;
use crate::sockets::Listening;

/// At most this many ports a workspace listens on but does not declare are
/// routed. Each is a listener per worker and loopback address on the host:
/// a container listening on thousands took every descriptor the proxy had,
/// and with them every other workspace's routes and the control socket.
pub const MAX_FOUND_PORTS: usize = 64;

/// The ports routed to a workspace: those it declares, and the first
/// `MAX_FOUND_PORTS` others it listens on.
fn routed_ports(ports: &[u16], listening: &Listening) -> BTreeSet<u16> {
    let found = listening
        .reachable
        .iter()
        .filter(|port| !ports.contains(port))
        .take(MAX_FOUND_PORTS);
    ports.iter().chain(found).copied().collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub running: bool,
    /// The ports the workspace declares (`ports` in .dual.toml).
    pub ports: Vec<u16>,
    /// What its container was found listening on (see `sockets::listening_in`).
    pub listening: Listening,
    /// The engine its container runs on.
    pub engine: Option<crate::engine::EngineKind>,
    /// Where each port is reached from the host: the container's IP where
    /// the host can route to it, else a port published on 127.0.0.1.
    pub targets: BTreeMap<u16, SocketAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub routes: BTreeMap<String, Route>,
    /// Where plain `localhost` goes (see `workspace::focus`).
    pub focus: Option<String>,
}

impl Table {
    /// The routes to `containers`: their declared ports, and the ports
    /// `found` (by workspace name) listening in them.
    pub fn from_containers(containers: &[Container], found: &HashMap<String, Listening>) -> Table {
        let mut routes = BTreeMap::new();
        for container in containers {
            let Some(WorkspaceLabels {
                workspace: name,
                ports,
                ..
            }) = WorkspaceLabels::from_labels(&container.labels)
            else {
                continue;
            };
            let mut targets = BTreeMap::new();
            let listening = found
                .get(&name)
                .filter(|_| container.running)
                .cloned()
                .unwrap_or_default();
            if container.running {
                for port in routed_ports(&ports, &listening) {
                    let published = container
                        .published_port(port)
                        .map(|p| SocketAddr::from(([127, 0, 0, 1], p.host_port)));
                    let by_ip = container
                        .ipv4()
                        .map(|ip| SocketAddr::new(IpAddr::V4(ip), port));
                    if let Some(target) = published.or(by_ip) {
                        targets.insert(port, target);
                    }
                }
            }
            routes.insert(
                name.clone(),
                Route {
                    name,
                    running: container.running,
                    ports,
                    listening,
                    engine: None,
                    targets,
                },
            );
        }
        Table {
            routes,
            focus: None,
        }
    }

    /// Every port some running workspace declares or listens on: the proxy
    /// listens on these.
    pub fn live_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .routes
            .values()
            .filter(|r| r.running)
            .flat_map(|r| routed_ports(&r.ports, &r.listening))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_ports_and_only_so_many_found_ones_are_routed() {
        let listening = Listening {
            reachable: (10_000..12_000).chain([3000]).collect(),
            ..Listening::default()
        };
        let routed = routed_ports(&[3000, 5173], &listening);
        assert_eq!(routed.len(), 2 + MAX_FOUND_PORTS);
        assert!(routed.contains(&3000) && routed.contains(&5173));
    }
    use crate::engine::model::PublishedPort;

    fn container(
        name: &str,
        running: bool,
        ip: Option<[u8; 4]>,
        published: Option<u16>,
    ) -> Container {
        Container {
            id: format!("id-{name}"),
            name: format!("dual-{name}"),
            image: "img".into(),
            status: if running { "running" } else { "exited" }.into(),
            running,
            pid: 1,
            exit_code: 0,
            started_at: String::new(),
            restart_count: 0,
            labels: WorkspaceLabels {
                owner: "owner".into(),
                workspace: name.to_owned(),
                ports: vec![3000, 5173],
                ..WorkspaceLabels::default()
            }
            .to_labels(),
            networks: BTreeMap::from([("bridge".to_owned(), ip.map(Into::into))]),
            published: published
                .map(|host_port| PublishedPort {
                    container_port: 3000,
                    protocol: "tcp".into(),
                    host_ip: "127.0.0.1".into(),
                    host_port,
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn routes_follow_ip_or_published_port_and_running_state() {
        let table = Table::from_containers(
            &[
                container("shop-a", true, Some([172, 17, 0, 2]), None),
                container("shop-b", true, None, Some(40001)),
                container("shop-c", false, Some([172, 17, 0, 4]), None),
            ],
            &HashMap::new(),
        );
        assert_eq!(
            table.routes["shop-a"].targets[&3000],
            "172.17.0.2:3000".parse().unwrap()
        );
        assert_eq!(
            table.routes["shop-a"].targets[&5173],
            "172.17.0.2:5173".parse().unwrap()
        );
        assert_eq!(
            table.routes["shop-b"].targets[&3000],
            "127.0.0.1:40001".parse().unwrap()
        );
        assert!(
            !table.routes["shop-b"].targets.contains_key(&5173),
            "unpublished and no IP: no route"
        );
        assert!(!table.routes["shop-c"].running && table.routes["shop-c"].targets.is_empty());
        assert_eq!(table.live_ports(), [3000, 5173]);
    }

    #[test]
    fn ports_found_listening_are_routed_while_running() {
        let found = HashMap::from([
            (
                "shop-a".to_owned(),
                Listening {
                    reachable: BTreeSet::from([5000]),
                    loopback_only: BTreeSet::from([9229]),
                },
            ),
            (
                "shop-c".to_owned(),
                Listening {
                    reachable: BTreeSet::from([6000]),
                    ..Listening::default()
                },
            ),
        ]);
        let table = Table::from_containers(
            &[
                container("shop-a", true, Some([172, 17, 0, 2]), None),
                container("shop-c", false, Some([172, 17, 0, 4]), None),
            ],
            &found,
        );
        assert_eq!(
            table.routes["shop-a"].targets[&5000],
            "172.17.0.2:5000".parse().unwrap()
        );
        assert!(!table.routes["shop-a"].targets.contains_key(&9229));
        assert!(table.routes["shop-c"].listening.reachable.is_empty());
        assert_eq!(table.live_ports(), [3000, 5000, 5173]);
    }
}
