//! `dual verify` end to end on the real engines.

use std::time::Duration;

use crate::support::{
    EngineKind, Sandbox, containers_with_label, dual, dual_path, each_engine, ensure_test_image,
    heavy, signal, wait_until,
};
use crate::workspaces::TestEnv;

/// `dual verify --json EXTRA` on `kind`, required to pass; its report.
/// Fails too when it left any of its own probe containers (labelled with
/// its pid: another run's, of another test or session, are not its).
fn verify_json(kind: EngineKind, extra: &[&str]) -> serde_json::Value {
    let sandbox = Sandbox::new();
    let child = sandbox
        .command(dual_path())
        .args(["--engine", kind.program(), "verify", "--json"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let own_containers = format!("dual.pid={}", child.id());
    let output = child.wait_with_output().unwrap();
    let report = crate::support::json_report(&output);
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert!(failed.is_empty(), "{kind}: failed checks: {failed:#?}");
    assert_eq!(output.status.code(), Some(0), "{kind}: {report:#}");
    let left = containers_with_label(kind, &own_containers);
    assert!(
        left.is_empty(),
        "{kind}: verify left probe containers behind: {left:?}"
    );
    report
}

/// `value` with its keys kept and its values replaced by `_`: an array
/// becomes one element holding the keys of all of its elements.
fn shape(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect(),
        ),
        Value::Array(items) => {
            let mut merged = serde_json::Map::new();
            let mut scalars = false;
            for item in items {
                match shape(item) {
                    Value::Object(keys) => merged.extend(keys),
                    _ => scalars = true,
                }
            }
            match (merged.is_empty(), scalars) {
                (false, _) => Value::Array(vec![Value::Object(merged)]),
                (true, true) => Value::Array(vec![Value::from("_")]),
                (true, false) => Value::Array(Vec::new()),
            }
        }
        _ => Value::from("_"),
    }
}

#[test]
fn verify_passes_on_each_engine_with_every_check() {
    each_engine("verify_passes_on_each_engine_with_every_check", |kind| {
        let _heavy = heavy();
        let report = verify_json(kind, &[]);
        assert_eq!(report["engine"]["kind"], kind.program());
        assert!(
            report["engine"]["info"]["server_version"]
                .as_str()
                .is_some_and(|v| !v.is_empty())
        );
        let checks = report["checks"].as_array().unwrap();
        assert!(checks.len() >= 8, "{kind}: only {} checks", checks.len());
        for check in checks {
            let text = |key: &str| check[key].as_str().unwrap_or("");
            assert!(
                !text("name").is_empty() && !text("detail").is_empty(),
                "{kind}: a check says what it checked and found: {check}"
            );
            // A warning or a failure names its fix; a pass or a skip has none.
            match text("status") {
                "warn" | "fail" => assert!(!text("fix").is_empty(), "{kind}: {check}"),
                "pass" | "skip" => assert!(check["fix"].is_null(), "{kind}: {check}"),
                other => panic!("{kind}: status `{other}` is none of pass/warn/fail/skip: {check}"),
            }
        }
        let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
        insta::assert_snapshot!("verify-check-names", names.join("\n"));
        // The report's shape: every key, at every depth, of every check;
        // none of the values (they are this host's).
        insta::assert_snapshot!(
            // One snapshot for both engines: they report alike.
            "verify-json-shape",
            serde_json::to_string_pretty(&shape(&report)).unwrap()
        );
        for essential in [
            "daemon",
            "container",
            "isolation",
            "localhost",
            "reachability",
        ] {
            let check = checks.iter().find(|c| c["name"] == essential).unwrap();
            assert_eq!(check["status"], "pass", "{kind}: {check}");
        }
    });
}

#[test]
fn verify_table_shows_fixes_under_failures() {
    each_engine("verify_table_shows_fixes_under_failures", |kind| {
        let _heavy = heavy();
        // Hold a proxy port so that check fails, then read the table.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port().to_string();
        let output = dual()
            .args(["--engine", kind.program(), "verify", "--port", &port])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "a failed check fails the command"
        );
        let table = String::from_utf8_lossy(&output.stdout);
        let line = table
            .lines()
            .position(|l| l.contains("FAIL  proxy-ports"))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(
            table
                .lines()
                .nth(line)
                .unwrap()
                .contains(&format!("pid {}", std::process::id())),
            "{table}"
        );
        assert!(
            table
                .lines()
                .nth(line + 1)
                .unwrap()
                .trim_start()
                .starts_with("fix: "),
            "{table}"
        );
    });
}

