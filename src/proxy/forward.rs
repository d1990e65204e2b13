//! One request: decide whether dual may route it, then forward it to the
//! workspace's container with bodies streamed both ways and upgrades
//! (WebSocket) spliced after the 101.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::routes::Table;

/// The upstream's body as it comes, or a page of dual's own: an enum rather
/// than a boxed body, so forwarding allocates no box per response.
pub type Body = Either<Incoming, Full<Bytes>>;

/// What every request handler shares.
pub struct Shared {
    pub table: tokio::sync::watch::Receiver<Arc<Table>>,
}

/// A connect to a container on a local bridge completes in microseconds; a
/// stopped one never answers (its address is gone), so waiting long only
/// delays the 502. 1 s leaves room for a loaded machine (500 ms was seen to
/// fail under the full test suite on 2 cores).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Dev servers close idle keep-alive connections (node: after 5 s); one idle
/// longer than this is replaced rather than risk sending into a closing one.
const IDLE_REUSE: Duration = Duration::from_secs(3);

/// The upstream connection of one client connection. HTTP/1 requests on a
/// connection come one after another, so each client connection keeps one
/// upstream connection alive and reuses it: keep-alive on both sides, with no
/// shared pool to lock (measured faster than hyper-util's pooled client).
#[derive(Default)]
pub struct UpstreamSlot(std::sync::Mutex<Option<Upstream>>);

pub struct Upstream {
    target: SocketAddr,
    sender: SendRequest<Incoming>,
    last_used: Instant,
}

impl UpstreamSlot {
    fn take(&self, target: SocketAddr) -> Option<SendRequest<Incoming>> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.take()
            .filter(|u| {
                u.target == target && !u.sender.is_closed() && u.last_used.elapsed() < IDLE_REUSE
            })
            .map(|u| u.sender)
    }

    fn put(&self, target: SocketAddr, sender: SendRequest<Incoming>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Upstream {
            target,
            sender,
            last_used: Instant::now(),
        });
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connect(target: SocketAddr, upgrades: bool) -> Result<SendRequest<Incoming>, BoxError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| format!("no answer within {} ms", CONNECT_TIMEOUT.as_millis()))??;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    if upgrades {
        tokio::spawn(connection.with_upgrades());
    } else {
        tokio::spawn(connection);
    }
    Ok(sender)
}

/// Sends on the client connection's upstream connection, opening one when
/// there is none; an upgrade gets a connection of its own.
async fn send(
    slot: &UpstreamSlot,
    target: SocketAddr,
    req: Request<Incoming>,
    upgrade: bool,
) -> Result<Response<Incoming>, BoxError> {
    let mut sender = match slot.take(target).filter(|_| !upgrade) {
        Some(sender) => sender,
        None => connect(target, upgrade).await?,
    };
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    if !upgrade {
        slot.put(target, sender);
    }
    Ok(response)
}

/// Why a request is not forwarded: each becomes a page that says why.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    AbsoluteForm,
    NoHost,
    IpLiteral(String),
    NotLocalhost(String),
    Unknown(String),
    Stopped(String),
    NoPort { name: String, port: u16 },
}

