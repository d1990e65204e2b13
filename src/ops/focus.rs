//! The workspace in focus (see `workspace::focus`): which one plain
//! `http://localhost:PORT` reaches through the proxy.

use crate::error::HintExt as _;
use crate::proxy::control::{self, Answer, Request};
pub use crate::workspace::focus::Applied;
use crate::workspace::{self, Store, focus};

/// What `set` did.
#[derive(Debug)]
pub struct FocusSet {
    /// The workspace's full name.
    pub workspace: String,
    pub applied: Applied,
    /// A port it declares (3000 when none), for an example URL.
    pub example_port: u16,
}

/// The workspace in focus: the running proxy's own view, else the choice
/// kept for the next proxy to start.
pub fn current() -> Option<String> {
    match control::ask(&Request::Focus {
        set: None,
        clear: false,
    }) {
        Ok(Answer::Focus { focus }) => focus,
        _ => focus::read(),
    }
}

/// Puts workspace `name` (as `dual` resolves a name) in focus.
pub fn set(name: &str) -> anyhow::Result<FocusSet> {
    let state = Store::open_default().load().hinted()?;
    let workspace = workspace::resolve(&state, Some(name)).hinted()?;
    let name = workspace.name();
    let applied = focus::apply(Some(&name))?;
    let example_port = workspace::declared_ports(&state, workspace)
        .first()
        .copied()
        .unwrap_or(3000);
    Ok(FocusSet {
        workspace: name,
        applied,
        example_port,
    })
}

/// Puts no workspace in focus: plain localhost gets a page listing them.
pub fn clear() -> anyhow::Result<Applied> {
    Ok(focus::apply(None)?)
}
