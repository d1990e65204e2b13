//! What a user sees when the engine is missing, down, hung or misnamed: a
//! clear error within 10 s, never a hang or a panic. These use fake engines
//! (scripts on PATH, a socket that never answers) and need no real engine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::dual;

const BOUND: Duration = Duration::from_secs(10);

fn verify_json(cmd: &mut assert_cmd::Command) -> (serde_json::Value, Duration, i32) {
    let started = Instant::now();
    let output = cmd.args(["verify", "--json"]).output().unwrap();
    let took = started.elapsed();
    let json = crate::support::json_report(&output);
    (json, took, output.status.code().unwrap_or(-1))
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {report:#}"))
}

/// A directory holding one fake engine program.
fn fake_engine(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn unknown_engine_flag_is_a_usage_error() {
    let output = dual()
        .args(["--engine", "nosuch", "verify"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    insta::assert_snapshot!(String::from_utf8_lossy(&output.stderr), @r"
    error: invalid value 'nosuch' for '--engine <ENGINE>'
      [possible values: docker, podman]

    For more information, try '--help'.
    ");
}

#[test]
fn unknown_engine_variable_fails_the_engine_check() {
    let (report, took, code) = verify_json(dual().env("DUAL_ENGINE", "nosuch"));
    assert_eq!(code, 1);
    assert!(took < BOUND);
    let engine = check(&report, "engine");
    assert_eq!(engine["status"], "fail");
    assert_eq!(
        engine["detail"],
        "`nosuch` is not a container engine dual knows (from DUAL_ENGINE)"
    );
    assert!(engine["fix"].as_str().unwrap().contains("--engine docker"));
    assert_eq!(check(&report, "container")["status"], "skip");
}

#[test]
fn no_engine_on_path_says_what_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let output = dual()
        .env("PATH", empty.path())
        .arg("verify")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let table = String::from_utf8_lossy(&output.stdout);
    // The proxy-port, resolver and CA checks depend on the host, not on the engine.
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in table.lines() {
        if line.starts_with("  ") && !line.trim_start().starts_with("fix:") {
            skipping = line.contains("proxy-ports")
                || line.contains("localhost-names")
                || line.contains("ca-bundle");
        }
        if !skipping {
            kept.push(line);
        }
    }
    insta::with_settings!({ filters => vec![
        (r"\d+ checks: .* in \S+", "[SUMMARY]"),
    ]}, {
        insta::assert_snapshot!("verify-no-engine", kept.join("\n"));
    });
}

#[test]
fn a_named_engine_that_is_not_installed() {
    let empty = tempfile::tempdir().unwrap();
    let (report, took, code) = verify_json(
        dual()
            .env("PATH", empty.path())
            .args(["--engine", "podman"]),
    );
    assert_eq!(code, 1);
    assert!(took < BOUND);
    let engine = check(&report, "engine");
    assert_eq!(
        engine["detail"],
        "`podman` is not installed (not found on PATH)"
    );
    assert!(
        engine["fix"]
            .as_str()
            .unwrap()
            .contains("apt-get install podman")
    );
}

#[test]
fn a_daemon_that_is_down_is_named_with_its_fix() {
    // A fake docker that fails the way the real CLI does with no daemon.
    let bin = tempfile::tempdir().unwrap();
    fake_engine(
        bin.path(),
        "docker",
        r#"echo '{"Client":{"Version":"28.2.2"},"Server":null}'
echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2
exit 1"#,
    );
    let (report, took, code) =
        verify_json(dual().env("PATH", bin.path()).args(["--engine", "docker"]));
    assert_eq!(code, 1);
    assert!(took < BOUND, "took {took:?}");
    let daemon = check(&report, "daemon");
    assert_eq!(daemon["status"], "fail");
    assert!(
        daemon["detail"]
            .as_str()
            .unwrap()
            .starts_with("the docker daemon is not reachable"),
        "{daemon}"
    );
    assert!(
        daemon["detail"]
            .as_str()
            .unwrap()
            .contains("Is the docker daemon running?"),
        "the engine's own stderr is kept"
    );
    assert!(
        daemon["fix"]
            .as_str()
            .unwrap()
            .contains("systemctl start docker")
    );
}

#[test]
fn a_real_docker_cli_with_a_missing_socket() {
    if dual::process::find_on_path("docker").is_none() {
        eprintln!("!!!!! SKIPPED a_real_docker_cli_with_a_missing_socket: no docker CLI on PATH");
        return;
    }
    let (report, took, code) = verify_json(
        dual()
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["--engine", "docker"]),
    );
    assert_eq!(code, 1);
    assert!(took < BOUND, "took {took:?}");
    let daemon = check(&report, "daemon");
    assert_eq!(daemon["status"], "fail", "{daemon}");
    assert!(
        daemon["fix"]
            .as_str()
            .unwrap()
            .contains("DOCKER_HOST=unix:///nonexistent/docker.sock"),
        "{daemon}"
    );
}

#[test]
fn a_hung_engine_is_killed_and_reported_within_ten_seconds() {
    let bin = tempfile::tempdir().unwrap();
    fake_engine(bin.path(), "podman", "exec /bin/sleep 60");
    let (report, took, code) =
        verify_json(dual().env("PATH", bin.path()).args(["--engine", "podman"]));
    assert_eq!(code, 1);
    assert!(took < BOUND, "took {took:?}");
    let daemon = check(&report, "daemon");
    assert!(
        daemon["detail"]
            .as_str()
            .unwrap()
            .starts_with("podman did not answer within 5s"),
        "{daemon}"
    );
    assert!(
        daemon["fix"]
            .as_str()
            .unwrap()
            .contains("DUAL_ENGINE_TIMEOUT")
    );
}

#[test]
fn a_real_docker_cli_against_a_daemon_that_never_answers() {
    if dual::process::find_on_path("docker").is_none() {
        eprintln!(
            "!!!!! SKIPPED a_real_docker_cli_against_a_daemon_that_never_answers: no docker CLI on PATH"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // Accept connections and hold them open without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let (report, took, code) = verify_json(
        dual()
            .env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .env("DUAL_ENGINE_TIMEOUT", "2")
            .args(["--engine", "docker"]),
    );
    assert_eq!(code, 1);
    assert!(took < BOUND, "took {took:?}");
    assert!(
        check(&report, "daemon")["detail"]
            .as_str()
            .unwrap()
            .contains("did not answer within 2s")
    );
}

#[test]
fn a_report_that_cannot_be_written_is_an_error_with_the_path() {
    let empty = tempfile::tempdir().unwrap();
    let output = dual()
        .env("PATH", empty.path())
        .args(["verify", "--report", "/nonexistent-dir/report.md"])
        .output()
        .unwrap();
    crate::support::assert_transcript!("report-not-written", output, empty.path());
}

/// With the daemon gone (a missing socket) or hung (a socket that never
/// answers), the everyday commands finish within the engine timeout and
/// say what is wrong and what to do, instead of a wrong claim or a wait.
#[test]
fn everyday_commands_say_the_engine_is_down_and_how_to_start_it() {
    crate::support::each_engine("engine_down_messages", |kind| {
        if kind != dual::engine::EngineKind::Docker {
            return;
        }
        let image = crate::support::ensure_test_image(kind);
        let env = crate::workspaces::TestEnv::new(Some(kind), &format!("image = \"{image}\"\n"));
        env.ok(&["create", "down"]);
        env.ok(&["launch", "down"]);
        let dir = tempfile::tempdir().unwrap();
        let silent = dir.path().join("silent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&silent).unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        let name = env.name("down");
        for (socket, says) in [
            ("/nonexistent/docker.sock", "daemon is not reachable"),
            (silent.to_str().unwrap(), "did not answer within 2s"),
        ] {
            for args in [
                vec!["list"],
                vec!["run", "-w", &name, "true"],
                vec!["launch", "down"],
            ] {
                let started = Instant::now();
                let output = env
                    .cmd(&args)
                    .env("DOCKER_HOST", format!("unix://{socket}"))
                    .env("DUAL_ENGINE_TIMEOUT", "2")
                    .env("DUAL_PROXY_AUTOSTART", "0")
                    .timeout(Duration::from_secs(30))
                    .output()
                    .unwrap();
                let took = started.elapsed();
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(took < BOUND, "{args:?} took {took:?}");
                assert!(stderr.contains(says), "{args:?} with {socket}: {stderr}");
                assert!(
                    stderr.contains("systemctl") || stderr.contains("restart it"),
                    "{args:?} says how to start it: {stderr}"
                );
                assert!(
                    !stderr.contains("is not running\n"),
                    "{args:?} blames the workspace: {stderr}"
                );
            }
        }
        let list = env
            .cmd(&["list", "--json"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap();
        let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        assert_eq!(listed[0]["state"], "unknown", "{listed}");
    });
}
