//! The proxy's HTTP/1 framing against an independent parser: hyper's
//! server for requests and hyper's client for responses, in-process, over
//! in-memory pipes. No engine needed.
//!
//! For each input (a corpus of request-smuggling shapes, and seeded random
//! mutations of it), both read the bytes as a client sent them; then hyper
//! reads the bytes the proxy would send on. Answers from a dev server go
//! through the proxy's own connection loop (`conn::serve`, its client end
//! an in-memory duplex) and must read, to a client, as they read to hyper
//! straight from the server. The proxy may refuse where hyper
//! accepts (it is stricter on purpose), never the other way round; where
//! both accept, they must agree on every request: method, target, Host,
//! body, and so on where the next one starts. And what the proxy sends on
//! must read, to hyper, as exactly the requests the proxy read.
//!
//! Two differences are deliberate, and each is checked as what it is rather
//! than skipped:
//! - Request targets: the proxy takes every visible ASCII byte (as h11 and
//!   llhttp do); hyper's URI type refuses `<`, `>` and a backtick in a path
//!   and `"`, `<`, `>` in a query, and drops a `#` fragment. Where a target
//!   holds one, the input must read the same to both with those bytes
//!   swapped for `_`, and the proxy's reading must not depend on them
//!   (`target_bytes_only_hyper_minds`).
//! - An upgrade request that declares a body: the proxy refuses it, hyper
//!   reads the body as a body (`an_upgrade_with_a_body_is_refused_where_hyper_reads_a_body`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dual::proxy::http1::{self, BodyEnd, HeadError};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

/// One request as a parser read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    host: Option<String>,
    body: Vec<u8>,
}

/// How the proxy's reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Answered 400 (or 431): nothing more is read.
    Refused,
    /// The input ran out inside a request.
    Incomplete,
    /// The connection ends after a request (`Connection: close`, HTTP/1.0,
    /// an upgrade): nothing more is read as HTTP.
    Stopped,
    /// Every byte was read as whole requests.
    Clean,
}

/// The proxy's reading, as `conn` does it.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    /// The requests it forwards.
    seen: Vec<Seen>,
    /// The bytes it sends on.
    forwarded: Vec<u8>,
    end: End,
    /// Where each forwarded request's target sits in the input.
    targets: Vec<std::ops::Range<usize>>,
}

fn proxy_reads(input: &[u8]) -> Reading {
    let mut reading = Reading {
        seen: Vec::new(),
        forwarded: Vec::new(),
        end: End::Clean,
        targets: Vec::new(),
    };
    let end = proxy_reads_into(input, &mut reading);
    reading.end = end;
    reading
}

fn proxy_reads_into(input: &[u8], reading: &mut Reading) -> End {
    let Reading {
        seen,
        forwarded,
        targets,
        ..
    } = reading;
    let mut at = 0;
    loop {
        if at == input.len() {
            return End::Clean;
        }
        let mut out = Vec::new();
        let head = match http1::parse_request(&input[at..], "127.0.0.1", &mut out) {
            Ok(Some(head)) => head,
            Ok(None) => return End::Incomplete,
            Err(HeadError::Invalid(_) | HeadError::TooLarge) => return End::Refused,
        };
        if !head.origin_form {
            // Answered 400 by the proxy itself, which then closes.
            return End::Refused;
        }
        let (method, target) = request_line(&out);
        // The target follows the method (after any blank lines, which a
        // request line may follow) and the space(s) after it.
        let line = at
            + input[at..]
                .windows(method.len())
                .position(|w| w == method.as_bytes())
                .unwrap();
        let start = line
            + method.len()
            + input[line + method.len()..]
                .iter()
                .position(|&b| b != b' ')
                .unwrap_or(0);
        let span = start..start + target.len();
        assert_eq!(&input[span.clone()], target.as_bytes(), "target located");
        at += head.len;
        let mut body = Vec::new();
        let body_start = at;
        if let Some(mut end) = BodyEnd::of(head.framing) {
            match end.take(&input[at..], |data| body.extend_from_slice(data)) {
                Ok(taken) => at += taken,
                Err(_) => return End::Refused,
            }
            if !end.is_done() {
                return End::Incomplete;
            }
        }
        forwarded.extend_from_slice(&out);
        forwarded.extend_from_slice(&input[body_start..at]);
        seen.push(Seen {
            method,
            target,
            host: head.host.clone(),
            body,
        });
        targets.push(span);
        if !head.keep_alive || head.upgrade.is_some() {
            return End::Stopped;
        }
    }
}

