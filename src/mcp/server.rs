//! The MCP server: the SDK's handler, calling the same operations as the
//! command line (`crate::ops`) on blocking threads, each with a channel
//! printer whose warnings come back in the result (and, for `launch`,
//! whose progress goes out as progress notifications).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::resources::Watch;
use super::tools::{self, parse};
use crate::engine::EngineKind;
use crate::error::HintExt as _;
use crate::ops::status::WorkspaceState;
use crate::printer::{Message, Printer};
use crate::workspace::services::ServiceState;
use crate::workspace::{self, Store};

#[derive(Clone)]
pub struct Server {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub flag: Option<EngineKind>,
    /// The client is gone, or dual was told to stop: runs end now.
    pub closing: AtomicBool,
    /// Runs still going (their threads hold a count until they are over).
    pub runs: AtomicUsize,
    pub watch: Watch,
}

/// Runs going at once, at most: each holds a thread, an engine command on
/// the host and up to twice `OUTPUT_MAX` of memory, and a client told by
/// a hostile page to start thousands would take them all.
const MAX_RUNS: usize = 16;

/// A run's count in `Shared::runs`, for as long as its thread holds it.
struct Counted(Arc<Shared>);

impl Counted {
    /// A count, unless `MAX_RUNS` runs are going.
    fn new(shared: &Arc<Shared>) -> Option<Counted> {
        shared
            .runs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |runs| {
                (runs < MAX_RUNS).then_some(runs + 1)
            })
            .ok()?;
        Some(Counted(Arc::clone(shared)))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.runs.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Server {
    pub fn new(flag: Option<EngineKind>) -> Server {
        Server {
            shared: Arc::new(Shared {
                flag,
                closing: AtomicBool::new(false),
                runs: AtomicUsize::new(0),
                watch: Watch::new(flag),
            }),
        }
    }

    /// Tells every run to end (each cleans up inside its container).
    pub fn end_runs(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
    }

    /// Ends every run and waits, at most `limit`, until each has cleaned up
    /// inside its container.
    pub async fn close(&self, limit: Duration) {
        self.end_runs();
        let until = Instant::now() + limit;
        while self.shared.runs.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn call(
        &self,
        params: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let flag = self.shared.flag;
        let arguments = params.arguments;
        let name = params.name.as_ref();
        let outcome = match name {
            "list_workspaces" => {
                parse::<tools::NoArgs>(name, arguments)?;
                blocking(move |printer| list(flag, printer)).await
            }
            "create_workspace" => {
                let args: tools::CreateArgs = parse(name, arguments)?;
                blocking(move |printer| create(&args, printer)).await
            }
            "launch" => {
                let args: tools::LaunchArgs = parse(name, arguments)?;
                let progress = Progress::new(&context);
                self.launch(args, progress).await
            }
            "stop" => {
                let args: tools::WorkspaceArgs = parse(name, arguments)?;
                blocking(move |printer| {
                    let stopped = crate::ops::stop::stop(flag, Some(&args.workspace), printer)?;
                    Ok(json!({"workspace": stopped.workspace, "stopped": true}))
                })
                .await
            }
            "destroy" => {
                let args: tools::DestroyArgs = parse(name, arguments)?;
                blocking(move |printer| {
                    use crate::ops::destroy::{Consent, destroy};
                    let destroyed = destroy(
                        flag,
                        Some(&args.workspace),
                        args.force,
                        Consent::Nobody,
                        printer,
                    )?;
                    Ok(json!({"workspace": destroyed.workspace, "removed": destroyed.removed}))
                })
                .await
                .map_err(|mut failure| {
                    // The hint names the command line's flag.
                    if let Some(hint) = failure.hint.as_mut().filter(|h| h.contains("--force")) {
                        hint.push_str(" (with this tool: `force: true`)");
                    }
                    failure
                })
            }
            "run" => {
                let args: tools::RunArgs = parse(name, arguments)?;
                self.run(args, &context).await
            }
            "logs" => {
                let args: tools::LogsArgs = parse(name, arguments)?;
                blocking(move |_| logs(flag, &args)).await
            }
            "restart_service" => {
                let args: tools::RestartArgs = parse(name, arguments)?;
                blocking(move |printer| {
                    let state = Store::open_default().load().hinted()?;
                    let restarted = crate::ops::services::restart(
                        flag,
                        &state,
                        Some(&args.workspace),
                        args.service.as_deref(),
                        printer,
                    )?;
                    Ok(json!({"workspace": restarted.workspace, "restarted": restarted.services}))
                })
                .await
            }
            "urls" => {
                let args: tools::UrlsArgs = parse(name, arguments)?;
                blocking(move |printer| urls(args.workspace.as_deref(), printer)).await
            }
            "focus" => {
                let args: tools::FocusArgs = parse(name, arguments)?;
                blocking(move |_| focus(&args)).await
            }
            "http_request" => {
                let args: tools::HttpArgs = parse(name, arguments)?;
                super::http::request(args)
                    .await
                    .map(|value| (value, Vec::new()))
                    .map_err(failure)
            }
            other => {
                let known: Vec<String> = tools::all()
                    .into_iter()
                    .map(|t| t.name.into_owned())
                    .collect();
                return Err(ErrorData::invalid_params(
                    format!("unknown tool `{other}`"),
                    Some(json!({"tools": known})),
                ));
            }
        };
        Ok(result(outcome))
    }

    async fn launch(&self, args: tools::LaunchArgs, progress: Progress) -> Outcome {
        let flag = self.shared.flag;
        let wait_ready = args.wait_ready.unwrap_or(true);
        let limit = tools::seconds(
            args.timeout_seconds,
            tools::LAUNCH_TIMEOUT_DEFAULT,
            tools::LAUNCH_TIMEOUT_MAX,
            "timeout_seconds",
        )
        .map_err(|error| hinted(error, "pass a number of seconds within the bounds"))?;
        let (sender, receiver) = std::sync::mpsc::channel();
        let printer = Printer::channel(sender);
        let name = args.workspace.clone();
        let launching = tokio::task::spawn_blocking(move || {
            let options = crate::ops::launch::LaunchOptions {
                recreate: args.recreate,
                ..Default::default()
            };
            crate::ops::launch::launch_with(flag, Some(&name), options, &printer)
        });
        let warnings = progress.relay(receiver).await;
        let launched = launching.await.map_err(panicked)?.map_err(failure)?;
        let started_at = Instant::now();
        let mut ready = !wait_ready;
        let mut services_ready: Option<Instant> = None;
        let mut unrouted = false;
        let mut listed = None;
        let mut last = String::new();
        loop {
            let name = launched.workspace.clone();
            let status = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let state = Store::open_default().load().hinted()?;
                let all = crate::ops::status::status(flag, &state, &Printer::silent());
                Ok(all.into_iter().find(|w| w.name == name))
            })
            .await
            .map_err(panicked)?
            .map_err(failure)?;
            let Some(status) = status else { break };
            let (mut all_ready, mut summary) = readiness(&status);
            // Ready for an agent means its page answers: the proxy routes a
            // port the workspace listens on (a service without a ready
            // check is "ready" once started, before it binds). One that
            // listens on nothing is ready after ROUTE_GRACE all the same.
            if all_ready && !ready {
                let since = *services_ready.get_or_insert_with(Instant::now);
                let name = status.name.clone();
                let routed =
                    tokio::task::spawn_blocking(move || proxy_routes_a_listening_port(&name))
                        .await
                        .unwrap_or(None);
                if routed == Some(false) {
                    if since.elapsed() < ROUTE_GRACE {
                        all_ready = false;
                        summary = format!("{summary}; waiting for the proxy to route its port");
                    } else {
                        unrouted = true;
                    }
                }
            }
            if summary != last {
                progress.send(&summary).await;
                last = summary;
            }
            ready = ready || all_ready;
            listed = Some(status);
            if ready || started_at.elapsed() >= limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut notes = Vec::new();
        if unrouted {
            notes.push(format!(
                "its services run, but after {} s the proxy routes no port it listens on: a server bound to 127.0.0.1 inside cannot be reached (bind 0.0.0.0)",
                ROUTE_GRACE.as_secs()
            ));
        }
        if wait_ready && !ready {
            notes.push(format!(
                "not ready after {} s: {last}; `logs` shows what its services print",
                limit.as_secs()
            ));
        }
        let value = json!({
            "workspace": launched.workspace,
            "container": launched.container,
            "engine": launched.engine,
            "started": launched.started.describe(),
            "cloned_into": launched.cloned_into,
            "urls": listed.as_ref().map_or(&launched.urls, |l| &l.urls).iter().map(ToString::to_string).collect::<Vec<_>>(),
            "ready": ready,
            "services": listed.as_ref().map(|l| json!(l.services)),
            "sidecars": listed.as_ref().map(|l| json!(l.sidecars)),
            "notes": notes,
        });
        Ok((value, warnings))
    }

    async fn run(&self, args: tools::RunArgs, context: &RequestContext<RoleServer>) -> Outcome {
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
        let flag = self.shared.flag;
        let cancelled = context.ct.clone();
        let counted = Counted::new(&self.shared).ok_or_else(|| {
            hinted(
                format!("{MAX_RUNS} runs are going already"),
                "wait for one to end (or cancel one), then run this again",
            )
        })?;
        let name = args.workspace;
        let report = tokio::task::spawn_blocking(move || {
            let shared = &counted.0;
            let state = Store::open_default().load().hinted()?;
            let workspace = workspace::resolve(&state, Some(&name)).hinted()?;
            let give_up = || cancelled.is_cancelled() || shared.closing.load(Ordering::SeqCst);
            crate::ops::run::run_held(flag, workspace, &request, &give_up)
        })
        .await
        .map_err(panicked)?
        .map_err(failure)?;
        Ok((run_report(&report, timeout, limit), Vec::new()))
    }
}

/// A tool's value and the warnings its operation gave, or its failure.
type Outcome = Result<(Value, Vec<String>), Failure>;

/// A tool that ran and failed: what went wrong, and what to do.
struct Failure {
    error: String,
    hint: Option<String>,
}

fn failure(error: anyhow::Error) -> Failure {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        message.push_str(&format!(": {cause}"));
    }
    Failure {
        error: message,
        hint: crate::error::hint_of(&error),
    }
}

