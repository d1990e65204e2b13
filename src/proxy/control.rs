//! The proxy's control socket: how the CLI and the browser ask the running
//! proxy rather than read files behind its back (as `ssh -O` and `tmux` do).
//!
//! A Unix socket, `proxy.sock` in dual's data dir, mode 0600 (only its user
//! may connect; a peer of another uid is also refused by its credentials).
//!
//! # Protocol (version 1)
//! One JSON object per line (UTF-8, `\n`-terminated, at most `MAX_LINE`
//! bytes), each with `"v": 1`. A client sends requests, one at a time; each
//! gets one reply line:
//!
//! | request                                   | reply                                           |
//! |-------------------------------------------|-------------------------------------------------|
//! | `{"v":1,"op":"status"}`                   | `{"v":1,"reply":"status", …ProxyStatus}`        |
//! | `{"v":1,"op":"listening"}`                | `{"v":1,"reply":"listening","listening":{…}}`   |
//! | `{"v":1,"op":"conflicts"}`                | `{"v":1,"reply":"conflicts","conflicts":[…]}`   |
//! | `{"v":1,"op":"focus"}`                    | `{"v":1,"reply":"focus","focus":NAME or null}`  |
//! | `{"v":1,"op":"focus","set":"NAME"}`       | the same, sent once the new focus routes        |
//! | `{"v":1,"op":"focus","clear":true}`       | the same                                        |
//! | `{"v":1,"op":"subscribe"}`                | `{"v":1,"reply":"subscribed"}`, then events     |
//! | `{"v":1,"op":"forward_add",…}`            | `{"v":1,"reply":"forwarded",…}`, or `"forward_refused"` with a `refusal` |
//! | `{"v":1,"op":"forward_list"}`             | `{"v":1,"reply":"forwards","forwards":[…]}`     |
//! | `{"v":1,"op":"forward_remove",…}`         | the same, of the forwards it stopped            |
//!
//! `forward_add` takes `workspace`, `port` and optionally `local`;
//! `forward_remove` takes `local` or `workspace`, and stops all with neither
//! (see `tcp_forward`).
//!
//! A request that cannot be read gets `{"v":1,"reply":"error","error":"…"}`
//! and the connection stays open (but for a line over `MAX_LINE`, after
//! which it is closed). A connection idle for `IDLE` is closed.
//!
//! After `subscribe`, the proxy sends an event line on each change, and
//! nothing else: `{"v":1,"event":"routes","workspaces":[…]}` (a container
//! started or stopped, a route changed), `"listening"` (ports found),
//! `"engine"` (`engine`, `reachable`), `"focus"`, `"conflicts"`,
//! `"services"` (`workspace`: a service's state changed) and `"state"`
//! (dual's state file changed). A subscriber that falls `QUEUE` events
//! behind, or does not take a line within `WRITE_WITHIN`, is dropped:
//! never does a slow reader hold the proxy up. A client ignores events it
//! does not know (later versions may add some).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::conflicts::Conflict;
use super::routes::Table;
use super::tcp_forward::{Added, ForwardInfo, Refusal as ForwardRefusal};
use super::{Posted, log};
use crate::engine::EngineKind;
use crate::sockets::Listening;

/// The protocol's version: the `v` of every line.
pub const VERSION: u32 = 1;
/// The longest line either side sends or takes (a status of hundreds of
/// workspaces fits many times over).
pub const MAX_LINE: usize = 1 << 20;
/// The longest request line the proxy reads.
const MAX_REQUEST: usize = 16 * 1024;
/// A connection with no request for this long is closed.
const IDLE: Duration = Duration::from_secs(10);
/// How long a client has to take one line.
const WRITE_WITHIN: Duration = Duration::from_secs(2);
/// How many events a subscriber may fall behind before it is dropped.
const QUEUE: usize = 256;
/// At most this many clients at once; more are closed at once.
const MAX_CLIENTS: usize = 64;
/// How long the CLI waits for an answer (the proxy answers from memory).
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

