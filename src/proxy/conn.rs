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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use tokio::sync::watch;

use super::forward::{self, Refusal, Shared};
use super::http1::{self, BodyEnd, ClientHop, Framing, HeadError, RequestHead, ResponseHead};
use super::routes::Table;

/// A client gets this long to send each whole request head, counted from
/// when the proxy waits for it: an idle keep-alive connection is closed
/// after it too.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
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

/// A client connection: a TCP stream in the proxy, an in-memory pipe in
/// tests. Split into halves borrowed at once (TCP's split costs nothing).
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Reader<'a>: AsyncRead + Unpin + Send
    where
        Self: 'a;
    type Writer<'a>: AsyncWrite + Unpin + Send
    where
        Self: 'a;
    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>);
}

impl ClientStream for TcpStream {
    type Reader<'a> = tokio::net::tcp::ReadHalf<'a>;
    type Writer<'a> = tokio::net::tcp::WriteHalf<'a>;
    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        self.split()
    }
}

impl ClientStream for tokio::io::DuplexStream {
    type Reader<'a> = tokio::io::ReadHalf<&'a mut tokio::io::DuplexStream>;
    type Writer<'a> = tokio::io::WriteHalf<&'a mut tokio::io::DuplexStream>;
    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        tokio::io::split(self)
    }
}

struct Connection<C> {
    client: C,
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
    head_timeout: Duration,
    shared: Arc<Shared>,
}

/// Serves one client connection until either side closes it.
pub async fn serve<C: ClientStream>(client: C, peer: SocketAddr, port: u16, shared: Arc<Shared>) {
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
        head_timeout: shared.head_timeout,
        shared,
    };
    let _ = connection.run().await;
}

/// What became of one exchange.
enum Next {
    KeepAlive,
    Close,
}

