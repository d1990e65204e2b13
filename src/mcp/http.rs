//! `http_request`: a request to a workspace through dual's proxy on
//! loopback, as a browser on this host sends it, so an agent sees what a
//! person would. Only to a port the running proxy routes for that
//! workspace: never to whatever else listens on this host.

use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::tools::{self, HttpArgs};
use crate::error::{HintExt as _, Hinted};
use crate::proxy::control::{self, Answer, Request};
use crate::workspace::{self, Store};

const BODY_DEFAULT: usize = 64 * 1024;
const BODY_MAX: usize = 1024 * 1024;
const TIMEOUT_DEFAULT: u64 = 30;
const TIMEOUT_MAX: u64 = 300;
/// The request body a client may send.
const SEND_MAX: usize = 1024 * 1024;

/// Where the request goes: the workspace's host name and a port the proxy
/// routes for it.
struct Target {
    host: String,
    port: u16,
}

pub async fn request(args: HttpArgs) -> anyhow::Result<Value> {
    let limit = tools::bytes(
        args.max_body_bytes,
        BODY_DEFAULT,
        BODY_MAX,
        "max_body_bytes",
    )
    .map_err(bounds)?;
    let timeout = tools::seconds(
        args.timeout_seconds,
        TIMEOUT_DEFAULT,
        TIMEOUT_MAX,
        "timeout_seconds",
    )
    .map_err(bounds)?;
    let method = method(args.method.as_deref().unwrap_or("GET"))?;
    let path = path(args.path.as_deref().unwrap_or("/"))?;
    let body = args.body.unwrap_or_default();
    if body.len() > SEND_MAX {
        anyhow::bail!(Hinted {
            message: format!(
                "the body is {} bytes; at most {SEND_MAX} are sent",
                body.len()
            ),
            hint: "send a smaller body".into(),
        });
    }
    let (name, port) = (args.workspace.clone(), args.port);
    let target = tokio::task::spawn_blocking(move || target(&name, port)).await??;
    let authority = format!("{}:{}", target.host, target.port);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(&path)
        .header(hyper::header::HOST, &authority);
    for (name, value) in args.headers.unwrap_or_default() {
        let header = header_name(&name)?;
        let value = hyper::header::HeaderValue::from_str(&value).map_err(|_| Hinted {
            message: format!("the value of header `{name}` is not a valid header value"),
            hint: "no control characters (CR, LF, NUL) in header values".into(),
        })?;
        builder = builder.header(header, value);
    }
    let request = builder.body(http_body_util::Full::new(Bytes::from(body)))?;
    let url = format!("http://{authority}{path}");
    let exchange = exchange(target.port, request, limit);
    let (status, headers, kept, total, truncated) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Hinted {
            message: format!("{url} did not answer within {} s", timeout.as_secs()),
            hint: "check the service with `logs`; a slow page needs a larger timeout_seconds"
                .into(),
        })??;
    Ok(json!({
        "url": url,
        "status": status,
        "headers": headers,
        "body": String::from_utf8_lossy(&kept),
        "body_bytes": total,
        "truncated": truncated,
    }))
}

type Exchanged = (u16, serde_json::Map<String, Value>, Vec<u8>, u64, bool);

/// Sends `request` to the proxy on 127.0.0.1:`port`; the status, headers,
/// the first `limit` bytes of the body, how many were read, and whether the
/// body went on past them (it is not read further).
async fn exchange(
    port: u16,
    request: hyper::Request<http_body_util::Full<Bytes>>,
    limit: usize,
) -> anyhow::Result<Exchanged> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|error| Hinted {
            message: format!("dual's proxy on 127.0.0.1:{port} refused the connection: {error}"),
            hint: "start it with `dual proxy start` (launch starts it too)".into(),
        })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driving = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let mut headers = serde_json::Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(earlier)) => {
                earlier.push_str(", ");
                earlier.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let mut body = response.into_body();
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        total += data.len() as u64;
        let room = limit - kept.len();
        kept.extend_from_slice(&data[..data.len().min(room)]);
        if data.len() > room {
            truncated = true;
            break;
        }
    }
    // A streamed body (SSE) never ends by itself: stop reading it here.
    driving.abort();
    Ok((status, headers, kept, total, truncated))
}

