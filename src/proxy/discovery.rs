//! Which ports each running workspace container listens on, found from
//! `/proc` (no engine call), on a blocking thread of its own so that the
//! control loop never waits on a walk of the kernel's tables; and what the
//! undeclared ones speak (see `port_kinds`), probed off the loop too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::Posted;
use super::port_kinds::{Candidate, Classifier};
use super::routes::Found;
use crate::engine::Container;
use crate::engine::labels::WorkspaceLabels;
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
const MAX_PROBED: usize = 2 * super::routes::MAX_FOUND_PORTS;

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

/// The undeclared ports each running workspace container listens on, with
/// where the proxy would reach them: what the classifier judges.
fn candidates(containers: &[Container], found: &HashMap<String, Listening>) -> Vec<Candidate> {
    let mut all = Vec::new();
    for container in containers.iter().filter(|c| c.running) {
        let Some(labels) = WorkspaceLabels::from_labels(&container.labels) else {
            continue;
        };
        let Some(listening) = found.get(&labels.workspace) else {
            continue;
        };
        let undeclared = listening
            .reachable
            .iter()
            .filter(|port| !labels.ports.contains(port))
            .take(MAX_PROBED);
        for &port in undeclared {
            if let Some(target) = super::routes::target_of(container, port) {
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

/// Looks every `DISCOVERY_INTERVAL`, at once when the containers change,
/// and when a probe comes back, posting what was found whenever it differs
/// from the last.
pub(super) fn spawn(
    mut discovery: Discovery,
    mut containers: watch::Receiver<Arc<Vec<Container>>>,
    posted: mpsc::UnboundedSender<Posted>,
) {
    tokio::spawn(async move {
        let (mut classifier, mut probed) = Classifier::new();
        let mut last: Option<Found> = None;
        let mut looking = tokio::time::interval(DISCOVERY_INTERVAL);
        looking.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = looking.tick() => {}
                changed = containers.changed() => if changed.is_err() { return },
                Some(result) = probed.recv() => classifier.take(result),
            }
            let now = Arc::clone(&containers.borrow_and_update());
            let walking = Arc::clone(&now);
            let walked = tokio::task::spawn_blocking(move || {
                let found = discovery.discover(walking.iter());
                (discovery, found)
            })
            .await;
            let Ok((back, listening)) = walked else {
                return;
            };
            discovery = back;
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
