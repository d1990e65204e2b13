//! Ports of containers on another engine host, reached through the shared
//! SSH connection to it (see `remote::ssh`): a loopback port here is
//! forwarded to each address the proxy routes there (a container's IP as
//! that host sees it, or a port published on its loopback). Forwards are
//! added and cancelled as routes come and go, off the control loop; the
//! link is checked every `CHECK_EVERY`, and a link that dropped is dialled
//! again and its forwards made again on the same local ports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Posted, log};
use crate::remote::Ssh;

/// How often the link is checked (and redialled when it dropped).
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Remote address → where it is reached here.
pub(super) type Tunneled = BTreeMap<SocketAddr, SocketAddr>;

/// The addresses wanted on one engine host.
pub(super) struct Tunnel {
    wanted: watch::Sender<BTreeSet<SocketAddr>>,
}

impl Tunnel {
    /// Starts keeping forwards for engine number `engine`, reached by `ssh`.
    pub(super) fn start(engine: usize, ssh: Ssh, posted: mpsc::UnboundedSender<Posted>) -> Tunnel {
        let (wanted, watching) = watch::channel(BTreeSet::new());
        tokio::spawn(keep(engine, ssh, watching, posted));
        Tunnel { wanted }
    }

    /// The addresses routes need now: forwards for others are cancelled.
    pub(super) fn want(&self, addresses: BTreeSet<SocketAddr>) {
        self.wanted.send_if_modified(|wanted| {
            let changed = *wanted != addresses;
            *wanted = addresses;
            changed
        });
    }
}

async fn keep(
    engine: usize,
    ssh: Ssh,
    mut wanted: watch::Receiver<BTreeSet<SocketAddr>>,
    posted: mpsc::UnboundedSender<Posted>,
) {
    let mut forwards = Forwards::default();
    let mut checking = tokio::time::interval(CHECK_EVERY);
    checking.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Tunneled> = None;
    loop {
        tokio::select! {
            changed = wanted.changed() => if changed.is_err() { break },
            _ = checking.tick() => {}
        }
        let now = wanted.borrow_and_update().clone();
        let ssh = ssh.clone();
        let kept = tokio::task::spawn_blocking(move || {
            forwards.reconcile(&ssh, &now);
            forwards
        })
        .await;
        let Ok(kept) = kept else { return };
        forwards = kept;
        let map = forwards.tunneled();
        if last.as_ref() != Some(&map) {
            last = Some(map.clone());
            if posted.send(Posted::Tunneled { engine, map }).is_err() {
                break;
            }
        }
    }
    let ssh = ssh.clone();
    let _ = tokio::task::spawn_blocking(move || forwards.cancel_all(&ssh)).await;
}

/// The forwards made on the shared connection.
#[derive(Default)]
struct Forwards {
    /// Remote address → local port, and whether it is up now.
    made: BTreeMap<SocketAddr, (u16, bool)>,
    link_was_up: bool,
    /// The connection's process the live forwards were made on.
    master: Option<u32>,
}

impl Forwards {
    fn reconcile(&mut self, ssh: &Ssh, wanted: &BTreeSet<SocketAddr>) {
        let mut master = ssh.master_pid();
        let dialled_here = master.is_none();
        if dialled_here {
            if self.link_was_up {
                log(&format!(
                    "the link to {} dropped: dialling again",
                    ssh.target()
                ));
            }
            if let Err(error) = ssh.connect() {
                self.link_was_up = false;
                self.lost_forwards();
                crate::log::debug(&format!("{}: {error}", ssh.target()));
                return;
            }
            master = ssh.master_pid();
            log(&format!("linked to {}", ssh.target()));
        }
        // A connection dialled again meanwhile (the port stream may notice
        // a dropped link first, and dial) has none of the old forwards.
        if master != self.master {
            if self.master.is_some() && !dialled_here {
                log(&format!(
                    "the link to {} was dialled again: forwarding again",
                    ssh.target()
                ));
            }
            self.lost_forwards();
            self.master = master;
        }
        self.link_was_up = true;
        let gone: Vec<SocketAddr> = self
            .made
            .keys()
            .filter(|address| !wanted.contains(address))
            .copied()
            .collect();
        for address in gone {
            if let Some((local, true)) = self.made.remove(&address) {
                let _ = ssh.cancel(local, address);
            }
        }
        for &address in wanted {
            let previous = match self.made.get(&address) {
                Some((_, true)) => continue,
                Some((local, false)) => Some(*local),
                None => None,
            };
            // The same local port as before the link dropped, unless it
            // was taken meanwhile.
            let made = previous
                .into_iter()
                .chain(free_local_port())
                .find(|&local| ssh.forward(local, address).is_ok());
            match made {
                Some(local) => {
                    self.made.insert(address, (local, true));
                }
                None => crate::log::debug(&format!("no forward to {address} yet")),
            }
        }
    }

    /// The connection went, and its forwards with it: made again once it
    /// is back, on the same local ports where they are still free.
    fn lost_forwards(&mut self) {
        for (_, live) in self.made.values_mut() {
            *live = false;
        }
        self.master = None;
    }

    fn tunneled(&self) -> Tunneled {
        self.made
            .iter()
            .filter(|(_, (_, live))| *live)
            .map(|(remote, (local, _))| {
                (
                    *remote,
                    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, *local)),
                )
            })
            .collect()
    }

    fn cancel_all(&mut self, ssh: &Ssh) {
        for (address, (local, live)) in std::mem::take(&mut self.made) {
            if live {
                let _ = ssh.cancel(local, address);
            }
        }
    }
}

/// A loopback port nothing listens on now.
fn free_local_port() -> Option<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    listener.local_addr().ok().map(|a| a.port())
}
