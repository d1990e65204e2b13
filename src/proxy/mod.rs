//! The host reverse proxy: `http://{repo}-{branch}.localhost:{port}` to that
//! workspace container's `:{port}`.
//!
//! - `routes`: the table, built only from dual's labelled containers.
//! - `forward`: per request: refuse what is not ours, stream the rest.
//! - `conn`, `http1`: the connection and the bytes on it.
//! - here: the engine watcher (events, plus a periodic reconcile in case an
//!   event is missed or the engine restarts) and the listeners, one per port
//!   a running workspace declares, on loopback only.

pub mod conflicts;
mod conn;
pub mod forward;
pub mod http1;
pub mod instance;
pub mod listening;
pub mod routes;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::engine::labels::{WorkspaceLabels, workspace_filters};
use crate::engine::{Container, Engine, EngineError, EventAction};
use crate::sockets::Listening;
use forward::Shared;
use routes::Table;

/// How often routes are rebuilt without an event, while the engine's event
/// stream is followed: a safety net only. Each rebuild runs the engine's CLI
/// twice, CPU taken from the dev servers and from requests in flight (it
/// showed in the benchmark's p99 when it ran every 2 s).
const RECONCILE_FOLLOWING: Duration = Duration::from_secs(30);
/// … and while it is not (the engine restarted, events unavailable).
const RECONCILE_BLIND: Duration = Duration::from_secs(2);
/// While the engine does not answer: the first retry, doubling up to the
/// longest, so that an engine away for a weekend costs a call every few
/// seconds, and one that is back is seen within the longest pause.
const OUTAGE_FIRST_RETRY: Duration = Duration::from_secs(1);
const OUTAGE_LONGEST_RETRY: Duration = Duration::from_secs(3);
/// How often running containers are looked at for ports opened or closed:
/// a port routes within this (plus a request's wait) of its bind.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);
/// How often the focus file is read (`dual focus` takes effect within it).
const FOCUS_INTERVAL: Duration = Duration::from_millis(200);

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

/// Reads the engine's view of dual's workspace containers: one `ps`, one `inspect`.
pub fn load_containers(
    engine: &Engine,
    owner: Option<&str>,
) -> Result<Vec<Container>, EngineError> {
    let listed = engine.ps(&workspace_filters(owner))?;
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    engine.inspect(&ids)
}

/// What each running workspace container listens on, by workspace name:
/// two small /proc reads per container, no engine call.
pub fn discover(containers: &[Container]) -> HashMap<String, Listening> {
    Discovery::default().discover(containers)
}

/// `discover`, made cheap enough to run every second for every container:
/// a container's socket tables are read again only when its count of TCP
/// sockets changed (a listener opened or closed, or a connection did), and
/// at least every `FULL_LOOK`, in case one listener closed as another
/// opened. Which process is whose container is checked once.
#[derive(Default)]
struct Discovery {
    seen: HashMap<(u32, String), Seen>,
    /// Containers something was just exec'd in (`dual run`, a shim), by id:
    /// read every second for a while, since a server started by hand may
    /// replace one that stopped, leaving the socket count as it was.
    execs: Arc<std::sync::Mutex<HashMap<String, std::time::Instant>>>,
}

/// How long after an exec a container's tables are read every second.
const AFTER_EXEC: Duration = Duration::from_secs(15);

struct Seen {
    counts: (u32, u32),
    read_at: std::time::Instant,
    listening: Listening,
}

/// The longest a container's socket tables go unread.
const FULL_LOOK: Duration = Duration::from_secs(120);

impl Discovery {
    fn discover<'a>(
        &mut self,
        containers: impl IntoIterator<Item = &'a Container>,
    ) -> HashMap<String, Listening> {
        let mut found = HashMap::new();
        let mut alive = std::collections::HashSet::new();
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
                let read_at = std::time::Instant::now();
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

/// Runs until Ctrl-C / SIGTERM.
pub fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(options))
}

