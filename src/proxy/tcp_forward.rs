//! `dual forward`: raw TCP from a port on the host's 127.0.0.1 to a port of a
//! workspace container, for what is not HTTP (Postgres, Redis, a debugger).
//! Not to be confused with `forward`, the HTTP path.
//!
//! The forwards run in the proxy because it already follows the containers:
//! each new connection looks its target up in the live route table, so a
//! forward follows its container across restarts (a new IP, a new published
//! port), and a connection to a workspace that is down is closed at once.
//! The target only ever comes from the route table: a forward reaches dual's
//! own labelled containers, never an address a client names. Forwards live
//! as long as the proxy: nothing is kept when it stops.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::log;
use super::routes::Table;
use crate::engine::Container;
use crate::engine::labels::WorkspaceLabels;

/// At most this many forwards at once: each holds a listener.
pub const MAX_FORWARDS: usize = 64;
/// At most this many open connections per forward; more are closed at once,
/// so that one client in a loop cannot take every descriptor the proxy has.
pub const MAX_CONNECTIONS: usize = 256;
/// Each direction of a connection buffers at most this much.
const BUFFER: usize = 64 * 1024;
/// A container on a local bridge or a published port answers at once; a
/// stale address (a container that just stopped) never does.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One forward, as the control socket tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardInfo {
    /// Where to connect on the host (always on 127.0.0.1).
    pub local: SocketAddr,
    pub workspace: String,
    /// The port in the workspace's container.
    pub port: u16,
    /// Connections open through it now.
    pub open: usize,
    /// When it was added, in seconds since the epoch.
    pub since: u64,
}

/// Whether a forward reaches its port now, as `add` found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reach {
    /// Connections go to `target` now.
    Routed { target: String },
    /// Nothing listens on the port yet: connections are closed until
    /// something does.
    NotListening,
    /// Its server listens on loopback inside the container only, which
    /// nothing outside it reaches.
    LoopbackOnly,
    /// It listens, but is beyond the undeclared ports dual routes.
    NotRouted,
}

/// The answer to an added forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    pub forward: ForwardInfo,
    pub reach: Reach,
    /// The same forward was already there (and is what is returned).
    pub existing: bool,
}

/// Why a forward was not added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Refusal {
    /// The proxy knows no container of this workspace.
    UnknownWorkspace {
        workspace: String,
    },
    NotRunning {
        workspace: String,
    },
    /// Its container has no address the host reaches (rootless podman) and
    /// does not publish the port.
    Unreachable {
        workspace: String,
        port: u16,
    },
    /// The local port is taken: by another forward, or (`http`) possibly by
    /// the proxy's own HTTP listener for a workspace port, else by someone
    /// the client can look up.
    LocalTaken {
        port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forward: Option<(String, u16)>,
        #[serde(default)]
        http: bool,
    },
    /// The local port cannot be bound for another reason.
    LocalRefused {
        port: u16,
        error: String,
    },
    TooMany {
        limit: usize,
    },
    Invalid {
        error: String,
    },
}

/// The forwards a proxy runs, by local port.
pub(super) struct Forwards {
    table: watch::Receiver<Arc<Table>>,
    running: BTreeMap<u16, Running>,
}