pub fn socket_path() -> PathBuf {
    crate::paths::data_dir().join("proxy.sock")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status,
    Listening,
    Conflicts,
    /// Without `set` or `clear`: which workspace is in focus.
    Focus {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        clear: bool,
    },
    Subscribe,
    /// A raw TCP forward from 127.0.0.1 to a workspace's port (see
    /// `tcp_forward`); `local` by default: `port`, where it is free.
    ForwardAdd {
        workspace: String,
        port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<u16>,
    },
    ForwardList,
    /// The forwards on `local`, or to `workspace`; with neither, all.
    ForwardRemove {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Answer {
    Status(ProxyStatus),
    Listening {
        listening: BTreeMap<String, Listening>,
    },
    Conflicts {
        conflicts: Vec<Conflict>,
    },
    Focus {
        focus: Option<String>,
    },
    Subscribed,
    Error {
        error: String,
    },
    Forwarded(Added),
    ForwardRefused {
        refusal: ForwardRefusal,
    },
    Forwards {
        forwards: Vec<ForwardInfo>,
    },
}

/// The proxy's live view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStatus {
    pub pid: u32,
    pub engines: Vec<EngineStatus>,
    pub workspaces: Vec<WorkspaceStatus>,
    pub focus: Option<String>,
    pub conflicts: Vec<Conflict>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    pub engine: EngineKind,
    /// Whether it answered when last asked; when not, the workspaces of it
    /// are as it last told them.
    pub reachable: bool,
    /// The engine host's address, when it is another host (`ssh://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceStatus {
    pub name: String,
    pub engine: Option<EngineKind>,
    /// Whether its container runs.
    pub running: bool,
    /// The ports it declares (`ports` in `.dual.toml`).
    pub ports: Vec<u16>,
    /// What it was found listening on.
    pub listening: Listening,
    /// Each routed port and where it goes (`172.17.0.2:3000`).
    #[serde(deserialize_with = "port_keys")]
    pub routes: BTreeMap<u16, String>,
    /// Ports it listens on that do not speak HTTP (a database): not routed
    /// (see `port_kinds`). Absent from a proxy before this field.
    #[serde(default)]
    pub tcp_ports: Vec<u16>,
}

/// A map keyed by port. JSON writes the keys as strings, and serde reads a
/// tagged enum's fields (`Answer`, `Event`) through a buffer that hands
/// them on as strings, which `u16` alone refused: every status with a
/// route failed to read, and `dual list` fell back to reading `/proc`.
fn port_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<u16, String>, D::Error> {
    let raw = BTreeMap::<String, String>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(port, target)| {
            let port = port
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("`{port}` is not a port number")))?;
            Ok((port, target))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Routes {
        workspaces: Vec<WorkspaceStatus>,
    },
    Listening {
        listening: BTreeMap<String, Listening>,
    },
    Engine {
        engine: EngineKind,
        reachable: bool,
    },
    Focus {
        focus: Option<String>,
    },
    Conflicts {
        conflicts: Vec<Conflict>,
    },
    Services {
        workspace: String,
    },
    State,
}

/// One line of the protocol: its version, then the rest.
#[derive(Serialize, Deserialize)]
struct Line<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

fn line<T: Serialize>(body: T) -> String {
    let mut text = serde_json::to_string(&Line { v: VERSION, body }).unwrap_or_else(|error| {
        format!("{{\"v\":{VERSION},\"reply\":\"error\",\"error\":\"{error}\"}}")
    });
    text.push('\n');
    text
}

/// A request line, read: a wrong version or shape is an error to send back.
fn parse_request(text: &[u8]) -> Result<Request, String> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|error| format!("not a JSON object: {error}"))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "protocol version {v} is not spoken here (only {VERSION})"
            ));
        }
        None => return Err(format!("no protocol version: send \"v\":{VERSION}")),
    }
    serde_json::from_value(value).map_err(|error| format!("not a request: {error}"))
}

