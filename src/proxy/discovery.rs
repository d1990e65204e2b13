//! Which ports each running workspace container listens on, found from
//! `/proc` (no engine call), on a blocking thread of its own so that the
//! control loop never waits on a walk of the kernel's tables; for an
//! engine on another host, from that host's stream (see `remote_listening`);
//! and what the undeclared ones speak (see `port_kinds`), probed off the
//! loop too (a remote one through its tunnel).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::Posted;
use super::port_kinds::{Candidate, Classifier};
use super::remote_listening::{HostSnapshot, RemoteListening, Snapshot};
use super::routes::Found;
use super::tunnels::Tunneled;
use crate::engine::Container;
use crate::engine::labels::WorkspaceLabels;
use crate::remote::Ssh;
use crate::sockets::Listening;

/// How often running containers are looked at for ports opened or closed:
/// a port routes within this (plus a request's wait) of its bind, and the
/// browser shows it within this plus its own reload.
pub(super) const DISCOVERY_INTERVAL: Duration = Duration::from_millis(500);
/// How long after an exec a container's tables are read every time.
const AFTER_EXEC: Duration = Duration::from_secs(15);
/// The longest a container's socket tables go unread.
const FULL_LOOK: Duration = Duration::from_secs(120);

/// At most this many undeclared ports a container is probed on (the first,
/// in port order): twice what is routed, so that a few databases below a
/// dev server's port do not crowd it out.
pub(super) const MAX_PROBED: usize = 2 * super::routes::MAX_FOUND_PORTS;

/// What discovery looks at, as the control loop last had it: each engine's
/// containers and, for an engine on another host, where its tunnel
/// reaches that host's addresses here (`None` for this host's engines).
#[derive(Debug, Default)]
pub(super) struct Watched {
    pub containers: Vec<Vec<Container>>,
    pub tunneled: Vec<Option<Tunneled>>,
}

/// Containers something was just exec'd in (`dual run`, a shim), by id,
/// with when: the engine watch records them, discovery reads them.
pub(super) type Execs = Arc<Mutex<HashMap<String, Instant>>>;

/// What each running workspace container listens on, by workspace name:
/// two small /proc reads per container, no engine call.
pub fn discover(containers: &[Container]) -> HashMap<String, Listening> {
    Discovery::default().discover(containers)
}

/// `discover`, made cheap enough to run every interval for every container:
/// a container's socket tables are read again only when its count of TCP
/// sockets changed (a listener opened or closed, or a connection did), and
/// at least every `FULL_LOOK`, in case one listener closed as another
/// opened. Which process is whose container is checked once.
#[derive(Default)]
pub(super) struct Discovery {
    seen: HashMap<(u32, String), Seen>,
    /// Read every time for a while after an exec, since a server started by
    /// hand may replace one that stopped, leaving the socket count as it was.
    execs: Execs,
}

struct Seen {
    counts: (u32, u32),
    read_at: Instant,
    listening: Listening,
}

impl Discovery {
    pub(super) fn new(execs: Execs) -> Self {
        Discovery {
            seen: HashMap::new(),
            execs,
        }
    }

    fn discover<'a>(
        &mut self,
        containers: impl IntoIterator<Item = &'a Container>,
    ) -> HashMap<String, Listening> {
        let mut found = HashMap::new();
        let mut alive = HashSet::new();
        for container in containers.into_iter().filter(|c| c.running) {
            let Some(labels) = WorkspaceLabels::from_labels(&container.labels) else {
                continue;
            };
            let key = (container.pid, container.id.clone());
            if !self.seen.contains_key(&key)
                && !crate::sockets::is_container_process(container.pid, &container.id)
            {
                continue;
            }
            let Some(counts) = crate::sockets::socket_counts(container.pid) else {
                continue;
            };
            let exec_lately = self
                .execs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&container.id)
                .is_some_and(|at| at.elapsed() < AFTER_EXEC);
            let fresh = !exec_lately
                && self.seen.get(&key).is_some_and(|seen| {
                    seen.counts == counts && seen.read_at.elapsed() < FULL_LOOK
                });
            if !fresh {
                let Some(listening) = crate::sockets::listening_of(container.pid) else {
                    continue;
                };
                let read_at = Instant::now();
                self.seen.insert(
                    key.clone(),
                    Seen {
                        counts,
                        read_at,
                        listening,
                    },
                );
            }
            found.insert(labels.workspace, self.seen[&key].listening.clone());
            alive.insert(key);
        }
        self.seen.retain(|key, _| alive.contains(key));
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, at| at.elapsed() < AFTER_EXEC);
        found
    }
}

/// The undeclared ports a running workspace container listens on that are
/// probed (the first `MAX_PROBED`), with where each is reached from the
/// engine's host: for one on another host, the tunnel must reach these.
pub(super) fn probed_ports<'a>(
    container: &'a Container,
    labels: &'a WorkspaceLabels,
    listening: &'a Listening,
) -> impl Iterator<Item = (u16, SocketAddr)> + 'a {
    listening
        .reachable
        .iter()
        .filter(|port| !labels.ports.contains(port))
        .take(MAX_PROBED)
        .filter_map(|&port| Some((port, super::routes::target_of(container, port)?)))
}

