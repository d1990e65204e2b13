//! One client connection, start to end: read a request head, decide whether
//! dual routes it, send the rewritten head and the body on to the
//! workspace's container, and the response back, bodies streamed as they
//! come in the framing they came in. HTTP/1 requests on a connection come one
//! after another, so each client connection keeps one upstream connection
//! and reuses it (keep-alive on both sides, no pool to share or lock).
//!
//! Forwarding raw heads instead of going through a general HTTP library's
//! client and server halves is what makes the proxy cost less CPU per
//! request than nginx (research/bench-proxy.md).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tokio::sync::watch;

use super::forward::{self, Refusal, Shared};
use super::http1::{self, BodyEnd, ClientHop, Framing, HeadError, RequestHead, ResponseHead};
use super::routes::Table;

/// A client gets this long to send each request head, and an idle
/// keep-alive connection is closed after it.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// A connect to a container on a local bridge completes in microseconds; a
/// stopped one never answers (its address is gone), so waiting long only
/// delays the 502. 1 s leaves room for a loaded machine (500 ms was seen to
/// fail under the full test suite on 2 cores).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Dev servers close idle keep-alive connections (node: after 5 s); one idle
/// longer than this is replaced rather than risk sending into a closing one.
const IDLE_REUSE: Duration = Duration::from_secs(3);
const READ_SIZE: usize = 16 * 1024;
/// How long a closing connection reads and drops what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

struct Upstream {
    target: SocketAddr,
    stream: TcpStream,
    buf: BytesMut,
    last_used: Instant,
}

struct Connection {
    client: TcpStream,
    /// The client's address as X-Forwarded-For gives it.
    peer: String,
    port: u16,
    /// The route table as this connection last saw it, and where new ones
    /// come: checking for a new table reads one shared counter, where
    /// taking the table on every request would write to memory shared by
    /// every worker thread.
    table: Arc<Table>,
    tables: watch::Receiver<Arc<Table>>,
    buf: BytesMut,
    request_out: Vec<u8>,
    response_out: Vec<u8>,
    upstream: Option<Upstream>,
}

/// Serves one client connection until either side closes it.
pub async fn serve(client: TcpStream, peer: SocketAddr, port: u16, shared: Arc<Shared>) {
    let mut tables = shared.table.clone();
    let table = tables.borrow_and_update().clone();
    let mut connection = Connection {
        client,
        peer: peer.ip().to_string(),
        port,
        table,
        tables,
        buf: BytesMut::with_capacity(READ_SIZE),
        request_out: Vec::with_capacity(1024),
        response_out: Vec::with_capacity(1024),
        upstream: None,
    };
    let _ = connection.run().await;
}

/// What became of one exchange.
enum Next {
    KeepAlive,
    Close,
}