struct Running {
    info: ForwardInfo,
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Running {
    fn info(&self) -> ForwardInfo {
        ForwardInfo {
            open: self.open.load(Ordering::Relaxed),
            ..self.info.clone()
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Forwards {
    pub(super) fn new(table: watch::Receiver<Arc<Table>>) -> Forwards {
        Forwards {
            table,
            running: BTreeMap::new(),
        }
    }

    /// Adds a forward from 127.0.0.1:`local` (by default `port` where it is
    /// free and no workspace's HTTP route wants it, else a port the OS picks)
    /// to `workspace`'s `port`. The same forward asked again is answered
    /// with the one there.
    pub(super) fn add<'c>(
        &mut self,
        workspace: &str,
        port: u16,
        local: Option<u16>,
        containers: impl IntoIterator<Item = &'c Container>,
        http_ports: &[u16],
    ) -> Result<Added, Refusal> {
        if port == 0 || local == Some(0) {
            return Err(Refusal::Invalid {
                error: "ports are 1 to 65535".into(),
            });
        }
        let reach = reach(&self.table.borrow(), containers, workspace, port)?;
        let same =
            |running: &Running| running.info.workspace == workspace && running.info.port == port;
        let existing = match local {
            Some(local) => self.running.get(&local).filter(|r| same(r)),
            None => self.running.values().find(|r| same(r)),
        };
        if let Some(existing) = existing {
            return Ok(Added {
                forward: existing.info(),
                reach,
                existing: true,
            });
        }
        if let Some(taken) = local.and_then(|local| self.running.get(&local)) {
            return Err(Refusal::LocalTaken {
                port: taken.info.local.port(),
                forward: Some((taken.info.workspace.clone(), taken.info.port)),
                http: false,
            });
        }
        if self.running.len() >= MAX_FORWARDS {
            return Err(Refusal::TooMany {
                limit: MAX_FORWARDS,
            });
        }
        let listener = match local {
            Some(local) => bind(local).map_err(|error| refusal(local, &error, http_ports))?,
            None => self.bind_default(port, http_ports)?,
        };
        let address = listener
            .local_addr()
            .map_err(|error| refusal(local.unwrap_or(0), &error, http_ports))?;
        let info = ForwardInfo {
            local: address,
            workspace: workspace.to_owned(),
            port,
            open: 0,
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            workspace.to_owned(),
            port,
            self.table.clone(),
            Arc::clone(&open),
        ));
        log(&format!("forward {address} → {workspace}:{port}: added"));
        self.running.insert(
            address.port(),
            Running {
                info: info.clone(),
                open,
                task,
            },
        );
        Ok(Added {
            forward: info,
            reach,
            existing: false,
        })
    }

    /// `port` itself where it is free on 127.0.0.1 and on ::1 (so that
    /// `localhost:PORT` cannot reach another server) and no workspace's HTTP
    /// route wants it; else a port the OS picks.
    fn bind_default(&self, port: u16, http_ports: &[u16]) -> Result<TcpListener, Refusal> {
        let wanted_elsewhere = http_ports.contains(&port)
            || self.running.contains_key(&port)
            || std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, port))
                .is_err_and(|error| error.kind() == io::ErrorKind::AddrInUse);
        if !wanted_elsewhere && let Ok(listener) = bind(port) {
            return Ok(listener);
        }
        bind(0).map_err(|error| refusal(0, &error, http_ports))
    }

    pub(super) fn list(&self) -> Vec<ForwardInfo> {
        self.running.values().map(Running::info).collect()
    }

    /// Stops the forwards on local port `local`, or to `workspace`, or (with
    /// neither) all; returns them. Their ports refuse once this returns.
    pub(super) async fn remove(
        &mut self,
        local: Option<u16>,
        workspace: Option<&str>,
    ) -> Vec<ForwardInfo> {
        let chosen: Vec<u16> = self
            .running
            .iter()
            .filter(|(port, running)| {
                local.is_none_or(|local| local == **port)
                    && workspace.is_none_or(|name| name == running.info.workspace)
            })
            .map(|(port, _)| *port)
            .collect();
        let mut removed = Vec::new();
        for port in chosen {
            let Some(mut running) = self.running.remove(&port) else {
                continue;
            };
            removed.push(running.info());
            running.task.abort();
            // Awaited, so that its listener is closed when the client hears.
            let _ = (&mut running.task).await;
            log(&format!(
                "forward {} → {}:{}: removed",
                running.info.local, running.info.workspace, running.info.port
            ));
        }
        removed
    }
}

fn bind(port: u16) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

fn refusal(port: u16, error: &io::Error, http_ports: &[u16]) -> Refusal {
    if error.kind() == io::ErrorKind::AddrInUse {
        Refusal::LocalTaken {
            port,
            forward: None,
            http: http_ports.contains(&port),
        }
    } else {
        Refusal::LocalRefused {
            port,
            error: error.to_string(),
        }
    }
}

/// Whether `workspace`'s `port` can be forwarded to, from the route table
/// and the engines' view of the containers.
pub(super) fn reach<'c>(
    table: &Table,
    containers: impl IntoIterator<Item = &'c Container>,
    workspace: &str,
    port: u16,
) -> Result<Reach, Refusal> {
    let Some(route) = table.routes.get(workspace) else {
        return Err(Refusal::UnknownWorkspace {
            workspace: workspace.to_owned(),
        });
    };
    if !route.running {
        return Err(Refusal::NotRunning {
            workspace: workspace.to_owned(),
        });
    }
    if let Some(target) = route.raw_target(port) {
        return Ok(Reach::Routed {
            target: target.to_string(),
        });
    }
    let container = containers.into_iter().find(|container| {
        container.running
            && WorkspaceLabels::from_labels(&container.labels)
                .is_some_and(|labels| labels.workspace == workspace)
    });
    let reachable = container.is_some_and(|container| {
        container.published_port(port).is_some() || container.ipv4().is_some()
    });
    if !reachable {
        return Err(Refusal::Unreachable {
            workspace: workspace.to_owned(),
            port,
        });
    }
    Ok(if route.listening.loopback_only.contains(&port) {
        Reach::LoopbackOnly
    } else if route.listening.reachable.contains(&port) {
        Reach::NotRouted
    } else {
        Reach::NotListening
    })
}

