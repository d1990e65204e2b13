//! `dual mcp` driven by the official MCP SDK for Python, as an agent's
//! client would drive it: tests/mcp/flow.py creates a workspace whose web
//! service is the test server, launches it, fetches its page through the
//! proxy, runs a failing command in it, reads its log and destroys it.
//!
//! The SDK lives in a venv `scripts/mcp-client` makes; CI passes its python
//! as `DUAL_TEST_MCP_PYTHON`.

use std::path::PathBuf;
use std::time::Instant;

use crate::proxy::{Proxy, free_port};
use crate::services::web_service_env;
use crate::support::{dual_path, each_engine, require_engine};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The python that has the MCP SDK: `DUAL_TEST_MCP_PYTHON`, else the venv
/// `scripts/mcp-client` makes; `None` after saying loudly that `test` is
/// skipped, a failure instead under `DUAL_REQUIRE_ENGINE=1`.
fn mcp_python(test: &str) -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("DUAL_TEST_MCP_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(python));
    }
    let venv = manifest_dir().join("target/mcp-client/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    let why = "no python with the MCP SDK: DUAL_TEST_MCP_PYTHON is unset and target/mcp-client does not exist";
    let how =
        "run `export DUAL_TEST_MCP_PYTHON=$(scripts/mcp-client)` (a venv with `mcp` from PyPI)";
    assert!(
        !require_engine(),
        "DUAL_REQUIRE_ENGINE=1 but {test} cannot run: {why}\nhint: {how}"
    );
    eprintln!("\n!!!!! SKIPPED {test}: {why}.\n!!!!! To run it: {how}.\n");
    None
}

#[test]
fn the_official_python_sdk_drives_a_workspace_from_create_to_destroy() {
    let Some(python) = mcp_python("mcp_sdk") else {
        return;
    };
    each_engine("mcp_sdk", |kind| {
        let port = free_port();
        let env = web_service_env(kind, port, "");
        let _proxy = Proxy::spawn(&env, None);
        let branch = "mcp-flow";
        let workspace = env.name(branch);
        let flow = manifest_dir().join("tests/mcp/flow.py");

        let started = Instant::now();
        let output = env
            .command(&python)
            .current_dir(env.dir.path())
            .arg(&flow)
            .arg("--dual")
            .arg(dual_path())
            .args(["--repo", &env.repo, "--branch", branch])
            // The test server answers with the container's hostname, which
            // is the workspace's name.
            .args([
                "--expect-body",
                &workspace,
                "--expect-workspace",
                &workspace,
            ])
            .output()
            .unwrap();
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "tests/mcp/flow.py failed on {kind} ({}) after {took:.1?}:\n--- stdout\n{stdout}--- stderr\n{stderr}--- proxy\n{}",
            output.status,
            std::fs::read_to_string(env.dir.path().join("proxy-test.log")).unwrap_or_default()
        );
        eprintln!("{kind}: the SDK's flow took {took:.1?}:\n{stdout}");
        // destroy went through the MCP server: nothing of the workspace left.
        assert_eq!(env.containers(), Vec::<String>::new(), "{kind}");
        assert!(
            !env.clone_path(branch).exists(),
            "{kind}: the clone outlived destroy"
        );
    });
}
