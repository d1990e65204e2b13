//! How a verify report is shown: a table for people, JSON for programs, and a
//! markdown report for `research/`.

use std::fmt::Write as _;

use super::probes::human_bytes;
use super::{Report, Status};

fn label(status: Status) -> &'static str {
    match status {
        Status::Pass => "pass",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
        Status::Skip => "skip",
    }
}

fn engine_line(report: &Report) -> String {
    let engine = &report.engine;
    let Some(kind) = engine.kind else {
        return "no engine".into();
    };
    let client = engine
        .version
        .as_ref()
        .and_then(|v| v.client.clone())
        .unwrap_or_else(|| "?".into());
    match &engine.info {
        Some(info) => format!(
            "{kind} {client}, server {} ({})",
            info.server_version,
            if info.rootless { "rootless" } else { "rootful" }
        ),
        None => format!("{kind} {client}"),
    }
}

pub fn summary(report: &Report) -> String {
    format!(
        "{} checks: {} pass, {} warn, {} fail, {} skipped",
        report.checks.len(),
        report.count(Status::Pass),
        report.count(Status::Warn),
        report.count(Status::Fail),
        report.count(Status::Skip)
    )
}

pub fn table(report: &Report, color: bool) -> String {
    let paint = |status: Status, text: &str| -> String {
        let code = match status {
            Status::Pass => "32",
            Status::Warn => "33",
            Status::Fail => "31;1",
            Status::Skip => "2",
        };
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    let mut out = format!("dual verify: {}\n\n", engine_line(report));
    for check in &report.checks {
        let _ = writeln!(
            out,
            "  {}  {:width$}  {}",
            paint(check.status, label(check.status)),
            check.name,
            check.detail
        );
        if let Some(fix) = &check.fix {
            let _ = writeln!(out, "  {:4}  {:width$}  fix: {fix}", "", "");
        }
    }
    let _ = writeln!(
        out,
        "\n{} in {:.1}s",
        summary(report),
        report.duration_ms as f64 / 1000.0
    );
    out
}

pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report)
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
}

/// A markdown record of one run, for `research/`.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let kind = report
        .engine
        .kind
        .map_or("no engine".into(), |k| k.to_string());
    let _ = writeln!(out, "# Isolation probes on {kind}\n");
    let _ = writeln!(
        out,
        "Produced by `dual --engine {kind} verify --probes --count {} --report FILE` on {}; nothing below was edited by hand.\n",
        report.probe_count.unwrap_or(super::QUICK_COUNT),
        report.started_at
    );
    let _ = writeln!(out, "## Host and engine\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| engine | {} |", engine_line(report));
    if let Some(info) = &report.engine.info {
        let _ = writeln!(
            out,
            "| host | {} ({}) |",
            info.operating_system, info.hostname
        );
        let _ = writeln!(out, "| kernel | {} |", info.kernel);
        let _ = writeln!(out, "| cgroup | {} |", info.cgroup_version);
        let _ = writeln!(
            out,
            "| CPUs, memory | {}, {} |",
            info.cpus,
            human_bytes(info.memory_bytes)
        );
    }
    let _ = writeln!(out, "| dual | {} |", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "\n## Claims\n");
    let _ = writeln!(out, "| claim | verdict | measured |\n|---|---|---|");
    for check in &report.checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            check.name,
            label(check.status),
            check.detail.replace('|', "\\|")
        );
    }
    if let Some(figures) = &report.figures {
        let _ = writeln!(out, "\n## Figures\n");
        let _ = writeln!(out, "| figure | value |\n|---|---|");
        let _ = writeln!(
            out,
            "| containers at once on :3000 | {} |",
            figures.containers
        );
        let _ = writeln!(
            out,
            "| time to start all ({} engine calls at a time) | {:.2} s |",
            figures.workers,
            figures.start_total_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "| start latency per container, mean / max | {} ms / {} ms |",
            figures.start_mean_ms, figures.start_max_ms
        );
        if let (Some(mean), Some(max)) = (figures.memory_mean_bytes, figures.memory_max_bytes) {
            let _ = writeln!(
                out,
                "| memory per container (engine `stats`), mean / max | {} / {} |",
                human_bytes(mean),
                human_bytes(max)
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} in {:.1}s.",
        summary(report),
        report.duration_ms as f64 / 1000.0
    );
    out
}
