//! The listeners: worker threads, each with an SO_REUSEPORT listener on
//! every port a running workspace uses (loopback only), opened and closed
//! as workspaces start and stop; and the ports another program holds.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::conflicts::Conflict;
use super::forward::Shared;
use super::{Posted, conn, log};

use super::conflicts::UNNAMED_HOLDER;

/// The proxy's worker threads (DUAL_PROXY_WORKERS, default two per core):
/// single-threaded runtimes, each with its own SO_REUSEPORT listener on
/// every port. A connection and its upstream connection stay on one thread,
/// and a request writes no memory another thread reads, so workers share
/// nothing per request.
///
/// Two per core, not nginx's one: the proxy shares the CPUs with the dev
/// servers it fronts (and their builds and the browser). A worker preempted
/// by one of them stalls only its share of the connections, and a worker
/// that finds several requests waiting serves them in one wakeup. With wrk,
/// the upstream and the proxy sharing 2 CPUs, 4 workers served 1.15–1.20×
/// nginx's requests/s at 64 connections, 2 workers 0.97–0.98×, with less
/// CPU per request (research/bench-proxy.md).
const WORKERS_PER_CORE: usize = 2;

pub(super) struct Workers {
    handles: Vec<tokio::runtime::Handle>,
}

impl Workers {
    pub(super) fn start() -> std::io::Result<Workers> {
        let count = crate::settings::proxy_workers().unwrap_or_else(|| {
            WORKERS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get())
        });
        let mut handles = Vec::with_capacity(count);
        for index in 0..count {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("dual-proxy-{index}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match runtime {
                        Ok(runtime) => {
                            let _ = sender.send(Ok(runtime.handle().clone()));
                            runtime.block_on(std::future::pending::<()>());
                        }
                        Err(error) => {
                            let _ = sender.send(Err(error));
                        }
                    }
                })?;
            handles.push(receiver.recv().map_err(std::io::Error::other)??);
        }
        Ok(Workers { handles })
    }
}

fn bind_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The accept loops per port, on every worker; opened and closed as
/// workspaces declaring the port start and stop.
pub(super) struct Listeners {
    addresses: Vec<IpAddr>,
    shared: Arc<Shared>,
    workers: Workers,
    open: HashMap<u16, Vec<JoinHandle<()>>>,
    /// Ports held by another program (on some address): served on none,
    /// tried again at each `sync`.
    pub(super) conflicts: BTreeMap<u16, Conflict>,
    /// Where a holder's name, looked up off the loop, is posted.
    posted: mpsc::UnboundedSender<Posted>,
}

impl Listeners {
    pub(super) fn new(
        addresses: Vec<IpAddr>,
        shared: Arc<Shared>,
        workers: Workers,
        posted: mpsc::UnboundedSender<Posted>,
    ) -> Self {
        Listeners {
            addresses,
            shared,
            workers,
            open: HashMap::new(),
            conflicts: BTreeMap::new(),
            posted,
        }
    }

