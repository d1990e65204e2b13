//! `dual mcp`: an MCP server over stdio, for agents that manage workspaces
//! (create, launch, run commands inside, read logs, check pages, destroy).
//! Built on the official SDK (`rmcp`) and on the same operations as the
//! command line (`crate::ops`); see `server` for the tools, `resources`
//! for the resources and their notifications, `wire` for the framing.
//!
//! When the client goes away (its end of stdin closes) or dual is told to
//! stop, every `run` still going is ended, with all it started inside its
//! container, before dual exits.

mod calls;
mod http;
mod launch;
mod outcome;
mod resources;
mod runs;
mod server;
mod tools;
mod wire;

use std::process::ExitCode;
use std::time::Duration;

use crate::engine::EngineKind;

/// How long the runs still going get to end inside their containers once
/// the client is gone.
const CLOSE_GRACE: Duration = Duration::from_secs(20);

pub fn serve(flag: Option<EngineKind>) -> anyhow::Result<ExitCode> {
    let protocol_out = wire::take_stdout()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let output = tokio::fs::File::from_std(std::fs::File::from(protocol_out));
        let (ours, sdk) = tokio::io::duplex(1 << 20);
        let server = server::Server::new(flag);
        let hung_up = {
            let server = server.clone();
            move || server.end_runs()
        };
        let framing = tokio::spawn(wire::frame(tokio::io::stdin(), output, ours, hung_up));
        let serving = {
            let server = server.clone();
            async move {
                use rmcp::ServiceExt as _;
                match server.serve(sdk).await {
                    Ok(running) => {
                        let _ = running.waiting().await;
                    }
                    // The client left before it said hello.
                    Err(error) => crate::log::debug(&format!("mcp: no session: {error}")),
                }
            }
        };
        tokio::select! {
            () = serving => {}
            () = interrupted() => {}
        }
        server.close(CLOSE_GRACE).await;
        framing.abort();
    });
    // stdin's reader is a blocking thread that may never return.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
}

/// Resolves once dual is told to stop (SIGTERM, SIGINT, SIGHUP).
async fn interrupted() {
    while !crate::interrupt::requested() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
