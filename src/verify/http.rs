//! A minimal HTTP/1.0 GET for the host side of the probes: enough to read a
//! test server's body, with hard timeouts, and no dependency on curl.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// One GET of `/`; fails on any network error or a malformed answer.
pub fn get(addr: SocketAddr, timeout: Duration) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET / HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response")
    })
}

/// Retries until a 200 arrives or `within` has passed: a server just started
/// may not be listening yet.
pub fn get_ok_within(addr: SocketAddr, within: Duration) -> std::io::Result<Response> {
    let deadline = Instant::now() + within;
    loop {
        let result = get(addr, Duration::from_secs(2));
        match result {
            Ok(response) if response.status == 200 => return Ok(response),
            _ if Instant::now() >= deadline || crate::interrupt::requested() => return result,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn parse(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Response {
        status,
        body: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let response = parse(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\nhello").unwrap();
        assert_eq!(
            response,
            Response {
                status: 200,
                body: "hello".into()
            }
        );
        assert_eq!(parse(b"garbage"), None);
    }

    #[test]
    fn talks_to_a_real_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // Read the whole request: closing with unread bytes sends a reset.
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(b"HTTP/1.1 200 OK\r\n\r\ntoken-7").unwrap();
        });
        let response = get(addr, Duration::from_secs(2)).unwrap();
        assert_eq!(response.body, "token-7");
        server.join().unwrap();
    }
}