    /// The first address of `port` another program holds, if any. Only
    /// binds: who holds it is looked up off the loop (see `name_holder`).
    fn held(&self, port: u16) -> Option<SocketAddr> {
        for &address in &self.addresses {
            let addr = SocketAddr::new(address, port);
            let Err(error) = std::net::TcpListener::bind(addr) else {
                continue;
            };
            // A host without IPv6 has no ::1 for anyone to hold.
            if address.is_ipv6() && std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
                continue;
            }
            crate::log::debug(&format!("{addr}: {error}"));
            return Some(addr);
        }
        None
    }

    /// Walks `/proc` for who holds `port`, on a blocking thread, and posts
    /// the name to the loop (`Posted::Holder`).
    fn name_holder(&self, port: u16, address: SocketAddr) {
        let posted = self.posted.clone();
        tokio::task::spawn_blocking(move || {
            let holder = crate::sockets::holder_of(port).unwrap_or_else(|| UNNAMED_HOLDER.into());
            let _ = posted.send(Posted::Holder {
                port,
                address,
                holder,
            });
        });
    }

    /// The holder of a new conflict, once looked up: told in the log then,
    /// once; whether the conflicts changed.
    pub(super) fn named(&mut self, port: u16, address: SocketAddr, holder: String) -> bool {
        let Some(conflict) = self.conflicts.get_mut(&port) else {
            return false;
        };
        if conflict.address != address.to_string() {
            return false;
        }
        log(&format!(
            "cannot serve :{port}: {address} is held by {holder}; serving it on no address until that program lets go (other ports keep working)"
        ));
        let changed = conflict.holder != holder;
        conflict.holder = holder;
        changed
    }

    /// Opens and closes listeners so that exactly `ports` are served (but
    /// those another program holds); whether the conflicts changed.
    pub(super) async fn sync(&mut self, ports: &[u16]) -> bool {
        let closing: Vec<u16> = self
            .open
            .keys()
            .copied()
            .filter(|p| !ports.contains(p))
            .collect();
        for port in closing {
            for task in self.open.remove(&port).unwrap_or_default() {
                task.abort();
            }
            log(&format!("closed :{port} (no running workspace uses it)"));
        }
        let before = self.conflicts.clone();
        self.conflicts.retain(|port, _| ports.contains(port));
        for &port in ports {
            if self.open.contains_key(&port) {
                continue;
            }
            // Bind each address once here first: a port someone else holds
            // on either is served on neither (see `conflicts`).
            if let Some(address) = self.held(port) {
                let known = self
                    .conflicts
                    .get(&port)
                    .is_some_and(|c| c.address == address.to_string());
                if !known {
                    self.conflicts.insert(
                        port,
                        Conflict {
                            port,
                            address: address.to_string(),
                            holder: UNNAMED_HOLDER.into(),
                        },
                    );
                    self.name_holder(port, address);
                }
                continue;
            }
            if self.conflicts.remove(&port).is_some() {
                log(&format!(":{port} is free again"));
            }
            let mut tasks = Vec::new();
            for &address in &self.addresses {
                let addr = SocketAddr::new(address, port);
                if address.is_ipv6() && std::net::TcpListener::bind(addr).is_err() {
                    continue;
                }
                for worker in &self.workers.handles {
                    let shared = Arc::clone(&self.shared);
                    let (sender, receiver) = tokio::sync::oneshot::channel();
                    tasks.push(worker.spawn(async move {
                        match bind_shared(addr) {
                            Ok(listener) => {
                                let _ = sender.send(None);
                                accept_loop(listener, shared, port).await;
                            }
                            Err(error) => {
                                let _ = sender.send(Some(error));
                            }
                        }
                    }));
                    if let Ok(Some(error)) = receiver.await {
                        log(&format!("cannot listen on {addr}: {error}"));
                    }
                }
                log(&format!("listening on http://{addr}"));
            }
            self.open.insert(port, tasks);
        }
        self.conflicts != before
    }
}

/// Accepts connections until the task is dropped. An accept that fails
/// (out of file descriptors, most often) is retried after a pause that
/// doubles up to a second, not at once: retrying at once spins a core, and
/// the condition lasts until connections close.
/// Whether this accept loop is the one to log a port's failure now: every
/// worker's loop on every address fails at once when descriptors run out,
/// and each brief recovery (a descriptor closed elsewhere) would tell it
/// again; once a minute per port says it.
fn first_to_tell(port: u16) -> bool {
    const TELL_EVERY: Duration = Duration::from_secs(60);
    static TOLD: std::sync::Mutex<Option<HashMap<u16, std::time::Instant>>> =
        std::sync::Mutex::new(None);
    let mut told = TOLD.lock().unwrap_or_else(|e| e.into_inner());
    let told = told.get_or_insert_with(HashMap::new);
    let now = std::time::Instant::now();
    if told.get(&port).is_some_and(|at| now - *at < TELL_EVERY) {
        return false;
    }
    told.insert(port, now);
    true
}

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, port: u16) {
    const FIRST_PAUSE: Duration = Duration::from_millis(10);
    const LONGEST_PAUSE: Duration = Duration::from_secs(1);
    let mut pause = FIRST_PAUSE;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                pause = FIRST_PAUSE;
                let _ = stream.set_nodelay(true);
                tokio::spawn(conn::serve(stream, peer, port, Arc::clone(&shared)));
            }
            Err(error) => {
                if pause == FIRST_PAUSE && first_to_tell(port) {
                    log(&format!(
                        "port {port}: cannot accept connections: {error}; retrying"
                    ));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}
