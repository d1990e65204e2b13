//! Whether dual may route a request, and the pages it answers with when
//! it does not (or cannot): the rules of the proxy, apart from the bytes
//! (`http1`) and the connection that carries them (`conn`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::http1::RequestHead;
use super::routes::Table;

/// What every connection shares.
pub struct Shared {
    pub table: tokio::sync::watch::Receiver<Arc<Table>>,
    /// How long a client has for a whole request head, from the moment the
    /// proxy waits for it (an idle keep-alive connection included).
    pub head_timeout: std::time::Duration,
    /// The engines the routes come from, each with whether it stopped
    /// answering: then a workspace of it that does not answer gets a page
    /// that says why.
    pub away: Vec<(
        crate::engine::EngineKind,
        Arc<std::sync::atomic::AtomicBool>,
    )>,
    /// The workspaces whose services are starting (see `proxy::files`).
    pub starting: Starting,
}

/// Until when (seconds since the epoch) each workspace counts as starting.
pub type Starting = Arc<std::sync::RwLock<std::collections::HashMap<String, u64>>>;

impl Shared {
    /// For a fixed table (`serve_fixed`): no engine, nothing starting.
    pub fn fixed(table: Table, head_timeout: std::time::Duration) -> Shared {
        let (_sender, table) = tokio::sync::watch::channel(Arc::new(table));
        Shared {
            table,
            head_timeout,
            away: Vec::new(),
            starting: Starting::default(),
        }
    }

    /// Whether a service of workspace `name` is starting: then a port that
    /// does not answer may answer in a moment.
    pub fn is_starting(&self, name: &str) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.starting
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .is_some_and(|until| now < *until)
    }

    /// The engine of a route whose workspace did not answer, when that
    /// engine does not answer either.
    pub fn engine_away(&self, engine: Option<crate::engine::EngineKind>) -> Option<&'static str> {
        let engine = engine?;
        self.away
            .iter()
            .find(|(kind, away)| *kind == engine && away.load(std::sync::atomic::Ordering::Relaxed))
            .map(|(kind, _)| kind.program())
    }
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
    NoPort {
        name: String,
        port: u16,
    },
    /// Plain `localhost` with no workspace in focus (or one that does not
    /// serve the port).
    NoFocus {
        port: u16,
    },
}

/// Whether a refused name is the host's own loopback name: plain
/// `localhost`, `127.0.0.1` or `::1`, which go to the workspace in focus.
fn is_plain_localhost(refusal: &Refusal) -> bool {
    match refusal {
        Refusal::NotLocalhost(name) => name == "localhost",
        Refusal::IpLiteral(ip) => ip == "127.0.0.1" || ip == "::1",
        _ => false,
    }
}

