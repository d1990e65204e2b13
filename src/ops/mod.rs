//! The operations on workspaces, the same for every face of dual: the
//! command line (`commands/`, which parses and renders) and the browser
//! (`tui`, on a thread) call these. Each takes typed inputs and a `Printer`
//! for its progress and warnings, and returns a typed report; its error
//! carries its hint (see `crate::error`). None prints by itself, parses
//! arguments, or imports the command layer (a test in `tests/it/ops.rs`
//! holds that).

pub mod create;
pub mod destroy;
pub mod focus;
pub mod forward;
pub mod image;
pub mod keep;
pub mod launch;
pub mod lifecycle;
pub mod logs;
pub mod prune;
pub mod recover;
pub mod remote_host;
pub mod repos;
pub mod run;
pub mod seed;
pub mod services;
pub mod setup;
pub mod status;
pub mod stop;
pub mod sync;
pub mod urls;

use crate::engine::{Engine, EngineError, EngineKind};
use crate::workspace::Workspace;

/// The engine for a workspace: the flag, else the one it was launched on
/// (on the host it was launched on), else the usual selection.
pub fn engine_for(
    flag: Option<EngineKind>,
    workspace: Option<&Workspace>,
) -> Result<Engine, EngineError> {
    let recorded = workspace.and_then(|w| w.engine);
    if let Some(kind) = flag.or(recorded) {
        let endpoint = workspace
            .filter(|_| recorded == Some(kind))
            .and_then(|w| w.endpoint.clone());
        return Ok(Engine::new(kind).at(endpoint));
    }
    Engine::select(None)
}
