//! `dual list [--json]`: every workspace with its state, engine and URLs
//! (see `ops::status`).

use crate::error::HintExt as _;
use std::process::ExitCode;

use super::print;
use crate::engine::EngineKind;
use crate::ops::status::{WorkspaceState, WorkspaceStatus, status};
use crate::printer::Printer;
use crate::workspace::Store;

pub fn run(flag: Option<EngineKind>, json: bool, printer: &Printer) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load().hinted()?;
    let listed = status(flag, &state, printer);
    let ports: Vec<u16> = listed
        .iter()
        .filter(|l| l.state.is_running())
        .flat_map(WorkspaceStatus::ports)
        .collect();
    for warning in crate::proxy::conflicts::warnings(&ports) {
        printer.warn(warning);
    }
    if json {
        print(&serde_json::to_string_pretty(&listed)?)?;
        print("\n")?;
    } else {
        print(&table(&listed))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn table(listed: &[WorkspaceStatus]) -> String {
    if listed.is_empty() {
        return "no workspaces yet: `dual create BRANCH`, then `dual launch`\n".into();
    }
    let with_services = listed
        .iter()
        .any(|l| !l.services.is_empty() || !l.sidecars.is_empty());
    let rows: Vec<[String; 6]> = listed
        .iter()
        .map(|l| {
            let services: Vec<String> = l
                .services
                .iter()
                .map(|s| format!("{} {}", s.name, s.state))
                .chain(
                    l.sidecars
                        .iter()
                        .map(|s| format!("{} (sidecar) {}", s.name, s.state)),
                )
                .collect();
            [
                if l.focus {
                    format!("{} *", l.name)
                } else {
                    l.name.clone()
                },
                l.branch.clone(),
                l.state.to_string(),
                match (&l.engine, &l.remote) {
                    (Some(kind), Some(remote)) => format!("{kind} ({remote})"),
                    (Some(kind), None) => kind.to_string(),
                    (None, _) => "-".to_owned(),
                },
                services.join(", "),
                urls_text(l),
            ]
        })
        .collect();
    let header = ["WORKSPACE", "BRANCH", "STATE", "ENGINE", "SERVICES", "URLS"].map(str::to_owned);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    std::iter::once(&header)
        .chain(rows.iter())
        .map(|r| {
            let services = if with_services {
                format!("{:w$}  ", r[4], w = widths[4])
            } else {
                String::new()
            };
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {services}{}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                r[5],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            )
            .trim_end()
            .to_owned()
                + "\n"
        })
        .chain(down_note(listed))
        .chain(
            listed
                .iter()
                .any(|l| l.focus)
                .then(|| "\n* in focus: plain http://localhost:PORT reaches it\n".to_owned()),
        )
        .chain(loopback_notes(listed))
        .chain(
            listed
                .iter()
                .any(|l| !l.tcp_ports.is_empty())
                .then(|| "\ntcp: not HTTP (a database, say): not routed by the proxy; reach it with `dual forward`\n".to_owned()),
        )
        .collect()
}

/// Its URLs, then the ports that are not HTTP: never as a URL.
fn urls_text(listed: &WorkspaceStatus) -> String {
    let mut words: Vec<String> = listed.urls.iter().map(ToString::to_string).collect();
    if !listed.tcp_ports.is_empty() {
        let ports: Vec<String> = listed.tcp_ports.iter().map(u16::to_string).collect();
        words.push(format!("tcp: {}", ports.join(" ")));
    }
    words.join(" ")
}

/// A port bound to 127.0.0.1 inside looks up but never answers through
/// the proxy: say so, with the fix.
fn loopback_notes(listed: &[WorkspaceStatus]) -> impl Iterator<Item = String> + '_ {
    listed.iter().flat_map(|l| {
        l.loopback_only.iter().map(move |port| {
            format!(
                "note: {} listens on 127.0.0.1:{port} only, inside its container: the proxy cannot reach it; make the server listen on 0.0.0.0\n",
                l.name
            )
        })
    })
}

/// What `down` means, under the table when a workspace is down.
fn down_note(listed: &[WorkspaceStatus]) -> Option<String> {
    listed.iter().any(|l| l.state == WorkspaceState::Down).then(|| {
        "\ndown: not stopped with `dual stop`, but not running (its engine or the host restarted, or it was stopped by hand);\n      the proxy starts it again when the engine is back, or `dual launch WORKSPACE` does\n".to_owned()
    })
}