fn request_line(head: &[u8]) -> (String, String) {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.splitn(3, |&b| b == b' ');
    let mut word = || String::from_utf8_lossy(words.next().unwrap_or_default()).into_owned();
    (word(), word())
}

/// hyper's reading of the same bytes: every request its server hands to
/// the service, and whether the connection ended in an error.
async fn hyper_reads(input: &[u8]) -> (Vec<Seen>, bool) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let (mut client, server) = tokio::io::duplex(input.len() + 64 * 1024);
    let record = Arc::clone(&seen);
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let record = Arc::clone(&record);
        async move {
            let method = request.method().to_string();
            let target = request.uri().to_string();
            let host = request
                .headers()
                .get("host")
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
            let body = request.into_body().collect().await?.to_bytes().to_vec();
            record.lock().unwrap().push(Seen {
                method,
                target,
                host,
                body,
            });
            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    });
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    // Drain what the server answers, so that it never blocks on a full pipe.
    let drain = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink).await;
    });
    let served = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .serve_connection(TokioIo::new(server), service)
        .await;
    let _ = drain.await;
    let seen = seen.lock().unwrap().clone();
    (seen, served.is_err())
}

/// Bytes the proxy takes in a request target that hyper's URI type refuses
/// somewhere in one (`<`, `>`, a backtick in a path; `"`, `<`, `>` in a
/// query) or reads otherwise (`#`: it drops the fragment). h11 and llhttp
/// take all of them.
const HYPER_ONLY_TARGET_BYTES: &[u8] = b"\"<>`#";

/// The input with every target the proxy read stripped of the bytes only
/// hyper minds (each swapped for `_`, so nothing moves).
fn plain_targets(input: &[u8], reading: &Reading) -> Vec<u8> {
    let mut plain = input.to_vec();
    for span in &reading.targets {
        for byte in &mut plain[span.clone()] {
            if HYPER_ONLY_TARGET_BYTES.contains(byte) {
                *byte = b'_';
            }
        }
    }
    plain
}

/// The verdict on one input; `Err` says how the two disagree.
async fn compare(input: &[u8]) -> Result<(), String> {
    let reading = proxy_reads(input);
    let plain = plain_targets(input, &reading);
    if plain != input {
        return target_bytes_only_hyper_minds(input, reading, &plain).await;
    }
    compare_readings(input, reading).await
}

/// The deliberate difference in targets, checked precisely: the proxy reads
/// the input exactly as it reads it with those bytes swapped (they decide
/// nothing about framing), hyper agrees with the proxy on the swapped input
/// in every way `compare` checks, and on the real input hyper reads the same
/// requests up to the first such target, where it either stops (a 400) or
/// reads the same request with the target cut short (a dropped fragment).
async fn target_bytes_only_hyper_minds(
    input: &[u8],
    reading: Reading,
    plain: &[u8],
) -> Result<(), String> {
    let swapped = proxy_reads(plain);
    let unswapped: Vec<Seen> = swapped
        .seen
        .iter()
        .zip(&reading.seen)
        .map(|(plain, real)| Seen {
            target: real.target.clone(),
            ..plain.clone()
        })
        .collect();
    if unswapped != reading.seen
        || swapped.seen.len() != reading.seen.len()
        || swapped.end != reading.end
        || swapped.forwarded.len() != reading.forwarded.len()
    {
        return Err(format!(
            "the proxy's reading turns on target bytes:\n  as sent: {reading:?}\n  swapped: {swapped:?}"
        ));
    }
    compare_readings(plain, swapped).await.map_err(|why| {
        format!("with targets' {HYPER_ONLY_TARGET_BYTES:?} swapped for `_`: {why}")
    })?;
    let (reference, _) = hyper_reads(input).await;
    let first = reading
        .targets
        .iter()
        .position(|span| input[span.clone()] != plain[span.clone()])
        .unwrap_or(reading.seen.len());
    let cut_short = |hyper: &Seen, proxy: &Seen| {
        proxy.target.starts_with(&hyper.target)
            && Seen {
                target: hyper.target.clone(),
                ..proxy.clone()
            } == *hyper
    };
    let agrees = reference.len() >= first
        && reference[..first] == reading.seen[..first]
        && reference
            .get(first)
            .is_none_or(|hyper| cut_short(hyper, &reading.seen[first]));
    if !agrees {
        return Err(format!(
            "hyper reads a target the proxy takes otherwise than by refusing it or dropping a fragment:\n  proxy: {:?}\n  hyper: {reference:?}",
            reading.seen
        ));
    }
    Ok(())
}

