//! `dual test-server`: the small dev server the tests, `dual verify` and the
//! benchmarks run inside real containers. It answers with its name, echoes
//! requests, streams SSE events on a timer, echoes WebSocket messages and
//! serves a large body slowly: what a proxy in front of a dev server meets.
//!
//! With `--record` it keeps the bytes it reads from every connection and
//! answers them at `GET /received`: what reached the dev server on the
//! wire, including requests hyper refuses before any handler runs.
//!
//! It ships inside the test and probe images as dual's own binary (with its
//! shared libraries), so there is one program to build, not two.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

type Body = BoxBody<Bytes, Infallible>;

/// The bytes read from every connection, in the order they came (`--record`).
type Record = Arc<Mutex<Vec<u8>>>;

/// Most bytes `--record` keeps; later ones are dropped.
const RECORD_LIMIT: usize = 4 << 20;

pub fn run(name: String, ports: Vec<u16>, record: bool) -> anyhow::Result<()> {
    let record = record.then(Record::default);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut tasks = Vec::new();
        for port in ports {
            let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await?;
            eprintln!("test-server {name} listening on :{port}");
            tasks.push(tokio::spawn(serve(listener, name.clone(), record.clone())));
        }
        for task in tasks {
            let _ = task.await;
        }
        Ok(())
    })
}

async fn serve(listener: TcpListener, name: String, record: Option<Record>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let name = name.clone();
        match record.clone() {
            None => tokio::spawn(serve_connection(stream, name, None)),
            Some(record) => {
                let recorded = Recorded {
                    inner: stream,
                    record: Arc::clone(&record),
                };
                tokio::spawn(serve_connection(recorded, name, Some(record)))
            }
        };
    }
}

async fn serve_connection<S>(stream: S, name: String, record: Option<Record>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(req, name.clone(), record.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// A connection whose reads are also appended to the record.
struct Recorded<S> {
    inner: S,
    record: Record,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = &buf.filled()[before..];
            let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
            let room = RECORD_LIMIT.saturating_sub(record.len());
            record.extend_from_slice(&read[..read.len().min(room)]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn now_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

async fn handle(
    req: Request<Incoming>,
    name: String,
    record: Option<Record>,
) -> Result<Response<Body>, Infallible> {
    let response = match (req.uri().path(), &record) {
        ("/received", Some(record)) => {
            let received = record.lock().unwrap_or_else(PoisonError::into_inner);
            Response::new(full(received.clone()))
        }
        ("/", _) => Response::new(full(name)),
        ("/echo", _) => echo(req).await,
        ("/upload", _) => upload(req).await,
        ("/stream-echo", _) => stream_echo(req),
        ("/sse", _) => sse(&req),
        ("/big", _) => big(&req),
        ("/ws", _) => websocket(req),
        _ => {
            let mut response = Response::new(full("not found\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

/// The request as JSON: method, path, headers, body.
async fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = Response::new(full(json.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Sends the request body back as it arrives, the response under way while
/// the upload goes on (a proxy that sends the whole body before reading the
/// answer deadlocks here once the socket buffers fill).
fn stream_echo(req: Request<Incoming>) -> Response<Body> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        let mut body = req.into_body();
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data()
                && sender.send(Ok(Frame::data(data))).await.is_err()
            {
                return;
            }
        }
    });
    Response::new(BodyExt::boxed(StreamBody::new(tokio_stream(receiver))))
}

/// Counts an uploaded body chunk by chunk, never holding it whole.
async fn upload(req: Request<Incoming>) -> Response<Body> {
    let mut body = req.into_body();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => total += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => break,
        }
    }
    Response::new(full(total.to_string()))
}

/// `?interval=MS&count=N`: N events, one every MS, each carrying the
/// server's send time in unix milliseconds so a client can measure latency.
fn sse(req: &Request<Incoming>) -> Response<Body> {
    let interval = Duration::from_millis(query(req, "interval").unwrap_or(1000));
    let count = query(req, "count").unwrap_or(u64::MAX);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        for n in 0..count {
            let event = format!("id: {n}\ndata: {n} {}\n\n", now_millis());
            if sender
                .send(Ok(Frame::data(Bytes::from(event))))
                .await
                .is_err()
            {
                return;
            }
            if n + 1 < count {
                tokio::time::sleep(interval).await;
            }
        }
    });
    let stream = tokio_stream(receiver);
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

/// `?bytes=N&chunk=C&delay=MS`: N bytes in chunks of C, MS apart.
fn big(req: &Request<Incoming>) -> Response<Body> {
    let total = query(req, "bytes").unwrap_or(1 << 20);
    let chunk = query(req, "chunk").unwrap_or(64 * 1024).max(1);
    let delay = Duration::from_millis(query(req, "delay").unwrap_or(0));
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
    tokio::spawn(async move {
        let mut sent = 0;
        while sent < total {
            let size = chunk.min(total - sent);
            let data = Bytes::from(vec![b'x'; usize::try_from(size).unwrap_or(0)]);
            if sender.send(Ok(Frame::data(data))).await.is_err() {
                return;
            }
            sent += size;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    });
    Response::new(BodyExt::boxed(StreamBody::new(tokio_stream(receiver))))
}

fn tokio_stream<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Answers the WebSocket handshake, then echoes every message.
fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut response = Response::new(full("expected a WebSocket upgrade\n"));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                break;
            }
            if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert("sec-websocket-accept", accept);
    }
    response
}
