//! The route table: which workspace name goes to which container address.
//! Built from the engine's own view of dual's labelled containers, never
//! from anything a request says, so the proxy can only reach those.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use super::port_kinds::PortKind;
use crate::engine::Container;
use crate::engine::labels::WorkspaceLabels;
use crate::sockets::Listening;

/// What discovery posts: the ports found listening, and what the
/// undeclared ones speak as far as probes know (a port not in `kinds` is
/// not judged yet), both by workspace name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Found {
    pub listening: HashMap<String, Listening>,
    pub kinds: HashMap<String, BTreeMap<u16, PortKind>>,
}

/// At most this many ports a workspace listens on but does not declare are
/// routed. Each is a listener per worker and loopback address on the host:
/// a container listening on thousands took every descriptor the proxy had,
/// and with them every other workspace's routes and the control socket.
pub const MAX_FOUND_PORTS: usize = 64;

/// The ports routed to a workspace: those it declares, and the first
/// `MAX_FOUND_PORTS` others it listens on that speak HTTP (see
/// `port_kinds`; one not judged yet is not routed).
fn routed_ports(
    ports: &[u16],
    listening: &Listening,
    kinds: &BTreeMap<u16, PortKind>,
) -> BTreeSet<u16> {
    let found = listening
        .reachable
        .iter()
        .filter(|port| !ports.contains(port) && kinds.get(port) == Some(&PortKind::Http))
        .take(MAX_FOUND_PORTS);
    ports.iter().chain(found).copied().collect()
}

/// Where the proxy reaches a container's `port` from the host: the port it
/// is published on at 127.0.0.1, else the container's IP.
pub(super) fn target_of(container: &Container, port: u16) -> Option<SocketAddr> {
    let published = container
        .published_port(port)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p.host_port)));
    let by_ip = container
        .ipv4()
        .map(|ip| SocketAddr::new(IpAddr::V4(ip), port));
    published.or(by_ip)
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
    /// What its undeclared listening ports speak, as far as known (see
    /// `port_kinds`): only `Http` ones are routed.
    pub kinds: BTreeMap<u16, PortKind>,
    /// Where its ports that do not speak HTTP are reached: never by the
    /// HTTP proxy, only by `dual forward`.
    pub tcp_targets: BTreeMap<u16, SocketAddr>,
}

impl Route {
    /// Where a raw TCP connection to `port` goes (`dual forward`): HTTP
    /// ports and the others alike.
    pub fn raw_target(&self, port: u16) -> Option<SocketAddr> {
        self.targets
            .get(&port)
            .or_else(|| self.tcp_targets.get(&port))
            .copied()
    }