/// The workspace's host name, and the port: the one asked for, which the
/// running proxy must route for it and serve, else the first it serves.
fn target(name: &str, port: Option<u16>) -> anyhow::Result<Target> {
    let state = Store::open_default().load().hinted()?;
    let workspace = workspace::resolve(&state, Some(name)).hinted()?;
    let name = workspace.name();
    let status = match control::ask(&Request::Status) {
        Ok(Answer::Status(status)) => status,
        Ok(_) => empty_status(),
        Err(error) => anyhow::bail!(Hinted {
            message: format!("cannot reach `{name}` through dual's proxy: {error}"),
            hint: format!(
                "`launch` starts the proxy (`dual launch {name}`), or start it with `dual proxy start`"
            ),
        }),
    };
    let port = pick_port(&status, &name, port)?;
    // The status said so a moment ago; the socket table says who holds the
    // port now (the proxy lets go of a port when the workspace stops, and
    // another program may take it).
    if !crate::sockets::only_held_by(port, status.pid) {
        anyhow::bail!(Hinted {
            message: format!(
                "127.0.0.1:{port} is not dual's proxy's alone now, so a request there could reach another program on this host"
            ),
            hint: "check with `dual proxy status`, and try again in a second or two".into(),
        });
    }
    Ok(Target {
        host: format!("{name}.localhost"),
        port,
    })
}

fn empty_status() -> control::ProxyStatus {
    control::ProxyStatus {
        pid: 0,
        engines: Vec::new(),
        workspaces: Vec::new(),
        focus: None,
        conflicts: Vec::new(),
    }
}

/// The port for a request to workspace `name`: `asked`, which the proxy
/// must route for it, else the first of its routed ports something
/// listens on. Never a port another program holds on this host (a
/// conflict: the proxy serves it on no address, so 127.0.0.1:PORT is that
/// program), whatever the workspace listens on.
fn pick_port(status: &control::ProxyStatus, name: &str, asked: Option<u16>) -> anyhow::Result<u16> {
    let held_by_others: Vec<u16> = status.conflicts.iter().map(|c| c.port).collect();
    let routed: Vec<u16> = status
        .workspaces
        .iter()
        .find(|w| w.name == name)
        .map(|w| {
            // Ports something listens on first: the default is one
            // that answers.
            let mut ports: Vec<u16> = w
                .routes
                .keys()
                .copied()
                .filter(|port| !held_by_others.contains(port))
                .collect();
            ports.sort_by_key(|port| !w.listening.reachable.contains(port));
            ports
        })
        .unwrap_or_default();
    match asked {
        Some(port) if routed.contains(&port) => Ok(port),
        Some(port) if held_by_others.contains(&port) => {
            let holder = status
                .conflicts
                .iter()
                .find(|c| c.port == port)
                .map_or("another program", |c| c.holder.as_str());
            Err(Hinted {
                message: format!(
                    "port {port} on this host is held by {holder}, not by dual's proxy: a request there would reach that program, not `{name}`"
                ),
                hint: format!(
                    "use another of `{name}`'s ports ({}), or stop that program; the proxy takes the port within seconds",
                    ports_text(&routed)
                ),
            }
            .into())
        }
        Some(port) => Err(Hinted {
            message: format!("the proxy routes no port {port} of `{name}` (it routes {})", ports_text(&routed)),
            hint: "pick one of its ports (`urls`); a service that just started is routed within a second or two".into(),
        }
        .into()),
        None => routed.first().copied().ok_or_else(|| {
            Hinted {
                message: format!("the proxy routes no port of `{name}`: nothing in it listens yet, or it is not running"),
                hint: "launch it, and check its services with `logs`".into(),
            }
            .into()
        }),
    }
}