/// The undeclared ports each running workspace container listens on, with
/// where the proxy would reach them: what the classifier judges. A remote
/// engine's are reached through its tunnel, and wait for their forward.
fn candidates(watched: &Watched, found: &HashMap<String, Listening>) -> Vec<Candidate> {
    let mut all = Vec::new();
    for (containers, tunneled) in watched.containers.iter().zip(&watched.tunneled) {
        for container in containers.iter().filter(|c| c.running) {
            let Some(labels) = WorkspaceLabels::from_labels(&container.labels) else {
                continue;
            };
            let Some(listening) = found.get(&labels.workspace) else {
                continue;
            };
            for (port, target) in probed_ports(container, &labels, listening) {
                let target = match tunneled {
                    None => target,
                    Some(tunneled) => match tunneled.get(&target) {
                        Some(local) => *local,
                        None => continue,
                    },
                };
                all.push(Candidate {
                    workspace: labels.workspace.clone(),
                    container: container.id.clone(),
                    port,
                    target,
                });
            }
        }
    }
    all
}

/// The streams of the engines' hosts: one per host, shared by the engines
/// there (docker and podman both on one host).
struct Hosts {
    streams: Vec<RemoteListening>,
    /// Each engine's host (an index in `streams`); `None` for this host.
    host_of: Vec<Option<usize>>,
    /// Each host's last snapshot.
    snapshots: Vec<Snapshot>,
}

impl Hosts {
    /// Starts a stream for each host of `remotes` (each engine's ssh, for
    /// one on another host), sending to `snapshots`.
    fn start(remotes: Vec<Option<Ssh>>, snapshots: mpsc::UnboundedSender<HostSnapshot>) -> Hosts {
        let mut streams = Vec::new();
        let mut paths: Vec<std::path::PathBuf> = Vec::new();
        let mut host_of = Vec::new();
        for ssh in remotes {
            let Some(ssh) = ssh else {
                host_of.push(None);
                continue;
            };
            let host = match paths.iter().position(|path| path == ssh.control_path()) {
                Some(host) => host,
                None => {
                    paths.push(ssh.control_path().to_owned());
                    streams.push(RemoteListening::start(
                        streams.len(),
                        ssh,
                        snapshots.clone(),
                    ));
                    streams.len() - 1
                }
            };
            host_of.push(Some(host));
        }
        let snapshots = streams.iter().map(|_| Snapshot::new()).collect();
        Hosts {
            streams,
            host_of,
            snapshots,
        }
    }

    fn host_of(&self, engine: usize) -> Option<usize> {
        self.host_of.get(engine).copied().flatten()
    }

    /// Has each host's stream follow the running workspace containers there.
    fn follow(&self, watched: &Watched) {
        for (stream, pids) in self.streams.iter().zip(self.pids(watched)) {
            stream.follow(pids);
        }
    }

    /// The pids of each host's running workspace containers (that host's).
    fn pids(&self, watched: &Watched) -> Vec<BTreeSet<u32>> {
        let mut pids = vec![BTreeSet::new(); self.streams.len()];
        for (engine, containers) in watched.containers.iter().enumerate() {
            let Some(host) = self.host_of(engine) else {
                continue;
            };
            let running = containers.iter().filter(|c| {
                c.running && c.pid != 0 && WorkspaceLabels::from_labels(&c.labels).is_some()
            });
            pids[host].extend(running.map(|c| c.pid));
        }
        pids
    }

    /// Whether each engine is this host's: its containers' listeners are
    /// in `/proc` here.
    fn local_engines(&self, engines: usize) -> Vec<bool> {
        (0..engines).map(|e| self.host_of(e).is_none()).collect()
    }

    /// What the remote engines' running workspace containers listen on, by
    /// workspace name, as their hosts' last snapshots say.
    fn listening(&self, watched: &Watched) -> HashMap<String, Listening> {
        let mut found = HashMap::new();
        for (engine, containers) in watched.containers.iter().enumerate() {
            let Some(host) = self.host_of(engine) else {
                continue;
            };
            for container in containers.iter().filter(|c| c.running) {
                let Some(labels) = WorkspaceLabels::from_labels(&container.labels) else {
                    continue;
                };
                if let Some(listening) = self.snapshots[host].get(&container.pid) {
                    found.insert(labels.workspace, listening.clone());
                }
            }
        }
        found
    }
}

