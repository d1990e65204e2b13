//! The MCP server: the SDK's handler, which reads each call's arguments
//! strictly and hands it to its tool (`calls`, `launch`, `http`); the tools
//! call the same operations as the command line (`crate::ops`) on blocking
//! threads (see `outcome`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;

use super::calls;
use super::outcome::{blocking, failure, result};
use super::resources::Watch;
use super::runs::Runs;
use super::tools::{self, parse};
use crate::engine::EngineKind;
use crate::error::HintExt as _;
use crate::workspace::Store;

#[derive(Clone)]
pub struct Server {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub flag: Option<EngineKind>,
    pub runs: Arc<Runs>,
    pub watch: Watch,
}

impl Server {
    pub fn new(flag: Option<EngineKind>) -> Server {
        Server {
            shared: Arc::new(Shared {
                flag,
                runs: Arc::default(),
                watch: Watch::new(flag),
            }),
        }
    }

    /// Tells every run to end (each cleans up inside its container).
    pub fn end_runs(&self) {
        self.shared.runs.end_all();
    }

    /// Ends every run and waits, at most `limit`, until each has cleaned up
    /// inside its container.
    pub async fn close(&self, limit: Duration) {
        self.end_runs();
        let until = Instant::now() + limit;
        while self.shared.runs.going() > 0 && Instant::now() < until {
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
                blocking(move |printer| calls::list(flag, printer)).await
            }
            "create_workspace" => {
                let args: tools::CreateArgs = parse(name, arguments)?;
                blocking(move |printer| calls::create(&args, printer)).await
            }
            "launch" => {
                let args: tools::LaunchArgs = parse(name, arguments)?;
                let progress = super::launch::Progress::new(&context);
                super::launch::launch(flag, args, progress).await
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
                calls::run(self.shared.flag, &self.shared.runs, args, &context).await
            }
            "logs" => {
                let args: tools::LogsArgs = parse(name, arguments)?;
                blocking(move |_| calls::logs(flag, &args)).await
            }
            "restart_service" => {
                let args: tools::RestartArgs = parse(name, arguments)?;
                blocking(move |printer| {
                    let state = Store::open_default().load().hinted()?;
                    // A workspace by name only: the command line's reading of
                    // one name as a service of the current directory's
                    // workspace is not an agent's.
                    crate::workspace::resolve(&state, Some(&args.workspace)).hinted()?;
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
                blocking(move |printer| calls::urls(args.workspace.as_deref(), printer)).await
            }
            "focus" => {
                let args: tools::FocusArgs = parse(name, arguments)?;
                blocking(move |_| calls::focus(&args)).await
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
