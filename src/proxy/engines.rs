//! Following each engine: one task per engine reads its containers (its
//! CLI on a blocking thread) when an event or a timer says so and posts
//! what it found to the control loop, which never waits on an engine. A
//! daemon that hangs (stopped with SIGSTOP, say) stalls only its own task.
//! While an engine does not answer, the last routes stay, and its outage is
//! told once when it starts and once when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::discovery::Execs;
use super::{Posted, log};
use crate::engine::labels::workspace_filters;
use crate::engine::{Container, Engine, EngineError, EngineKind, EventAction};

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
/// While a daemon's socket refuses connections: how often to try it.
const SOCKET_RETRY: Duration = Duration::from_millis(500);
/// The longest a try of the daemon's socket may take (a stopped daemon's
/// socket may take the connection into its backlog and never answer).
const SOCKET_TRY: Duration = Duration::from_millis(500);

/// Reads the engine's view of dual's workspace containers: one `ps`, one `inspect`.
pub fn load_containers(
    engine: &Engine,
    owner: Option<&str>,
) -> Result<Vec<Container>, EngineError> {
    let listed = engine.ps(&workspace_filters(owner))?;
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    engine.inspect(&ids)
}

/// Starts following `engine` (read once already, finding `initial`): its
/// event thread and its reading task, which posts `Posted::Loaded` and
/// `Posted::Reachable` for engine number `index`.
pub(super) fn follow(
    index: usize,
    engine: Engine,
    initial: &[Container],
    owner: Option<String>,
    outage: Arc<Outage>,
    execs: Execs,
    posted: mpsc::UnboundedSender<Posted>,
) {
    let kick = Arc::new(Notify::new());
    let following = Arc::new(AtomicBool::new(false));
    revive(&engine, initial, &kick);
    watch_events(
        engine.clone(),
        owner.clone(),
        Arc::clone(&kick),
        Arc::clone(&following),
        Arc::clone(&outage),
        execs,
    );
    let reader = Reader {
        index,
        // A pinned engine is on another host: no socket of it here.
        socket: daemon_socket(engine.kind()).filter(|_| engine.endpoint().is_none()),
        engine,
        owner,
        outage,
        kick,
        following,
        posted,
    };
    tokio::spawn(reader.run());
}

struct Reader {
    index: usize,
    engine: Engine,
    owner: Option<String>,
    outage: Arc<Outage>,
    kick: Arc<Notify>,
    following: Arc<AtomicBool>,
    /// Its daemon's socket, where certain (see `daemon_socket`).
    socket: Option<std::path::PathBuf>,
    posted: mpsc::UnboundedSender<Posted>,
}

impl Reader {
    async fn run(self) {
        let mut reconciled = tokio::time::Instant::now();
        // The socket refused the last try: trying it again costs a
        // `connect`, so it is tried often, not on the backoff.
        let mut socket_refused = false;
        let kind = self.engine.kind();
        loop {
            // Counted from the last read: other wake-ups do not delay it.
            let pause = match self.outage.retry_in() {
                Some(_) if socket_refused => SOCKET_RETRY,
                Some(retry) => retry,
                None if self.following.load(Ordering::Relaxed) => RECONCILE_FOLLOWING,
                None => RECONCILE_BLIND,
            };
            tokio::select! {
                () = self.kick.notified() => {}
                () = tokio::time::sleep_until(reconciled + pause) => {}
                () = self.posted.closed() => return,
            }
            reconciled = tokio::time::Instant::now();
            // While away, a daemon whose socket refuses connections is still
            // away: no need to run its CLI (~20 ms of CPU) to hear it again.
            socket_refused = match &self.socket {
                Some(socket) if self.outage.retry_in().is_some() => !socket_answers(socket).await,
                _ => false,
            };
            if socket_refused {
                self.outage.still_away();
                continue;
            }
            let (engine, owner) = (self.engine.clone(), self.owner.clone());
            let loaded =
                tokio::task::spawn_blocking(move || load_containers(&engine, owner.as_deref()))
                    .await;
            let posted = match loaded {
                Ok(Ok(containers)) => {
                    if self.outage.answered(kind) {
                        revive(&self.engine, &containers, &self.kick);
                        let _ = self.posted.send(Posted::Reachable {
                            engine: self.index,
                            reachable: true,
                        });
                    }
                    self.posted.send(Posted::Loaded {
                        engine: self.index,
                        containers,
                    })
                }
                // The last routes stay while the engine is away.
                Ok(Err(error)) if self.outage.failed(kind, &error) => {
                    self.posted.send(Posted::Reachable {
                        engine: self.index,
                        reachable: false,
                    })
                }
                Ok(Err(_)) => Ok(()),
                Err(_) => return,
            };
            if posted.is_err() {
                return;
            }
        }
    }
}

/// Whether something takes connections on the daemon's socket, without
/// blocking a thread on it.
async fn socket_answers(socket: &std::path::Path) -> bool {
    matches!(
        tokio::time::timeout(SOCKET_TRY, tokio::net::UnixStream::connect(socket)).await,
        Ok(Ok(_))
    )
}

/// Whether the engine answers, as its reader last found it: told once when
/// it stops answering and once when it answers again, with how long it was
/// away, never once per retry.
#[derive(Default)]
pub(super) struct Outage {
    state: std::sync::Mutex<Option<OutageState>>,
    over: std::sync::Condvar,
    /// The same, for the connections' error pages (read per failed request).
    pub away: Arc<AtomicBool>,
}

struct OutageState {
    since: std::time::Instant,
    retry: Duration,
}

impl Outage {
    /// Whether this starts an outage.
    pub(super) fn failed(&self, kind: EngineKind, error: &EngineError) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.as_mut() {
            Some(outage) => {
                outage.retry = (outage.retry * 2).min(OUTAGE_LONGEST_RETRY);
                false
            }
            None => {
                self.away.store(true, Ordering::Relaxed);
                log(&format!(
                    "{kind} is not reachable ({error}); keeping the last routes and retrying every few seconds"
                ));
                *state = Some(OutageState {
                    since: std::time::Instant::now(),
                    retry: OUTAGE_FIRST_RETRY,
                });
                true
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
    fn answered(&self, kind: EngineKind) -> bool {
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

    pub(super) fn is_away(&self) -> bool {
        self.away.load(Ordering::Relaxed)
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
/// runner's stream is blocking) and kicks the reader on each one that
/// changes a route: not on `exec` events, which every `dual run` makes.
/// While the engine does not answer it waits for the reader to find it
/// back instead of starting a stream that fails at once, again and again.
fn watch_events(
    engine: Engine,
    owner: Option<String>,
    kick: Arc<Notify>,
    following: Arc<AtomicBool>,
    outage: Arc<Outage>,
    execs: Execs,
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
                            // The end of the stream: why is for the reader
                            // to find and tell, once.
                            Err(error) => crate::log::debug(&format!("event stream: {error}")),
                        }
                    }
                }
                Err(error) => crate::log::debug(&format!("cannot follow events: {error}")),
            }
            // The engine restarted or the stream ended: read and follow again.
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
fn daemon_socket(kind: EngineKind) -> Option<std::path::PathBuf> {
    if kind != EngineKind::Docker {
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