fn hinted(error: String, hint: &str) -> Failure {
    Failure {
        error,
        hint: Some(hint.to_owned()),
    }
}

fn panicked(error: tokio::task::JoinError) -> Failure {
    Failure {
        error: format!("dual failed inside: {error}"),
        hint: Some(
            "this is a bug in dual; run the same with the `dual` command line for details".into(),
        ),
    }
}

fn result(outcome: Outcome) -> CallToolResult {
    match outcome {
        Ok((mut value, warnings)) => {
            if !warnings.is_empty()
                && let Some(object) = value.as_object_mut()
            {
                object.insert("warnings".into(), json!(warnings));
            }
            CallToolResult::structured(value)
        }
        Err(Failure { error, hint }) => {
            CallToolResult::structured_error(json!({"error": error, "hint": hint}))
        }
    }
}

/// Runs `work` on a blocking thread with a channel printer; its warnings
/// come back with its value.
async fn blocking<F>(work: F) -> Outcome
where
    F: FnOnce(&Printer) -> anyhow::Result<Value> + Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    let value = tokio::task::spawn_blocking(move || work(&Printer::channel(sender)))
        .await
        .map_err(panicked)?
        .map_err(failure)?;
    let warnings = receiver
        .try_iter()
        .filter_map(|message| match message {
            Message::Warning(text) => Some(text),
            _ => None,
        })
        .collect();
    Ok((value, warnings))
}

