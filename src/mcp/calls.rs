//! The tools that call one operation and shape its report: the workspace
//! list, create, logs, urls, focus, and `run` (held in the container, its
//! count bounded).

use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use serde_json::{Value, json};

use super::outcome::{Outcome, failure, hinted, panicked};
use super::runs::{MAX_RUNS, Runs};
use super::tools;
use crate::engine::EngineKind;
use crate::error::HintExt as _;
use crate::printer::Printer;
use crate::workspace::{self, Store};

pub async fn run(
    flag: Option<EngineKind>,
    runs: &Arc<Runs>,
    args: tools::RunArgs,
    context: &RequestContext<RoleServer>,
) -> Outcome {
    let invalid = |error: String| hinted(error, "pass a value within the bounds");
    let timeout = tools::seconds(
        args.timeout_seconds,
        tools::RUN_TIMEOUT_DEFAULT,
        tools::RUN_TIMEOUT_MAX,
        "timeout_seconds",
    )
    .map_err(invalid)?;
    let limit = tools::bytes(
        args.max_output_bytes,
        tools::OUTPUT_DEFAULT,
        tools::OUTPUT_MAX,
        "max_output_bytes",
    )
    .map_err(invalid)?;
    let request = crate::ops::run::HeldRun {
        argv: args.argv,
        cwd: args.cwd,
        env: args.env.unwrap_or_default().into_iter().collect(),
        timeout,
        output_limit: limit,
    };
    let cancelled = context.ct.clone();
    let counted = runs.count().ok_or_else(|| {
        hinted(
            format!("{MAX_RUNS} runs are going already"),
            "wait for one to end (or cancel one), then run this again",
        )
    })?;
    let name = args.workspace;
    let report = tokio::task::spawn_blocking(move || {
        let state = Store::open_default().load().hinted()?;
        let workspace = workspace::resolve(&state, Some(&name)).hinted()?;
        let give_up = || cancelled.is_cancelled() || counted.closing();
        crate::ops::run::run_held(flag, workspace, &request, &give_up)
    })
    .await
    .map_err(panicked)?
    .map_err(failure)?;
    Ok((run_report(&report, timeout, limit), Vec::new()))
}

pub fn list(flag: Option<EngineKind>, printer: &Printer) -> anyhow::Result<Value> {
    let state = Store::open_default().load().hinted()?;
    let listed = crate::ops::status::status(flag, &state, printer);
    Ok(json!({"workspaces": listed}))
}

pub fn create(args: &tools::CreateArgs, printer: &Printer) -> anyhow::Result<Value> {
    let created = crate::ops::create::create(
        &args.branch,
        args.repo.as_deref(),
        args.from.as_deref(),
        printer,
    )?;
    let workspace = &created.workspace;
    let mut notes = Vec::new();
    if let Some(holder) = &created.renamed_because {
        notes.push(format!(
            "{holder}, so this workspace is named `{}`",
            workspace.name()
        ));
    }
    notes.extend(created.branch_note());
    Ok(json!({
        "workspace": workspace.name(),
        "repo": workspace.repo,
        "branch": workspace.branch,
        "clone": workspace.path,
        "data_from": workspace.data_from,
        "notes": notes,
    }))
}

pub fn logs(flag: Option<EngineKind>, args: &tools::LogsArgs) -> anyhow::Result<Value> {
    let state = Store::open_default().load().hinted()?;
    let tail = args.tail.unwrap_or(200).min(10_000);
    let read = crate::ops::logs::read(
        flag,
        &state,
        Some(&args.workspace),
        args.service.as_deref(),
        Some(tail),
        args.since.as_deref(),
    )?;
    let share = tools::log_share(read.logs.len());
    let logs: Vec<Value> = read
        .logs
        .iter()
        .map(|log| {
            let (text, left_out) = tools::newest(&log.text, share);
            let mut value = json!({
                "service": log.service,
                "sidecar": log.sidecar,
                "text": text,
                "next": log.next,
                "lost": log.lost,
            });
            if left_out > 0 {
                value["note"] = json!(format!(
                    "the first {left_out} bytes were left out: {share} are kept of each of {} logs; pass `tail` for fewer lines",
                    read.logs.len()
                ));
            }
            value
        })
        .collect();
    Ok(json!({"workspace": read.workspace, "logs": logs}))
}

pub fn urls(name: Option<&str>, printer: &Printer) -> anyhow::Result<Value> {
    let all = crate::ops::urls::urls(name, printer)?;
    let map: serde_json::Map<String, Value> = all
        .into_iter()
        .map(|(name, urls)| {
            (
                name,
                json!(urls.iter().map(ToString::to_string).collect::<Vec<_>>()),
            )
        })
        .collect();
    Ok(json!({"urls": map}))
}

pub fn focus(args: &tools::FocusArgs) -> anyhow::Result<Value> {
    use crate::ops::focus;
    if args.clear {
        if args.workspace.is_some() {
            anyhow::bail!(crate::error::Hinted {
                message: "`clear` and `workspace` together: clear the focus, or set it?".into(),
                hint: "pass one of them".into(),
            });
        }
        let applied = focus::clear()?;
        return Ok(json!({"focus": null, "note": applied.warning()}));
    }
    match &args.workspace {
        None => Ok(json!({"focus": focus::current()})),
        Some(name) => {
            let set = focus::set(name)?;
            Ok(json!({
                "focus": set.workspace,
                "url": format!("http://localhost:{}", set.example_port),
                "note": set.applied.warning(),
            }))
        }
    }
}

fn run_report(report: &crate::ops::run::RunReport, timeout: Duration, limit: usize) -> Value {
    use crate::ops::run::Ended;
    let mut notes = Vec::new();
    match report.ended {
        Ended::Exited => {}
        Ended::TimedOut => notes.push(format!(
            "killed at its timeout of {} s (timeout_seconds), with everything it started",
            timeout.as_secs()
        )),
        Ended::Cancelled => notes.push("cancelled: killed with everything it started".to_owned()),
    }
    for (name, stream) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        if stream.cut() {
            notes.push(format!(
                "{name} was {} bytes: kept the first {} and the last {} (max_output_bytes {limit})",
                stream.total(),
                limit / 4,
                limit - limit / 4
            ));
        }
    }
    json!({
        "exit_code": report.exit_code,
        "timed_out": report.ended == Ended::TimedOut,
        "cancelled": report.ended == Ended::Cancelled,
        "stdout": report.stdout.text(),
        "stderr": report.stderr.text(),
        "stdout_bytes": report.stdout.total(),
        "stderr_bytes": report.stderr.total(),
        "duration_ms": u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        "notes": notes,
    })
}