/// One engine the proxy follows: its containers as last read, whether it
/// answers, and what wakes the loop for it.
struct Watched {
    engine: Engine,
    containers: Arc<Vec<Container>>,
    outage: Arc<Outage>,
    kick: Arc<Notify>,
    following: Arc<AtomicBool>,
    reconciled: tokio::time::Instant,
    /// Its daemon's socket, where certain (see `daemon_socket`).
    socket: Option<std::path::PathBuf>,
    /// The socket refused the last try: trying it again costs a `connect`,
    /// so it is tried often (`SOCKET_RETRY`), not on the backoff.
    socket_refused: bool,
}

/// While a daemon's socket refuses connections: how often to try it.
const SOCKET_RETRY: Duration = Duration::from_millis(500);

impl Watched {
    /// When it is next read without an event: soon while it is away
    /// (backing off), rarely while its events are followed.
    fn next_reconcile(&self) -> tokio::time::Instant {
        let pause = if let Some(retry) = self.outage.retry_in() {
            if self.socket_refused {
                SOCKET_RETRY
            } else {
                retry
            }
        } else if self.following.load(Ordering::Relaxed) {
            RECONCILE_FOLLOWING
        } else {
            RECONCILE_BLIND
        };
        self.reconciled + pause
    }
}

/// The routes of every engine's containers in one table. A workspace seen
/// on two engines (relaunched on the other) routes to the running one.
fn merged_table(watched: &[Watched], found: &HashMap<String, Listening>) -> Table {
    let mut table = Table::default();
    for each in watched {
        let mut part = Table::from_containers(&each.containers, found);
        for route in part.routes.values_mut() {
            route.engine = Some(each.engine.kind());
        }
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
    table
}

/// Every engine's containers, borrowed: discovery runs every second and
/// needs no copy of them.
fn all_containers(watched: &[Watched]) -> impl Iterator<Item = &Container> {
    watched.iter().flat_map(|w| w.containers.iter())
}

/// Takes what discovery found `now` when it differs from `found`, and
/// shares it with `dual list`; whether it changed.
fn take_if_changed(
    found: &mut HashMap<String, Listening>,
    now: HashMap<String, Listening>,
) -> bool {
    if now == *found {
        return false;
    }
    *found = now;
    listening::write(found);
    true
}

async fn serve(options: Options) -> anyhow::Result<()> {
    let owner = options.owner.clone();
    let mut watched = Vec::new();
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
            Err(error) if watched.is_empty() => return Err(error.into()),
            Err(error) => {
                outage.failed(engine.kind(), &error);
                Vec::new()
            }
        };
        watched.push(Watched {
            engine: engine.clone(),
            containers: Arc::new(containers),
            outage,
            kick: Arc::new(Notify::new()),
            following: Arc::new(AtomicBool::new(false)),
            reconciled: tokio::time::Instant::now(),
            socket: daemon_socket(engine.kind()),
            socket_refused: false,
        });
    }
    let mut discovery = Discovery::default();
    let mut focus = crate::workspace::focus::read();
    let mut found = discovery.discover(all_containers(&watched));
    listening::write(&found);
    let (table_tx, table_rx) = watch::channel(Arc::new(Table::default()));
    let shared = Arc::new(Shared {
        table: table_rx,
        head_timeout: conn::HEAD_TIMEOUT,
        away: watched
            .iter()
            .map(|w| (w.engine.kind(), Arc::clone(&w.outage.away)))
            .collect(),
    });
    for each in &watched {
        revive(&each.engine, &each.containers, &each.kick);
        watch_events(
            each.engine.clone(),
            owner.clone(),
            Arc::clone(&each.kick),
            Arc::clone(&each.following),
            Arc::clone(&each.outage),
            Arc::clone(&discovery.execs),
        );
    }
    let mut listeners = Listeners::new(
        options.addresses.clone(),
        Arc::clone(&shared),
        Workers::start()?,
    );
    let interrupted = wait_for_interrupt();
    tokio::pin!(interrupted);
    let mut current = Arc::new(Table::default());
    let mut looking = tokio::time::interval(DISCOVERY_INTERVAL);
    looking.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut focusing = tokio::time::interval(FOCUS_INTERVAL);
    focusing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let names: Vec<String> = watched
        .iter()
        .map(|w| w.engine.kind().to_string())
        .collect();
    log(&format!(
        "watching {} for dual's workspaces",
        names.join(" and ")
    ));
    let mut stale = true;
    loop {
        if stale {
            stale = false;
            let mut next = merged_table(&watched, &found);
            next.focus = focus.clone();
            if next != *current {
                log_changes(&current, &next);
                current = Arc::new(next);
                let _ = table_tx.send(Arc::clone(&current));
                listeners.sync(&current.live_ports()).await;
            }
        }
        // Counted from each engine's last reconcile: other wake-ups do not
        // delay it.
        let next_reconcile = watched
            .iter()
            .map(Watched::next_reconcile)
            .min()
            .unwrap_or_else(|| tokio::time::Instant::now() + RECONCILE_FOLLOWING);
        let kicked =
            futures_util::future::select_all(watched.iter().map(|w| Box::pin(w.kick.notified())));
        // Which engines to read again.
        let due: Vec<usize> = tokio::select! {
            (_, index, _) = kicked => vec![index],
            () = tokio::time::sleep_until(next_reconcile) => {
                let now = tokio::time::Instant::now();
                (0..watched.len()).filter(|&i| watched[i].next_reconcile() <= now).collect()
            }
            _ = focusing.tick() => {
                // One small read: a switch of focus takes effect within this.
                let focused = crate::workspace::focus::read();
                if focused != focus {
                    log(&format!("focus: {}", focused.as_deref().unwrap_or("none")));
                    focus = focused;
                    stale = true;
                }
                continue;
            }
            _ = looking.tick() => {
                // /proc reads: no waiting on anything, fine on this thread.
                let now = discovery.discover(all_containers(&watched));
                stale |= take_if_changed(&mut found, now);
                // A port another program held may be free now.
                if !listeners.conflicts.is_empty() {
                    listeners.sync(&current.live_ports()).await;
                }
                continue;
            }
            () = &mut interrupted => {
                log("stopping");
                conflicts::write(&std::collections::BTreeMap::new());
                listening::remove();
                return Ok(());
            }
        };
        for index in due {
            let each = &mut watched[index];
            each.reconciled = tokio::time::Instant::now();
            let kind = each.engine.kind();
            // While away, a daemon whose socket refuses connections is still
            // away: no need to run its CLI (~20 ms of CPU) to hear it again.
            each.socket_refused = each.outage.retry_in().is_some()
                && each
                    .socket
                    .as_ref()
                    .is_some_and(|socket| std::os::unix::net::UnixStream::connect(socket).is_err());
            if each.socket_refused {
                each.outage.still_away();
                continue;
            }
            let (engine, owner) = (each.engine.clone(), owner.clone());
            match tokio::task::spawn_blocking(move || load_containers(&engine, owner.as_deref()))
                .await?
            {
                Ok(loaded) => {
                    if each.outage.answered(kind) {
                        revive(&each.engine, &loaded, &each.kick);
                    }
                    each.containers = Arc::new(loaded);
                    stale = true;
                }
                // The last routes stay while the engine is away.
                Err(error) => each.outage.failed(kind, &error),
            }
        }
        if stale {
            let now = discovery.discover(all_containers(&watched));
            take_if_changed(&mut found, now);
        }
    }
}

