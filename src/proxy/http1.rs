//! HTTP/1.1 message heads for the forwarding path, parsed with `httparse`
//! and rewritten in one pass into the bytes sent on: hop-by-hop headers
//! dropped (RFC 9110 §7.6.1, and whatever `Connection` lists), the
//! `X-Forwarded-*` headers added, bodies left in the framing they came in.
//! No I/O here; `conn` drives it.

/// Most headers a head may carry; more is answered 431.
const MAX_HEADERS: usize = 100;
/// Largest head accepted, request or response.
pub const MAX_HEAD: usize = 64 * 1024;

/// How a message's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x, or malformed.
    Invalid(&'static str),
    TooLarge,
}

/// A request head, parsed; the head to send upstream is in the caller's buffer.
#[derive(Debug)]
pub struct RequestHead {
    pub len: usize,
    pub is_head: bool,
    /// `/path`: the only form dual forwards (absolute-form is a forward
    /// proxy's, authority-form CONNECT's, asterisk-form is OPTIONS *).
    pub origin_form: bool,
    pub host: Option<String>,
    pub framing: Framing,
    pub http10: bool,
    /// The client may send another request on this connection.
    pub keep_alive: bool,
    /// `Upgrade` with `Connection: upgrade`: the protocol asked for.
    pub upgrade: Option<Vec<u8>>,
    /// `Expect: 100-continue`: the client waits for a go-ahead before its
    /// body. The proxy gives it (the header is not sent on), as nginx does:
    /// forwarding the expectation would need the body and the response at once.
    pub expect_continue: bool,
}

#[derive(Debug)]
pub struct ResponseHead {
    pub len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The upstream closes after this response.
    pub close: bool,
}

/// What the `Connection` header says about one message.
#[derive(Default)]
struct ConnectionTokens<'a> {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    /// Other names: per-hop headers this message declared.
    listed: Vec<&'a str>,
}

impl<'a> ConnectionTokens<'a> {
    fn read(headers: &[httparse::Header<'a>]) -> Self {
        let mut tokens = ConnectionTokens::default();
        for header in headers {
            if !header.name.eq_ignore_ascii_case("connection") {
                continue;
            }
            let Ok(value) = std::str::from_utf8(header.value) else {
                continue;
            };
            for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if token.eq_ignore_ascii_case("close") {
                    tokens.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    tokens.keep_alive = true;
                } else if token.eq_ignore_ascii_case("upgrade") {
                    tokens.upgrade = true;
                } else {
                    tokens.listed.push(token);
                }
            }
        }
        tokens
    }

    fn lists(&self, name: &str) -> bool {
        self.listed.iter().any(|t| t.eq_ignore_ascii_case(name))
    }
}

/// Headers that describe one hop, never forwarded as they are.
fn is_hop_by_hop(name: &str) -> bool {
    const HOP_BY_HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The body framing that Transfer-Encoding and Content-Length declare.
/// Both at once, or disagreeing lengths, are refused: a proxy that guesses
/// there is how requests get smuggled past it.
fn declared_framing(headers: &[httparse::Header]) -> Result<Option<Framing>, HeadError> {
    let mut chunked = None;
    let mut length: Option<u64> = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .map(|coding| coding.trim_ascii());
            chunked = Some(last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(HeadError::Invalid("bad Content-Length"))?;
            if length.is_some_and(|l| l != value) {
                return Err(HeadError::Invalid("conflicting Content-Length headers"));
            }
            length = Some(value);
        }
    }
    match (chunked, length) {
        (Some(_), Some(_)) => Err(HeadError::Invalid(
            "both Transfer-Encoding and Content-Length",
        )),
        (Some(true), None) => Ok(Some(Framing::Chunked)),
        (Some(false), None) => Err(HeadError::Invalid("a transfer coding other than chunked")),
        (None, Some(length)) => Ok(Some(Framing::Length(length))),
        (None, None) => Ok(None),
    }
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The length of a complete head, `None` while it is incomplete.
fn head_length(
    parsed: httparse::Result<usize>,
    buffered: usize,
    invalid: &'static str,
) -> Result<Option<usize>, HeadError> {
    match parsed {
        Ok(httparse::Status::Complete(len)) => Ok(Some(len)),
        Ok(httparse::Status::Partial) if buffered > MAX_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Invalid(invalid)),
    }
}

