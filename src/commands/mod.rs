//! One file per subcommand: each turns parsed arguments into work and output.

pub mod add;
pub mod attach;
pub mod create;
pub mod destroy;
pub mod focus;
pub mod forward;
pub mod init;
pub mod launch;
pub mod list;
pub mod proxy;
pub mod prune;
pub mod recover;
pub mod remote_sync;
pub mod run;
pub mod services;
pub mod shell_init;
pub mod stop;
pub mod sync;
pub mod urls;
pub mod verify;

use std::io::Write;

use crate::engine::{Engine, EngineKind};
use crate::workspace::Workspace;

/// The engine for a workspace: see `ops::engine_for`.
pub(crate) fn engine_for(
    flag: Option<EngineKind>,
    workspace: Option<&Workspace>,
) -> anyhow::Result<Engine> {
    use crate::error::HintExt as _;
    crate::ops::engine_for(flag, workspace).hinted()
}

/// Writes to stdout; a closed pipe (`dual … | head`) is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