impl Connection {
    async fn run(&mut self) -> io::Result<()> {
        let deadline = tokio::time::sleep(HEAD_TIMEOUT);
        tokio::pin!(deadline);
        let mut armed = Instant::now();
        loop {
            let head = loop {
                match http1::parse_request(&self.buf, &self.peer, &mut self.request_out) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(HeadError::TooLarge) => {
                        return self.client_error(431, "Request headers too large").await;
                    }
                    Err(HeadError::Invalid(why)) => return self.client_error(400, why).await,
                }
                // Re-armed at most once a second: moving a timer on every
                // request costs more than a deadline up to 1 s early.
                let now = Instant::now();
                if now.duration_since(armed) > Duration::from_secs(1) {
                    deadline.as_mut().reset((now + HEAD_TIMEOUT).into());
                    armed = now;
                }
                tokio::select! {
                    biased;
                    read = read_into(&mut self.client, &mut self.buf) => {
                        if read? == 0 {
                            return Ok(());
                        }
                    }
                    () = &mut deadline => return Ok(()),
                }
            };
            self.buf.advance(head.len);
            match self.exchange(&head).await? {
                Next::KeepAlive => {}
                Next::Close => {
                    self.close().await;
                    return Ok(());
                }
            }
        }
    }

    /// Answers a request the client got wrong, then closes.
    async fn client_error(&mut self, status: u16, why: &str) -> io::Result<()> {
        let page = forward::Page::plain(status, why);
        page.write(&mut self.response_out, false);
        self.client.write_all(&self.response_out).await?;
        self.close().await;
        Ok(())
    }

    /// Closes the client's connection after the response: first our side,
    /// then what the client still sends (a body dual refused to read) is
    /// read and dropped for a moment. Closing with unread data would reset
    /// the connection, and the client could lose the response it was sent.
    async fn close(&mut self) {
        let _ = self.client.shutdown().await;
        let linger = async {
            loop {
                self.buf.clear();
                match read_into(&mut self.client, &mut self.buf).await {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, linger).await;
    }

    async fn page(&mut self, page: forward::Page, head: &RequestHead) -> io::Result<Next> {
        // A body the client is still sending is not read: close after.
        let keep_alive = head.keep_alive && head.framing == Framing::None;
        page.write(&mut self.response_out, keep_alive);
        self.client.write_all(&self.response_out).await?;
        Ok(if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        })
    }

    async fn exchange(&mut self, head: &RequestHead) -> io::Result<Next> {
        if self.tables.has_changed().unwrap_or(false) {
            self.table = self.tables.borrow_and_update().clone();
        }
        let (name, target) = match forward::route(head, &self.table, self.port) {
            Ok(route) => route,
            Err(refusal) => {
                let page = forward::refusal_page(&refusal, &self.table, self.port);
                let next = self.page(page, head).await?;
                // A target that is no path is no request dual can read
                // further on this connection: where the next one starts is
                // a guess a server might not share.
                return Ok(if matches!(refusal, Refusal::AbsoluteForm) {
                    Next::Close
                } else {
                    next
                });
            }
        };

        let (response, mut upstream) = match self.send_request(head, &name, target).await {
            Ok(sent) => sent,
            Err(error) => {
                // The container may have stopped while we connected.
                let stopped = self
                    .tables
                    .borrow()
                    .routes
                    .get(&name)
                    .is_some_and(|r| !r.running);
                let page = if stopped {
                    forward::refusal_page(&Refusal::Stopped(name), &self.table, self.port)
                } else {
                    forward::upstream_error_page(&name, target, &error)
                };
                return self.page(page, head).await;
            }
        };
        let (next, reusable) = self.respond(head, response, &mut upstream).await?;
        if reusable {
            upstream.last_used = Instant::now();
            self.upstream = Some(upstream);
        }
        Ok(next)
    }

    /// Sends the request on (reusing this connection's upstream connection
    /// when it is fresh) and reads the response head, skipping nothing: 1xx
    /// heads other than 101 go to the client as they come. Returns the head
    /// and the upstream connection the rest of the response comes on.
    async fn send_request(
        &mut self,
        head: &RequestHead,
        name: &str,
        target: SocketAddr,
    ) -> io::Result<(ResponseHead, Upstream)> {
        let reusable = self
            .upstream
            .take()
            .filter(|u| u.target == target && u.last_used.elapsed() < IDLE_REUSE);
        let reused = reusable.is_some();
        let mut upstream = match reusable {
            Some(upstream) => upstream,
            None => self.connect_unless_stopped(name, target).await?,
        };
        let mut result = self.send_on(&mut upstream, head).await;
        // An idle connection the server closed as we reused it: one retry
        // on a new connection, when nothing of a body has been consumed.
        if reused
            && head.framing == Framing::None
            && matches!(&result, Err(SendError::BeforeResponse(_)))
        {
            upstream = self.connect_unless_stopped(name, target).await?;
            result = self.send_on(&mut upstream, head).await;
        }
        match result {
            Ok(response) => Ok((response, upstream)),
            Err(SendError::BeforeResponse(error) | SendError::Other(error)) => Err(error),
        }
    }

    /// Connects to a workspace's container, giving up as soon as the route
    /// table says the workspace stopped: its address will never answer, and
    /// the 502 should not wait out the connect timeout.
    async fn connect_unless_stopped(
        &mut self,
        name: &str,
        target: SocketAddr,
    ) -> io::Result<Upstream> {
        let connecting = connect(target);
        tokio::pin!(connecting);
        loop {
            tokio::select! {
                result = &mut connecting => return result,
                changed = self.tables.changed() => {
                    if changed.is_err() {
                        return connecting.await;
                    }
                    self.table = self.tables.borrow_and_update().clone();
                    let still_there = self.table.routes.get(name).is_some_and(|route| {
                        route.running && route.targets.get(&self.port) == Some(&target)
                    });
                    if !still_there {
                        return Err(io::Error::new(
                            io::ErrorKind::NotConnected,
                            format!("workspace `{name}` stopped while dual connected to it"),
                        ));
                    }
                }
            }
        }
    }

    async fn send_on(
        &mut self,
        upstream: &mut Upstream,
        head: &RequestHead,
    ) -> Result<ResponseHead, SendError> {
        upstream.buf.clear();
        self.send_body(upstream, head).await?;
        loop {
            let parsed = http1::parse_response(
                &upstream.buf,
                head.is_head,
                head.upgrade.as_deref(),
                &mut self.response_out,
            );
            match parsed {
                Ok(Some(response))
                    if response.status >= 100
                        && response.status < 200
                        && response.status != 101 =>
                {
                    http1::finish_response_head(
                        &mut self.response_out,
                        Framing::None,
                        ClientHop::KeepAlive,
                    );
                    self.client
                        .write_all(&self.response_out)
                        .await
                        .map_err(SendError::Other)?;
                    upstream.buf.advance(response.len);
                    continue;
                }
                Ok(Some(response)) => return Ok(response),
                Ok(None) => {}
                Err(error) => {
                    return Err(SendError::Other(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the dev server's response: {error:?}"),
                    )));
                }
            }
            let received = upstream.buf.len();
            match read_into(&mut upstream.stream, &mut upstream.buf).await {
                Ok(0) if received == 0 => {
                    return Err(SendError::BeforeResponse(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the dev server closed the connection without answering",
                    )));
                }
                Ok(0) => {
                    return Err(SendError::Other(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the dev server closed the connection mid-answer",
                    )));
                }
                Ok(_) => {}
                Err(error) if received == 0 => return Err(SendError::BeforeResponse(error)),
                Err(error) => return Err(SendError::Other(error)),
            }
        }
    }

    /// Writes the request head with whatever of the body is buffered in one
    /// write, then streams the rest of the body from the client.
    async fn send_body(
        &mut self,
        upstream: &mut Upstream,
        head: &RequestHead,
    ) -> Result<(), SendError> {
        let out = &mut self.request_out;
        let Some(mut body) = BodyEnd::of(head.framing) else {
            return upstream
                .stream
                .write_all(out)
                .await
                .map_err(SendError::BeforeResponse);
        };
        let part = body.take(&self.buf, |_| {})?;
        out.extend_from_slice(&self.buf[..part]);
        self.buf.advance(part);
        upstream
            .stream
            .write_all(out)
            .await
            .map_err(SendError::Other)?;
        let mut go_ahead = head.expect_continue;
        while !body.is_done() {
            self.continue_once(&mut go_ahead).await?;
            refill(&mut self.client, &mut self.buf, "request")
                .await
                .map_err(SendError::Other)?;
            let part = body.take(&self.buf, |_| {})?;
            upstream
                .stream
                .write_all(&self.buf[..part])
                .await
                .map_err(SendError::Other)?;
            self.buf.advance(part);
        }
        Ok(())
    }

    /// Tells a client waiting on `Expect: 100-continue` to send its body,
    /// before the first read of it.
    async fn continue_once(&mut self, pending: &mut bool) -> Result<(), SendError> {
        if std::mem::take(pending) {
            self.client
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(SendError::Other)?;
        }
        Ok(())
    }

    /// Sends the response head and body to the client; also says whether
    /// the upstream connection may carry the next request.
    async fn respond(
        &mut self,
        head: &RequestHead,
        response: ResponseHead,
        upstream: &mut Upstream,
    ) -> io::Result<(Next, bool)> {
        upstream.buf.advance(response.len);
        if response.status == 101 {
            if head.upgrade.is_none() {
                return Ok((Next::Close, false));
            }
            http1::finish_response_head(&mut self.response_out, Framing::None, ClientHop::Upgrade);
            self.response_out.extend_from_slice(&upstream.buf);
            self.client.write_all(&self.response_out).await?;
            if !self.buf.is_empty() {
                upstream.stream.write_all(&self.buf).await?;
                self.buf.clear();
            }
            let _ = tokio::io::copy_bidirectional(&mut self.client, &mut upstream.stream).await;
            return Ok((Next::Close, false));
        }
        // An HTTP/1.0 client cannot take chunked: it gets the data, and the
        // end of the body is the end of the connection.
        let dechunk = head.http10 && response.framing == Framing::Chunked;
        let client_close = !head.keep_alive || response.framing == Framing::UntilClose || dechunk;
        let hop = match (client_close, head.http10) {
            (true, _) => ClientHop::Close,
            (false, true) => ClientHop::KeepAlive10,
            (false, false) => ClientHop::KeepAlive,
        };
        let client_framing = if dechunk {
            Framing::UntilClose
        } else {
            response.framing
        };
        http1::finish_response_head(&mut self.response_out, client_framing, hop);

        let out = &mut self.response_out;
        match BodyEnd::of(response.framing) {
            None if response.framing == Framing::None => self.client.write_all(out).await?,
            None => {
                // Until the dev server closes: so does the client's connection.
                out.extend_from_slice(&upstream.buf);
                self.client.write_all(out).await?;
                loop {
                    upstream.buf.clear();
                    if read_into(&mut upstream.stream, &mut upstream.buf).await? == 0 {
                        break;
                    }
                    self.client.write_all(&upstream.buf).await?;
                }
                return Ok((Next::Close, false));
            }
            Some(mut body) => loop {
                // Each read goes on as it came: an SSE event is not held back.
                let part = if dechunk {
                    body.take(&upstream.buf, |data| out.extend_from_slice(data))
                } else {
                    body.take(&upstream.buf, |_| {}).inspect(|&part| {
                        out.extend_from_slice(&upstream.buf[..part]);
                    })
                }
                .map_err(invalid_data)?;
                upstream.buf.advance(part);
                if !out.is_empty() {
                    self.client.write_all(out).await?;
                    out.clear();
                }
                if body.is_done() {
                    break;
                }
                refill(&mut upstream.stream, &mut upstream.buf, "response").await?;
            },
        }
        let next = if client_close {
            Next::Close
        } else {
            Next::KeepAlive
        };
        // Bytes past the response's end are a dev server's mistake: that
        // connection cannot be trusted for the next request.
        Ok((next, !response.close && upstream.buf.is_empty()))
    }
}

enum SendError {
    /// Failed before any of the response arrived (a retry is safe when the
    /// request had no body).
    BeforeResponse(io::Error),
    Other(io::Error),
}

impl From<HeadError> for SendError {
    fn from(error: HeadError) -> Self {
        SendError::Other(invalid_data(error))
    }
}

/// Reads into `buf`, first making room: a buffer advanced to its end has
/// its whole allocation back, without a copy.
async fn read_into(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(READ_SIZE);
    stream.read_buf(buf).await
}

/// Replaces what `buf` held with the next read of a body; the sender
/// closing before the body's end is an error.
async fn refill(stream: &mut TcpStream, buf: &mut BytesMut, what: &str) -> io::Result<()> {
    buf.clear();
    if read_into(stream, buf).await? == 0 {
        return Err(truncated(what));
    }
    Ok(())
}

fn invalid_data(error: HeadError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{error:?}"))
}

fn truncated(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the {what} body ended early"),
    )
}

async fn connect(target: SocketAddr) -> io::Result<Upstream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} ms", CONNECT_TIMEOUT.as_millis()),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(Upstream {
        target,
        stream,
        buf: BytesMut::with_capacity(READ_SIZE),
        last_used: Instant::now(),
    })
}