/// The workspace name a request is for, from its Host header alone.
pub fn workspace_name(uri: &Uri, headers: &HeaderMap) -> Result<String, Refusal> {
    // A forward proxy gets `GET http://host/`; dual is not one.
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(Refusal::AbsoluteForm);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or(Refusal::NoHost)?
        .trim()
        .to_ascii_lowercase();
    let hostname = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host.as_str(), |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host.as_str()
            }
        }),
    };
    let hostname = hostname.trim_end_matches('.');
    if hostname.parse::<IpAddr>().is_ok() {
        return Err(Refusal::IpLiteral(hostname.to_owned()));
    }
    match hostname.strip_suffix(".localhost") {
        Some(name) if !name.is_empty() && !name.contains('.') => Ok(name.to_owned()),
        _ => Err(Refusal::NotLocalhost(hostname.to_owned())),
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>\n<p>{text}</p>\n",
        title = escape(title),
        text = text
    );
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(html))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert("x-dual-proxy", HeaderValue::from_static("refused"));
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn refusal_page(refusal: &Refusal, table: &Table, port: u16) -> Response<Body> {
    match refusal {
        Refusal::AbsoluteForm => page(
            StatusCode::BAD_REQUEST,
            "Not a forward proxy",
            "dual's proxy serves only <code>http://{workspace}.localhost</code> names; it does not fetch other URLs.",
        ),
        Refusal::NoHost => page(
            StatusCode::BAD_REQUEST,
            "No Host header",
            "dual routes by the Host header.",
        ),
        Refusal::IpLiteral(ip) | Refusal::NotLocalhost(ip) => page(
            StatusCode::FORBIDDEN,
            "Not a dual workspace",
            &format!(
                "<code>{}</code> is not a workspace name; dual's proxy serves only <code>{{repo}}-{{branch}}.localhost</code>.",
                escape(ip)
            ),
        ),
        Refusal::Unknown(name) => {
            let live: String = table
                .routes
                .values()
                .map(|route| {
                    let state = if route.running { "running" } else { "stopped" };
                    let url = format!("http://{}.localhost:{port}/", route.name);
                    format!(
                        "<li><a href=\"{url}\">{}</a> ({state})</li>\n",
                        escape(&route.name)
                    )
                })
                .collect();
            let list = if live.is_empty() {
                "<p>No workspaces are running: <code>dual launch</code> starts one.</p>".to_owned()
            } else {
                format!("<ul>\n{live}</ul>")
            };
            page(
                StatusCode::NOT_FOUND,
                "No such workspace",
                &format!(
                    "No workspace is called <code>{}</code>. Workspaces:</p>\n{list}<p>",
                    escape(name)
                ),
            )
        }
        Refusal::Stopped(name) => page(
            StatusCode::BAD_GATEWAY,
            "Workspace stopped",
            &format!(
                "Workspace <code>{0}</code> is stopped. Start it with <code>dual launch {0}</code>.",
                escape(name)
            ),
        ),
        Refusal::NoPort { name, port } => page(
            StatusCode::BAD_GATEWAY,
            "Port not reachable",
            &format!(
                "Workspace <code>{}</code> has no route for port {port}: add it to <code>ports</code> in .dual.toml and relaunch.",
                escape(name)
            ),
        ),
    }
}

fn upstream_error_page(
    name: &str,
    target: SocketAddr,
    error: &(dyn std::error::Error + 'static),
) -> Response<Body> {
    let mut chain = error.to_string();
    let mut source = error.source();
    let mut refused = false;
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = cause.source();
    }
    let text = if refused {
        format!(
            "Nothing listens on port {} in workspace <code>{}</code>. If the dev server is running, it may be bound to 127.0.0.1 inside the container: make it listen on 0.0.0.0 (for example <code>--host 0.0.0.0</code>).",
            target.port(),
            escape(name)
        )
    } else {
        format!(
            "Could not reach workspace <code>{}</code> at {target}: {}",
            escape(name),
            escape(&chain)
        )
    };
    page(StatusCode::BAD_GATEWAY, "Dev server not reachable", &text)
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus
/// any that `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Adds `X-Forwarded-For`, `-Proto` and `-Host`, keeping what earlier hops set.
fn add_forwarded(headers: &mut HeaderMap, client: SocketAddr) {
    let client_ip = client.ip().to_string();
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {client_ip}"),
        None => client_ip,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert("x-forwarded-host", host);
    }
}

