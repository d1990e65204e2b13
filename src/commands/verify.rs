//! `dual verify [--probes] [--json] [--report FILE]`.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;

use super::print;
use crate::cli::VerifyArgs;
use crate::engine::EngineKind;
use crate::verify::{self, render};

pub fn run(engine: Option<EngineKind>, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let options = verify::Options {
        engine,
        probes: args.probes,
        count: usize::from(args.count),
        ports: if args.ports.is_empty() {
            workspace_ports()
        } else {
            args.ports.clone()
        },
    };
    let report = verify::run(&options)?;
    if let Some(path) = &args.report {
        std::fs::write(path, render::markdown(&report))
            .with_context(|| format!("could not write the report to `{}`", path.display()))?;
    }
    if args.json {
        print(&render::json(&report))?;
        print("\n")?;
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print(&render::table(&report, color))?;
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The ports the proxy will need: every workspace's declared ports and
/// service hints, and what the running ones listen on; before any repo is
/// registered, the default config's port.
fn workspace_ports() -> Vec<u16> {
    let Ok(state) = crate::workspace::Store::open_default().load() else {
        return vec![3000];
    };
    if state.workspaces.is_empty() {
        return vec![3000];
    }
    let mut ports: Vec<u16> = state
        .workspaces
        .iter()
        .flat_map(|w| crate::workspace::declared_ports(&state, w))
        .collect();
    for listed in crate::ops::status::status(None, &state, &crate::printer::Printer::silent()) {
        ports.extend(listed.listening);
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}
