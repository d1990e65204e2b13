//! `dual forward`: a raw TCP forward from the host's 127.0.0.1 to a port of
//! a workspace container (Postgres, Redis, anything that is not HTTP), and
//! listing and stopping them. The running proxy does the forwarding (see
//! `proxy::tcp_forward`); this asks it, starting it first when it is not
//! running, and turns its refusals into errors that say what to do.

use std::time::{Duration, Instant};

use crate::engine::EngineKind;
use crate::error::{Hint, HintExt as _};
use crate::printer::Printer;
use crate::proxy::control::{self, ControlError};
use crate::proxy::tcp_forward::{ForwardInfo, Reach, Refusal};
use crate::workspace::{self, Store};

/// How long a proxy just started has to open its control socket (it reads
/// every engine's containers first).
const PROXY_ANSWERS_WITHIN: Duration = Duration::from_secs(15);

/// What to forward.
#[derive(Debug, Clone, Copy)]
pub struct ForwardRequest<'a> {
    /// The engine flag (used when the proxy has to be started).
    pub engine: Option<EngineKind>,
    /// The workspace; `None`: the one around the current directory.
    pub workspace: Option<&'a str>,
    /// The port in its container.
    pub port: u16,
    /// The port on 127.0.0.1; `None`: `port` where it is free, else one the
    /// OS picks.
    pub local: Option<u16>,
}

/// A forward that runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub forward: ForwardInfo,
    /// It was already there (asked again: the same one is returned).
    pub existing: bool,
    /// A command that connects through it (`psql -h 127.0.0.1 -p 15432`).
    pub example: String,
    /// The proxy was started for it: its pid.
    pub started_proxy: Option<u32>,
}

/// Which forwards `stop` stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopWhich {
    All,
    /// The one on this port of 127.0.0.1.
    Local(u16),
    /// Every one to this workspace.
    Workspace(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("workspace `{workspace}` has no container")]
    NotLaunched { workspace: String },
    #[error("workspace `{workspace}` is not running")]
    NotRunning { workspace: String },
    #[error(
        "port {port} of `{workspace}` cannot be reached from the host: its container has no address the host can route to (rootless podman) and does not publish that port"
    )]
    Unreachable { workspace: String, port: u16 },
    #[error("127.0.0.1:{port} is already taken {holder}")]
    LocalTaken { port: u16, holder: String },
    #[error("cannot listen on 127.0.0.1:{port}: {error}")]
    LocalRefused { port: u16, error: String },
    #[error("the proxy already runs {limit} forwards, the most it takes")]
    TooMany { limit: usize },
    #[error("the proxy refused the forward: {0}")]
    Invalid(String),
    #[error("no proxy is running, and DUAL_PROXY_AUTOSTART=0 keeps dual from starting one")]
    NoProxy,
    #[error("no forward {0}")]
    NoSuchForward(String),
    #[error(transparent)]
    Proxy(#[from] ControlError),
}

impl Hint for ForwardError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            ForwardError::NotLaunched { workspace } | ForwardError::NotRunning { workspace } => {
                format!("`dual launch {workspace}` starts it; the forward then reaches it")
            }
            ForwardError::Unreachable { workspace, port } => format!(
                "declare the port in its `.dual.toml` (`ports = [{port}]`, with any others) and run `dual launch {workspace}`, which publishes it on 127.0.0.1"
            ),
            ForwardError::LocalTaken { .. } => {
                "choose another with `--local N`, or leave `--local` out for a free one".into()
            }
            ForwardError::LocalRefused { .. } => {
                "choose a port from 1024 up with `--local N`, or leave `--local` out for a free one"
                    .into()
            }
            ForwardError::TooMany { .. } => {
                "`dual forward --list` lists them; `dual forward --stop PORT` stops one".into()
            }
            ForwardError::Invalid(_) => return None,
            ForwardError::NoProxy => "`dual proxy start` starts it; forwards run inside it".into(),
            ForwardError::NoSuchForward(_) => "`dual forward --list` lists the forwards".into(),
            ForwardError::Proxy(ControlError::NotRunning) => "`dual proxy start` starts it".into(),
            ForwardError::Proxy(_) => {
                "`dual proxy stop`, then `dual proxy start`, starts a fresh proxy".into()
            }
        })
    }
}

