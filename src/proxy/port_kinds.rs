//! Which ports found listening in a workspace speak HTTP. A database or a
//! cache (a Postgres or Redis sidecar in the workspace's network namespace)
//! listens there too; the proxy would otherwise bind its port on the host's
//! loopback and answer a `psql -h 127.0.0.1` in HTTP, and `dual list` would
//! advertise `http://ws.localhost:5432`.
//!
//! # The rule
//! - A declared port (`ports` in `.dual.toml`) is HTTP: the user said so.
//!   It is never probed.
//! - Every other port found listening is probed, once, from the proxy to
//!   the route's own target (the container's IP and port, or the port it is
//!   published on at 127.0.0.1; never anything else): connect; wait
//!   `GREETING_WAIT` for a server that speaks first (MySQL, SSH, SMTP do):
//!   bytes that do not start with `HTTP/` are not HTTP, and nothing is sent
//!   to it (MySQL blocks a host after enough failed handshakes). If it is
//!   silent, send `PROBE` and read the first bytes within `ANSWER_WITHIN`:
//!   `HTTP/` is HTTP (whatever the status: a 400 or a 501 is an HTTP
//!   server's answer); other bytes (Redis's `-ERR`), a close or a reset
//!   (Postgres reads a startup packet, finds a nonsense length, and closes)
//!   are not HTTP: `Tcp`.
//! - No answer in time (a dev server still compiling, a connect that
//!   failed) is `Unsure`: routed as HTTP meanwhile, since a dev server must
//!   not be lost, and probed again after 1 s, doubling to 30 s, at most
//!   `MAX_ATTEMPTS` times. A database answers nonsense at once, so it is
//!   never left unsure.
//! - A port not probed yet is neither routed nor listed (a few hundred ms
//!   after its bind): routing it first would bind a database's port on the
//!   host, however briefly.
//! - Well-known database ports (`WELL_KNOWN_TCP`) are `Tcp` until a probe
//!   says HTTP: while unprobed and while unsure. So a database there is
//!   never advertised, even before its first probe returns.
//!
//! A verdict is kept per (container id, port) until the port closes or the
//! container changes. Probes run on their own tasks, `AT_ONCE` at a time,
//! each bounded in time; the control loop never waits for one.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

/// What a port speaks, as the proxy treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortKind {
    /// Routed at `http://{workspace}.localhost:{port}`.
    Http,
    /// Not HTTP: not routed, listed apart (`tcp_ports`).
    Tcp,
}

/// What one probe learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Http,
    Tcp,
    /// No answer in time, or no connection: ask again later.
    Unsure,
}

/// Ports where a database or broker listens by convention: Postgres,
/// MySQL, Redis, MongoDB, memcached, AMQP, Cassandra, SQL Server,
/// ZooKeeper, Kafka.
pub const WELL_KNOWN_TCP: [u16; 10] =
    [5432, 3306, 6379, 27017, 11211, 5672, 9042, 1433, 2181, 9092];

pub fn well_known_tcp(port: u16) -> bool {
    WELL_KNOWN_TCP.contains(&port)
}

/// How long a server that speaks first gets to say something.
const GREETING_WAIT: Duration = Duration::from_millis(200);
/// How long a silent server gets to answer `PROBE`.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// A container on a local bridge accepts in microseconds.
const CONNECT_WITHIN: Duration = Duration::from_secs(1);
/// Probes at once, over every workspace.
const AT_ONCE: usize = 32;
/// Probes of one port that found it unsure, before it stays as it is
/// (routed) until it closes: 1+2+4+8+16+30+30 s, about 1.5 minutes.
const MAX_ATTEMPTS: u32 = 8;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);

/// `OPTIONS *` is HTTP's own no-op (RFC 9110 §9.3.7: "a 'ping' or 'no-op'
/// type of method"): it names no resource, so no dev server renders a page,
/// compiles a route or runs a handler with side effects for it, as `HEAD /`
/// could (a Next.js dev server compiles `/` on its first request). Servers
/// answer it from their parser or a default (Go's net/http answers 200
/// itself, busybox httpd 400, Python's http.server 501): any `HTTP/` will
/// do. HTTP/1.1 with a Host, so that strict servers read it; `Connection:
/// close`, so that none waits for more. To a binary protocol its first
/// bytes are a nonsense length (Postgres, MongoDB, Kafka: `OPTI` is
/// ~1.3 GB) or an unknown command (Redis, memcached), answered at once.
pub const PROBE: &[u8] =
    b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nUser-Agent: dual-port-probe\r\nConnection: close\r\n\r\n";