/// Parses a request head at the start of `buf`; on success the head to
/// send upstream is appended to `out` (cleared first). `Ok(None)`: the head
/// is not complete yet.
pub fn parse_request(
    buf: &[u8],
    client: &str,
    out: &mut Vec<u8>,
) -> Result<Option<RequestHead>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut storage);
    let Some(len) = head_length(request.parse(buf), buf.len(), "not an HTTP/1.x request")? else {
        return Ok(None);
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HeadError::Invalid("not an HTTP/1.x request"));
    };
    let headers = request.headers;
    let connection = ConnectionTokens::read(headers);
    let http10 = version == 0;
    let framing = declared_framing(headers)?.unwrap_or(Framing::None);
    let upgrade = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
        .filter(|_| connection.upgrade && !http10)
        .map(|h| h.value.to_vec());

    let mut host = None;
    let mut forwarded_for: Option<&[u8]> = None;
    let mut expect_continue = false;
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for header in headers.iter() {
        let name = header.name;
        if is_hop_by_hop(name) || connection.lists(name) {
            continue;
        }
        if name.eq_ignore_ascii_case("host") {
            host = std::str::from_utf8(header.value).ok().map(str::to_owned);
            push_header(out, name.as_bytes(), header.value);
            push_header(out, b"x-forwarded-host", header.value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for = Some(header.value);
        } else if name.eq_ignore_ascii_case("expect")
            && header
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue")
        {
            expect_continue = !http10;
        } else if !name.eq_ignore_ascii_case("x-forwarded-host")
            && !name.eq_ignore_ascii_case("x-forwarded-proto")
        {
            push_header(out, name.as_bytes(), header.value);
        }
    }
    // X-Forwarded-For keeps what earlier hops said and adds this client.
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(earlier) = forwarded_for {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n");
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if let Some(protocol) = &upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
        push_header(out, b"upgrade", protocol);
    }
    out.extend_from_slice(b"\r\n");

    Ok(Some(RequestHead {
        len,
        is_head: method == "HEAD",
        origin_form: target.starts_with('/'),
        host,
        framing,
        http10,
        keep_alive: if http10 {
            connection.keep_alive
        } else {
            !connection.close
        },
        upgrade,
        expect_continue,
    }))
}

/// How the head sent to the client ends the hop: what the client's
/// connection does after this response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientHop {
    /// HTTP/1.1 keep-alive: nothing to say.
    KeepAlive,
    /// An HTTP/1.0 client that asked for keep-alive.
    KeepAlive10,
    Close,
    /// A 101: the connection becomes the upgraded protocol.
    Upgrade,
}