fn ports_text(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "none".into();
    }
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn method(method: &str) -> anyhow::Result<hyper::Method> {
    let token =
        !method.is_empty() && method.len() <= 16 && method.bytes().all(|b| b.is_ascii_uppercase());
    match hyper::Method::from_bytes(method.as_bytes()) {
        Ok(parsed) if token => Ok(parsed),
        _ => Err(Hinted {
            message: format!("`{method}` is not an HTTP method"),
            hint: "GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS, in capitals".into(),
        }
        .into()),
    }
}

/// An origin-form target: `/`, then no spaces or control characters.
fn path(path: &str) -> anyhow::Result<String> {
    let valid = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= 8192
        && path.bytes().all(|b| b.is_ascii_graphic())
        && path.parse::<hyper::Uri>().is_ok();
    if !valid {
        anyhow::bail!(Hinted {
            message: format!("`{path}` is not a path on the workspace"),
            hint: "give a path and query starting with `/` (`/api/items?page=2`), percent-encoded, not a full URL".into(),
        });
    }
    Ok(path.to_owned())
}

/// A header a request may carry: not the ones dual sets (Host, the body's
/// framing), nor hop-by-hop ones.
fn header_name(name: &str) -> anyhow::Result<hyper::header::HeaderName> {
    let parsed = hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| Hinted {
        message: format!("`{name}` is not a header name"),
        hint: "letters, digits and `-`".into(),
    })?;
    const SET_BY_DUAL: [&str; 6] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
    ];
    if SET_BY_DUAL.contains(&parsed.as_str()) {
        anyhow::bail!(Hinted {
            message: format!("header `{name}` is set by dual"),
            hint: "leave it out: the request goes to the workspace's own host, its body framed by dual".into(),
        });
    }
    Ok(parsed)
}

fn bounds(error: String) -> anyhow::Error {
    Hinted {
        message: error,
        hint: "pass a value within the bounds".into(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_path_on_the_workspace() {
        assert!(path("/").is_ok());
        assert!(path("/api/items?page=2&q=a%20b").is_ok());
        for bad in [
            "",
            "http://evil.example/",
            "//evil.example/x",
            "/a b",
            "/a\r\nHost: x",
            "x",
        ] {
            assert!(path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn never_a_port_another_program_holds() {
        use crate::proxy::conflicts::Conflict;
        let mut status = empty_status();
        let workspace = serde_json::json!({
            "name": "shop-a", "engine": null, "running": true, "ports": [],
            "listening": {"reachable": [5000, 5432], "loopback_only": []},
            "routes": {"3000": "172.17.0.2:3000", "5000": "172.17.0.2:5000", "5432": "172.17.0.2:5432"},
        });
        status
            .workspaces
            .push(serde_json::from_value(workspace).unwrap());
        status.conflicts.push(Conflict {
            port: 5432,
            address: "127.0.0.1:5432".into(),
            holder: "pid 7 (postgres)".into(),
        });
        assert_eq!(pick_port(&status, "shop-a", None).unwrap(), 5000);
        assert_eq!(pick_port(&status, "shop-a", Some(3000)).unwrap(), 3000);
        let held = pick_port(&status, "shop-a", Some(5432))
            .unwrap_err()
            .to_string();
        assert!(held.contains("postgres"), "{held}");
        assert!(pick_port(&status, "shop-a", Some(22)).is_err());
        assert!(pick_port(&status, "shop-b", None).is_err());
        status.conflicts[0].port = 5000;
        assert_eq!(pick_port(&status, "shop-a", None).unwrap(), 5432);
    }

    #[test]
    fn methods_and_headers_are_checked() {
        assert!(method("POST").is_ok());
        for bad in ["", "get", "GET /", "G\nET", "CONNECTCONNECTCONNECT"] {
            assert!(method(bad).is_err(), "{bad:?}");
        }
        assert!(header_name("X-Test").is_ok());
        for bad in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "bad header",
            "",
        ] {
            assert!(header_name(bad).is_err(), "{bad:?}");
        }
    }
}