/// The verdict of the first bytes a server sent (`closed`: and then it
/// closed); `None` while they could still begin `HTTP/`.
pub fn judge(first: &[u8], closed: bool) -> Option<Verdict> {
    const HTTP: &[u8] = b"HTTP/";
    let shared = first.len().min(HTTP.len());
    if first[..shared] != HTTP[..shared] {
        return Some(Verdict::Tcp);
    }
    if first.len() >= HTTP.len() {
        return Some(Verdict::Http);
    }
    // A close before `HTTP/` was whole (or before any byte) is no HTTP server.
    closed.then_some(Verdict::Tcp)
}

/// Reads until `judge` decides or `within` passes (then `None`). A reset is
/// a close.
async fn read_verdict(
    stream: &mut TcpStream,
    got: &mut Vec<u8>,
    within: Duration,
) -> Option<Verdict> {
    let reading = async {
        let mut chunk = [0u8; 64];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return judge(got, true),
                Ok(n) => {
                    got.extend_from_slice(&chunk[..n]);
                    if let Some(verdict) = judge(got, false) {
                        return Some(verdict);
                    }
                }
            }
        }
    };
    tokio::time::timeout(within, reading).await.ok().flatten()
}

/// Probes `target` as the module's rule says; never longer than about
/// `CONNECT_WITHIN + GREETING_WAIT + ANSWER_WITHIN`.
pub async fn probe(target: SocketAddr) -> Verdict {
    let Ok(Ok(mut stream)) = tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(target)).await
    else {
        return Verdict::Unsure;
    };
    let mut got = Vec::new();
    match read_verdict(&mut stream, &mut got, GREETING_WAIT).await {
        // A close before anything was asked says nothing of the protocol
        // (a server at its connection limit does that too).
        Some(Verdict::Tcp) if got.is_empty() => return Verdict::Unsure,
        Some(verdict) => return verdict,
        None if !got.is_empty() => return Verdict::Unsure,
        None => {}
    }
    if stream.write_all(PROBE).await.is_err() {
        return Verdict::Tcp;
    }
    read_verdict(&mut stream, &mut got, ANSWER_WITHIN)
        .await
        .unwrap_or(Verdict::Unsure)
}

/// How the proxy treats `port` given what probes said so far (`None`: no
/// probe has come back); `None`: not yet either.
fn kind_of(port: u16, verdict: Option<Verdict>) -> Option<PortKind> {
    match verdict {
        Some(Verdict::Http) => Some(PortKind::Http),
        Some(Verdict::Tcp) => Some(PortKind::Tcp),
        _ if well_known_tcp(port) => Some(PortKind::Tcp),
        Some(Verdict::Unsure) => Some(PortKind::Http),
        None => None,
    }
}

/// One undeclared port of one container, to be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidate {
    pub workspace: String,
    pub container: String,
    pub port: u16,
    pub target: SocketAddr,
}

type Key = (String, u16);

struct Entry {
    target: SocketAddr,
    verdict: Option<Verdict>,
    attempts: u32,
    in_flight: bool,
    /// When to probe again; `None`: never (a verdict, or out of attempts).
    next_at: Option<Instant>,
}

/// A probe's result, posted back to whoever runs the classifier.
pub(super) struct Probed {
    key: Key,
    target: SocketAddr,
    verdict: Verdict,
}

/// The verdicts per (container id, port), and the probes under way.
pub(super) struct Classifier {
    entries: HashMap<Key, Entry>,
    at_once: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Probed>,
}

impl Classifier {
    /// The classifier, and where its probes' results come.
    pub(super) fn new() -> (Classifier, mpsc::UnboundedReceiver<Probed>) {
        let (done, results) = mpsc::unbounded_channel();
        let classifier = Classifier {
            entries: HashMap::new(),
            at_once: Arc::new(Semaphore::new(AT_ONCE)),
            done,
        };
        (classifier, results)
    }

    /// Takes a probe's result.
    pub(super) fn take(&mut self, probed: Probed) {
        let Some(entry) = self.entries.get_mut(&probed.key) else {
            return;
        };
        if !entry.in_flight || entry.target != probed.target {
            return;
        }
        entry.in_flight = false;
        entry.verdict = Some(probed.verdict);
        entry.next_at = (probed.verdict == Verdict::Unsure && entry.attempts < MAX_ATTEMPTS)
            .then(|| Instant::now() + retry_after(entry.attempts));
        if probed.verdict == Verdict::Unsure {
            crate::log::debug(&format!(
                "port probe: {} gave no answer in time (attempt {})",
                probed.target, entry.attempts
            ));
        }
    }