/// Starts, in the background, the workspaces that are down (see
/// `workspace::revive`): when the proxy starts (after a reboot, the first
/// dual command starts it) and when the engine answers again.
fn revive(engine: &Engine, containers: &[Container], kick: &Arc<Notify>) {
    if containers.iter().all(|c| c.running) {
        return;
    }
    let (engine, containers, kick) = (engine.clone(), containers.to_vec(), Arc::clone(kick));
    tokio::task::spawn_blocking(move || {
        let state = match crate::workspace::Store::open_default().load() {
            Ok(state) => state,
            Err(error) => {
                log(&format!(
                    "cannot read dual's state to start workspaces again: {error}"
                ));
                return;
            }
        };
        for revived in crate::workspace::revive::revive_down(&engine, &state, &containers) {
            match revived.result {
                Ok(()) => log(&format!(
                    "started {} again: it was running when its engine stopped",
                    revived.workspace
                )),
                Err(error) => log(&format!(
                    "could not start {} again: {error}; `dual launch {}` tries",
                    revived.workspace, revived.workspace
                )),
            }
        }
        kick.notify_one();
    });
}

/// The Unix socket the docker CLI talks to, where that is certain: from
/// DOCKER_HOST, else the default one unless a context may point elsewhere.
/// `None` for podman (no daemon) and whenever in doubt.
fn daemon_socket(kind: crate::engine::EngineKind) -> Option<std::path::PathBuf> {
    if kind != crate::engine::EngineKind::Docker {
        return None;
    }
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        return host.strip_prefix("unix://").map(Into::into);
    }
    if std::env::var_os("DOCKER_CONTEXT").is_some() {
        return None;
    }
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::paths::user_home().join(".docker"));
    let context_set = std::fs::read_to_string(config.join("config.json"))
        .is_ok_and(|text| text.contains("\"currentContext\""));
    (!context_set).then(|| "/var/run/docker.sock".into())
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