pub(super) fn workspaces_of(table: &Table) -> Vec<WorkspaceStatus> {
    table
        .routes
        .values()
        .map(|route| WorkspaceStatus {
            name: route.name.clone(),
            engine: route.engine,
            running: route.running,
            ports: route.ports.clone(),
            listening: route.listening.clone(),
            routes: route
                .targets
                .iter()
                .map(|(port, target)| (*port, target.to_string()))
                .collect(),
            tcp_ports: route.tcp_ports(),
        })
        .collect()
}

/// A request from a client, for the control loop to answer.
pub(super) struct Asked {
    pub request: Request,
    pub reply: oneshot::Sender<Answer>,
}

/// The control socket, listening: where the loop publishes events.
pub(super) struct Server {
    pub events: broadcast::Sender<Arc<str>>,
    path: PathBuf,
}

impl Server {
    /// Binds the socket (a dead proxy's left there is replaced: whoever
    /// calls this holds the proxy lock) and serves it on this runtime.
    pub(super) fn start(posted: mpsc::UnboundedSender<Posted>) -> std::io::Result<Server> {
        let path = socket_path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        // Made 0600 from the start, not chmod-ed after: no moment where
        // another user could connect.
        let old = rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(&path);
        rustix::process::umask(old);
        let listener = bound?;
        let (events, _) = broadcast::channel(QUEUE);
        tokio::spawn(accept(listener, posted, events.clone()));
        Ok(Server { events, path })
    }

    /// Sends `event` to every subscriber (none: nothing happens).
    pub(super) fn publish(&self, event: Event) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(line(event).into());
        }
    }

    pub(super) fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept(
    listener: UnixListener,
    posted: mpsc::UnboundedSender<Posted>,
    events: broadcast::Sender<Arc<str>>,
) {
    let clients = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    let me = rustix::process::getuid().as_raw();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                log(&format!("control socket: cannot accept: {error}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !stream.peer_cred().is_ok_and(|cred| cred.uid() == me) {
            continue;
        }
        let Ok(permit) = Arc::clone(&clients).try_acquire_owned() else {
            crate::log::debug("control socket: too many clients; closing one");
            continue;
        };
        let (posted, events) = (posted.clone(), events.clone());
        tokio::spawn(async move {
            serve_client(stream, posted, events).await;
            drop(permit);
        });
    }
}

async fn serve_client(
    stream: UnixStream,
    posted: mpsc::UnboundedSender<Posted>,
    events: broadcast::Sender<Arc<str>>,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut request = Vec::new();
    loop {
        request.clear();
        let limit = u64::try_from(MAX_REQUEST).unwrap_or(u64::MAX) + 1;
        let read = tokio::time::timeout(
            IDLE,
            (&mut reader).take(limit).read_until(b'\n', &mut request),
        )
        .await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        if !request.ends_with(b"\n") {
            let why = if request.len() > MAX_REQUEST {
                format!("a request line longer than {MAX_REQUEST} bytes")
            } else {
                "a request line without its newline".to_owned()
            };
            if send(&mut write, &line(Answer::Error { error: why })).await {
                // Closed with the rest unread, the socket would be reset and
                // the client could lose the error: the rest is read, for a
                // while, and thrown away.
                let _ = write.shutdown().await;
                let rest = (&mut reader).take(u64::try_from(MAX_LINE).unwrap_or(u64::MAX));
                let _ = tokio::time::timeout(WRITE_WITHIN, async {
                    let mut rest = rest;
                    tokio::io::copy(&mut rest, &mut tokio::io::sink()).await
                })
                .await;
            }
            return;
        }
        let answer = match parse_request(&request) {
            Err(error) => Answer::Error { error },
            Ok(Request::Subscribe) => {
                let receiver = events.subscribe();
                if send(&mut write, &line(Answer::Subscribed)).await {
                    forward_events(receiver, write).await;
                }
                return;
            }
            Ok(request) => {
                let (reply, answer) = oneshot::channel();
                if posted
                    .send(Posted::Asked(Asked { request, reply }))
                    .is_err()
                {
                    return;
                }
                answer.await.unwrap_or_else(|_| Answer::Error {
                    error: "the proxy is stopping".into(),
                })
            }
        };
        if !send(&mut write, &line(answer)).await {
            return;
        }
    }
}