/// Looks every `DISCOVERY_INTERVAL`, at once when the containers change,
/// when a probe comes back and when a remote host's stream reports,
/// posting what was found whenever it differs from the last. `remotes`:
/// each engine's ssh, for one on another host.
pub(super) fn spawn(
    mut discovery: Discovery,
    remotes: Vec<Option<Ssh>>,
    mut watched: watch::Receiver<Arc<Watched>>,
    posted: mpsc::UnboundedSender<Posted>,
) {
    tokio::spawn(async move {
        let (snapshots_tx, mut snapshots) = mpsc::unbounded_channel();
        let mut hosts = Hosts::start(remotes, snapshots_tx);
        let (mut classifier, mut probed) = Classifier::new();
        let mut last: Option<Found> = None;
        let mut looking = tokio::time::interval(DISCOVERY_INTERVAL);
        looking.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = looking.tick() => {}
                changed = watched.changed() => if changed.is_err() { return },
                Some(result) = probed.recv() => classifier.take(result),
                Some(HostSnapshot { host, snapshot }) = snapshots.recv() => {
                    hosts.snapshots[host] = snapshot;
                }
            }
            let now = Arc::clone(&watched.borrow_and_update());
            hosts.follow(&now);
            let (walking, local) = (Arc::clone(&now), hosts.local_engines(now.containers.len()));
            let walked = tokio::task::spawn_blocking(move || {
                let engines = walking.containers.iter().zip(local);
                let containers = engines.filter(|(_, local)| *local).flat_map(|(c, _)| c);
                let found = discovery.discover(containers);
                (discovery, found)
            })
            .await;
            let Ok((back, mut listening)) = walked else {
                return;
            };
            discovery = back;
            listening.extend(hosts.listening(&now));
            let kinds = classifier.update(&candidates(&now, &listening));
            let found = Found { listening, kinds };
            if last.as_ref() != Some(&found) {
                last = Some(found.clone());
                if posted.send(Posted::Found(found)).is_err() {
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::test_container;
    use crate::remote::SshTarget;

    fn listening(ports: &[u16]) -> Listening {
        Listening {
            reachable: ports.iter().copied().collect(),
            ..Listening::default()
        }
    }

    #[test]
    fn a_remote_container_s_ports_are_probed_through_its_tunnel_once_forwarded() {
        let local = test_container("here", true, Some([172, 17, 0, 2]), &[3000], &[]);
        let remote = test_container("there", true, Some([172, 17, 0, 2]), &[3000], &[]);
        let forwarded: SocketAddr = "127.0.0.1:41000".parse().unwrap();
        let watched = Watched {
            containers: vec![vec![local], vec![remote]],
            tunneled: vec![
                None,
                Some(Tunneled::from([(
                    "172.17.0.2:5000".parse().unwrap(),
                    forwarded,
                )])),
            ],
        };
        let found = HashMap::from([
            ("here".to_owned(), listening(&[3000, 5000, 6000])),
            ("there".to_owned(), listening(&[3000, 5000, 6000])),
        ]);
        let probed: Vec<(String, u16, SocketAddr)> = candidates(&watched, &found)
            .into_iter()
            .map(|c| (c.workspace, c.port, c.target))
            .collect();
        assert_eq!(
            probed,
            [
                ("here".to_owned(), 5000, "172.17.0.2:5000".parse().unwrap()),
                ("here".to_owned(), 6000, "172.17.0.2:6000".parse().unwrap()),
                // 6000 has no forward yet: probed once it has.
                ("there".to_owned(), 5000, forwarded),
            ]
        );
    }

    #[tokio::test]
    async fn engines_on_one_host_share_its_stream_and_its_snapshot() {
        let ssh = |url: &str| Some(Ssh::new(SshTarget::parse(url).unwrap(), None));
        let (snapshots, _) = mpsc::unbounded_channel();
        // Docker and podman on one host, a local engine, another host.
        let mut hosts = Hosts::start(
            vec![
                ssh("ssh://root@10.0.0.2"),
                ssh("ssh://root@10.0.0.2"),
                None,
                ssh("ssh://root@10.0.0.3"),
            ],
            snapshots,
        );
        assert_eq!(hosts.streams.len(), 2);
        assert_eq!(hosts.host_of, [Some(0), Some(0), None, Some(1)]);
        let with_pid = |name: &str, pid: u32, running: bool| {
            let mut container = test_container(name, running, Some([172, 17, 0, 2]), &[], &[]);
            container.pid = pid;
            container
        };
        let watched = Watched {
            containers: vec![
                vec![with_pid("a", 100, true), with_pid("stopped", 0, false)],
                vec![with_pid("b", 200, true)],
                vec![with_pid("local", 300, true)],
                vec![with_pid("c", 100, true)],
            ],
            tunneled: vec![
                Some(Tunneled::new()),
                Some(Tunneled::new()),
                None,
                Some(Tunneled::new()),
            ],
        };
        assert_eq!(
            hosts.pids(&watched),
            [BTreeSet::from([100, 200]), BTreeSet::from([100])]
        );
        assert_eq!(hosts.local_engines(4), [false, false, true, false]);
        hosts.snapshots[0] = Snapshot::from([(100, listening(&[5000])), (200, listening(&[]))]);
        // Host 1 has not reported: nothing known of `c` yet.
        let found = hosts.listening(&watched);
        assert_eq!(
            found,
            HashMap::from([
                ("a".to_owned(), listening(&[5000])),
                ("b".to_owned(), listening(&[]))
            ])
        );
    }
}