/// Where a new connection to `workspace`'s `port` goes now, if anywhere.
fn target_of(table: &Table, workspace: &str, port: u16) -> Option<SocketAddr> {
    let route = table.routes.get(workspace)?;
    route.running.then(|| route.raw_target(port)).flatten()
}

/// How long a connection waits for a running workspace's port to be found
/// (discovery looks every 500 ms, then judges what the port speaks): a
/// `psql` typed right after `dual forward` gets through.
const TARGET_WAIT: Duration = Duration::from_millis(1500);

/// Where a new connection goes: now, or once the route table has the
/// port, within `TARGET_WAIT`. To a workspace that is down: nowhere, at
/// once, never left waiting.
async fn target_soon(
    table: &mut watch::Receiver<Arc<Table>>,
    workspace: &str,
    port: u16,
) -> Option<SocketAddr> {
    let deadline = tokio::time::Instant::now() + TARGET_WAIT;
    loop {
        {
            let now = table.borrow_and_update();
            if let Some(target) = target_of(&now, workspace, port) {
                return Some(target);
            }
            if !now.routes.get(workspace).is_some_and(|route| route.running) {
                return None;
            }
        }
        match tokio::time::timeout_at(deadline, table.changed()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
    }
}

/// Counts a connection open while it lives.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: &Arc<AtomicUsize>) -> Open {
        count.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(count))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes connections until aborted; its connections end with it (the
/// `JoinSet` aborts them when dropped).
async fn accept_loop(
    listener: TcpListener,
    workspace: String,
    port: u16,
    table: watch::Receiver<Arc<Table>>,
    open: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of descriptors, say: try again in a moment.
                crate::log::debug(&format!("forward to {workspace}:{port}: accept: {error}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            crate::log::debug(&format!(
                "forward to {workspace}:{port}: {MAX_CONNECTIONS} connections open; one more closed"
            ));
            continue;
        }
        let guard = Open::new(&open);
        let mut table = table.clone();
        let workspace = workspace.clone();
        connections.spawn(async move {
            let _guard = guard;
            // Looked up for each connection: the container may have moved.
            let Some(target) = target_soon(&mut table, &workspace, port).await else {
                return;
            };
            let Ok(Ok(mut upstream)) =
                tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
            else {
                return;
            };
            let mut client = client;
            // Interactive protocols (a psql prompt, redis-cli) want each
            // small write sent at once.
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let _ = pipe(&mut client, &mut upstream).await;
        });
    }
}

