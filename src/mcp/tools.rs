//! The tools: each one's arguments (read strictly: an unknown field or a
//! wrong type is a protocol error, `invalid params`), its schema (derived
//! from the same struct), and the operation it calls. A tool that ran and
//! failed answers with an error result carrying the message and the hint a
//! person would get.

use std::collections::BTreeMap;
use std::time::Duration;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The longest a `run` may be given.
pub const RUN_TIMEOUT_MAX: u64 = 3600;
pub const RUN_TIMEOUT_DEFAULT: u64 = 120;
/// Output kept of each of a `run`'s stdout and stderr.
pub const OUTPUT_DEFAULT: usize = 64 * 1024;
pub const OUTPUT_MAX: usize = 1024 * 1024;
pub const LAUNCH_TIMEOUT_DEFAULT: u64 = 300;
pub const LAUNCH_TIMEOUT_MAX: u64 = 1800;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// The git branch the workspace is for (created from the default branch
    /// at launch when the repo does not have it).
    pub branch: String,
    /// The repo's name as registered with `dual add`; optional when only one
    /// is registered.
    pub repo: Option<String>,
    /// A workspace of the same repo whose sidecars' data this one starts
    /// with.
    pub from: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceArgs {
    /// The workspace's name as `list_workspaces` gives it (`{repo}-{branch}`).
    pub workspace: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchArgs {
    /// The workspace's name as `list_workspaces` gives it.
    pub workspace: String,
    /// Make the container again even when its config did not change.
    #[serde(default)]
    pub recreate: bool,
    /// Wait until its services are ready (their ready checks pass), not only
    /// started. Default true.
    pub wait_ready: Option<bool>,
    /// Seconds to wait for ready (default 300, at most 1800).
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestroyArgs {
    /// The workspace's name as `list_workspaces` gives it.
    pub workspace: String,
    /// Destroy even with uncommitted or unpushed work in the clone, and
    /// delete its sidecars' data. Default false: refused then, with what
    /// would be lost.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunArgs {
    /// The workspace's name as `list_workspaces` gives it.
    pub workspace: String,
    /// The program and its arguments, run inside the workspace's container
    /// (no shell: for a shell line, `["sh", "-c", "LINE"]`).
    pub argv: Vec<String>,
    /// The directory to run in, relative to the clone's top (default: the
    /// top).
    pub cwd: Option<String>,
    /// Environment variables for the command.
    pub env: Option<BTreeMap<String, String>>,
    /// Seconds before the command and all it started are killed (default
    /// 120, at most 3600).
    pub timeout_seconds: Option<u64>,
    /// Bytes kept of each of stdout and stderr: the first quarter and the
    /// last three quarters, with a note of what was left out (default 65536,
    /// at most 1048576).
    pub max_output_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    /// The workspace's name as `list_workspaces` gives it.
    pub workspace: String,
    /// One service or sidecar (default: every service).
    pub service: Option<String>,
    /// At most this many last lines of each (default 200).
    pub tail: Option<usize>,
    /// The `next` of an earlier `logs` call for the same service: only what
    /// was written since.
    pub since: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartArgs {
    /// The workspace's name as `list_workspaces` gives it.
    pub workspace: String,
    /// One service (default: all of them).
    pub service: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlsArgs {
    /// One workspace (default: all).
    pub workspace: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FocusArgs {
    /// The workspace plain `http://localhost:PORT` should reach through the
    /// proxy. Without it (and without `clear`): which one does now.
    pub workspace: Option<String>,
    /// No workspace in focus.
    #[serde(default)]
    pub clear: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpArgs {
    /// The workspace's name as `list_workspaces` gives it.
    pub workspace: String,
    /// The request's path and query (default `/`).
    pub path: Option<String>,
    /// Default GET.
    pub method: Option<String>,
    /// The workspace's port (default: the first of its URLs).
    pub port: Option<u16>,
    /// Request headers (Host is the workspace's own and cannot be set).
    pub headers: Option<BTreeMap<String, String>>,
    /// The request body, as text.
    pub body: Option<String>,
    /// Bytes of the response body kept (default 65536, at most 1048576).
    pub max_body_bytes: Option<usize>,
    /// Seconds for the whole exchange (default 30, at most 300).
    pub timeout_seconds: Option<u64>,
}

/// Every tool, with its schema and what it is for.
pub fn all() -> Vec<Tool> {
    let read_only = || ToolAnnotations::new().read_only(true);
    vec![
        tool::<NoArgs>(
            "list_workspaces",
            "Every dual workspace: state, services and their states, sidecars, listening ports, URLs, which one has focus, the engine.",
        )
        .annotate(read_only()),
        tool::<CreateArgs>(
            "create_workspace",
            "Declare a workspace for a branch of a registered repo (nothing is cloned or started until `launch`). Returns its name.",
        ),
        tool::<LaunchArgs>(
            "launch",
            "Clone (first time), start the workspace's container, sidecars and services, and wait until they are ready. Sends progress notifications when the request has a progress token.",
        ),
        tool::<WorkspaceArgs>(
            "stop",
            "Stop the workspace's container and sidecars; the clone stays, `launch` starts it again.",
        ),
        tool::<DestroyArgs>(
            "destroy",
            "Remove the workspace: containers, volumes, clone. Refuses while the clone has uncommitted or unpushed work, or its sidecars hold data, unless `force` is true.",
        )
        .annotate(ToolAnnotations::new().destructive(true)),
        tool::<RunArgs>(
            "run",
            "Run a command inside the workspace's container, in its clone, as its user (never on the host). Returns the exit code, and stdout and stderr bounded with a note where cut. At the timeout, or when the call is cancelled, the command and everything it started are killed; so is what it leaves running when it exits (start servers as services). Only a process that both leaves the run's session and clears its environment (`env -i setsid ...`) outlives it.",
        ),
        tool::<LogsArgs>(
            "logs",
            "The recent output of the workspace's services (or one service or sidecar). Each log comes with `next`: pass it as `since` to get only what is new.",
        )
        .annotate(read_only()),
        tool::<RestartArgs>(
            "restart_service",
            "Restart one of the workspace's services, or all of them.",
        ),
        tool::<UrlsArgs>(
            "urls",
            "The URLs of a workspace (or of all): http://{workspace}.localhost:{port}, served by dual's proxy.",
        )
        .annotate(read_only()),
        tool::<FocusArgs>(
            "focus",
            "Which workspace plain http://localhost:PORT reaches through the proxy: set it, clear it, or ask.",
        ),
        tool::<HttpArgs>(
            "http_request",
            "Send an HTTP request to the workspace through dual's proxy (as a browser on this host would) and return the status, headers and the first bytes of the body.",
        )
        .annotate(ToolAnnotations::new().open_world(false)),
    ]
}

fn tool<Args: JsonSchema + 'static>(name: &'static str, description: &'static str) -> Tool {
    Tool::new(name, description, JsonObject::new()).with_input_schema::<Args>()
}

/// The arguments of a call, strictly: a protocol error names what is wrong.
pub fn parse<Args: DeserializeOwned>(
    tool: &str,
    arguments: Option<JsonObject>,
) -> Result<Args, rmcp::ErrorData> {
    let value = Value::Object(arguments.unwrap_or_default());
    serde_json::from_value(value).map_err(|error| {
        rmcp::ErrorData::invalid_params(
            format!("invalid arguments for `{tool}`: {error}"),
            Some(json!({"tool": tool})),
        )
    })
}

/// The text of all the logs one `logs` call or log resource returns: a
/// service's log may be megabytes (the container writes the file: one
/// line of 4 MiB, say), and a config may name many services.
pub const LOGS_TEXT_MAX: usize = 1024 * 1024;
/// What each log keeps at least, however many there are.
const LOG_TEXT_MIN: usize = 16 * 1024;

/// How many bytes of each of `count` logs are kept.
pub fn log_share(count: usize) -> usize {
    (LOGS_TEXT_MAX / count.max(1)).max(LOG_TEXT_MIN)
}

/// The last `max` bytes of `text` (its newest lines), from a character's
/// start; and how many bytes were left out before them.
pub fn newest(text: &str, max: usize) -> (&str, usize) {
    if text.len() <= max {
        return (text, 0);
    }
    let mut from = text.len() - max;
    while !text.is_char_boundary(from) {
        from += 1;
    }
    (&text[from..], from)
}

/// A bounded duration from seconds given by a client.
pub fn seconds(given: Option<u64>, default: u64, max: u64, what: &str) -> Result<Duration, String> {
    match given.unwrap_or(default) {
        0 => Err(format!("`{what}` must be at least 1 second")),
        s if s > max => Err(format!("`{what}` is at most {max} seconds (got {s})")),
        s => Ok(Duration::from_secs(s)),
    }
}

/// A bounded byte count given by a client.
pub fn bytes(
    given: Option<usize>,
    default: usize,
    max: usize,
    what: &str,
) -> Result<usize, String> {
    match given.unwrap_or(default) {
        0 => Err(format!("`{what}` must be at least 1")),
        n if n > max => Err(format!("`{what}` is at most {max} (got {n})")),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_with_its_required_fields() {
        let tools = all();
        assert_eq!(tools.len(), 11);
        let required = |name: &str| -> Vec<String> {
            let tool = tools.iter().find(|t| t.name == name).unwrap();
            assert_eq!(tool.input_schema["type"], "object", "{name}");
            tool.input_schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default()
        };
        assert_eq!(required("run"), ["workspace", "argv"]);
        assert_eq!(required("create_workspace"), ["branch"]);
        assert!(required("list_workspaces").is_empty());
        assert_eq!(required("http_request"), ["workspace"]);
    }

    #[test]
    fn arguments_are_read_strictly() {
        let args = |value: Value| value.as_object().cloned();
        let ok: RunArgs = parse("run", args(json!({"workspace": "a", "argv": ["true"]}))).unwrap();
        assert_eq!(ok.argv, ["true"]);
        for bad in [
            json!({"workspace": "a", "argv": "true"}),
            json!({"workspace": 1, "argv": ["true"]}),
            json!({"argv": ["true"]}),
            json!({"workspace": "a", "argv": ["true"], "shell": true}),
            json!({"workspace": "a", "argv": ["true"], "timeout_seconds": -1}),
        ] {
            let error = parse::<RunArgs>("run", args(bad.clone())).unwrap_err();
            assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{bad}");
        }
    }

    #[test]
    fn a_log_keeps_its_newest_bytes() {
        assert_eq!(newest("abc", 5), ("abc", 0));
        assert_eq!(newest("old\nnew\n", 4), ("new\n", 4));
        // Never inside a character: `é` is two bytes.
        assert_eq!(newest("aébc", 3), ("bc", 3));
        assert_eq!(log_share(1), LOGS_TEXT_MAX);
        assert_eq!(log_share(4), LOGS_TEXT_MAX / 4);
        assert_eq!(log_share(10_000), LOG_TEXT_MIN);
    }

    #[test]
    fn limits_are_bounded() {
        assert!(seconds(Some(0), 1, 10, "t").is_err());
        assert!(seconds(Some(11), 1, 10, "t").is_err());
        assert_eq!(seconds(None, 5, 10, "t"), Ok(Duration::from_secs(5)));
        assert!(bytes(Some(2), 1, 1, "b").is_err());
    }
}