    /// Forgets what is no longer a candidate, starts the probes that are
    /// due, and says what each workspace's judged ports are.
    pub(super) fn update(
        &mut self,
        candidates: &[Candidate],
    ) -> HashMap<String, BTreeMap<u16, PortKind>> {
        let now = Instant::now();
        let wanted: HashMap<Key, &Candidate> = candidates
            .iter()
            .map(|c| ((c.container.clone(), c.port), c))
            .collect();
        self.entries
            .retain(|key, entry| wanted.get(key).is_some_and(|c| c.target == entry.target));
        let mut kinds: HashMap<String, BTreeMap<u16, PortKind>> = HashMap::new();
        for (key, candidate) in wanted {
            let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
                target: candidate.target,
                verdict: None,
                attempts: 0,
                in_flight: false,
                next_at: Some(now),
            });
            if !entry.in_flight && entry.next_at.is_some_and(|at| at <= now) {
                entry.in_flight = true;
                entry.attempts += 1;
                start(&self.at_once, &self.done, key, candidate.target);
            }
            if let Some(kind) = kind_of(candidate.port, entry.verdict) {
                kinds
                    .entry(candidate.workspace.clone())
                    .or_default()
                    .insert(candidate.port, kind);
            }
        }
        kinds
    }
}

/// Probes `target` on a task of its own, once one of the `AT_ONCE` places
/// is free, and posts the result to `done`.
fn start(
    at_once: &Arc<Semaphore>,
    done: &mpsc::UnboundedSender<Probed>,
    key: Key,
    target: SocketAddr,
) {
    let (at_once, done) = (Arc::clone(at_once), done.clone());
    tokio::spawn(async move {
        let Ok(_permit) = at_once.acquire().await else {
            return;
        };
        let verdict = probe(target).await;
        let _ = done.send(Probed {
            key,
            target,
            verdict,
        });
    });
}

fn retry_after(attempts: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(LONGEST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_from_what_servers_send() {
        let cases: [(&[u8], bool, Option<Verdict>); 14] = [
            (b"HTTP/1.1 400 Bad Request\r\n", false, Some(Verdict::Http)),
            (b"HTTP/1.0 501 Not Implemented", true, Some(Verdict::Http)),
            (b"HTTP/", false, Some(Verdict::Http)),
            // Postgres: an invalid startup packet is answered by a close.
            (b"", true, Some(Verdict::Tcp)),
            // Redis, memcached.
            (
                b"-ERR unknown command 'OPTIONS'\r\n",
                false,
                Some(Verdict::Tcp),
            ),
            (b"ERROR\r\n", false, Some(Verdict::Tcp)),
            // MySQL's greeting: a length, then protocol 10.
            (b"J\0\0\0\n8.0.36\0", false, Some(Verdict::Tcp)),
            (b"SSH-2.0-OpenSSH_9.2\r\n", false, Some(Verdict::Tcp)),
            (b"220 mail ESMTP\r\n", false, Some(Verdict::Tcp)),
            // AMQP answers its own protocol header.
            (b"AMQP\0\0\x09\x01", true, Some(Verdict::Tcp)),
            // The version is case-sensitive (RFC 9112 §2.3).
            (b"http/1.1 200 OK", false, Some(Verdict::Tcp)),
            (b"HT", true, Some(Verdict::Tcp)),
            (b"HTT", false, None),
            (b"", false, None),
        ];
        for (bytes, closed, want) in cases {
            assert_eq!(
                judge(bytes, closed),
                want,
                "{:?} closed={closed}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn unsure_routes_unless_the_port_is_a_database_s() {
        assert_eq!(kind_of(8080, None), None, "not probed yet: not routed");
        assert_eq!(kind_of(8080, Some(Verdict::Unsure)), Some(PortKind::Http));
        assert_eq!(kind_of(5432, None), Some(PortKind::Tcp));
        assert_eq!(kind_of(6379, Some(Verdict::Unsure)), Some(PortKind::Tcp));
        assert_eq!(kind_of(6379, Some(Verdict::Http)), Some(PortKind::Http));
        assert_eq!(kind_of(8080, Some(Verdict::Tcp)), Some(PortKind::Tcp));
    }

    #[test]
    fn retries_back_off_to_a_bound() {
        let waits: Vec<u64> = (1..=MAX_ATTEMPTS)
            .map(|n| retry_after(n).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    /// A server on loopback that does `serve` with each connection.
    async fn server<F, Fut>(serve: F) -> SocketAddr
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream));
            }
        });
        address
    }

    #[tokio::test]
    async fn probes_tell_http_from_databases() {
        let http = server(|mut s| async move {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        })
        .await;
        // Reads the 8 bytes of a startup packet and closes, as Postgres does.
        let postgres = server(|mut s| async move {
            let mut buf = [0u8; 8];
            let _ = s.read_exact(&mut buf).await;
        })
        .await;
        let mysql = server(|mut s| async move {
            let _ = s.write_all(b"J\0\0\0\n8.0.36\0").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let silent = server(|mut s| async move {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        })
        .await;
        assert_eq!(probe(http).await, Verdict::Http);
        assert_eq!(probe(postgres).await, Verdict::Tcp);
        let started = Instant::now();
        assert_eq!(probe(mysql).await, Verdict::Tcp);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(probe(silent).await, Verdict::Unsure);
    }
}
