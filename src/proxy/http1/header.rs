//! Message heads: parsed, checked as strictly as a strict server would,
//! and rewritten for the next hop; the framing they declare for the body.

use super::{Framing, HeadError, MAX_HEAD, MAX_HEADERS, MAX_METHOD, is_target_byte, is_tchar};

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

/// What Transfer-Encoding and Content-Length declare about a body.
struct Declared {
    framing: Option<Framing>,
    /// The transfer codings to send on besides a final `chunked` (`gzip`
    /// of `gzip, chunked`), or all of them for a response read until close.
    codings: Option<String>,
}

/// The body framing that Transfer-Encoding and Content-Length declare.
/// Both at once, disagreeing lengths, a length that is not plain digits,
/// `chunked` anywhere but last, and a framing header that `Connection`
/// names as per-hop (it would be dropped after it set the length) are
/// refused: a proxy that guesses there is how requests get smuggled past it.
/// A response whose last coding is not `chunked` is read until close
/// (RFC 9112 §6.3); a request's is refused.
fn declared_framing(
    headers: &[httparse::Header],
    connection: &ConnectionTokens,
    response: bool,
) -> Result<Declared, HeadError> {
    if ["content-length", "transfer-encoding", "host"]
        .iter()
        .any(|name| connection.lists(name))
    {
        return Err(HeadError::Invalid(
            "Connection names a framing or routing header",
        ));
    }
    let mut codings: Option<Vec<&[u8]>> = None;
    let mut length: Option<u64> = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let list = codings.get_or_insert_with(Vec::new);
            for coding in header.value.split(|&b| b == b',').map(trim_ows) {
                // `chunked,`: an empty last element reads as "not chunked"
                // to some servers and as `chunked` to others.
                // Codings are tokens (no parameters: none is in use).
                if coding.is_empty() || !coding.iter().copied().all(is_tchar) {
                    return Err(HeadError::Invalid("an empty or malformed transfer coding"));
                }
                list.push(coding);
            }
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value =
                content_length(header.value).ok_or(HeadError::Invalid("bad Content-Length"))?;
            if length.is_some_and(|l| l != value) {
                return Err(HeadError::Invalid("conflicting Content-Length headers"));
            }
            length = Some(value);
        }
    }
    let Some(codings) = codings else {
        return Ok(Declared {
            framing: length.map(Framing::Length),
            codings: None,
        });
    };
    if length.is_some() {
        return Err(HeadError::Invalid(
            "both Transfer-Encoding and Content-Length",
        ));
    }
    let is_chunked = |coding: &&[u8]| coding.eq_ignore_ascii_case(b"chunked");
    let (last, before) = codings
        .split_last()
        .ok_or(HeadError::Invalid("an empty Transfer-Encoding"))?;
    if before.iter().any(is_chunked) {
        return Err(HeadError::Invalid("chunked applied twice, or not last"));
    }
    let join = |list: &[&[u8]]| {
        let text: Vec<String> = list
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        text.join(", ")
    };
    if is_chunked(last) {
        Ok(Declared {
            framing: Some(Framing::Chunked),
            codings: (!before.is_empty()).then(|| join(before)),
        })
    } else if response {
        Ok(Declared {
            framing: Some(Framing::UntilClose),
            codings: Some(join(&codings)),
        })
    } else {
        Err(HeadError::Invalid("a transfer coding other than chunked"))
    }
}

/// Optional whitespace (spaces and tabs only) trimmed from both ends.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    &value[start..end]
}