/// Whether the engine answers, as the reconcile loop last found it: told
/// once when it stops answering and once when it answers again, with how
/// long it was away, never once per retry.
#[derive(Default)]
struct Outage {
    state: std::sync::Mutex<Option<OutageState>>,
    over: std::sync::Condvar,
    /// The same, for the connections' error pages (read per failed request).
    away: Arc<AtomicBool>,
}

struct OutageState {
    since: std::time::Instant,
    retry: Duration,
}

impl Outage {
    fn failed(&self, kind: crate::engine::EngineKind, error: &EngineError) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.as_mut() {
            Some(outage) => outage.retry = (outage.retry * 2).min(OUTAGE_LONGEST_RETRY),
            None => {
                self.away.store(true, Ordering::Relaxed);
                log(&format!(
                    "{kind} is not reachable ({error}); keeping the last routes and retrying every few seconds"
                ));
                *state = Some(OutageState {
                    since: std::time::Instant::now(),
                    retry: OUTAGE_FIRST_RETRY,
                });
            }
        }
    }

    /// Another retry found the engine away, without asking it.
    fn still_away(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(outage) = state.as_mut() {
            outage.retry = (outage.retry * 2).min(OUTAGE_LONGEST_RETRY);
        }
    }

    /// Whether this ends an outage.
    fn answered(&self, kind: crate::engine::EngineKind) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(outage) = state.take() else {
            return false;
        };
        self.away.store(false, Ordering::Relaxed);
        log(&format!(
            "{kind} is reachable again after {:.1} s",
            outage.since.elapsed().as_secs_f64()
        ));
        self.over.notify_all();
        true
    }

    /// When to try again, while the engine does not answer.
    fn retry_in(&self) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.as_ref().map(|outage| outage.retry)
    }

    /// Blocks while the engine does not answer (at most `limit`).
    fn wait_over(&self, limit: Duration) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .over
            .wait_timeout_while(state, limit, |state| state.is_some());
    }
}

/// Follows the engine's container events on a thread of its own (the
/// runner's stream is blocking) and kicks the reconcile loop on each one
/// that changes a route: not on `exec` events, which every `dual run` makes.
/// While the engine does not answer it waits for the reconcile loop to find
/// it back instead of starting a stream that fails at once, again and again.
fn watch_events(
    engine: Engine,
    owner: Option<String>,
    kick: Arc<Notify>,
    following: Arc<AtomicBool>,
    outage: Arc<Outage>,
    execs: Arc<std::sync::Mutex<HashMap<String, std::time::Instant>>>,
) {
    std::thread::spawn(move || {
        loop {
            outage.wait_over(Duration::from_secs(60));
            let started = std::time::Instant::now();
            match engine.events(&workspace_filters(owner.as_deref())) {
                Ok(stream) => {
                    following.store(true, Ordering::Relaxed);
                    // Events since the last table may have been missed.
                    kick.notify_one();
                    for event in stream {
                        match event {
                            Ok(event) if changes_routes(&event.action) => kick.notify_one(),
                            Ok(event) if is_exec(&event.action) => {
                                execs
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(event.id, std::time::Instant::now());
                            }
                            Ok(_) => {}
                            // The end of the stream: why is for the reconcile
                            // loop to find and tell, once.
                            Err(error) => crate::log::debug(&format!("event stream: {error}")),
                        }
                    }
                }
                Err(error) => crate::log::debug(&format!("cannot follow events: {error}")),
            }
            // The engine restarted or the stream ended: reconcile and follow again.
            following.store(false, Ordering::Relaxed);
            kick.notify_one();
            // A stream that ended at once is not retried at once.
            let pause = if started.elapsed() < Duration::from_secs(5) {
                OUTAGE_FIRST_RETRY
            } else {
                Duration::from_millis(100)
            };
            std::thread::sleep(pause);
        }
    });
}