/// Forwards 127.0.0.1:`local` to the workspace's `port` (starting the proxy
/// when none runs). Warns when nothing can be reached through it yet.
pub fn forward(request: ForwardRequest<'_>, printer: &Printer) -> anyhow::Result<Forwarded> {
    let state = Store::open_default().load().hinted()?;
    let workspace = workspace::resolve(&state, request.workspace).hinted()?;
    let name = workspace.name();
    let started_proxy = ensure_proxy(request.engine.or(workspace.engine), printer).hinted()?;
    let asked =
        until_the_proxy_answers(|| control::forward_add(&name, request.port, request.local))
            .map_err(ForwardError::from)
            .hinted()?;
    let added = asked.map_err(error_of).hinted()?;
    if let Some(warning) = warning(&added.reach, &name, request.port) {
        printer.warn(warning);
    }
    let local = added.forward.local.port();
    Ok(Forwarded {
        example: example(request.port, local),
        forward: added.forward,
        existing: added.existing,
        started_proxy,
    })
}

/// Every forward the running proxy runs; `None` when no proxy runs.
pub fn list() -> anyhow::Result<Option<Vec<ForwardInfo>>> {
    match control::forwards() {
        Ok(forwards) => Ok(Some(forwards)),
        Err(ControlError::NotRunning) => Ok(None),
        Err(error) => Err(ForwardError::from(error)).hinted(),
    }
}

/// Stops forwards; those it stopped. Naming one that is not there is an
/// error; stopping all when there are none is not.
pub fn stop(which: &StopWhich) -> anyhow::Result<Vec<ForwardInfo>> {
    let (local, workspace) = match which {
        StopWhich::All => (None, None),
        StopWhich::Local(port) => (Some(*port), None),
        StopWhich::Workspace(name) => (None, Some(workspace_name(name))),
    };
    let stopped = match control::forward_remove(local, workspace.as_deref()) {
        Ok(stopped) => stopped,
        Err(ControlError::NotRunning) => Vec::new(),
        Err(error) => return Err(ForwardError::from(error)).hinted(),
    };
    if stopped.is_empty() {
        let missing = match (local, workspace) {
            (Some(port), _) => Some(format!("on 127.0.0.1:{port}")),
            (None, Some(name)) => Some(format!("to `{name}`")),
            (None, None) => None,
        };
        if let Some(missing) = missing {
            return Err(ForwardError::NoSuchForward(missing)).hinted();
        }
    }
    Ok(stopped)
}

/// The workspace's full name where dual knows it (`feat/auth` →
/// `shop-feat-auth`), else the name as given (a workspace destroyed since
/// its forward was added).
fn workspace_name(given: &str) -> String {
    Store::open_default()
        .load()
        .ok()
        .and_then(|state| {
            workspace::resolve(&state, Some(given))
                .ok()
                .map(|w| w.name())
        })
        .unwrap_or_else(|| given.to_owned())
}

/// Starts the background proxy unless one runs (and autostart is on); its
/// pid when it was started here.
fn ensure_proxy(engine: Option<EngineKind>, printer: &Printer) -> Result<Option<u32>, StartError> {
    if crate::proxy::instance::running_pid().is_some() {
        return Ok(None);
    }
    if !crate::settings::proxy_autostart() {
        return Err(StartError::Forward(ForwardError::NoProxy));
    }
    let pid = crate::proxy::instance::start_background(engine).map_err(StartError::Start)?;
    printer.progress(format!("proxy: started (pid {pid})"));
    Ok(Some(pid))
}

/// Why the proxy could not be had.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Forward(ForwardError),
    #[error("the proxy did not start: {0:#}")]
    Start(anyhow::Error),
}

impl Hint for StartError {
    fn hint(&self) -> Option<String> {
        match self {
            StartError::Forward(error) => error.hint(),
            StartError::Start(error) => Some(crate::error::hint_of(error).unwrap_or_else(|| {
                "`dual proxy` runs it in the foreground, where its errors show".into()
            })),
        }
    }
}

