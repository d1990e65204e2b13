//! HTTP/1.1 messages for the forwarding path, as pingora splits them:
//! `header` parses heads with `httparse` and rewrites them in one pass into
//! the bytes sent on (hop-by-hop headers dropped, RFC 9110 §7.6.1, and
//! whatever `Connection` lists; `X-Forwarded-*` added); `body` finds where
//! a body ends as its bytes pass, in the framing it came in. No I/O here;
//! `conn` drives it.

mod body;
mod header;

pub use body::{BodyEnd, Chunked};
pub use header::{
    ClientHop, RequestHead, ResponseHead, finish_response_head, hopeless_start, parse_request,
    parse_response,
};

/// Most headers a head may carry; more is answered 431.
const MAX_HEADERS: usize = 100;
/// Largest head accepted, request or response.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest method accepted: the longest registered one is 17 bytes
/// (`UPDATEREDIRECTREF`, IANA's method registry); a client that sends more
/// token bytes than this without a space is not sending a request line.
pub const MAX_METHOD: usize = 32;

/// How a message's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.x, or malformed.
    #[error("a malformed message: {0}")]
    Invalid(&'static str),
    #[error("a message head larger than dual's proxy takes")]
    TooLarge,
}

/// A byte a request target may hold, sent on as it came. httparse has
/// already refused controls, SP and DEL, and bytes above 0x7F that are not
/// UTF-8; this says the same in one place, so the rule does not rest on it.
///
/// Every visible ASCII byte (0x21-0x7E) is taken: h11's request target is
/// `vchar+`, and llhttp's strict URL table is every visible byte (with `?`
/// and `#` read as the query's and fragment's start), so `"`, `<`, `>`, a
/// backtick, `{`, `}`, `|`, `\` and `^` are all accepted by both (curl
/// `-g` sends them raw). None of them ends a target or a line, so none
/// changes where a request or its body ends. hyper's URI type refuses some
/// (`<`, `>`, a backtick in a path; `"`, `<`, `>` in a query): a dev server
/// built on hyper then answers 400 itself, which the client sees.
///
/// Above 0x7F: UTF-8 is taken as it was before (hyper and llhttp's default
/// lenient build take it; h11 and llhttp's strict table do not).
fn is_target_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() || byte >= 0x80
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}