/// `exec_create: …`, `exec_start: …` (docker), `exec` (podman).
fn is_exec(action: &EventAction) -> bool {
    matches!(action, EventAction::Other(word) if word.starts_with("exec"))
}

fn changes_routes(action: &EventAction) -> bool {
    matches!(
        action,
        EventAction::Start | EventAction::Die | EventAction::Destroy
    )
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

struct Workers {
    handles: Vec<tokio::runtime::Handle>,
}

impl Workers {
    fn start() -> std::io::Result<Workers> {
        let count = std::env::var("DUAL_PROXY_WORKERS")
            .ok()
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| {
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
struct Listeners {
    addresses: Vec<IpAddr>,
    shared: Arc<Shared>,
    workers: Workers,
    open: HashMap<u16, Vec<JoinHandle<()>>>,
    /// Ports held by another program (on some address): served on none,
    /// tried again at each `sync`.
    conflicts: std::collections::BTreeMap<u16, conflicts::Conflict>,
}

impl Listeners {
    fn new(addresses: Vec<IpAddr>, shared: Arc<Shared>, workers: Workers) -> Self {
        Listeners {
            addresses,
            shared,
            workers,
            open: HashMap::new(),
            conflicts: std::collections::BTreeMap::new(),
        }
    }

    /// Where `port` cannot be had: the first address another program holds.
    fn held(&self, port: u16) -> Option<conflicts::Conflict> {
        for &address in &self.addresses {
            let addr = SocketAddr::new(address, port);
            let Err(error) = std::net::TcpListener::bind(addr) else {
                continue;
            };
            // A host without IPv6 has no ::1 for anyone to hold.
            if address.is_ipv6() && std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
                continue;
            }
            let holder =
                crate::sockets::holder_of(port).unwrap_or_else(|| "another process".into());
            crate::log::debug(&format!("{addr}: {error}"));
            return Some(conflicts::Conflict {
                port,
                address: addr.to_string(),
                holder,
            });
        }
        None
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
        let before = self.conflicts.clone();
        self.conflicts.retain(|port, _| ports.contains(port));
        for &port in ports {
            if self.open.contains_key(&port) {
                continue;
            }
            // Bind each address once here first: a port someone else holds
            // on either is served on neither (see `conflicts`).
            if let Some(conflict) = self.held(port) {
                if self.conflicts.get(&port) != Some(&conflict) {
                    log(&format!(
                        "cannot serve :{port}: {} is held by {}; serving it on no address until that program lets go (other ports keep working)",
                        conflict.address, conflict.holder
                    ));
                }
                self.conflicts.insert(port, conflict);
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
        if self.conflicts != before {
            conflicts::write(&self.conflicts);
        }
    }
}

/// Accepts connections until the task is dropped. An accept that fails
/// (out of file descriptors, most often) is retried after a pause that
/// doubles up to a second, not at once: retrying at once spins a core, and
/// the condition lasts until connections close.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, port: u16) {
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
                if pause == FIRST_PAUSE {
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
    let (_tx, rx) = watch::channel(Arc::new(table));
    let shared = Arc::new(Shared {
        table: rx,
        head_timeout: head_timeout.unwrap_or(conn::HEAD_TIMEOUT),
        away: Vec::new(),
    });
    tokio::select! {
        () = accept_loop(listener, shared, port) => {}
        () = stop.notified() => {}
    }
}