pub async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    slot: Arc<UpstreamSlot>,
    client_addr: SocketAddr,
    local_port: u16,
) -> Result<Response<Body>, Infallible> {
    let table = shared.table.borrow().clone();
    let name = match workspace_name(req.uri(), req.headers()) {
        Ok(name) => name,
        Err(refusal) => return Ok(refusal_page(&refusal, &table, local_port)),
    };
    let route = match table.routes.get(&name) {
        None => return Ok(refusal_page(&Refusal::Unknown(name), &table, local_port)),
        Some(route) if !route.running => {
            return Ok(refusal_page(&Refusal::Stopped(name), &table, local_port));
        }
        Some(route) => route,
    };
    let Some(&target) = route.targets.get(&local_port) else {
        return Ok(refusal_page(
            &Refusal::NoPort {
                name,
                port: local_port,
            },
            &table,
            local_port,
        ));
    };

    let upgrade = is_upgrade(req.headers());
    let upgrade_protocol = req.headers().get(header::UPGRADE).cloned();
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    add_forwarded(headers, client_addr);
    if let Some(protocol) = upgrade_protocol.filter(|_| upgrade) {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }

    let mut response = match send(&slot, target, req, upgrade).await {
        Ok(response) => response,
        Err(error) => {
            // The container may have stopped while we connected.
            let stopped = shared
                .table
                .borrow()
                .routes
                .get(&name)
                .is_some_and(|r| !r.running);
            if stopped {
                return Ok(refusal_page(&Refusal::Stopped(name), &table, local_port));
            }
            return Ok(upstream_error_page(&name, target, error.as_ref()));
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let server_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                if let (Ok(client), Ok(server)) = (client_upgrade.await, server_upgrade.await) {
                    let mut client = TokioIo::new(client);
                    let mut server = TokioIo::new(server);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
        return Ok(response.map(Either::Left));
    }
    strip_hop_by_hop(response.headers_mut());
    Ok(response.map(Either::Left))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(target: &str, host: Option<&str>) -> Result<String, Refusal> {
        let uri: Uri = target.parse().unwrap();
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        workspace_name(&uri, &headers)
    }

    #[test]
    fn only_single_label_localhost_names_are_routed() {
        assert_eq!(
            name_of("/", Some("shop-feat.localhost:3000")),
            Ok("shop-feat".into())
        );
        assert_eq!(
            name_of("/x?y", Some("Shop-Feat.LOCALHOST")),
            Ok("shop-feat".into())
        );
        assert_eq!(
            name_of("/", Some("shop-feat.localhost.:3000")),
            Ok("shop-feat".into())
        );
        assert_eq!(
            name_of("http://example.com/", Some("shop-feat.localhost")),
            Err(Refusal::AbsoluteForm)
        );
        assert_eq!(
            name_of("/", Some("169.254.169.254")),
            Err(Refusal::IpLiteral("169.254.169.254".into()))
        );
        assert_eq!(
            name_of("/", Some("[::1]:3000")),
            Err(Refusal::IpLiteral("::1".into()))
        );
        assert_eq!(
            name_of("/", Some("example.com")),
            Err(Refusal::NotLocalhost("example.com".into()))
        );
        assert_eq!(
            name_of("/", Some("a.b.localhost")),
            Err(Refusal::NotLocalhost("a.b.localhost".into()))
        );
        assert_eq!(
            name_of("/", Some("localhost:3000")),
            Err(Refusal::NotLocalhost("localhost".into()))
        );
        assert_eq!(name_of("/", None), Err(Refusal::NoHost));
    }

    #[test]
    fn hop_by_hop_headers_go_and_connection_listed_ones_too() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("host", "shop.localhost"),
            ("accept", "*/*"),
        ] {
            headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["host", "accept"]);
    }

    #[test]
    fn forwarded_headers_append_to_earlier_hops() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_static("shop.localhost:3000"),
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        add_forwarded(&mut headers, "127.0.0.1:5555".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "shop.localhost:3000");
        assert_eq!(
            headers[header::HOST],
            "shop.localhost:3000",
            "Host passes through unchanged"
        );
    }

    #[test]
    fn upgrades_are_recognised_in_a_connection_list() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade(&headers));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert!(!is_upgrade(&headers));
    }
}
