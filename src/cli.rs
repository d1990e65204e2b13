//! The command line: argument definitions, and the one place that turns a
//! command's result into output and an exit status.
//!
//! Exit statuses: 0 success; 1 the command failed (a failed check, an engine
//! error); 2 bad usage (from clap); 130 interrupted by Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::engine::EngineKind;

#[derive(Debug, Parser)]
#[command(
    name = "dual",
    version,
    about = "One clone and one container per branch, each with its own ports"
)]
pub struct Cli {
    /// Container engine to drive [default: $DUAL_ENGINE, else the first of docker and podman that answers]
    #[arg(long, global = true, value_enum)]
    pub engine: Option<EngineKind>,

    /// Print every external command dual runs (also DUAL_LOG=debug)
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that this host can run dual, and say what to fix
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,

    /// Also run the full isolation probe suite (many containers, failure modes, figures)
    #[arg(long)]
    pub probes: bool,

    /// Containers the probe suite starts at once (with --probes)
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u16).range(2..=500))]
    pub count: u16,

    /// Write a markdown report of the run to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// A port the proxy will need on 127.0.0.1 (repeatable)
    #[arg(long = "port", value_name = "PORT", default_values_t = [3000u16, 5173, 8080])]
    pub ports: Vec<u16>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::log::set_verbose(cli.verbose || std::env::var("DUAL_LOG").is_ok_and(|v| v == "debug"));
    if let Err(error) = crate::interrupt::install() {
        crate::log::debug(&format!("could not install signal handlers: {error}"));
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprint!("{}", crate::error::render(&error));
            ExitCode::from(crate::error::exit_code(&error))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Verify(args) => crate::commands::verify::run(cli.engine, &args),
    }
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
