//! `dual logs [WORKSPACE] [SERVICE]` and `dual restart [WORKSPACE] [SERVICE]`:
//! a workspace's services (see `ops::services`).

use crate::error::HintExt as _;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::print;
use crate::engine::EngineKind;
use crate::ops::logs::Follower;
use crate::printer::Printer;
use crate::workspace::Store;

pub fn restart(
    flag: Option<EngineKind>,
    first: Option<&str>,
    second: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load().hinted()?;
    let restarted = crate::ops::services::restart(flag, &state, first, second, printer)?;
    print(&format!(
        "restarted {} in `{}`\n",
        restarted.services.join(", "),
        restarted.workspace
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub fn logs(
    flag: Option<EngineKind>,
    first: Option<&str>,
    second: Option<&str>,
    follow: bool,
    tail: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load().hinted()?;
    let (workspace, config, service) = crate::ops::services::resolve(&state, first, second)?;
    if follow
        && let Some(sidecar) = service
            .as_deref()
            .filter(|s| config.sidecars.contains_key(*s))
    {
        // Followed: the engine's own `logs --follow`, on the terminal.
        let status = crate::ops::logs::follow_sidecar(flag, workspace, sidecar, tail)?
            .run_attached(false, |_| {})?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let name = workspace.name();
    let logs = crate::ops::logs::read(flag, &state, Some(&name), service.as_deref(), tail, None)?;
    print(&logs.render())?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut follower = Follower::new(&logs)?;
    // The first Ctrl-C or SIGTERM ends it (dual's handlers set a flag
    // rather than exit, so the loop must look).
    loop {
        if crate::interrupt::requested() {
            return Ok(ExitCode::from(130));
        }
        std::thread::sleep(Duration::from_millis(200));
        let text = follower.read_new().render();
        if !text.is_empty() {
            print(&text)?;
            let _ = std::io::stdout().flush();
        }
    }
}
