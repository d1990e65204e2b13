//! `dual attach [WORKSPACE]`: its tmux session, made if needed (in the
//! clone, runtime commands routed into the container), launched first if it
//! is not running, after its devcontainer.json's `postAttachCommand`.
//! Inside tmux, switches the client instead of nesting.

use std::process::ExitCode;

use crate::engine::EngineKind;
use crate::error::HintExt as _;
use crate::printer::Printer;
use crate::workspace::{self, Store};

pub fn run(
    flag: Option<EngineKind>,
    name: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    if !crate::tmux::available() {
        anyhow::bail!(crate::error::Hinted {
            message: "tmux is not installed".into(),
            hint: "install it (`apt-get install tmux`), or work in the clone with `eval \"$(dual shell-init)\"`".into(),
        });
    }
    let store = Store::open_default();
    let mut workspace = workspace::resolve(&store.load().hinted()?, name)
        .hinted()?
        .clone();
    if !workspace.path.exists() || !running(flag, &workspace) {
        crate::ops::launch::launch(flag, Some(&workspace.name()), false, printer)?;
        // As launch left it: the user its commands run as.
        workspace = workspace::resolve(&store.load().hinted()?, Some(&workspace.name()))
            .hinted()?
            .clone();
    }
    crate::ops::lifecycle::attach_hook(flag, &workspace, printer);
    crate::tmux::ensure_session(&workspace)?;
    crate::tmux::attach(&workspace.name())?;
    Ok(ExitCode::SUCCESS)
}

fn running(flag: Option<EngineKind>, workspace: &workspace::Workspace) -> bool {
    super::engine_for(flag, Some(workspace))
        .ok()
        .and_then(|engine| engine.inspect(&[&workspace.container_name()]).ok())
        .and_then(|mut found| found.pop())
        .is_some_and(|c| c.running)
}