#[test]
fn interrupted_verify_removes_every_probe_container() {
    each_engine("interrupted_verify_removes_every_probe_container", |kind| {
        let _heavy = heavy();
        let sandbox = Sandbox::new();
        let child = sandbox
            .command(dual_path())
            .args([
                "--engine",
                kind.program(),
                "verify",
                "--probes",
                "--count",
                "12",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let owner = format!("dual.pid={}", child.id());
        // Interrupt mid-way: once some of its containers exist.
        wait_until(
            Duration::from_secs(60),
            &format!("{kind}: verify to start 3 containers"),
            || containers_with_label(kind, &owner).len() >= 3,
        );
        signal(&child, rustix::process::Signal::INT);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(130), "{kind}: {stderr}");
        assert!(
            stderr.contains("interrupted: verify stopped and removed"),
            "{stderr}"
        );
        let left = containers_with_label(kind, &owner);
        assert!(
            left.is_empty(),
            "{kind}: left behind after Ctrl-C: {left:?}"
        );
    });
}

/// `dual verify` as an ordinary user on rootless podman: the engine-side
/// mode where container IPs are unreachable and ports are published instead.
/// Runs when DUAL_TEST_ROOTLESS_USER names such a user (CI makes one).
#[test]
fn verify_passes_on_rootless_podman() {
    let Some(user) = crate::support::rootless_user("verify_passes_on_rootless_podman") else {
        return;
    };
    let _heavy = heavy();
    let (_copies, dual, _) = crate::support::copies_for_another_user();
    // dual's data in a dir of the test's (that user's own dual untouched);
    // HOME stays that user's, where rootless podman keeps its storage.
    let data = tempfile::tempdir().unwrap();
    let chown = std::process::Command::new("chown")
        .args([user.as_str(), data.path().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(chown.success());
    let line = format!(
        "cd /tmp && DUAL_HOME={} DUAL_PROXY_AUTOSTART=0 {} --engine podman verify --json --port 3700",
        data.path().display(),
        dual.display()
    );
    let output = std::process::Command::new("su")
        .env_clear()
        .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
        .current_dir("/tmp")
        .args([user.as_str(), "-s", "/bin/sh", "-c", &line])
        .output()
        .unwrap();
    let report = crate::support::json_report(&output);
    let checks = report["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].clone())
            .unwrap_or_default()
    };
    let failed: Vec<&serde_json::Value> = checks.iter().filter(|c| c["status"] == "fail").collect();
    assert!(failed.is_empty(), "rootless: {failed:#?}");
    assert_eq!(report["engine"]["info"]["rootless"], true);
    assert_eq!(
        status("reachability"),
        "warn",
        "no routable container IPs: the publish route"
    );
    for check in [
        "isolation",
        "localhost",
        "proxy-http",
        "proxy-sse",
        "proxy-websocket",
    ] {
        assert_eq!(status(check), "pass", "rootless {check}: {report:#}");
    }
}

/// `dual verify --json` run in the clone of `branch`: exit status and report.
fn verify_in(env: &TestEnv, branch: &str) -> (Option<i32>, serde_json::Value) {
    let output = env
        .cmd(&["verify", "--json"])
        .current_dir(env.clone_path(branch))
        .output()
        .unwrap();
    (output.status.code(), crate::support::json_report(&output))
}

/// In a workspace's clone, verify reports each sidecar (its image, its
/// user, its container, its network namespace) and every compose key
/// dual ignored; a sidecar that would run as root fails, with the fix.
#[test]
fn verify_in_a_workspace_reports_its_sidecars_and_compose_notes() {
    each_engine("verify sidecars", |kind| {
        let _heavy = heavy();
        let image = ensure_test_image(kind);
        let config = format!(
            "image = \"{image}\"\n\
             [sidecars.web]\nimage = \"{image}\"\nuser = \"1000:1000\"\n\
             command = [\"httpd\", \"-f\", \"-p\", \"5999\"]\nready = 5999\n"
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "main"]);
        env.ok(&["launch", &env.name("main")]);
        // Then, in the clone: a sidecar whose image names no user (root),
        // and a compose file with two services dual does not start.
        let clone = env.clone_path("main");
        let root =
            format!("\n[sidecars.rooty]\nimage = \"{image}\"\ncommand = [\"sleep\", \"600\"]\n");
        std::fs::write(clone.join(".dual.toml"), format!("{config}{root}")).unwrap();
        std::fs::write(
            clone.join("compose.yaml"),
            "services:\n  app:\n    build: .\n  later:\n    image: x\n    profiles: [debug]\n",
        )
        .unwrap();

        let (status, report) = verify_in(&env, "main");
        assert_eq!(status, Some(1), "a root sidecar fails verify: {report:#}");
        let checks = report["checks"].as_array().unwrap();
        let check = |name: &str| {
            checks
                .iter()
                .find(|c| c["name"] == name)
                .unwrap_or_else(|| panic!("{kind}: no check `{name}`: {report:#}"))
        };
        let text =
            |check: &serde_json::Value, key: &str| check[key].as_str().unwrap_or("").to_owned();

        let web = check("sidecar-web");
        assert_eq!(web["status"], "pass", "{kind}: {web}");
        for says in [
            &format!("image `{image}` on {kind}"),
            "runs as `1000:1000`",
            "running",
            "in the workspace's network namespace",
        ] {
            assert!(
                text(web, "detail").contains(says),
                "{kind}: `{says}` in {web}"
            );
        }

        let rooty = check("sidecar-rooty");
        assert_eq!(rooty["status"], "fail", "{kind}: {rooty}");
        assert!(
            text(rooty, "detail").contains("would run as root"),
            "{kind}: {rooty}"
        );
        assert!(
            text(rooty, "fix").contains("`user = \"…\"` under `[sidecars.rooty]`"),
            "{kind}: {rooty}"
        );

        let notes: Vec<String> = checks
            .iter()
            .filter(|c| c["name"] == "compose")
            .map(|c| {
                assert_eq!(c["status"], "warn", "{kind}: {c}");
                text(c, "detail")
            })
            .collect();
        assert_eq!(
            notes.len(),
            2,
            "{kind}: each ignored service once: {notes:?}"
        );
        assert!(
            notes[0].contains("service `app` runs the repo's own code"),
            "{notes:?}"
        );
        assert!(
            notes[1].contains("service `later` is not started"),
            "{notes:?}"
        );

        // The table shows the fix under the failure.
        let table = env.cmd(&["verify"]).current_dir(&clone).output().unwrap();
        let table = String::from_utf8_lossy(&table.stdout);
        let line = table
            .lines()
            .position(|l| l.contains("FAIL  sidecar-rooty"))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(
            table
                .lines()
                .nth(line + 1)
                .is_some_and(|l| l.contains("fix: name the image's own user")),
            "{table}"
        );

        // Its workspace container started again behind dual's back: a new
        // namespace, which the running sidecar is not in.
        let restarted = env.engine(&["restart", &format!("dual-{}", env.name("main"))]);
        assert!(restarted.status.success(), "{restarted:?}");
        let (_, report) = verify_in(&env, "main");
        let web = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "sidecar-web")
            .cloned()
            .unwrap_or_default();
        assert_eq!(web["status"], "fail", "{kind}: {web}");
        assert!(
            text(&web, "detail").contains("in another network namespace"),
            "{kind}: {web}"
        );
        assert!(text(&web, "fix").contains("dual launch"), "{kind}: {web}");

        // Outside a workspace: none of it.
        let (_, report) = {
            let output = env.cmd(&["verify", "--json"]).output().unwrap();
            (output.status.code(), crate::support::json_report(&output))
        };
        let names: Vec<&str> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("sidecar") || *n == "compose"),
            "{names:?}"
        );
    });
}