/// Parses a response head from upstream; the head to send the client is
/// appended to `out` (cleared first), still open for `finish_response_head`.
pub fn parse_response(
    buf: &[u8],
    request_is_head: bool,
    upgrade: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut storage);
    let Some(len) = head_length(response.parse(buf), buf.len(), "not an HTTP/1.x response")? else {
        return Ok(None);
    };
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return Err(HeadError::Invalid("not an HTTP/1.x response"));
    };
    let headers = response.headers;
    let connection = ConnectionTokens::read(headers);
    let bodiless =
        request_is_head || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = match declared_framing(headers)? {
        _ if bodiless => Framing::None,
        Some(framing) => framing,
        None => Framing::UntilClose,
    };
    let close = connection.close || (version == 0 && !connection.keep_alive);

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    // httparse accepts only three-digit codes.
    out.extend_from_slice(&[
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(response.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in headers.iter() {
        if is_hop_by_hop(header.name) || connection.lists(header.name) {
            continue;
        }
        push_header(out, header.name.as_bytes(), header.value);
    }
    if status == 101
        && let Some(protocol) = upgrade
    {
        out.extend_from_slice(b"connection: upgrade\r\n");
        push_header(out, b"upgrade", protocol);
    }
    Ok(Some(ResponseHead {
        len,
        status,
        framing,
        close,
    }))
}

/// Ends a response head for the client: the framing it will see and what
/// the connection does next.
pub fn finish_response_head(out: &mut Vec<u8>, framing: Framing, hop: ClientHop) {
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    match hop {
        ClientHop::KeepAlive | ClientHop::Upgrade => {}
        ClientHop::KeepAlive10 => out.extend_from_slice(b"connection: keep-alive\r\n"),
        ClientHop::Close => out.extend_from_slice(b"connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Where a body with a known end stops, found as its bytes go by.
#[derive(Debug)]
pub enum BodyEnd {
    Length(u64),
    Chunked(Chunked),
}

impl BodyEnd {
    /// `None` for no body, or one that ends only when the sender closes.
    pub fn of(framing: Framing) -> Option<BodyEnd> {
        match framing {
            Framing::Length(length) => Some(BodyEnd::Length(length)),
            Framing::Chunked => Some(BodyEnd::Chunked(Chunked::default())),
            Framing::None | Framing::UntilClose => None,
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            BodyEnd::Length(remaining) => *remaining == 0,
            BodyEnd::Chunked(chunked) => chunked.is_done(),
        }
    }

    /// How many bytes at the start of `input` belong to the body; the
    /// payload in them (without chunk framing) goes to `data`.
    pub fn take(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, HeadError> {
        match self {
            BodyEnd::Length(remaining) => {
                let take = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                data(&input[..take]);
                *remaining -= take as u64;
                Ok(take)
            }
            BodyEnd::Chunked(chunked) => chunked.scan(input, data),
        }
    }
}

/// Finds where a chunked body ends while its bytes pass through unchanged;
/// optionally reports the data inside the chunks (to de-chunk for HTTP/1.0).
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    size: u64,
    digits: u8,
    /// In the trailer section: whether the current line is empty so far.
    blank_line: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    Done,
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes of the chunked body from `input`, calling `data` with
    /// each run of payload; returns how many bytes belong to the body (all of
    /// `input` unless the body ends inside it).
    pub fn scan(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, HeadError> {
        use ChunkState::*;
        let bad = HeadError::Invalid("malformed chunked body");
        let mut at = 0;
        while at < input.len() && self.state != Done {
            let byte = input[at];
            match self.state {
                Size => match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits == 15 {
                            return Err(bad);
                        }
                        let digit = (byte as char).to_digit(16).unwrap_or(0);
                        self.size = self.size * 16 + u64::from(digit);
                        self.digits += 1;
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => self.state = Extension,
                    b'\r' if self.digits > 0 => self.state = SizeLf,
                    _ => return Err(bad),
                },
                Extension => {
                    if byte == b'\r' {
                        self.state = SizeLf;
                    }
                }
                SizeLf => {
                    if byte != b'\n' {
                        return Err(bad);
                    }
                    if self.size == 0 {
                        self.state = Trailer;
                        self.blank_line = true;
                    } else {
                        self.state = Data;
                    }
                }
                Data => {
                    let take = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - at);
                    data(&input[at..at + take]);
                    self.size -= take as u64;
                    at += take;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr if byte == b'\r' => self.state = DataLf,
                DataLf if byte == b'\n' => {
                    self.state = Size;
                    self.digits = 0;
                }
                DataCr | DataLf => return Err(bad),
                Trailer => match byte {
                    b'\r' => self.state = TrailerLf,
                    b'\n' => return Err(bad),
                    _ => self.blank_line = false,
                },
                TrailerLf => {
                    if byte != b'\n' {
                        return Err(bad);
                    }
                    if self.blank_line {
                        self.state = Done;
                    } else {
                        self.state = Trailer;
                        self.blank_line = true;
                    }
                }
                Done => break,
            }
            at += 1;
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> (RequestHead, String) {
        let mut out = Vec::new();
        let head = parse_request(raw.as_bytes(), "127.0.0.1", &mut out)
            .unwrap()
            .unwrap();
        (head, String::from_utf8(out).unwrap())
    }

    #[test]
    fn hop_by_hop_headers_go_and_forwarded_ones_are_added() {
        let (head, out) = request(
            "GET /a?b HTTP/1.1\r\nHost: shop.localhost:3000\r\nConnection: keep-alive, x-private\r\n\
             Keep-Alive: timeout=5\r\nX-Private: 1\r\nTE: trailers\r\nProxy-Authorization: x\r\n\
             X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n",
        );
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: shop.localhost:3000\r\nx-forwarded-host: shop.localhost:3000\r\n\
             Accept: */*\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\nx-forwarded-proto: http\r\n\r\n"
        );
        assert_eq!(head.host.as_deref(), Some("shop.localhost:3000"));
        assert!(head.keep_alive && head.origin_form && !head.http10);
        assert_eq!(head.framing, Framing::None);
        assert_eq!(head.upgrade, None);
    }

    #[test]
    fn bodies_keep_their_framing() {
        let (head, out) =
            request("POST / HTTP/1.1\r\nHost: a.localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(head.framing, Framing::Chunked);
        assert!(out.contains("transfer-encoding: chunked\r\n"));
        let (head, out) = request("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(head.framing, Framing::Length(12));
        assert!(out.contains("Content-Length: 12\r\n"));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let mut out = Vec::new();
        let client = "127.0.0.1";
        for raw in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "GARBAGE\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_request(raw.as_bytes(), client, &mut out),
                    Err(HeadError::Invalid(_))
                ),
                "{raw:?}"
            );
        }
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a", client, &mut out),
            Ok(None)
        ));
    }

    #[test]
    fn upgrades_and_http10_keep_alive() {
        let (head, out) = request(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert_eq!(head.upgrade.as_deref(), Some(&b"websocket"[..]));
        assert!(out.ends_with("connection: upgrade\r\nupgrade: websocket\r\n\r\n"));
        let (head, _) = request("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(head.upgrade, None, "Upgrade without Connection: upgrade");
        let (head, _) = request("GET / HTTP/1.0\r\n\r\n");
        assert!(head.http10 && !head.keep_alive);
        let (head, _) = request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(head.keep_alive);
        let (head, _) = request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(!head.keep_alive);
        let (head, _) = request("GET http://example.com/ HTTP/1.1\r\n\r\n");
        assert!(!head.origin_form);
        let (head, out) =
            request("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(head.expect_continue);
        assert!(!out.to_ascii_lowercase().contains("expect"), "{out}");
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let mut out = Vec::new();
        let parse = |raw: &str, is_head: bool, out: &mut Vec<u8>| {
            parse_response(raw.as_bytes(), is_head, None, out)
                .unwrap()
                .unwrap()
        };
        let head = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            false,
            &mut out,
        );
        assert_eq!(
            (head.len, head.framing, head.close),
            (38, Framing::Length(5), false)
        );
        let head = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            true,
            &mut out,
        );
        assert_eq!(head.framing, Framing::None, "HEAD has no body");
        let head = parse("HTTP/1.1 304 Not Modified\r\n\r\n", false, &mut out);
        assert_eq!(head.framing, Framing::None);
        let head = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            false,
            &mut out,
        );
        assert_eq!((head.framing, head.close), (Framing::Chunked, true));
        let head = parse("HTTP/1.0 200 OK\r\n\r\n", false, &mut out);
        assert_eq!((head.framing, head.close), (Framing::UntilClose, true));
        finish_response_head(&mut out, head.framing, ClientHop::Close);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn chunked_bodies_end_where_they_end() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        // Whole, and one byte at a time: the same end, the same data.
        for step in [body.len(), 1] {
            let mut scanner = Chunked::default();
            let mut data = Vec::new();
            let mut consumed = 0;
            for piece in body.chunks(step) {
                if scanner.is_done() {
                    break;
                }
                consumed += scanner.scan(piece, |d| data.extend_from_slice(d)).unwrap();
            }
            assert!(scanner.is_done());
            assert_eq!(consumed, body.len() - 4, "step {step}");
            assert_eq!(data, b"hello world");
        }
        let mut scanner = Chunked::default();
        assert!(scanner.scan(b"zz\r\n", |_| {}).is_err());
        let mut scanner = Chunked::default();
        assert!(scanner.scan(b"ffffffffffffffff0\r\n", |_| {}).is_err());
    }
}
