//! `dual attach [WORKSPACE]`: its tmux session, made if needed (in the
//! clone, runtime commands routed into the container), launched first if it
//! is not running. Inside tmux, switches the client instead of nesting.

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
    let state = Store::open_default().load().hinted()?;
    let workspace = workspace::resolve(&state, name).hinted()?.clone();
    if !workspace.path.exists() || !running(flag, &workspace) {
        crate::ops::launch::launch(flag, Some(&workspace.name()), false, printer)?;
    }
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
