//! The image a workspace runs when its config builds one from the repo's
//! Dockerfile: built once per content of what the Dockerfile uses, shared
//! by the repo's workspaces (`workspace::image_build`). The tag it is built
//! under becomes the config's `image`, which the container's settings hash
//! holds: a changed Dockerfile (or file it copies) makes `launch` recreate
//! the container, keeping its clone and volumes.

use std::io::IsTerminal;

use anyhow::Context as _;

use crate::engine::Engine;
use crate::error::HintExt as _;
use crate::printer::Printer;
use crate::workspace::Workspace;
use crate::workspace::config::Config;
use crate::workspace::image_build::{self, Owner};

/// Builds `config.build` (unless the engine has it) and sets `config.image`
/// to the tag it was built under. A failed build changes nothing: the
/// workspace's container, where there is one, stays as it was.
pub fn resolve_build(
    engine: &Engine,
    workspace: &Workspace,
    config: &mut Config,
    printer: &Printer,
) -> anyhow::Result<()> {
    let Some(build) = &config.build else {
        return Ok(());
    };
    let progress = |line: String| printer.progress(line);
    let terminal = printer.is_terminal() && std::io::stderr().is_terminal();
    let tag = image_build::prepare(
        engine,
        workspace,
        &Owner::Workspace,
        build,
        &progress,
        terminal,
    )
    .hinted()
    .with_context(|| {
        format!(
            "could not build the image of `{}` from its Dockerfile",
            workspace.name()
        )
    })?;
    config.image = tag;
    Ok(())
}