/// Writes one line, within `WRITE_WITHIN`; whether it was taken.
async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, text: &str) -> bool {
    matches!(
        tokio::time::timeout(WRITE_WITHIN, write.write_all(text.as_bytes())).await,
        Ok(Ok(()))
    )
}

async fn forward_events(
    mut receiver: broadcast::Receiver<Arc<str>>,
    mut write: tokio::net::unix::OwnedWriteHalf,
) {
    loop {
        match receiver.recv().await {
            Ok(text) => {
                if !send(&mut write, &text).await {
                    crate::log::debug("control socket: a subscriber took no events; dropped");
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                crate::log::debug(&format!(
                    "control socket: a subscriber fell {missed} events behind; dropped"
                ));
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

// The client side: blocking calls for the CLI and the browser.

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no proxy is running")]
    NotRunning,
    #[error("the proxy (pid {pid}) did not answer on `{}`: {source}", path.display())]
    NoAnswer {
        pid: u32,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the proxy refused the request: {0}")]
    Refused(String),
    #[error("the proxy's answer could not be read: {0}")]
    Garbled(String),
}

impl ControlError {
    fn io(source: std::io::Error) -> ControlError {
        match crate::proxy::instance::running_pid() {
            None => ControlError::NotRunning,
            Some(pid) => ControlError::NoAnswer {
                pid,
                path: socket_path(),
                source,
            },
        }
    }
}

fn connect() -> Result<std::os::unix::net::UnixStream, ControlError> {
    let stream =
        std::os::unix::net::UnixStream::connect(socket_path()).map_err(ControlError::io)?;
    stream
        .set_read_timeout(Some(ANSWER_WITHIN))
        .and_then(|()| stream.set_write_timeout(Some(ANSWER_WITHIN)))
        .map_err(ControlError::io)?;
    Ok(stream)
}

/// Reads one line of at most `MAX_LINE` bytes and parses it.
fn read_line<T: serde::de::DeserializeOwned>(
    reader: &mut impl BufRead,
) -> Result<Option<T>, ControlError> {
    let mut text = Vec::new();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
    let read = std::io::Read::take(&mut *reader, limit)
        .read_until(b'\n', &mut text)
        .map_err(ControlError::io)?;
    if read == 0 {
        return Ok(None);
    }
    if !text.ends_with(b"\n") {
        return Err(ControlError::Garbled("a line cut short or too long".into()));
    }
    let parsed: Line<T> =
        serde_json::from_slice(&text).map_err(|error| ControlError::Garbled(error.to_string()))?;
    if parsed.v != VERSION {
        return Err(ControlError::Garbled(format!(
            "protocol version {} (this dual speaks {VERSION}); `dual proxy stop` then `dual proxy start` runs this version",
            parsed.v
        )));
    }
    Ok(Some(parsed.body))
}

/// Asks the running proxy one thing.
pub fn ask(request: &Request) -> Result<Answer, ControlError> {
    let mut stream = connect()?;
    stream
        .write_all(line(request).as_bytes())
        .map_err(ControlError::io)?;
    let mut reader = std::io::BufReader::new(stream);
    match read_line(&mut reader)? {
        Some(Answer::Error { error }) => Err(ControlError::Refused(error)),
        Some(answer) => Ok(answer),
        None => Err(ControlError::Garbled(
            "the proxy closed the connection".into(),
        )),
    }
}

/// The running proxy's live view; `None` when no proxy answers.
pub fn status() -> Option<ProxyStatus> {
    match ask(&Request::Status) {
        Ok(Answer::Status(status)) => Some(status),
        Ok(_) => None,
        Err(error) => {
            crate::log::debug(&format!("proxy status: {error}"));
            None
        }
    }
}

/// What the running proxy found each workspace listening on.
pub fn listening() -> Option<HashMap<String, Listening>> {
    match ask(&Request::Listening) {
        Ok(Answer::Listening { listening }) => Some(listening.into_iter().collect()),
        _ => None,
    }
}

/// The ports the running proxy cannot serve; none when no proxy answers.
pub fn conflicts() -> Vec<Conflict> {
    match ask(&Request::Conflicts) {
        Ok(Answer::Conflicts { conflicts }) => conflicts,
        _ => Vec::new(),
    }
}

/// Sets (`Some`) or clears (`None`) the focus of the running proxy, which
/// answers once plain `localhost` routes by it.
pub fn set_focus(name: Option<&str>) -> Result<Option<String>, ControlError> {
    let request = Request::Focus {
        set: name.map(str::to_owned),
        clear: name.is_none(),
    };
    match ask(&request)? {
        Answer::Focus { focus } => Ok(focus),
        other => Err(ControlError::Garbled(format!("{other:?}"))),
    }
}

/// Asks the running proxy to forward 127.0.0.1:`local` (by default: `port`
/// where it is free) to `workspace`'s `port`; the proxy's refusal is the
/// inner error.
pub fn forward_add(
    workspace: &str,
    port: u16,
    local: Option<u16>,
) -> Result<Result<Added, ForwardRefusal>, ControlError> {
    let request = Request::ForwardAdd {
        workspace: workspace.to_owned(),
        port,
        local,
    };
    match ask(&request)? {
        Answer::Forwarded(added) => Ok(Ok(added)),
        Answer::ForwardRefused { refusal } => Ok(Err(refusal)),
        other => Err(ControlError::Garbled(format!("{other:?}"))),
    }
}

/// The running proxy's forwards.
pub fn forwards() -> Result<Vec<ForwardInfo>, ControlError> {
    match ask(&Request::ForwardList)? {
        Answer::Forwards { forwards } => Ok(forwards),
        other => Err(ControlError::Garbled(format!("{other:?}"))),
    }
}

/// Stops the forwards on `local`, or to `workspace`, or all; those stopped.
pub fn forward_remove(
    local: Option<u16>,
    workspace: Option<&str>,
) -> Result<Vec<ForwardInfo>, ControlError> {
    let request = Request::ForwardRemove {
        local,
        workspace: workspace.map(str::to_owned),
    };
    match ask(&request)? {
        Answer::Forwards { forwards } => Ok(forwards),
        other => Err(ControlError::Garbled(format!("{other:?}"))),
    }
}

/// The running proxy's events, as they come (blocking).
pub struct Subscription {
    reader: std::io::BufReader<std::os::unix::net::UnixStream>,
}

/// Subscribes to the running proxy's events.
pub fn subscribe() -> Result<Subscription, ControlError> {
    let mut stream = connect()?;
    stream
        .write_all(line(Request::Subscribe).as_bytes())
        .map_err(ControlError::io)?;
    let mut reader = std::io::BufReader::new(stream);
    match read_line(&mut reader)? {
        Some(Answer::Subscribed) => {}
        Some(Answer::Error { error }) => return Err(ControlError::Refused(error)),
        _ => return Err(ControlError::Garbled("no subscription".into())),
    }
    // Events come when they come.
    reader
        .get_ref()
        .set_read_timeout(None)
        .map_err(ControlError::io)?;
    Ok(Subscription { reader })
}

impl Iterator for Subscription {
    /// An event, or `None` for one this version does not know.
    type Item = Option<Event>;

    /// Ends when the proxy stops (or drops this subscriber).
    fn next(&mut self) -> Option<Self::Item> {
        match read_line::<serde_json::Value>(&mut self.reader) {
            Ok(Some(value)) => Some(serde_json::from_value(value).ok()),
            Ok(None) | Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_are_one_versioned_line_each() {
        let text = line(Request::Focus {
            set: Some("shop-a".into()),
            clear: false,
        });
        assert_eq!(text, "{\"v\":1,\"op\":\"focus\",\"set\":\"shop-a\"}\n");
        assert_eq!(
            parse_request(text.trim_end().as_bytes()),
            Ok(Request::Focus {
                set: Some("shop-a".into()),
                clear: false
            })
        );
        let answer = line(Answer::Focus { focus: None });
        assert_eq!(answer, "{\"v\":1,\"reply\":\"focus\",\"focus\":null}\n");
        let mut reader = std::io::Cursor::new(answer.into_bytes());
        assert_eq!(
            read_line::<Answer>(&mut reader).unwrap(),
            Some(Answer::Focus { focus: None })
        );
    }

    #[test]
    fn forward_requests_are_lines_too() {
        let text = line(Request::ForwardAdd {
            workspace: "shop-a".into(),
            port: 5432,
            local: None,
        });
        assert_eq!(
            text,
            "{\"v\":1,\"op\":\"forward_add\",\"workspace\":\"shop-a\",\"port\":5432}\n"
        );
        assert_eq!(
            parse_request(b"{\"v\":1,\"op\":\"forward_remove\",\"local\":15432}"),
            Ok(Request::ForwardRemove {
                local: Some(15432),
                workspace: None
            })
        );
        let refused = line(Answer::ForwardRefused {
            refusal: ForwardRefusal::NotRunning {
                workspace: "shop-a".into(),
            },
        });
        let mut reader = std::io::Cursor::new(refused.into_bytes());
        assert!(matches!(
            read_line::<Answer>(&mut reader).unwrap(),
            Some(Answer::ForwardRefused {
                refusal: ForwardRefusal::NotRunning { .. }
            })
        ));
    }

    #[test]
    fn a_status_from_a_proxy_before_tcp_ports_still_reads() {
        let old = "{\"v\":1,\"reply\":\"status\",\"pid\":7,\"engines\":[],\"focus\":null,\"conflicts\":[],\"workspaces\":[{\"name\":\"a\",\"engine\":null,\"running\":true,\"ports\":[],\"listening\":{\"reachable\":[5432],\"loopback_only\":[]},\"routes\":{}}]}\n";
        let mut reader = std::io::Cursor::new(old.as_bytes());
        let Some(Answer::Status(status)) = read_line::<Answer>(&mut reader).unwrap() else {
            panic!("not a status");
        };
        assert!(status.workspaces[0].tcp_ports.is_empty());
    }

    #[test]
    fn a_status_with_routes_reads_back() {
        let status = ProxyStatus {
            pid: 7,
            engines: Vec::new(),
            workspaces: vec![WorkspaceStatus {
                name: "a".into(),
                engine: None,
                running: true,
                ports: vec![3000],
                listening: Listening::default(),
                routes: BTreeMap::from([(3000, "172.17.0.2:3000".to_owned())]),
                tcp_ports: vec![5432],
            }],
            focus: None,
            conflicts: Vec::new(),
        };
        let text = line(Answer::Status(status.clone()));
        let mut reader = std::io::Cursor::new(text.into_bytes());
        assert_eq!(
            read_line::<Answer>(&mut reader).unwrap(),
            Some(Answer::Status(status))
        );
    }

    #[test]
    fn a_bad_request_says_what_was_wrong() {
        let error = parse_request(b"{\"op\":\"status\"}").unwrap_err();
        assert!(error.contains("\"v\":1"), "{error}");
        let error = parse_request(b"{\"v\":7,\"op\":\"status\"}").unwrap_err();
        assert!(error.contains("version 7"), "{error}");
        let error = parse_request(b"{\"v\":1,\"op\":\"reboot\"}").unwrap_err();
        assert!(error.contains("not a request"), "{error}");
        let error = parse_request(b"status").unwrap_err();
        assert!(error.contains("not a JSON object"), "{error}");
    }
}