async fn compare_readings(input: &[u8], reading: Reading) -> Result<(), String> {
    let Reading {
        seen: proxy,
        forwarded,
        end,
        ..
    } = reading;
    let (reference, _) = hyper_reads(input).await;
    let shared = proxy.len().min(reference.len());
    if proxy[..shared] != reference[..shared] {
        return Err(format!(
            "read differently:\n  proxy: {proxy:?}\n  hyper: {reference:?}"
        ));
    }
    if proxy.len() > reference.len() {
        return Err(format!(
            "the proxy forwards a request hyper does not read:\n  proxy: {proxy:?}\n  hyper: {reference:?}"
        ));
    }
    if proxy.len() < reference.len() && !matches!(end, End::Refused | End::Stopped) {
        return Err(format!(
            "hyper reads more requests than the proxy ({end:?}):\n  proxy: {proxy:?}\n  hyper: {reference:?}"
        ));
    }
    // What the proxy sends on reads, to hyper, as what the proxy read.
    let (onward, failed) = hyper_reads(&forwarded).await;
    if onward != proxy || failed {
        return Err(format!(
            "the forwarded bytes read otherwise (error: {failed}):\n  proxy:  {proxy:?}\n  onward: {onward:?}\n  bytes: {:?}",
            String::from_utf8_lossy(&forwarded)
        ));
    }
    Ok(())
}