impl<C: ClientStream> Connection<C> {
    async fn run(&mut self) -> io::Result<()> {
        let head_timeout = self.head_timeout;
        let deadline = tokio::time::sleep(head_timeout);
        tokio::pin!(deadline);
        let mut armed = Instant::now();
        loop {
            // Each head gets the whole deadline from the moment it is awaited
            // (idle keep-alive time included), and reads do not extend it: a
            // byte now and then cannot hold a connection. Re-armed at most
            // every 60th of it: moving a timer on every request costs more
            // than a deadline a little early.
            let now = Instant::now();
            if now.duration_since(armed) > head_timeout / 60 {
                deadline.as_mut().reset((now + head_timeout).into());
                armed = now;
            }
            // Parsed only once the buffer holds a head's end (or too much),
            // its request line's end, or bytes no request starts with: a
            // head trickled in byte by byte is not parsed again per byte,
            // and a client speaking another protocol (a database client
            // sent to a port the proxy holds) is answered at once.
            let mut scan = HeadScan::default();
            let head = loop {
                let worth_parsing = head_may_be_complete(&self.buf, &mut scan);
                if worth_parsing || http1::hopeless_start(&self.buf).is_some() {
                    match http1::parse_request(&self.buf, &self.peer, &mut self.request_out) {
                        Ok(Some(head)) => break head,
                        Ok(None) => {}
                        Err(HeadError::TooLarge) => {
                            return self.client_error(431, "Request headers too large").await;
                        }
                        Err(HeadError::Invalid(why)) => return self.client_error(400, why).await,
                    }
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
                let page = match &refusal {
                    Refusal::NoPort { name, port } if self.shared.is_starting(name) => {
                        forward::starting_page(name, *port)
                    }
                    _ => forward::refusal_page(&refusal, &self.table, self.port),
                };
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

        // What of the body is already here goes in the same write as the head.
        let mut body = BodyEnd::of(head.framing);
        if let Some(body) = &mut body {
            let part = match body.take(&self.buf, |_| {}) {
                Ok(part) => part,
                Err(HeadError::Invalid(why)) => {
                    self.client_error(400, why).await?;
                    return Ok(Next::Close);
                }
                Err(HeadError::TooLarge) => {
                    self.client_error(400, "chunk line too long").await?;
                    return Ok(Next::Close);
                }
            };
            self.request_out.extend_from_slice(&self.buf[..part]);
            self.buf.advance(part);
        }
        let body_left = body.filter(|body| !body.is_done());

        let sent = self
            .send_request(head, &name, target, body_left.is_none())
            .await;
        let (response, mut upstream) = match sent {
            Ok(sent) => sent,
            Err(error) => {
                // The container may have stopped while we connected.
                let (stopped, engine) = self
                    .tables
                    .borrow()
                    .routes
                    .get(&name)
                    .map_or((false, None), |r| (!r.running, r.engine));
                let page = if let Some(engine) = self.shared.engine_away(engine) {
                    forward::engine_away_page(engine, &name)
                } else if stopped {
                    forward::refusal_page(&Refusal::Stopped(name), &self.table, self.port)
                } else if error.kind() == io::ErrorKind::ConnectionRefused
                    && self.shared.is_starting(&name)
                {
                    forward::starting_page(&name, target.port())
                } else {
                    forward::upstream_error_page(&name, target, &error)
                };
                return self.page(page, head).await;
            }
        };
        let (next, reusable) = match (response, body_left) {
            (Some(response), _) => self.respond(head, response, &mut upstream).await?,
            (None, Some(body)) => {
                self.duplex(head, body, &mut upstream, &name, target)
                    .await?
            }
            (None, None) => (Next::Close, false),
        };
        if reusable {
            upstream.last_used = Instant::now();
            self.upstream = Some(upstream);
        }
        Ok(next)
    }

    /// Sends the request head, with what of the body is buffered, on
    /// (reusing this connection's upstream connection when it is fresh).
    /// When that is the whole request, also reads the response head; a body
    /// still to come is sent while the response is read (`duplex`).
    async fn send_request(
        &mut self,
        head: &RequestHead,
        name: &str,
        target: SocketAddr,
        whole: bool,
    ) -> io::Result<(Option<ResponseHead>, Upstream)> {
        let reusable = self
            .upstream
            .take()
            .filter(|u| u.target == target && u.last_used.elapsed() < IDLE_REUSE);
        let reused = reusable.is_some();
        let mut upstream = match reusable {
            Some(upstream) => upstream,
            None => self.connect_unless_stopped(name, target).await?,
        };
        let mut result = self.send_on(&mut upstream, head, whole).await;
        // An idle connection the server closed as we reused it: one retry
        // on a new connection, when nothing of a body has been consumed.
        if reused
            && head.framing == Framing::None
            && matches!(&result, Err(SendError::BeforeResponse(_)))
        {
            upstream = self.connect_unless_stopped(name, target).await?;
            result = self.send_on(&mut upstream, head, whole).await;
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
        whole: bool,
    ) -> Result<Option<ResponseHead>, SendError> {
        upstream.buf.clear();
        upstream.stream.write_all(&self.request_out).await.map_err(
            if head.framing == Framing::None {
                SendError::BeforeResponse
            } else {
                SendError::Other
            },
        )?;
        if !whole {
            return Ok(None);
        }
        read_response_head(
            &mut upstream.stream,
            &mut upstream.buf,
            &mut self.response_out,
            &mut self.client,
            head,
        )
        .await
        .map(Some)
    }

    /// The rest of a request body and the response, at once: a dev server
    /// may answer (or stream an echo) while the upload goes on, and one that
    /// answers before the body is whole ends the exchange, and the
    /// connection, since the body's rest would be read as the next request.
    async fn duplex(
        &mut self,
        head: &RequestHead,
        body: BodyEnd,
        upstream: &mut Upstream,
        name: &str,
        target: SocketAddr,
    ) -> io::Result<(Next, bool)> {
        if head.expect_continue {
            self.client
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        let (mut client_in, mut client_out) = self.client.halves();
        let (mut upstream_in, mut upstream_out) = upstream.stream.split();
        let pump = pump_body(&mut client_in, &mut self.buf, &mut upstream_out, body);
        let answer = async {
            let response = match read_response_head(
                &mut upstream_in,
                &mut upstream.buf,
                &mut self.response_out,
                &mut client_out,
                head,
            )
            .await
            {
                Ok(response) => response,
                Err(SendError::BeforeResponse(error) | SendError::Other(error)) => {
                    let page = forward::upstream_error_page(name, target, &error);
                    page.write(&mut self.response_out, false);
                    client_out.write_all(&self.response_out).await?;
                    return Ok((Next::Close, false));
                }
            };
            upstream.buf.advance(response.len);
            if response.status == 101 {
                // No upgrade of a request that carries a body.
                let page =
                    forward::Page::plain(502, "the dev server switched protocols mid-upload");
                page.write(&mut self.response_out, false);
                client_out.write_all(&self.response_out).await?;
                return Ok((Next::Close, false));
            }
            relay_response(
                &mut client_out,
                &mut upstream_in,
                &mut upstream.buf,
                &mut self.response_out,
                head,
                &response,
            )
            .await
        };
        tokio::pin!(pump, answer);
        let mut pumped = false;
        let answered = loop {
            tokio::select! {
                sent = &mut pump, if !pumped => {
                    sent?;
                    pumped = true;
                }
                answered = &mut answer => break answered?,
            }
        };
        Ok(if pumped {
            answered
        } else {
            (Next::Close, false)
        })
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
                // A switch nobody asked for: the client gets a 502, not a
                // connection that goes silent.
                let page = forward::Page::plain(
                    502,
                    "the dev server switched protocols without being asked to",
                );
                page.write(&mut self.response_out, false);
                self.client.write_all(&self.response_out).await?;
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
        relay_response(
            &mut self.client,
            &mut upstream.stream,
            &mut upstream.buf,
            &mut self.response_out,
            head,
            &response,
        )
        .await
    }
}

/// Reads the response head from upstream; 1xx heads other than 101 go to
/// the client as they come (but not to an HTTP/1.0 client, which has no
/// such thing).
async fn read_response_head<R, W>(
    upstream: &mut R,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    client: &mut W,
    head: &RequestHead,
) -> Result<ResponseHead, SendError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        match http1::parse_response(buf, head.is_head, head.upgrade.as_deref(), out) {
            Ok(Some(response))
                if response.status >= 100 && response.status < 200 && response.status != 101 =>
            {
                if !head.http10 {
                    http1::finish_response_head(out, Framing::None, ClientHop::KeepAlive);
                    client.write_all(out).await.map_err(SendError::Other)?;
                }
                buf.advance(response.len);
                continue;
            }
            Ok(Some(response)) => return Ok(response),
            Ok(None) => {}
            Err(error) => {
                return Err(SendError::Other(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the dev server's response: {error}"),
                )));
            }
        }
        let received = buf.len();
        match read_into(upstream, buf).await {
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

/// How far the bytes of a head being read were looked at.
#[derive(Default)]
struct HeadScan {
    scanned: usize,
    /// Its request line's end was seen (and parsed then).
    line_ended: bool,
}

/// Whether `buf` is worth parsing: it has a head's end (`\n\r\n`, or
/// `\n\n`, which the parser also takes) past what was scanned before, the
/// request line just ended (the parser then refuses a line that is not
/// `METHOD SP target SP HTTP/x.y` without waiting for the headers), or it
/// is over the limit (the parser then says so). Scans only new bytes.
fn head_may_be_complete(buf: &[u8], scan: &mut HeadScan) -> bool {
    if buf.len() > http1::MAX_HEAD {
        return true;
    }
    let from = scan.scanned.saturating_sub(2);
    scan.scanned = buf.len();
    if !scan.line_ended {
        // Empty lines before the request line are not its end.
        let lead = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if buf[from.max(lead)..].contains(&b'\n') {
            scan.line_ended = true;
            return true;
        }
    }
    buf[from..].windows(2).enumerate().any(|(i, pair)| {
        pair == b"\n\n" || (pair == b"\r\n" && from + i > 0 && buf[from + i - 1] == b'\n')
    })
}

/// Streams the rest of a request body from the client to upstream.
async fn pump_body<R, W>(
    client: &mut R,
    buf: &mut BytesMut,
    upstream: &mut W,
    mut body: BodyEnd,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while !body.is_done() {
        refill(client, buf, "request").await?;
        let part = body.take(buf, |_| {}).map_err(invalid_data)?;
        upstream.write_all(&buf[..part]).await?;
        buf.advance(part);
    }
    Ok(())
}

/// Sends a response's head (already in `out`) and body to the client;
/// also says whether the upstream connection may carry the next request.
async fn relay_response<W, R>(
    client: &mut W,
    upstream: &mut R,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    head: &RequestHead,
    response: &ResponseHead,
) -> io::Result<(Next, bool)>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
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
    http1::finish_response_head(out, client_framing, hop);

    match BodyEnd::of(response.framing) {
        None if response.framing == Framing::None => client.write_all(out).await?,
        None => {
            // Until the dev server closes: so does the client's connection.
            out.extend_from_slice(buf);
            client.write_all(out).await?;
            loop {
                buf.clear();
                if read_into(upstream, buf).await? == 0 {
                    break;
                }
                client.write_all(buf).await?;
            }
            return Ok((Next::Close, false));
        }
        Some(mut body) => loop {
            // Each read goes on as it came: an SSE event is not held back.
            let part = if dechunk {
                body.take(buf, |data| out.extend_from_slice(data))
            } else {
                body.take(buf, |_| {})
                    .inspect(|&part| out.extend_from_slice(&buf[..part]))
            }
            .map_err(invalid_data)?;
            buf.advance(part);
            if !out.is_empty() {
                client.write_all(out).await?;
                out.clear();
            }
            if body.is_done() {
                break;
            }
            refill(upstream, buf, "response").await?;
        },
    }
    let next = if client_close {
        Next::Close
    } else {
        Next::KeepAlive
    };
    // Bytes past the response's end are a dev server's mistake: that
    // connection cannot be trusted for the next request.
    Ok((next, !response.close && buf.is_empty()))
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
async fn read_into<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(READ_SIZE);
    stream.read_buf(buf).await
}

/// Replaces what `buf` held with the next read of a body; the sender
/// closing before the body's end is an error.
async fn refill<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
    what: &str,
) -> io::Result<()> {
    buf.clear();
    if read_into(stream, buf).await? == 0 {
        return Err(truncated(what));
    }
    Ok(())
}

fn invalid_data(error: HeadError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
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