/// `Content-Length`: ASCII digits, nothing else but spaces and tabs around
/// them (no sign, no Unicode spaces, which `str::parse` and `str::trim`
/// would let through).
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = trim_ows(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
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

/// Why the first bytes of `buf` can never begin an HTTP/1 request, from as
/// few bytes as show it: a first byte no method has (Postgres's SSLRequest
/// starts `00 00 00 08`, a TLS ClientHello `16 03`), a method followed by
/// something other than a space (Redis's `*1\r\n`), or more method bytes
/// than any method has. Such a client is answered 400 at once, rather than
/// waiting for a head's end that never comes, until the head deadline.
/// Empty lines before the request line are skipped (RFC 9112 §2.2), as
/// httparse does.
pub fn hopeless_start(buf: &[u8]) -> Option<&'static str> {
    const NOT_HTTP: &str = "not an HTTP/1.x request";
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let method = &buf[start..];
    match method
        .iter()
        .take(MAX_METHOD + 1)
        .position(|&b| !is_tchar(b))
    {
        Some(0) => Some(NOT_HTTP),
        Some(end) if method[end] != b' ' => Some(NOT_HTTP),
        Some(_) => None,
        None if method.len() > MAX_METHOD => Some("a method longer than any HTTP method"),
        None => None,
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
    if let Some(why) = hopeless_start(buf) {
        return Err(HeadError::Invalid(why));
    }
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
    if method.eq_ignore_ascii_case("CONNECT") {
        return Err(HeadError::Invalid("CONNECT: dual is not a forward proxy"));
    }
    if !target.bytes().all(is_target_byte) {
        return Err(HeadError::Invalid(
            "a request target with a control byte, a space or DEL",
        ));
    }
    let headers = request.headers;
    let connection = ConnectionTokens::read(headers);
    let http10 = version == 0;
    let declared = declared_framing(headers, &connection, false)?;
    let framing = declared.framing.unwrap_or(Framing::None);
    // RFC 9112 §6.1: in HTTP/1.0, Transfer-Encoding is faulty framing.
    if http10 && framing == Framing::Chunked {
        return Err(HeadError::Invalid(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    // One Host, of plain visible ASCII (RFC 9112 §3.2): two, or one that a
    // Unicode-aware trim would change, route one way here and another there.
    let mut hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    if let Some(host) = hosts.next()
        && (hosts.next().is_some() || !host.value.iter().all(u8::is_ascii_graphic))
    {
        return Err(HeadError::Invalid(
            "more than one Host, or one that is not plain ASCII",
        ));
    }
    let upgrade = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
        .filter(|_| connection.upgrade && !http10)
        .map(|h| h.value.to_vec());
    // An upgrade with a body: servers that switch parsers at an upgrade
    // head (llhttp, so uvicorn with httptools) stop there and read the body
    // as the next request, one this proxy never saw, routed or rewrote.
    // `upgrade` is exactly what decides whether `Connection: upgrade` and
    // `Upgrade` are sent on (both are dropped otherwise), so every upgrade
    // a server could see is checked here.
    if upgrade.is_some() && !matches!(framing, Framing::None | Framing::Length(0)) {
        return Err(HeadError::Invalid(
            "an upgrade request (Connection: upgrade) that also declares a body: \
             a dev server may read that body as another request",
        ));
    }

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
        out.extend_from_slice(b"transfer-encoding: ");
        if let Some(codings) = &declared.codings {
            out.extend_from_slice(codings.as_bytes());
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(b"chunked\r\n");
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
    // Three digits, the first 1-9 (RFC 9110 §15): a client refuses `000`.
    if status < 100 {
        return Err(HeadError::Invalid("a status code below 100"));
    }
    let headers = response.headers;
    let connection = ConnectionTokens::read(headers);
    let bodiless =
        request_is_head || (100..200).contains(&status) || status == 204 || status == 304;
    let declared = declared_framing(headers, &connection, true)?;
    // RFC 9112 §6.1: in HTTP/1.0, Transfer-Encoding is faulty framing.
    if version == 0 && (declared.framing == Some(Framing::Chunked) || declared.codings.is_some()) {
        return Err(HeadError::Invalid(
            "Transfer-Encoding in an HTTP/1.0 response",
        ));
    }
    let framing = match declared.framing {
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
    // The codings besides the final `chunked` (which `finish_response_head`
    // adds), or all of them for a body read until close.
    if let Some(codings) = declared.codings.as_deref().filter(|_| !bodiless) {
        push_header(out, b"transfer-encoding", codings.as_bytes());
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
    fn bytes_that_cannot_start_a_request_are_refused_before_a_line_ends() {
        // Postgres's SSLRequest, Redis's PING, a TLS ClientHello.
        for start in [
            &b"\x00\x00\x00\x08\x04\xd2\x16\x2f"[..],
            b"*1\r\n$4\r\nPING\r\n",
            b"\x16\x03\x01\x02\x00",
            b" GET / HTTP/1.1",
            b"GET\t/",
            b"\r\n\x00",
            &[b'A'; MAX_METHOD + 1],
        ] {
            assert!(hopeless_start(start).is_some(), "{start:?}");
            assert!(
                parse_request(start, "127.0.0.1", &mut Vec::new()).is_err(),
                "{start:?}"
            );
        }
        for start in [
            &b""[..],
            b"G",
            b"GET",
            b"GET /",
            b"\r\nPOST / HTTP/1.1\r\n",
            b"UPDATEREDIRECTREF",
            &[b'A'; MAX_METHOD],
        ] {
            assert_eq!(hopeless_start(start), None, "{start:?}");
        }
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
    fn an_upgrade_that_declares_a_body_is_refused() {
        let smuggled = "GET /smuggled HTTP/1.1\r\nHost: b.localhost\r\n\r\n";
        let chunked = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
        let length = format!("Content-Length: {}\r\n", smuggled.len());
        // Every spelling of "upgrade" that is forwarded as one, with every
        // way a request declares a body.
        for connection in [
            "Connection: upgrade\r\n",
            "Connection: Upgrade\r\n",
            "Connection: UPGRADE\r\n",
            "Connection: keep-alive, Upgrade\r\n",
            "Connection: keep-alive,upgrade\r\n",
            "Connection: close, upgrade\r\n",
            "Connection: keep-alive\r\nConnection: upgrade\r\n",
            "Connection: \tupgrade \r\n",
        ] {
            for upgrade in [
                "Upgrade: websocket\r\n",
                "Upgrade: h2c\r\n",
                "Upgrade: \r\n",
            ] {
                for (framing, body) in [
                    (length.as_str(), smuggled),
                    ("Content-Length: 1\r\n", "x"),
                    ("Content-Length: 01\r\n", "x"),
                    ("Transfer-Encoding: chunked\r\n", chunked.as_str()),
                    ("Transfer-Encoding: chunked\r\n", "0\r\n\r\n"),
                    ("Transfer-Encoding: gzip, chunked\r\n", chunked.as_str()),
                ] {
                    // The framing header before and after the upgrade's.
                    for raw in [
                        format!(
                            "GET /ws HTTP/1.1\r\nHost: a\r\n{connection}{upgrade}{framing}\r\n{body}"
                        ),
                        format!(
                            "POST /ws HTTP/1.1\r\n{framing}Host: a\r\n{upgrade}{connection}\r\n{body}"
                        ),
                    ] {
                        let refusal = parse_request(raw.as_bytes(), "127.0.0.1", &mut Vec::new());
                        assert!(
                            matches!(refusal, Err(HeadError::Invalid(why)) if why.contains("upgrade")),
                            "{raw:?}: {refusal:?}"
                        );
                    }
                }
            }
        }
        // No body, or an empty one: forwarded as an upgrade.
        for framing in ["", "Content-Length: 0\r\n", "Content-Length: 000\r\n"] {
            let (head, out) = request(&format!(
                "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{framing}\r\n"
            ));
            assert!(head.upgrade.is_some(), "{framing:?}");
            assert!(matches!(head.framing, Framing::None | Framing::Length(0)));
            assert!(out.ends_with("connection: upgrade\r\nupgrade: websocket\r\n\r\n"));
        }
        // Not an upgrade, so forwarded as a plain request with its body and
        // without `Upgrade`: HTTP/1.0 (no upgrades, RFC 9110 §7.8), and
        // `Upgrade` without `Connection: upgrade`.
        for raw in [
            format!(
                "POST /ws HTTP/1.0\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n{length}\r\n"
            ),
            format!("POST /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n{length}\r\n"),
            format!(
                "POST /ws HTTP/1.1\r\nHost: a\r\nConnection: upgraded\r\nUpgrade: websocket\r\n{length}\r\n"
            ),
        ] {
            let (head, out) = request(&raw);
            assert_eq!(head.upgrade, None, "{raw:?}");
            assert_eq!(head.framing, Framing::Length(smuggled.len() as u64));
            assert!(!out.to_ascii_lowercase().contains("upgrade"), "{out}");
        }
    }

    #[test]
    fn request_targets_take_every_visible_byte() {
        for target in [
            "/q\"<>`",
            "/a?q=\"<>`",
            "/{}|\\^[]",
            "/a?{}|\\^",
            "/a#frag<>",
            "/%zz",
            "/caf\u{e9}",
        ] {
            let (head, out) = request(&format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n"));
            assert!(head.origin_form, "{target}");
            assert!(
                out.starts_with(&format!("GET {target} HTTP/1.1\r\n")),
                "{out}"
            );
        }
        for bad in ["/a\tb", "/a\x7fb", "/a\x0bb", "/a\x00b", "/a\x0cb"] {
            assert!(
                refused(&format!("GET {bad} HTTP/1.1\r\nHost: a\r\n\r\n")),
                "{bad:?}"
            );
        }
        assert!(!is_target_byte(b' ') && !is_target_byte(0x7f) && !is_target_byte(b'\t'));
        assert!(b"\"<>`{}|\\^#?".iter().all(|&b| is_target_byte(b)));
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

    fn refused(raw: &str) -> bool {
        matches!(
            parse_request(raw.as_bytes(), "127.0.0.1", &mut Vec::new()),
            Err(HeadError::Invalid(_))
        )
    }

    fn response(raw: &str) -> Result<(ResponseHead, String), HeadError> {
        let mut out = Vec::new();
        let head = parse_response(raw.as_bytes(), false, None, &mut out)?.unwrap();
        Ok((head, String::from_utf8(out).unwrap()))
    }

    #[test]
    fn a_framing_header_named_in_connection_is_refused() {
        let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a.localhost\r\n\r\n";
        for connection in [
            "Connection: content-length",
            "Connection: Content-Length",
            "Connection: close, content-length",
            "Connection: keep-alive\r\nConnection: content-length",
            "Connection: transfer-encoding",
            "Connection: host",
        ] {
            let raw = format!(
                "POST /first HTTP/1.1\r\nHost: a.localhost\r\n{connection}\r\nContent-Length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            );
            assert!(refused(&raw), "{connection}");
        }
        assert!(
            response(
                "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\nok"
            )
            .is_err(),
            "and in a response"
        );
    }

    #[test]
    fn content_length_is_ascii_digits_only() {
        for value in ["+5", "5\u{a0}", "\u{2003}5", "5 5", "0x5", "", " "] {
            let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\n");
            assert!(refused(&raw), "{value:?}");
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
            assert!(response(&raw).is_err(), "response {value:?}");
        }
        let (head, _) = request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t 007 \r\n\r\n");
        assert_eq!(
            head.framing,
            Framing::Length(7),
            "spaces and tabs around digits"
        );
    }

    #[test]
    fn one_host_and_only_ascii_around_it() {
        assert!(refused(
            "GET / HTTP/1.1\r\nHost: a.localhost\r\nHost: b.localhost\r\n\r\n"
        ));
        assert!(refused("GET / HTTP/1.1\r\nHost: \u{a0}a.localhost\r\n\r\n"));
        assert!(refused(
            "GET / HTTP/1.1\r\nHost: a.localhost\u{2003}\r\n\r\n"
        ));
    }

    #[test]
    fn connect_is_refused_and_codings_survive() {
        assert!(refused(
            "CONNECT a.localhost:443 HTTP/1.1\r\nHost: a.localhost:443\r\n\r\n"
        ));
        assert!(refused("CONNECT / HTTP/1.1\r\nHost: a.localhost\r\n\r\n"));
        let (head, out) =
            request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(head.framing, Framing::Chunked);
        assert!(
            out.contains("transfer-encoding: gzip, chunked\r\n"),
            "{out}"
        );
        for raw in [
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked,\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \u{a0}gzip, chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(refused(raw), "{raw:?}");
        }
        let (head, out) =
            response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        let mut out = out.into_bytes();
        finish_response_head(&mut out, head.framing, ClientHop::KeepAlive);
        // Two lines of one list: `gzip`, then `chunked` as the last coding.
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.contains("transfer-encoding: gzip\r\n")
                && out.ends_with("transfer-encoding: chunked\r\n\r\n"),
            "{out}"
        );
        assert!(response("HTTP/1.1 000 OK\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(response("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(response("HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n").is_err());
        // A response whose last coding is not chunked is read until close.
        let (head, out) = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap();
        assert_eq!(head.framing, Framing::UntilClose);
        assert!(out.contains("transfer-encoding: gzip\r\n"), "{out}");
    }
}