/// Public request-smuggling shapes (CL.TE, TE.CL, TE.TE obfuscation, chunk
/// size and extension tricks, trailers, Connection-listed framing, Host
/// confusion), each followed by a second request that a desynchronised
/// reader would take as the body's end.
fn corpus() -> Vec<Vec<u8>> {
    const NEXT: &str = "GET /next HTTP/1.1\r\nHost: b.localhost\r\n\r\n";
    let head = |extra: &str| format!("POST /first HTTP/1.1\r\nHost: a.localhost\r\n{extra}\r\n");
    // An empty chunked body, and a five-byte body, under a head's extra lines.
    let chunked_empty = |extra: &str| format!("{}0\r\n\r\n{NEXT}", head(extra));
    let hello = |extra: &str| format!("{}hello{NEXT}", head(extra));
    let mut cases: Vec<String> = vec![
        format!("GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n{NEXT}"),
        hello("Content-Length: 5\r\n"),
        format!(
            "{}5\r\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        // CL.TE and TE.CL.
        format!(
            "{}0\r\n\r\nG{NEXT}",
            head("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n")
        ),
        // TE obfuscations.
        chunked_empty("Transfer-Encoding: xchunked\r\n"),
        chunked_empty("Transfer-Encoding: chunked, identity\r\n"),
        chunked_empty("Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n"),
        chunked_empty("Transfer-Encoding : chunked\r\n"),
        chunked_empty("Transfer-Encoding:\tchunked\r\n"),
        chunked_empty("Transfer-Encoding: gzip, chunked\r\n"),
        chunked_empty("Transfer-Encoding: chunked, chunked\r\n"),
        chunked_empty("Transfer-Encoding:\r\n chunked\r\n"),
        // Content-Length shapes.
        hello("Content-Length: +5\r\n"),
        hello("Content-Length: 5\u{a0}\r\n"),
        hello("Content-Length: 5, 5\r\n"),
        hello("Content-Length: 0x5\r\n"),
        hello("Content-Length: 005\r\n"),
        hello("Content-Length: 5\r\nContent-Length: 5\r\n"),
        hello("Content-Length: 18446744073709551621\r\n"),
        // Framing named in Connection.
        format!(
            "{}{NEXT}",
            head(&format!(
                "Connection: content-length\r\nContent-Length: {}\r\n",
                NEXT.len()
            ))
        ),
        format!(
            "{}{NEXT}",
            head(&format!(
                "Connection: close, Content-Length\r\nContent-Length: {}\r\n",
                NEXT.len()
            ))
        ),
        // Chunk sizes and extensions.
        format!(
            "{}5 x\r\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}5;\r\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}5;a\nb\r\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}5;a=\"b\"\r\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}00000000000000000005\r\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}-5\r\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}0x5\r\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}5\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}5\r\nhello\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!(
            "{}10000000000000000\r\nhello\r\n0\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        // Trailers, and a request hidden as trailers.
        format!(
            "{}0\r\nX-T: 1\r\n\r\n{NEXT}",
            head("Transfer-Encoding: chunked\r\n")
        ),
        format!("{}0\r\n{NEXT}", head("Transfer-Encoding: chunked\r\n")),
        // Host confusion.
        format!("GET / HTTP/1.1\r\nHost: a.localhost\r\nHost: b.localhost\r\n\r\n{NEXT}"),
        format!("GET / HTTP/1.1\r\nHost: \u{a0}a.localhost\r\n\r\n{NEXT}"),
        format!("GET http://b.localhost/ HTTP/1.1\r\nHost: a.localhost\r\n\r\n{NEXT}"),
        // Heads.
        format!("GET / HTTP/1.1\r\nHost: a.localhost\r\nX: a\r\n b\r\n\r\n{NEXT}"),
        format!("GET / HTTP/1.1\nHost: a.localhost\n\n{NEXT}"),
        format!("GET / HTTP/1.0\r\nHost: a.localhost\r\n\r\n{NEXT}"),
        format!("GET / HTTP/1.1\r\nHost: a.localhost\r\nConnection: close\r\n\r\n{NEXT}"),
        format!("GET  / HTTP/1.1\r\nHost: a.localhost\r\n\r\n{NEXT}"),
        format!("GET / HTTP/1.1\r\nHost: a.localhost\r\nBad\0: x\r\n\r\n{NEXT}"),
    ];
    cases.push(format!("{}hello", head("Content-Length: 5\r\n")));
    for target in TARGETS {
        cases.push(format!(
            "GET {target} HTTP/1.1\r\nHost: a.localhost\r\n\r\n{NEXT}"
        ));
    }
    // Upgrades: without a body, forwarded as one; with one, refused.
    let upgrade = |extra: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: a.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{extra}\r\n"
        )
    };
    cases.push(format!("{}{NEXT}", upgrade("")));
    cases.push(format!("{}{NEXT}", upgrade("Content-Length: 0\r\n")));
    cases.push(format!(
        "POST /ws HTTP/1.0\r\nHost: a.localhost\r\nConnection: upgrade, keep-alive\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello{NEXT}"
    ));
    let mut cases: Vec<Vec<u8>> = cases.into_iter().map(String::into_bytes).collect();
    cases.extend(upgrades_with_a_body().into_iter().map(|(case, _)| case));
    cases
}

/// Targets with bytes that end nothing, taken by h11 and llhttp (curl `-g`
/// sends them raw).
const TARGETS: [&str; 6] = [
    "/q\"<>`",
    "/a?q=\"<>`",
    "/{}|\\^",
    "/a?{}|\\^`",
    "/a#frag",
    "/a?b#c\"",
];