    /// Ports it listens on that do not speak HTTP: never routed, listed apart.
    pub fn tcp_ports(&self) -> Vec<u16> {
        self.listening
            .reachable
            .iter()
            .copied()
            .filter(|port| {
                !self.ports.contains(port) && self.kinds.get(port) == Some(&PortKind::Tcp)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub routes: BTreeMap<String, Route>,
    /// Where plain `localhost` goes (see `workspace::focus`).
    pub focus: Option<String>,
}

impl Table {
    /// One route: workspace `name`'s `port` goes to `upstream` (the proxy
    /// `verify` checks, and tests').
    pub fn one_route(name: &str, port: u16, upstream: std::net::SocketAddr) -> Table {
        let route = Route {
            name: name.to_owned(),
            running: true,
            ports: vec![port],
            listening: Default::default(),
            engine: None,
            targets: BTreeMap::from([(port, upstream)]),
            kinds: BTreeMap::new(),
            tcp_targets: BTreeMap::new(),
        };
        Table {
            routes: BTreeMap::from([(name.to_owned(), route)]),
            focus: None,
        }
    }

    /// The routes to `containers`: their declared ports, and the ports
    /// `found` (by workspace name) listening in them that speak HTTP.
    pub(super) fn from_containers(containers: &[Container], found: &Found) -> Table {
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
                .listening
                .get(&name)
                .filter(|_| container.running)
                .cloned()
                .unwrap_or_default();
            let kinds = found
                .kinds
                .get(&name)
                .filter(|_| container.running)
                .cloned()
                .unwrap_or_default();
            let mut tcp_targets = BTreeMap::new();
            if container.running {
                for port in routed_ports(&ports, &listening, &kinds) {
                    if let Some(target) = target_of(container, port) {
                        targets.insert(port, target);
                    }
                }
                let tcp = listening.reachable.iter().filter(|port| {
                    !targets.contains_key(port) && kinds.get(port) == Some(&PortKind::Tcp)
                });
                for &port in tcp.take(MAX_FOUND_PORTS) {
                    if let Some(target) = target_of(container, port) {
                        tcp_targets.insert(port, target);
                    }
                }
                // A port published on loopback (rootless podman's sidecars,
                // whose listeners this host may not see) is reached there by
                // `dual forward`, found listening or not.
                for published in container.published.iter().filter(|p| p.protocol == "tcp") {
                    let port = published.container_port;
                    if !targets.contains_key(&port)
                        && let Some(target) = target_of(container, port)
                    {
                        tcp_targets.entry(port).or_insert(target);
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
                    kinds,
                    tcp_targets,
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
            .flat_map(|r| routed_ports(&r.ports, &r.listening, &r.kinds))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn declared_ports_and_only_so_many_found_ones_are_routed() {
        let listening = Listening {
            reachable: (10_000..12_000).chain([3000]).collect(),
            ..Listening::default()
        };
        let kinds = (10_000..12_000).map(|p| (p, PortKind::Http)).collect();
        let routed = routed_ports(&[3000, 5173], &listening, &kinds);
        assert_eq!(routed.len(), 2 + MAX_FOUND_PORTS);
        assert!(routed.contains(&3000) && routed.contains(&5173));
    }

    #[test]
    fn only_found_ports_that_speak_http_are_routed() {
        let listening = Listening {
            reachable: BTreeSet::from([3000, 5432, 6379, 8080, 9000]),
            ..Listening::default()
        };
        let kinds = BTreeMap::from([
            (5432, PortKind::Tcp),
            (6379, PortKind::Tcp),
            (8080, PortKind::Http),
        ]);
        // 9000: not judged yet, so neither routed nor listed as TCP.
        let routed = routed_ports(&[3000], &listening, &kinds);
        assert_eq!(routed, BTreeSet::from([3000, 8080]));
        let route = Route {
            name: "a".into(),
            running: true,
            ports: vec![3000],
            listening,
            engine: None,
            targets: BTreeMap::new(),
            kinds,
            tcp_targets: BTreeMap::new(),
        };
        assert_eq!(route.tcp_ports(), [5432, 6379]);
    }
    use crate::engine::model::PublishedPort;

    fn container(
        name: &str,
        running: bool,
        ip: Option<[u8; 4]>,
        published: Option<u16>,
    ) -> Container {
        let published: Vec<(u16, u16)> = published.map(|host| (3000, host)).into_iter().collect();
        crate::engine::model::test_container(name, running, ip, &[3000, 5173], &published)
    }

    #[test]
    fn a_published_port_is_reached_raw_though_no_listener_was_seen() {
        // Rootless podman: no address, and no socket of its visible here.
        let mut rootless = container("a", true, None, Some(40001));
        rootless.published.push(PublishedPort {
            container_port: 5432,
            protocol: "tcp".into(),
            host_ip: "127.0.0.1".into(),
            host_port: 40002,
        });
        let table = Table::from_containers(&[rootless], &Found::default());
        let route = &table.routes["a"];
        assert_eq!(
            route.raw_target(5432),
            Some("127.0.0.1:40002".parse().unwrap())
        );
        // Never an HTTP route, nor listed as a port it listens on.
        assert!(!route.targets.contains_key(&5432));
        assert!(route.tcp_ports().is_empty());
    }

    #[test]
    fn routes_follow_ip_or_published_port_and_running_state() {
        let table = Table::from_containers(
            &[
                container("shop-a", true, Some([172, 17, 0, 2]), None),
                container("shop-b", true, None, Some(40001)),
                container("shop-c", false, Some([172, 17, 0, 4]), None),
            ],
            &Found::default(),
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
        let listening = HashMap::from([
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
        let kinds = HashMap::from([
            (
                "shop-a".to_owned(),
                BTreeMap::from([(5000, PortKind::Http)]),
            ),
            (
                "shop-c".to_owned(),
                BTreeMap::from([(6000, PortKind::Http)]),
            ),
        ]);
        let table = Table::from_containers(
            &[
                container("shop-a", true, Some([172, 17, 0, 2]), None),
                container("shop-c", false, Some([172, 17, 0, 4]), None),
            ],
            &Found { listening, kinds },
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
