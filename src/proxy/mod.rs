//! The host reverse proxy: `http://{repo}-{branch}.localhost:{port}` to that
//! workspace container's `:{port}`.
//!
//! - `routes`: the table, built only from dual's labelled containers.
//! - `forward`: per request: refuse what is not ours, stream the rest.
//! - here: the engine watcher (events, plus a periodic reconcile in case an
//!   event is missed or the engine restarts) and the listeners, one per port
//!   a running workspace declares, on loopback only.

pub mod forward;
pub mod routes;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::engine::labels::{KIND, MANAGED_FILTER};
use crate::engine::{Engine, EngineError};
use crate::workspace::{KIND_WORKSPACE, OWNER_LABEL};
use forward::Shared;
use routes::Table;

/// How often routes are rebuilt even without an event.
const RECONCILE: Duration = Duration::from_secs(2);

pub struct Options {
    pub engine: Engine,
    /// Only this installation's workspaces (`dual.owner`); `None` for all.
    pub owner: Option<String>,
    pub addresses: Vec<IpAddr>,
}

impl Options {
    pub fn loopback(engine: Engine, owner: Option<String>) -> Self {
        Options {
            engine,
            owner,
            addresses: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

fn log(line: &str) {
    eprintln!("dual proxy: {line}");
}

/// The upstream client: one pool shared by every listener. Without
/// `pool_timer` the idle timeout silently does nothing (hyper-util #186).
pub fn upstream_client() -> forward::Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // A container on a local bridge answers a SYN in microseconds; a stopped
    // one never does (its address is gone), so waiting long only delays the 502.
    connector.set_connect_timeout(Some(Duration::from_millis(500)));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(512)
        .build(connector)
}

/// Reads the engine's view of dual's workspace containers: one `ps`, one `inspect`.
pub fn load_table(engine: &Engine, owner: Option<&str>) -> Result<Table, EngineError> {
    let mut filters = vec![MANAGED_FILTER, (KIND, KIND_WORKSPACE)];
    if let Some(owner) = owner {
        filters.push((OWNER_LABEL, owner));
    }
    let listed = engine.ps(&filters)?;
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    let containers = engine.inspect(&ids)?;
    Ok(Table::from_containers(&containers))
}

/// Runs until Ctrl-C / SIGTERM.
pub fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(options))
}

async fn serve(options: Options) -> anyhow::Result<()> {
    let engine = options.engine.clone();
    let owner = options.owner.clone();
    let first = {
        let (engine, owner) = (engine.clone(), owner.clone());
        tokio::task::spawn_blocking(move || load_table(&engine, owner.as_deref())).await??
    };
    let (table_tx, table_rx) = watch::channel(Arc::new(Table::default()));
    let shared = Arc::new(Shared {
        table: table_rx,
        client: upstream_client(),
    });
    let kick = Arc::new(Notify::new());
    watch_events(engine.clone(), owner.clone(), Arc::clone(&kick));
    let mut listeners = Listeners::new(options.addresses.clone(), Arc::clone(&shared));
    let mut current = Arc::new(Table::default());
    let mut next = first;
    log(&format!("watching {} for dual's workspaces", engine.kind()));
    loop {
        if next != *current {
            log_changes(&current, &next);
            current = Arc::new(next);
            let _ = table_tx.send(Arc::clone(&current));
            listeners.sync(&current.live_ports()).await;
        }
        tokio::select! {
            () = kick.notified() => {}
            () = tokio::time::sleep(RECONCILE) => {}
            () = wait_for_interrupt() => {
                log("stopping");
                return Ok(());
            }
        }
        let (engine, owner) = (engine.clone(), owner.clone());
        match tokio::task::spawn_blocking(move || load_table(&engine, owner.as_deref())).await? {
            Ok(table) => next = table,
            Err(error) => {
                log(&format!(
                    "could not read containers (keeping the last routes): {error}"
                ));
                next = (*current).clone();
            }
        }
    }
}

async fn wait_for_interrupt() {
    while !crate::interrupt::requested() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Follows the engine's container events on a thread of its own (the
/// runner's stream is blocking) and kicks the reconcile loop on each one.
fn watch_events(engine: Engine, owner: Option<String>, kick: Arc<Notify>) {
    std::thread::spawn(move || {
        loop {
            let mut filters = vec![MANAGED_FILTER, (KIND, KIND_WORKSPACE)];
            if let Some(owner) = owner.as_deref() {
                filters.push((OWNER_LABEL, owner));
            }
            match engine.events(&filters) {
                Ok(stream) => {
                    for event in stream {
                        match event {
                            Ok(_) => kick.notify_one(),
                            Err(error) => log(&format!("event stream: {error}")),
                        }
                    }
                }
                Err(error) => log(&format!("cannot follow {} events: {error}", engine.kind())),
            }
            // The engine restarted or the stream ended: reconcile and follow again.
            kick.notify_one();
            std::thread::sleep(Duration::from_secs(1));
        }
    });
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

/// One accept loop per (address, port); opened and closed as workspaces
/// declaring the port start and stop.
struct Listeners {
    addresses: Vec<IpAddr>,
    shared: Arc<Shared>,
    open: HashMap<u16, Vec<JoinHandle<()>>>,
}

impl Listeners {
    fn new(addresses: Vec<IpAddr>, shared: Arc<Shared>) -> Self {
        Listeners {
            addresses,
            shared,
            open: HashMap::new(),
        }
    }

    async fn sync(&mut self, ports: &[u16]) {
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
        for &port in ports {
            if self.open.contains_key(&port) {
                continue;
            }
            let mut tasks = Vec::new();
            for &address in &self.addresses {
                let addr = SocketAddr::new(address, port);
                match TcpListener::bind(addr).await {
                    Ok(listener) => {
                        log(&format!("listening on http://{addr}"));
                        tasks.push(tokio::spawn(accept_loop(
                            listener,
                            Arc::clone(&self.shared),
                            port,
                        )));
                    }
                    // No IPv6 loopback on this host: IPv4 is enough.
                    Err(_)
                        if address.is_ipv6()
                            && std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() => {}
                    Err(error) => {
                        let holder = crate::verify::port_holder(port)
                            .unwrap_or_else(|| "another process".into());
                        log(&format!(
                            "cannot listen on {addr}: {error} (held by {holder}); other ports keep working"
                        ));
                    }
                }
            }
            self.open.insert(port, tasks);
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, port: u16) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                forward::handle(req, Arc::clone(&shared), peer, port)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                // Bounds a client that never finishes its headers; bodies and
                // streams (SSE) have no overall timeout.
                .header_read_timeout(Duration::from_secs(30))
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Serves a fixed table on one already-bound listener until `stop` fires:
/// `dual verify` sends real traffic through the real forwarding code this way.
pub async fn serve_fixed(listener: TcpListener, table: Table, stop: Arc<Notify>) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let (_tx, rx) = watch::channel(Arc::new(table));
    let shared = Arc::new(Shared {
        table: rx,
        client: upstream_client(),
    });
    tokio::select! {
        () = accept_loop(listener, shared, port) => {}
        () = stop.notified() => {}
    }
}
