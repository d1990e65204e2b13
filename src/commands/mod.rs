//! One file per subcommand: each turns parsed arguments into work and output.

pub mod add;
pub mod attach;
pub mod create;
pub mod destroy;
pub mod focus;
pub mod launch;
pub mod list;
pub mod proxy;
pub mod prune;
pub mod recover;
pub mod run;
pub mod services;
pub mod shell_init;
pub mod stop;
pub mod sync;
pub mod urls;
pub mod verify;

use crate::engine::{Engine, EngineKind};
use crate::workspace::Workspace;

/// The engine for a workspace: the flag, else the one it was launched on,
/// else the usual selection.
pub(crate) fn engine_for(
    flag: Option<EngineKind>,
    workspace: Option<&Workspace>,
) -> anyhow::Result<Engine> {
    if let Some(kind) = flag.or_else(|| workspace.and_then(|w| w.engine)) {
        return Ok(Engine::new(kind));
    }
    Ok(Engine::select(None)?)
}
