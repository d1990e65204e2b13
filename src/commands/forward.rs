//! `dual forward [WORKSPACE] PORT [--local N]`, `dual forward --list` and
//! `dual forward --stop [LOCAL_PORT|WORKSPACE]` (see `ops::forward`).

use std::process::ExitCode;

use super::print;
use crate::engine::EngineKind;
use crate::ops::forward::{ForwardRequest, StopWhich};
use crate::printer::Printer;
use crate::proxy::tcp_forward::ForwardInfo;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workspace [default: the one around the current directory]
    /// (one value alone is PORT)
    #[arg(value_name = "WORKSPACE")]
    first: Option<String>,
    /// The port in the workspace's container
    #[arg(value_name = "PORT")]
    second: Option<String>,
    /// The port on 127.0.0.1 [default: PORT where it is free, else one the OS picks]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    local: Option<u16>,
    /// Every forward: where to connect, the workspace and port, connections open, since when
    #[arg(long, conflicts_with_all = ["first", "local", "stop"])]
    list: bool,
    /// Stop the forward on LOCAL_PORT, or those to WORKSPACE; all without either
    #[arg(long, value_name = "LOCAL_PORT|WORKSPACE", num_args = 0..=1, conflicts_with_all = ["first", "local"])]
    stop: Option<Option<String>>,
}

pub fn run(flag: Option<EngineKind>, args: &Args, printer: &Printer) -> anyhow::Result<ExitCode> {
    if args.list {
        return list();
    }
    if let Some(which) = &args.stop {
        return stop(which.as_deref());
    }
    let (workspace, port) = match (&args.first, &args.second) {
        (Some(port), None) => (None, port),
        (Some(workspace), Some(port)) => (Some(workspace.as_str()), port),
        _ => {
            return usage(
                clap::error::ErrorKind::MissingRequiredArgument,
                "PORT is required: `dual forward [WORKSPACE] PORT`",
            );
        }
    };
    let Some(port) = port.parse::<u16>().ok().filter(|port| *port > 0) else {
        return usage(
            clap::error::ErrorKind::ValueValidation,
            &format!("`{port}` is not a port (1 to 65535)"),
        );
    };
    let forwarded = crate::ops::forward::forward(
        ForwardRequest {
            engine: flag,
            workspace,
            port,
            local: args.local,
        },
        printer,
    )?;
    let forward = &forwarded.forward;
    let already = if forwarded.existing { "already " } else { "" };
    print(&format!(
        "{already}forwarding {} to {}:{} (until the proxy stops)\n  {}\n",
        forward.local, forward.workspace, forward.port, forwarded.example
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// A usage error: `[WORKSPACE] PORT` is not a shape clap parses, so the
/// positionals are read here, and the command line prints the error as
/// clap prints its own (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Usage {
    pub kind: clap::error::ErrorKind,
    pub message: String,
}

fn usage(kind: clap::error::ErrorKind, message: &str) -> anyhow::Result<ExitCode> {
    Err(Usage {
        kind,
        message: message.to_owned(),
    }
    .into())
}

fn list() -> anyhow::Result<ExitCode> {
    match crate::ops::forward::list()? {
        None => print("no forwards (the proxy is not running)\n")?,
        Some(forwards) if forwards.is_empty() => {
            print("no forwards; `dual forward [WORKSPACE] PORT` adds one\n")?;
        }
        Some(forwards) => print(&table(&forwards))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn stop(which: Option<&str>) -> anyhow::Result<ExitCode> {
    let which = match which {
        None => StopWhich::All,
        Some(text) => match text.parse::<u16>() {
            Ok(port) => StopWhich::Local(port),
            Err(_) => StopWhich::Workspace(text.to_owned()),
        },
    };
    let stopped = crate::ops::forward::stop(&which)?;
    if stopped.is_empty() {
        print("no forwards to stop\n")?;
    }
    for forward in stopped {
        print(&format!(
            "stopped forwarding {} to {}:{}\n",
            forward.local, forward.workspace, forward.port
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The forwards as aligned columns.
fn table(forwards: &[ForwardInfo]) -> String {
    let rows: Vec<[String; 5]> = forwards
        .iter()
        .map(|f| {
            [
                f.local.to_string(),
                f.workspace.clone(),
                f.port.to_string(),
                f.open.to_string(),
                crate::verify::format_utc(f.since),
            ]
        })
        .collect();
    let header = ["LOCAL", "WORKSPACE", "PORT", "OPEN", "SINCE"].map(str::to_owned);
    let mut widths = [0; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
