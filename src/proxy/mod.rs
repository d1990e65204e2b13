//! The host reverse proxy: `http://{repo}-{branch}.localhost:{port}` to that
//! workspace container's `:{port}`.
//!
//! - `routes`: the table, built only from dual's labelled containers.
//! - `forward`: per request: refuse what is not ours, stream the rest.
//! - `conn`, `http1`: the connection and the bytes on it.
//! - `engines`: one task per engine reads its containers (events, plus a
//!   periodic reconcile in case an event is missed or the engine restarts)
//!   and tells its outages; `discovery`: the ports found in containers
//!   (`remote_listening`: in those on another engine host, streamed from
//!   there; `tunnels`: the forwards that reach them);
//!   `files`: dual's own files that change what subscribers see;
//!   `port_kinds`: which found ports speak HTTP (a database is not routed).
//! - `listeners`: the worker threads and a listener per port a running
//!   workspace uses, on loopback only; `conflicts`: ports held by others.
//! - `control`: the control socket (status, focus, events, forwards).
//! - `tcp_forward`: `dual forward`'s raw TCP forwards (not HTTP: that is
//!   `forward`), run here because the route table follows the containers.
//! - here: the control loop, which takes what those post over one channel
//!   and never waits on an engine or on a walk of `/proc`, so that a hung
//!   engine leaves focus, known routes, the control socket and Ctrl-C working.

pub mod conflicts;
pub mod conn;
pub mod control;
mod control_loop;
mod discovery;
mod engines;
mod files;
pub mod forward;
pub mod http1;
pub mod instance;
mod listeners;
pub mod listening;
pub mod port_kinds;
mod remote_listening;
pub mod routes;
pub mod tcp_forward;
mod tunnels;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

use crate::engine::{Container, Engine, EngineKind};
use control::{Asked, Event};
use control_loop::Core;
pub use discovery::discover;
use engines::Outage;
pub use engines::load_containers;
use forward::Shared;
use listeners::{Listeners, Workers};
use routes::Table;

/// While a port is held by another program: how often it is tried again.
const CONFLICT_RETRY: Duration = Duration::from_secs(1);

pub struct Options {
    /// Every engine whose workspaces it routes (one proxy for all of them).
    pub engines: Vec<Engine>,
    /// Only this installation's workspaces (`dual.owner`); `None` for all.
    pub owner: Option<String>,
    pub addresses: Vec<IpAddr>,
}