/// Copies both ways at once, each through a buffer of `BUFFER` bytes,
/// until both sides are done. When one side stops sending (a half-close),
/// the other is told so (its write side is shut down) and what it still
/// sends keeps flowing back.
pub async fn pipe<A, B>(client: &mut A, upstream: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(client, upstream, BUFFER, BUFFER).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::proxy::routes::Route;
    use crate::sockets::Listening;

    #[tokio::test]
    async fn a_half_closed_client_still_gets_the_servers_reply() {
        // The server reads until the client is done sending, then answers:
        // as a `psql -f` or `redis-cli < file` session ends.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_address = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = server.accept().await.unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            let reply = format!("got {} bytes: {}", got.len(), String::from_utf8_lossy(&got));
            stream.write_all(reply.as_bytes()).await.unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_address = front.local_addr().unwrap();
        let piped = tokio::spawn(async move {
            let (mut client, _) = front.accept().await.unwrap();
            let mut upstream = TcpStream::connect(server_address).await.unwrap();
            pipe(&mut client, &mut upstream).await
        });
        let mut client = TcpStream::connect(front_address).await.unwrap();
        client.write_all(b"SELECT 1;").await.unwrap();
        client.shutdown().await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut reply))
            .await
            .expect("the reply comes and the connection ends")
            .unwrap();
        assert_eq!(reply, "got 9 bytes: SELECT 1;");
        let (up, down) = piped.await.unwrap().unwrap();
        assert_eq!((up, down), (9, 22));
    }

    #[tokio::test]
    async fn large_transfers_pass_both_ways_at_once() {
        // More than the buffers hold, both ways at once: a pipe that
        // copied one direction at a time would stall here.
        let (client, mut client_end) = tokio::io::duplex(1024);
        let (mut server, mut server_end) = tokio::io::duplex(1024);
        let piped = tokio::spawn(async move { pipe(&mut client_end, &mut server_end).await });
        let size = 1 << 20;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let (mut from_client, mut to_client) = tokio::io::split(client);
        tokio::spawn(async move {
            to_client.write_all(&sent).await.unwrap();
            to_client.shutdown().await.unwrap();
        });
        let reader = tokio::spawn(async move {
            let mut back = Vec::new();
            from_client.read_to_end(&mut back).await.unwrap();
            back
        });
        // The "server" echoes what it reads as it reads it.
        let mut echoed = 0;
        let mut buf = vec![0; 8192];
        loop {
            let n = server.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            server.write_all(&buf[..n]).await.unwrap();
            echoed += n;
        }
        server.shutdown().await.unwrap();
        drop(server);
        assert_eq!(echoed, size);
        assert_eq!(reader.await.unwrap(), data);
        piped.await.unwrap().unwrap();
    }

    fn container(name: &str, running: bool, ip: Option<[u8; 4]>, published: &[u16]) -> Container {
        let pairs: Vec<(u16, u16)> = published
            .iter()
            .map(|&port| (port, 40_000 + port))
            .collect();
        crate::engine::model::test_container(name, running, ip, published, &pairs)
    }

    fn route(name: &str, running: bool, targets: &[(u16, &str)], listening: Listening) -> Route {
        Route {
            name: name.to_owned(),
            running,
            ports: Vec::new(),
            listening,
            engine: None,
            targets: targets
                .iter()
                .map(|(port, to)| (*port, to.parse().unwrap()))
                .collect(),
            kinds: BTreeMap::new(),
            tcp_targets: BTreeMap::new(),
        }
    }

    #[test]
    fn a_forward_reaches_only_a_running_workspace_the_host_can_reach() {
        let loopback_only = Listening {
            loopback_only: BTreeSet::from([6379]),
            ..Listening::default()
        };
        let table = Table {
            routes: [
                route("shop-a", true, &[(5432, "172.17.0.2:5432")], loopback_only),
                route("shop-b", false, &[], Listening::default()),
                route(
                    "shop-rootless",
                    true,
                    &[(3000, "127.0.0.1:43000")],
                    Listening::default(),
                ),
            ]
            .into_iter()
            .map(|route| (route.name.clone(), route))
            .collect(),
            focus: None,
        };
        let containers = [
            container("shop-a", true, Some([172, 17, 0, 2]), &[]),
            container("shop-b", false, Some([172, 17, 0, 3]), &[]),
            container("shop-rootless", true, None, &[3000]),
        ];
        let reach = |name: &str, port: u16| reach(&table, &containers, name, port);
        assert_eq!(
            reach("shop-a", 5432),
            Ok(Reach::Routed {
                target: "172.17.0.2:5432".into()
            })
        );
        assert_eq!(reach("shop-a", 6379), Ok(Reach::LoopbackOnly));
        assert_eq!(reach("shop-a", 9000), Ok(Reach::NotListening));
        assert_eq!(
            reach("shop-b", 5432),
            Err(Refusal::NotRunning {
                workspace: "shop-b".into()
            })
        );
        assert_eq!(
            reach("shop-z", 5432),
            Err(Refusal::UnknownWorkspace {
                workspace: "shop-z".into()
            })
        );
        // Rootless podman: no address; only published ports reach.
        assert!(matches!(
            reach("shop-rootless", 3000),
            Ok(Reach::Routed { .. })
        ));
        assert_eq!(
            reach("shop-rootless", 5432),
            Err(Refusal::Unreachable {
                workspace: "shop-rootless".into(),
                port: 5432
            })
        );
        assert_eq!(
            target_of(&table, "shop-a", 5432),
            Some("172.17.0.2:5432".parse().unwrap())
        );
        assert_eq!(target_of(&table, "shop-a", 9000), None);
        assert_eq!(target_of(&table, "shop-b", 5432), None);
    }

    #[test]
    fn refusals_are_one_tagged_object() {
        let text = serde_json::to_string(&Refusal::LocalTaken {
            port: 5432,
            forward: None,
            http: true,
        })
        .unwrap();
        assert_eq!(text, r#"{"why":"local_taken","port":5432,"http":true}"#);
        assert_eq!(
            serde_json::from_str::<Refusal>(r#"{"why":"local_taken","port":5432}"#).unwrap(),
            Refusal::LocalTaken {
                port: 5432,
                forward: None,
                http: false
            }
        );
    }
}
