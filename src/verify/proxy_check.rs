//! The proxy check: a probe container runs dual's test server, dual's real
//! forwarding code serves it on an ephemeral loopback port, and a real HTTP
//! request, an SSE stream and a WebSocket exchange go through it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Check;
use crate::proxy::routes::Table;

const NAME: &str = "dual-verify";

/// Runs the three exchanges against `target` (the probe's test server).
pub fn check(target: SocketAddr, expected_body: &str) -> Vec<Check> {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return vec![Check::fail(
                "proxy-http",
                format!("no async runtime: {error}"),
                "report this",
            )];
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(error) => {
                return vec![Check::fail(
                    "proxy-http",
                    format!("cannot listen on 127.0.0.1: {error}"),
                    "allow listening on loopback",
                )];
            }
        };
        let port = listener.local_addr().map_or(0, |a| a.port());
        let table = Table::one_route(NAME, port, target);
        let stop = Arc::new(tokio::sync::Notify::new());
        let server = tokio::spawn(crate::proxy::serve_fixed(
            listener,
            table,
            Arc::clone(&stop),
            None,
        ));
        let host = format!("{NAME}.localhost:{port}");
        let checks = vec![
            http(port, &host, expected_body).await,
            sse(port, &host).await,
            websocket(port, &host).await,
        ];
        stop.notify_one();
        let _ = server.await;
        checks
    })
}

/// Any error of a check's attempt, shown as its message.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn http(port: u16, host: &str, expected: &str) -> Check {
    const CHECK: &str = "proxy-http";
    let attempt = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = hyper::Request::get("/")
            .header("host", host)
            .body(Empty::<Bytes>::new())?;
        let started = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((
            status,
            String::from_utf8_lossy(&body).into_owned(),
            started.elapsed(),
        ))
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok((status, body, took))) if status == 200 && body == expected => Check::pass(
            CHECK,
            format!(
                "GET through the proxy answered 200 from the container in {:.1} ms",
                took.as_secs_f64() * 1000.0
            ),
        ),
        Ok(Ok((status, body, _))) => Check::fail(
            CHECK,
            format!(
                "GET through the proxy answered {status}: {}",
                body.chars().take(120).collect::<String>()
            ),
            "run `dual -v verify` and check the container's networking",
        ),
        Ok(Err(error)) => Check::fail(
            CHECK,
            format!("GET through the proxy failed: {error}"),
            "check that loopback connections are allowed",
        ),
        Err(_) => Check::fail(
            CHECK,
            "GET through the proxy did not answer within 5 s",
            "check the engine's networking",
        ),
    }
}

async fn sse(port: u16, host: &str) -> Check {
    const CHECK: &str = "proxy-sse";
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(
                format!("GET /sse?interval=300&count=2 HTTP/1.1\r\nHost: {host}\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let started = Instant::now();
        let mut seen = String::new();
        let mut buf = [0u8; 2048];
        let mut first = None;
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            let events = seen.matches("data: ").count();
            if events >= 1 && first.is_none() {
                first = Some(started.elapsed());
            }
            if events >= 2 {
                return Ok::<_, std::io::Error>((first, started.elapsed()));
            }
        }
        Ok((first, started.elapsed()))
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok((Some(first), second))) if second >= Duration::from_millis(250) => Check::pass(
            CHECK,
            format!(
                "the first event arrived after {:.1} ms and the next {:.0} ms later, on one open stream",
                first.as_secs_f64() * 1000.0,
                (second - first).as_secs_f64() * 1000.0
            ),
        ),
        Ok(Ok((first, _))) => Check::fail(
            CHECK,
            format!("the event stream did not arrive event by event (first after {first:?})"),
            "something between the proxy and the container buffers responses",
        ),
        Ok(Err(error)) => Check::fail(
            CHECK,
            format!("the event stream failed: {error}"),
            "check loopback connections",
        ),
        Err(_) => Check::fail(
            CHECK,
            "the event stream did not finish within 5 s",
            "check the engine's networking",
        ),
    }
}

async fn websocket(port: u16, host: &str) -> Check {
    const CHECK: &str = "proxy-websocket";
    let attempt = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut socket, _) =
            tokio_tungstenite::client_async(format!("ws://{host}/ws"), stream).await?;
        let started = Instant::now();
        socket
            .send(tokio_tungstenite::tungstenite::Message::text("dual verify"))
            .await?;
        let echoed = socket.next().await.ok_or("closed")??;
        let text = echoed.into_text()?;
        Ok::<_, BoxError>((text.as_str() == "dual verify", started.elapsed()))
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok((true, took))) => Check::pass(
            CHECK,
            format!(
                "a WebSocket message went through the proxy and back in {:.1} ms",
                took.as_secs_f64() * 1000.0
            ),
        ),
        Ok(Ok((false, _))) => {
            Check::fail(CHECK, "the WebSocket echo came back changed", "report this")
        }
        Ok(Err(error)) => Check::fail(
            CHECK,
            format!("the WebSocket exchange failed: {error}"),
            "check that upgrades are not stripped",
        ),
        Err(_) => Check::fail(
            CHECK,
            "the WebSocket exchange did not finish within 5 s",
            "check the engine's networking",
        ),
    }
}
