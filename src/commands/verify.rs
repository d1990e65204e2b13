//! `dual verify [--probes] [--json] [--report FILE]`.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{VerifyArgs, print};
use crate::engine::EngineKind;
use crate::verify::{self, render};

pub fn run(engine: Option<EngineKind>, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let options = verify::Options {
        engine,
        probes: args.probes,
        count: usize::from(args.count),
        ports: args.ports.clone(),
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