/// `ask`, again while a proxy that holds its lock has not opened its
/// control socket yet (it just started).
fn until_the_proxy_answers<T>(
    mut ask: impl FnMut() -> Result<T, ControlError>,
) -> Result<T, ControlError> {
    let deadline = Instant::now() + PROXY_ANSWERS_WITHIN;
    loop {
        match ask() {
            Err(ControlError::NoAnswer { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// The proxy's refusal as an error that says what to do; a taken port
/// names its holder where this host can tell.
fn error_of(refusal: Refusal) -> ForwardError {
    match refusal {
        Refusal::UnknownWorkspace { workspace } => ForwardError::NotLaunched { workspace },
        Refusal::NotRunning { workspace } => ForwardError::NotRunning { workspace },
        Refusal::Unreachable { workspace, port } => ForwardError::Unreachable { workspace, port },
        Refusal::LocalTaken {
            port,
            forward,
            http,
        } => ForwardError::LocalTaken {
            port,
            holder: holder(port, forward, http),
        },
        Refusal::LocalRefused { port, error } => ForwardError::LocalRefused { port, error },
        Refusal::TooMany { limit } => ForwardError::TooMany { limit },
        Refusal::Invalid { error } => ForwardError::Invalid(error),
    }
}

/// Who holds a local port, as "by …".
fn holder(port: u16, forward: Option<(String, u16)>, http: bool) -> String {
    if let Some((workspace, to)) = forward {
        return format!("by dual's forward to `{workspace}`:{to}");
    }
    let proxy = crate::proxy::instance::running_pid();
    let found = crate::sockets::holder_of(port);
    let by_proxy = match (&found, proxy) {
        (Some(found), Some(pid)) => found.starts_with(&format!("pid {pid} (")),
        (None, _) => http,
        (Some(_), None) => false,
    };
    match found {
        _ if by_proxy && http => format!(
            "by dual's proxy, which routes http://…localhost:{port} to the workspaces listening on {port}"
        ),
        _ if by_proxy => "by dual's proxy".to_owned(),
        Some(found) => format!("by {found}"),
        None => "by a program this user cannot see (another user's?)".to_owned(),
    }
}

/// What a forward that does not reach its port yet should say.
fn warning(reach: &Reach, workspace: &str, port: u16) -> Option<String> {
    match reach {
        Reach::Routed { .. } => None,
        Reach::NotListening => Some(format!(
            "nothing in `{workspace}` listens on port {port} yet: connections are closed at once until a server does (on 0.0.0.0)"
        )),
        Reach::LoopbackOnly => Some(format!(
            "the server on port {port} in `{workspace}` listens on 127.0.0.1 inside its container, which nothing outside reaches: bind it to 0.0.0.0"
        )),
        Reach::NotRouted => Some(format!(
            "`{workspace}` listens on more ports than dual follows by itself: declare {port} in its `.dual.toml` `ports` and `dual launch` it"
        )),
    }
}

/// A command that connects to 127.0.0.1:`local`, by what usually serves
/// the container's `port`.
pub fn example(port: u16, local: u16) -> String {
    match port {
        5432 => format!("psql -h 127.0.0.1 -p {local}"),
        6379 => format!("redis-cli -p {local}"),
        3306 => format!("mysql -h 127.0.0.1 -P {local}"),
        _ => format!("nc 127.0.0.1 {local}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_fits_what_usually_serves_the_port() {
        assert_eq!(example(5432, 15432), "psql -h 127.0.0.1 -p 15432");
        assert_eq!(example(6379, 6379), "redis-cli -p 6379");
        assert_eq!(example(3306, 3307), "mysql -h 127.0.0.1 -P 3307");
        assert_eq!(example(9000, 41234), "nc 127.0.0.1 41234");
    }

    #[test]
    fn each_refusal_says_what_to_do() {
        let error = error_of(Refusal::Unreachable {
            workspace: "shop-main".into(),
            port: 5432,
        });
        assert!(error.to_string().contains("rootless podman"), "{error}");
        assert!(
            error.hint().unwrap().contains("`ports = [5432]`"),
            "{:?}",
            error.hint()
        );
        let error = error_of(Refusal::NotRunning {
            workspace: "shop-main".into(),
        });
        assert_eq!(
            error.hint().unwrap(),
            "`dual launch shop-main` starts it; the forward then reaches it"
        );
        let error = error_of(Refusal::LocalTaken {
            port: 1,
            forward: Some(("shop-a".into(), 6379)),
            http: false,
        });
        assert_eq!(
            error.to_string(),
            "127.0.0.1:1 is already taken by dual's forward to `shop-a`:6379"
        );
    }
}