impl Options {
    pub fn loopback(engines: Vec<Engine>, owner: Option<String>) -> Self {
        Options {
            engines,
            owner,
            addresses: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

/// The most the proxy's log file may hold (see `log::bound_stderr`).
const LOG_LIMIT: u64 = 1 << 20;

fn log(line: &str) {
    eprintln!("dual proxy: {line}");
    crate::log::bound_stderr(LOG_LIMIT);
}

/// What the proxy's tasks and threads post to the control loop.
enum Posted {
    /// An engine's containers, as just read.
    Loaded {
        engine: usize,
        containers: Vec<Container>,
    },
    /// An engine stopped answering, or answers again.
    Reachable { engine: usize, reachable: bool },
    /// Where engine number `engine`'s remote addresses are reached now.
    Tunneled {
        engine: usize,
        map: tunnels::Tunneled,
    },
    /// What discovery found listening (and what it speaks), when it changed.
    Found(routes::Found),
    /// Who holds a port the proxy could not have.
    Holder {
        port: u16,
        address: SocketAddr,
        holder: String,
    },
    /// A client's request on the control socket.
    Asked(Asked),
    /// One of dual's files changed (see `files`).
    Changed(Event),
}

/// Runs until Ctrl-C / SIGTERM.
pub fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(options));
    // An engine call may hang on a blocking thread (a stopped daemon): the
    // proxy does not wait for it to stop.
    runtime.shutdown_background();
    result
}

async fn serve(options: Options) -> anyhow::Result<()> {
    let owner = options.owner.clone();
    let mut first_read = Vec::new();
    let mut outages = Vec::new();
    for engine in &options.engines {
        let loaded = {
            let (engine, owner) = (engine.clone(), owner.clone());
            tokio::task::spawn_blocking(move || load_containers(&engine, owner.as_deref())).await?
        };
        let outage = Arc::new(Outage::default());
        let containers = match loaded {
            Ok(containers) => containers,
            // The first engine is the one asked for: it must answer. Others
            // may be away now and come later.
            Err(error) if first_read.is_empty() => return Err(error.into()),
            Err(error) => {
                outage.failed(engine.kind(), &error);
                Vec::new()
            }
        };
        first_read.push(containers);
        outages.push(outage);
    }
    let (posted_tx, mut posted) = mpsc::unbounded_channel();
    let control = control::Server::start(posted_tx.clone()).with_context(|| {
        format!(
            "could not open the proxy's control socket `{}`",
            control::socket_path().display()
        )
    })?;
    let starting = forward::Starting::default();
    files::watch(Arc::clone(&starting), posted_tx.clone());
    let (table_tx, table_rx) = watch::channel(Arc::new(Table::default()));
    let forwards = tcp_forward::Forwards::new(table_rx.clone());
    let shared = Arc::new(Shared {
        table: table_rx,
        head_timeout: conn::HEAD_TIMEOUT,
        away: options
            .engines
            .iter()
            .zip(&outages)
            .map(|(engine, outage)| (engine.kind(), Arc::clone(&outage.away)))
            .collect(),
        starting,
    });
    let execs = discovery::Execs::default();
    for (index, engine) in options.engines.iter().enumerate() {
        engines::follow(
            index,
            engine.clone(),
            &first_read[index],
            owner.clone(),
            Arc::clone(&outages[index]),
            Arc::clone(&execs),
            posted_tx.clone(),
        );
    }
    let mut tunnels = Vec::new();
    let mut remotes = Vec::new();
    let mut remote_ssh = Vec::new();
    for (index, engine) in options.engines.iter().enumerate() {
        let located = {
            let engine = engine.clone();
            tokio::task::spawn_blocking(move || engine.location()).await?
        };
        let ssh = match located {
            Ok(location) => {
                remotes.push(match &location {
                    crate::engine::endpoint::Location::Remote { endpoint, .. } => {
                        Some(endpoint.url.clone())
                    }
                    crate::engine::endpoint::Location::Local => None,
                });
                location.ssh()
            }
            Err(error) => {
                log(&format!("{}: {error}", engine.kind()));
                remotes.push(None);
                None
            }
        };
        remote_ssh.push(ssh.clone());
        tunnels.push(ssh.map(|ssh| {
            log(&format!(
                "{} on {}: routed through ssh",
                engine.kind(),
                ssh.target()
            ));
            tunnels::Tunnel::start(index, ssh, posted_tx.clone())
        }));
    }
    let tunneled: Vec<Option<tunnels::Tunneled>> = tunnels
        .iter()
        .map(|t| t.as_ref().map(|_| Default::default()))
        .collect();
    let (watched_tx, watched_rx) = watch::channel(Arc::new(discovery::Watched {
        containers: first_read.clone(),
        tunneled: tunneled.clone(),
    }));
    discovery::spawn(
        discovery::Discovery::new(execs),
        remote_ssh,
        watched_rx,
        posted_tx.clone(),
    );
    let listeners = Listeners::new(
        options.addresses.clone(),
        Arc::clone(&shared),
        Workers::start()?,
        posted_tx,
    );
    let kinds: Vec<EngineKind> = options.engines.iter().map(Engine::kind).collect();
    let names: Vec<&str> = kinds.iter().map(|kind| kind.program()).collect();
    log(&format!(
        "watching {} for dual's workspaces",
        names.join(" and ")
    ));
    let mut core = Core {
        kinds,
        outages,
        containers: first_read,
        watched_tx,
        found: routes::Found::default(),
        // The choice a proxy before this one was told (see `workspace::focus`).
        focus: crate::workspace::focus::read(),
        current: Arc::new(Table::default()),
        table_tx,
        listeners,
        control,
        forwards,
        tunnels,
        tunneled,
        remotes,
    };
    core.refresh().await;
    let interrupted = wait_for_interrupt();
    tokio::pin!(interrupted);
    let mut retrying = tokio::time::interval(CONFLICT_RETRY);
    retrying.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(message) = posted.recv() => core.take(message).await,
            // A port another program held may be free now.
            _ = retrying.tick(), if !core.listeners.conflicts.is_empty() => {
                if core.listeners.sync(&core.current.live_ports()).await {
                    core.publish_conflicts();
                }
            }
            () = &mut interrupted => {
                log("stopping");
                // Closed before the lock goes, so that a forward's port
                // refuses once `dual proxy stop` returns.
                core.forwards.remove(None, None).await;
                core.control.remove();
                return Ok(());
            }
        }
    }
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP (which also set `crate::interrupt`'s
/// flag), without waking up until then: an idle proxy uses no CPU.
async fn wait_for_interrupt() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut streams = Vec::new();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        match signal(kind) {
            Ok(stream) => streams.push(stream),
            Err(error) => log(&format!("cannot watch for signals: {error}")),
        }
    }
    // A signal that came before the streams existed set the flag.
    if crate::interrupt::requested() {
        return;
    }
    if streams.is_empty() {
        while !crate::interrupt::requested() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        return;
    }
    let any = futures_util::future::select_all(streams.iter_mut().map(|s| Box::pin(s.recv())));
    any.await;
}

/// Serves a fixed table on one already-bound listener until `stop` fires:
/// `dual verify` sends real traffic through the real forwarding code this
/// way, and so do the tests of the connection loop (with a short head
/// deadline where they test it).
pub async fn serve_fixed(
    listener: TcpListener,
    table: Table,
    stop: Arc<Notify>,
    head_timeout: Option<Duration>,
) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let shared = Arc::new(Shared::fixed(
        table,
        head_timeout.unwrap_or(conn::HEAD_TIMEOUT),
    ));
    tokio::select! {
        () = listeners::accept_loop(listener, shared, port) => {}
        () = stop.notified() => {}
    }
}