#[test]
fn targets_strict_servers_take_are_forwarded_as_sent() {
    for target in TARGETS {
        let case = format!(
            "GET {target} HTTP/1.1\r\nHost: a.localhost\r\n\r\nGET /next HTTP/1.1\r\nHost: a.localhost\r\n\r\n"
        );
        let reading = proxy_reads(case.as_bytes());
        let targets: Vec<&str> = reading.seen.iter().map(|s| s.target.as_str()).collect();
        assert_eq!(
            (reading.end, targets),
            (End::Clean, vec![target, "/next"]),
            "{case:?}"
        );
    }
}

/// A request smuggled in the body of an upgrade request: what a server that
/// stops reading HTTP at an upgrade head (llhttp: uvicorn with httptools)
/// reads next, past the proxy's Host check and `X-Forwarded-*` rewriting.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: b.localhost\r\n\r\n";

/// Upgrade requests that declare a body, each followed by a second request;
/// with each, the body as it travels (`SMUGGLED`, framed).
fn upgrades_with_a_body() -> Vec<(Vec<u8>, Vec<u8>)> {
    const NEXT: &str = "GET /next HTTP/1.1\r\nHost: a.localhost\r\n\r\n";
    let length = format!("Content-Length: {}\r\n", SMUGGLED.len());
    let chunked = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let mut cases = Vec::new();
    for connection in [
        "Connection: Upgrade\r\n",
        "Connection: keep-alive, Upgrade\r\n",
        "Connection: keep-alive\r\nConnection: UPGRADE\r\n",
    ] {
        for (framing, body) in [
            (length.as_str(), SMUGGLED),
            ("Transfer-Encoding: chunked\r\n", chunked.as_str()),
        ] {
            let case = format!(
                "GET /ws HTTP/1.1\r\nHost: a.localhost\r\n{connection}Upgrade: websocket\r\n{framing}\r\n{body}{NEXT}"
            );
            cases.push((case.into_bytes(), body.as_bytes().to_vec()));
        }
    }
    cases
}

/// A small, seeded generator (xorshift64*): the same mutations every run.
struct Mutations(u64);

impl Mutations {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// One to three edits with the bytes framing turns on.
    fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        const BYTES: &[u8] = b"\r\n \t:;,=\"0159afAF+-x\0\x7f\xa0\x0b<`#";
        let mut out = input.to_vec();
        for _ in 0..=self.below(3) {
            let at = self.below(out.len() + 1);
            let byte = BYTES[self.below(BYTES.len())];
            match self.below(4) {
                0 if at < out.len() => out[at] = byte,
                1 => out.insert(at, byte),
                2 if at < out.len() => {
                    out.remove(at);
                }
                _ => {
                    // Repeat a line: a second header, a second chunk line.
                    let start = out[..at]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |p| p + 1);
                    let end = out[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(out.len(), |p| at + p + 1);
                    let line = out[start..end].to_vec();
                    out.splice(end..end, line);
                }
            }
        }
        out
    }
}

/// A response as a client read it: status and body, or that it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// A dev server on loopback that answers its first request with `input`
/// and closes; its address.
async fn dev_server(input: &[u8]) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let input = input.to_vec();
    let serving = tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let _ = stream.write_all(&input).await;
        let _ = stream.shutdown().await;
        // Open until the proxy is done reading.
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut [0u8; 1024]).await;
    });
    (address, serving)
}

/// What a client reads when a dev server answers `GET /` with `input`
/// through the proxy's own connection loop (`conn::serve`, the client on an
/// in-memory pipe); `Err(page)` where the proxy answered with a page of its
/// own instead (a 502: stricter than hyper is allowed).
async fn proxy_relays(input: &[u8]) -> Result<Option<Answer>, String> {
    use dual::proxy::routes::Table;
    let (target, serving) = dev_server(input).await;
    let table = Table::one_route("a", 80, target);
    let shared = Arc::new(dual::proxy::forward::Shared::fixed(
        table,
        std::time::Duration::from_secs(5),
    ));
    let (client, proxy_side) = tokio::io::duplex(input.len() + 64 * 1024);
    let peer = "127.0.0.1:40000".parse().unwrap();
    let proxy = tokio::spawn(dual::proxy::conn::serve(proxy_side, peer, 80, shared));
    let answer = hyper_reads_answer(client).await;
    proxy.abort();
    serving.abort();
    match answer {
        Some(answer) if answer.status == 502 && is_dual_page(&answer.body) => {
            Err(String::from_utf8_lossy(&answer.body).into_owned())
        }
        answer => Ok(answer),
    }
}

