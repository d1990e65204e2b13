//! One integration-test binary (faster to link than one per file).

// Tests watch the engine through its own CLI, apart from dual's runner, as an
// independent witness of what dual did.
#![allow(clippy::disallowed_methods)]

mod boundary;
mod browser;
mod builds;
mod conn;
mod control;
mod deps;
mod destroy_data;
mod detect;
mod devcontainer;
mod differential;
mod engine;
mod errors;
mod forward;
mod mcp;
mod mcp_sdk;
mod ops;
mod outage;
mod parse;
mod port_kinds;
mod proxy;
mod prune_sidecars;
mod remote;
mod remote_ports;
mod remote_sync;
mod remote_workspaces;
mod services;
mod services_order;
mod shell_boundary;
mod sidecar_build;
mod sidecars;
mod supervisor;
mod support;
mod trust;
mod truth;
mod verify;
mod workspaces;

/// Every `dual` a test starts runs in a sandbox of its own (its own HOME,
/// XDG dirs and dual data, the environment cleared: `support::sandboxed`),
/// never in the user's: a spawn that builds its own command for the binary,
/// or adds an installation's variables to the test's whole environment, is
/// named here with its line.
#[test]
fn every_spawn_of_dual_is_sandboxed() {
    // Spawns in files another change is moving to `TestEnv::command`; each
    // still gets a HOME and dual data of its test's own through `env_of`.
    const NOT_YET: &[&str] = &["proxy.rs", "outage.rs"];
    const UNSANDBOXED: &[&str] = &[
        "Command::new(dual_path())",
        "Command::new(&dual_path())",
        "assert_cmd::Command::new(",
        "Command::cargo_bin(",
        ".envs(env_of(",
        ".envs(crate::workspaces::env_of(",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for dir in ["tests/it", "probes"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.extension().is_none_or(|e| e != "rs")
                || file == "support.rs"
                || file == "main.rs"
                || NOT_YET.contains(&file.as_str())
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                if UNSANDBOXED.iter().any(|pattern| line.contains(pattern)) {
                    found.push(format!("{dir}/{file}:{}: {}", number + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "dual started outside a sandbox (use TestEnv::command, support::sandboxed or support::dual()):\n{}",
        found.join("\n")
    );
}