/// Progress notifications for one request, where it asked for them.
struct Progress {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    step: AtomicUsize,
}

impl Progress {
    fn new(context: &RequestContext<RoleServer>) -> Progress {
        Progress {
            peer: context.peer.clone(),
            token: context.meta.get_progress_token(),
            step: AtomicUsize::new(0),
        }
    }

    async fn send(&self, message: &str) {
        let Some(token) = &self.token else { return };
        let step = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let param =
            ProgressNotificationParam::new(token.clone(), step as f64).with_message(message);
        let _ = self.peer.notify_progress(param).await;
    }

    /// Sends each line the operation prints as it comes, until it is done;
    /// returns its warnings.
    async fn relay(&self, receiver: std::sync::mpsc::Receiver<Message>) -> Vec<String> {
        let (forward, mut lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for message in receiver {
                if forward.send(message).is_err() {
                    break;
                }
            }
        });
        let mut warnings = Vec::new();
        while let Some(message) = lines.recv().await {
            match message {
                Message::Progress(text) | Message::Out(text) => self.send(text.trim_end()).await,
                Message::Warning(text) => {
                    self.send(&format!("warning: {}", text.trim_end())).await;
                    warnings.push(text);
                }
            }
        }
        warnings
    }
}

/// How long a launch whose services run waits for the proxy to route a
/// port of it.
const ROUTE_GRACE: Duration = Duration::from_secs(10);