/// Whether a body is one of the proxy's own pages (`forward::Page`).
fn is_dual_page(body: &[u8]) -> bool {
    body.starts_with(b"<!doctype html><meta charset=utf-8><title>")
}

/// hyper's client reading `input` as the answer to `GET /`.
async fn hyper_receives(input: &[u8]) -> Option<Answer> {
    let (client, mut server) = tokio::io::duplex(input.len() + 64 * 1024);
    let input = input.to_vec();
    let serving = tokio::spawn(async move {
        let mut request = [0u8; 1024];
        let _ = tokio::io::AsyncReadExt::read(&mut server, &mut request).await;
        let _ = server.write_all(&input).await;
        let _ = server.shutdown().await;
        // Keep the pipe open until the client is done reading.
        let _ = tokio::io::AsyncReadExt::read(&mut server, &mut request).await;
    });
    let answer = hyper_reads_answer(client).await;
    serving.abort();
    answer
}

/// hyper's client sending `GET /` for `a.localhost` on `io` and reading
/// the answer whole.
async fn hyper_reads_answer(io: tokio::io::DuplexStream) -> Option<Answer> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .ok()?;
    let driving = tokio::spawn(connection);
    let request = hyper::Request::get("/")
        .header("host", "a.localhost")
        .body(http_body_util::Empty::<Bytes>::new())
        .ok()?;
    let answer = async {
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .ok()?
            .to_bytes()
            .to_vec();
        Some(Answer { status, body })
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), answer)
        .await
        .ok()
        .flatten();
    driving.abort();
    answer
}

/// The verdict on one answer from a dev server: through the proxy, a
/// client reads what hyper reads straight from the dev server.
/// `Ok(false)` where the proxy refused: a 502 page of its own, or a body
/// cut where it found it malformed (stricter than hyper is allowed).
async fn compare_answer(input: &[u8]) -> Result<bool, String> {
    let Ok(Some(relayed)) = proxy_relays(input).await else {
        return Ok(false);
    };
    let relayed = Some(relayed);
    let reference = hyper_receives(input).await;
    if reference != relayed {
        return Err(format!(
            "through the proxy a client reads otherwise than hyper straight from the server:\n  proxy: {relayed:?}\n  hyper: {reference:?}"
        ));
    }
    Ok(true)
}