/// The workspace name a request is for, from its Host header alone.
pub fn workspace_name(origin_form: bool, host: Option<&str>) -> Result<String, Refusal> {
    // A forward proxy gets `GET http://host/` (or CONNECT); dual is not one.
    if !origin_form {
        return Err(Refusal::AbsoluteForm);
    }
    let host = host.ok_or(Refusal::NoHost)?.trim().to_ascii_lowercase();
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

/// Where a request goes: its workspace's name and the container's address
/// for the port it came in on.
pub fn route(
    head: &RequestHead,
    table: &Table,
    port: u16,
) -> Result<(String, SocketAddr), Refusal> {
    let name = match workspace_name(head.origin_form, head.host.as_deref()) {
        Ok(name) => name,
        Err(refusal) if is_plain_localhost(&refusal) => {
            let focused = table.focus.as_ref().and_then(|name| table.routes.get(name));
            return match focused.and_then(|route| route.targets.get(&port).map(|t| (route, t))) {
                Some((route, &target)) if route.running => Ok((route.name.clone(), target)),
                _ => Err(Refusal::NoFocus { port }),
            };
        }
        Err(refusal) => return Err(refusal),
    };
    match table.routes.get(&name) {
        None => Err(Refusal::Unknown(name)),
        Some(route) if !route.running => Err(Refusal::Stopped(name)),
        Some(route) => match route.targets.get(&port) {
            Some(&target) => Ok((name, target)),
            None => Err(Refusal::NoPort { name, port }),
        },
    }
}

/// A response of dual's own: an HTML page saying why.
pub struct Page {
    status: u16,
    reason: &'static str,
    html: String,
}

impl Page {
    fn new(status: u16, title: &str, text: &str) -> Page {
        let html = format!(
            "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>\n<p>{text}</p>\n",
            title = escape(title),
            text = text
        );
        Page {
            status,
            reason: reason(status),
            html,
        }
    }

    /// For a request dual could not read at all.
    pub fn plain(status: u16, why: &str) -> Page {
        Page::new(status, reason(status), &escape(why))
    }

    /// The whole response; `keep_alive`: the connection stays open after it.
    pub fn write(&self, out: &mut Vec<u8>, keep_alive: bool) {
        use std::io::Write;
        out.clear();
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\ncontent-type: text/html; charset=utf-8\r\nx-dual-proxy: refused\r\ncontent-length: {}\r\n{}\r\n",
            self.status,
            self.reason,
            self.html.len(),
            if keep_alive {
                ""
            } else {
                "connection: close\r\n"
            }
        );
        out.extend_from_slice(self.html.as_bytes());
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn refusal_page(refusal: &Refusal, table: &Table, port: u16) -> Page {
    match refusal {
        Refusal::AbsoluteForm => Page::new(
            400,
            "Not a forward proxy",
            "dual's proxy serves only <code>http://{workspace}.localhost</code> names; it does not fetch other URLs.",
        ),
        Refusal::NoHost => Page::new(400, "No Host header", "dual routes by the Host header."),
        Refusal::IpLiteral(ip) | Refusal::NotLocalhost(ip) => Page::new(
            403,
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
            Page::new(
                404,
                "No such workspace",
                &format!(
                    "No workspace is called <code>{}</code>. Workspaces:</p>\n{list}<p>",
                    escape(name)
                ),
            )
        }
        Refusal::NoFocus { port } => {
            let serving: String = table
                .routes
                .values()
                .filter(|route| route.running && route.targets.contains_key(port))
                .map(|route| {
                    let url = format!("http://{}.localhost:{port}/", route.name);
                    format!(
                        "<li><a href=\"{url}\">{url}</a> (<code>dual focus {}</code>)</li>\n",
                        escape(&route.name)
                    )
                })
                .collect();
            let why = match &table.focus {
                Some(name) => format!(
                    "The workspace in focus, <code>{}</code>, does not serve port {port}.",
                    escape(name)
                ),
                None => "No workspace is in focus.".to_owned(),
            };
            let list = if serving.is_empty() {
                format!("<p>No running workspace serves port {port}.</p>")
            } else {
                format!("<p>Workspaces serving port {port}:</p>\n<ul>\n{serving}</ul>")
            };
            Page::new(
                404,
                "Which workspace?",
                &format!(
                    "{why} <code>dual focus WORKSPACE</code> sends plain <code>localhost:{port}</code> to one.</p>\n{list}<p>"
                ),
            )
        }
        Refusal::Stopped(name) => Page::new(
            502,
            "Workspace stopped",
            &format!(
                "Workspace <code>{0}</code> is stopped. Start it with <code>dual launch {0}</code>.",
                escape(name)
            ),
        ),
        Refusal::NoPort { name, port } => {
            let route = table.routes.get(name);
            let listening = route.map(|r| &r.listening);
            let text = if listening.is_some_and(|l| l.loopback_only.contains(port)) {
                format!(
                    "Workspace <code>{}</code> listens on port {port} on 127.0.0.1 only, inside its container, where nothing from outside reaches it. Make the dev server listen on 0.0.0.0 (for example <code>--host 0.0.0.0</code>).",
                    escape(name)
                )
            } else {
                let open: Vec<String> = route
                    .map(|r| r.targets.keys().map(|p| format!(":{p}")).collect())
                    .unwrap_or_default();
                format!(
                    "Nothing listens on port {port} in workspace <code>{}</code>{}. A server that starts listening there is routed within a second or two.",
                    escape(name),
                    if open.is_empty() {
                        String::new()
                    } else {
                        format!(" (it serves {})", open.join(", "))
                    }
                )
            };
            Page::new(502, "Port not reachable", &text)
        }
    }
}

/// A workspace that does not answer while its engine does not either: the
/// routes are the last the engine gave, and may be stale.
pub fn engine_away_page(engine: &str, name: &str) -> Page {
    let text = format!(
        "{engine} does not answer, so dual cannot tell whether workspace <code>{}</code> still runs, and its last known address did not answer. Start {engine} again (for example <code>sudo systemctl start {engine}</code>, or open Docker Desktop); dual follows it as soon as it answers, and its workspaces come back with it.",
        escape(name)
    );
    Page::new(502, "Container engine not reachable", &text)
}

/// A workspace whose services are starting: the port may not be bound yet.
pub fn starting_page(name: &str, port: u16) -> Page {
    let text = format!(
        "The services of workspace <code>{}</code> are starting, and nothing answers on port {port} yet. Reload in a few seconds; <code>dual logs {}</code> shows how they are doing.",
        escape(name),
        escape(name)
    );
    Page::new(502, "Starting", &text)
}

pub fn upstream_error_page(name: &str, target: SocketAddr, error: &std::io::Error) -> Page {
    let chain = error.to_string();
    let refused = error.kind() == std::io::ErrorKind::ConnectionRefused;
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
    Page::new(502, "Dev server not reachable", &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(target: &str, host: Option<&str>) -> Result<String, Refusal> {
        workspace_name(target.starts_with('/'), host)
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
}