/// Whether the running proxy routes a port workspace `name` listens on;
/// `None` when no proxy runs (nothing to wait for).
fn proxy_routes_a_listening_port(name: &str) -> Option<bool> {
    use crate::proxy::control::{Answer, Request, ask};
    let Ok(Answer::Status(status)) = ask(&Request::Status) else {
        return None;
    };
    // Not known to it yet: not routed yet.
    let Some(workspace) = status.workspaces.into_iter().find(|w| w.name == name) else {
        return Some(false);
    };
    Some(
        workspace
            .listening
            .reachable
            .iter()
            .any(|port| workspace.routes.contains_key(port)),
    )
}

/// Whether every service of a launched workspace is ready, and a line
/// saying where each stands.
fn readiness(status: &crate::ops::status::WorkspaceStatus) -> (bool, String) {
    if !status.state.is_running() {
        return (false, format!("workspace {}", status.state));
    }
    if matches!(status.state, WorkspaceState::SettingUp) {
        return (false, "setup is running".into());
    }
    let ready = status
        .services
        .iter()
        .all(|s| matches!(s.state, ServiceState::Running { .. }));
    let summary = if status.services.is_empty() {
        "running (no services)".to_owned()
    } else {
        status
            .services
            .iter()
            .map(|s| format!("{}: {}", s.name, service_word(&s.state)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    (ready, summary)
}

fn service_word(state: &ServiceState) -> String {
    match state {
        ServiceState::Waiting { on, .. } => format!("waiting for {on}"),
        ServiceState::Starting { .. } => "starting".into(),
        ServiceState::Running { .. } => "ready".into(),
        ServiceState::Restarting { code, .. } => format!("exited ({code}), restarting"),
        ServiceState::Stopped => "stopped".into(),
        ServiceState::NotStarted => "not started".into(),
        ServiceState::Unknown => "unknown".into(),
    }
}

fn list(flag: Option<EngineKind>, printer: &Printer) -> anyhow::Result<Value> {
    let state = Store::open_default().load().hinted()?;
    let listed = crate::ops::status::status(flag, &state, printer);
    Ok(json!({"workspaces": listed}))
}

fn create(args: &tools::CreateArgs, printer: &Printer) -> anyhow::Result<Value> {
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

fn logs(flag: Option<EngineKind>, args: &tools::LogsArgs) -> anyhow::Result<Value> {
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

fn urls(name: Option<&str>, printer: &Printer) -> anyhow::Result<Value> {
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

fn focus(args: &tools::FocusArgs) -> anyhow::Result<Value> {
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

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("dual", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "dual gives every branch of a repo its own clone and container, each with its dev server on its usual port, routed at http://{workspace}.localhost:{port}. \
                 Create a workspace for a branch, launch it (waits until its services are ready), check its pages with http_request, run commands inside it with run, read its services' logs, and destroy it when done.",
            )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(request, context).await.map(Into::into)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::all()))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        tools::all().into_iter().find(|t| t.name == name)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.shared.watch.list().await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            super::resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.shared.watch.read(&request.uri).await.map(Into::into)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // The SDK acknowledges the subscription right after this returns,
        // before `listen` runs: the watcher's first look has to come first,
        // else a change the client makes once acknowledged may be taken for
        // how things were. Once per server, for as long as one look takes;
        // the runtime is multi-threaded (`super::serve`).
        let watch = &self.shared.watch;
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(watch.looking());
        });
        Some(super::resources::accepted(requested))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.shared.watch.listen(context).await;
        Ok(())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared.watch.subscribe(request.uri, context.peer).await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared.watch.unsubscribe(&request.uri).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_going_at_once_are_bounded() {
        let server = Server::new(None);
        let counts: Vec<Counted> = (0..MAX_RUNS)
            .map(|_| Counted::new(&server.shared).expect("room"))
            .collect();
        assert!(Counted::new(&server.shared).is_none());
        drop(counts);
        assert_eq!(server.shared.runs.load(Ordering::SeqCst), 0);
        assert!(Counted::new(&server.shared).is_some());
    }
}