/// Dev servers' answers in the shapes that decide where a body ends.
fn answers() -> Vec<Vec<u8>> {
    let ok = |extra: &str, body: &str| format!("HTTP/1.1 200 OK\r\n{extra}\r\n{body}");
    [
        ok("Content-Length: 5\r\n", "hello"),
        ok("Content-Length: +5\r\n", "hello"),
        ok("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
        ok("Content-Length: 5, 5\r\n", "hello"),
        ok("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
        ok("Transfer-Encoding: gzip, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
        ok("Transfer-Encoding: gzip\r\n", "hello until close"),
        ok("Transfer-Encoding: chunked, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
        ok("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "5\r\nhello\r\n0\r\n\r\n"),
        ok("Connection: content-length\r\nContent-Length: 2\r\n", "hello"),
        ok("Transfer-Encoding: chunked\r\n", "5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
        ok("Transfer-Encoding: chunked\r\n", "5 x\r\nhello\r\n0\r\n\r\n"),
        ok("Transfer-Encoding: chunked\r\n", "0000000000000000005\r\nhello\r\n0\r\n\r\n"),
        ok("", "no length: until close"),
        "HTTP/1.0 200 OK\r\n\r\nold server".to_owned(),
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n".to_owned(),
        "HTTP/1.1 304 Not Modified\r\n\r\n".to_owned(),
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_owned(),
        ok("X: a\r\n b\r\nContent-Length: 5\r\n", "hello"),
        ok("Content-Length: 5\u{a0}\r\n", "hello"),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

#[test]
fn answers_are_relayed_as_hyper_reads_them() {
    let runtime = runtime();
    let mut failures = Vec::new();
    let mut relayed = 0;
    for answer in answers() {
        match runtime.block_on(compare_answer(&answer)) {
            Ok(compared) => relayed += usize::from(compared),
            Err(why) => failures.push(format!("{:?}\n{why}", String::from_utf8_lossy(&answer))),
        }
    }
    // Most of the corpus is well-formed: it must go through, not be refused.
    assert!(
        relayed * 2 > answers().len(),
        "the proxy relayed only {relayed} of {} answers",
        answers().len()
    );
    let count: usize = std::env::var("DUAL_DIFFERENTIAL_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .map_or(3_000, |n: usize| n / 5);
    let answers = answers();
    let mut mutations = Mutations(0x0a75_e125_2026_1127);
    for _ in 0..count {
        if failures.len() >= 5 {
            break;
        }
        let base = &answers[mutations.below(answers.len())];
        let case = mutations.mutate(base);
        if let Err(why) = runtime.block_on(compare_answer(&case)) {
            failures.push(format!("{:?}\n{why}", String::from_utf8_lossy(&case)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_corpus_reads_as_hyper_reads_it() {
    let runtime = runtime();
    let failures: Vec<String> = corpus()
        .iter()
        .filter_map(|case| {
            runtime
                .block_on(compare(case))
                .err()
                .map(|why| format!("{:?}\n{why}", String::from_utf8_lossy(case)))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The deliberate difference on upgrades, checked precisely: the proxy
/// refuses the upgrade request and forwards nothing; hyper is not fooled
/// (it reads the declared body as the upgrade request's body, then the next
/// request); and the bytes after the head, read on their own as a server
/// that stops at an upgrade head reads them, are a request of their own
/// where the body is `Content-Length`-framed (chunk framing in front of it
/// makes that server fail instead: refused all the same, as nothing good
/// can come of it).
#[test]
fn an_upgrade_with_a_body_is_refused_where_hyper_reads_a_body() {
    let runtime = runtime();
    for (case, body) in upgrades_with_a_body() {
        let shown = String::from_utf8_lossy(&case).into_owned();
        let reading = proxy_reads(&case);
        assert_eq!(
            (reading.end, reading.seen.len(), reading.forwarded.len()),
            (End::Refused, 0, 0),
            "{shown}"
        );
        let (hyper, failed) = runtime.block_on(hyper_reads(&case));
        assert!(!failed, "{shown}");
        let targets: Vec<&str> = hyper.iter().map(|seen| seen.target.as_str()).collect();
        assert_eq!(targets, ["/ws", "/next"], "{shown}");
        assert_eq!(hyper[0].body, SMUGGLED.as_bytes(), "{shown}");
        let after_head = &case[case.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        assert!(after_head.starts_with(&body), "{shown}");
        if body == SMUGGLED.as_bytes() {
            let (alone, _) = runtime.block_on(hyper_reads(after_head));
            assert_eq!(
                (alone[0].target.as_str(), alone[0].host.as_deref()),
                ("/smuggled", Some("b.localhost")),
                "{shown}"
            );
        }
    }
}

/// Seeded mutations of the corpus: bounded in count (about a second here;
/// DUAL_DIFFERENTIAL_MUTATIONS and DUAL_DIFFERENTIAL_SEED for longer and
/// other runs).
#[test]
fn mutations_of_the_corpus_read_as_hyper_reads_them() {
    let count: usize = std::env::var("DUAL_DIFFERENTIAL_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("DUAL_DIFFERENTIAL_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5eed_d0a1_2026_1127);
    let runtime = runtime();
    let corpus = corpus();
    let mut mutations = Mutations(seed.max(1));
    let mut failures = Vec::new();
    for _ in 0..count {
        let base = &corpus[mutations.below(corpus.len())];
        let case = mutations.mutate(base);
        if let Err(why) = runtime.block_on(compare(&case)) {
            failures.push(format!("{:?}\n{why}", String::from_utf8_lossy(&case)));
            if failures.len() == 5 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
