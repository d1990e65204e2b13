//! A repo with only a `.devcontainer/devcontainer.json`, launched as it is on
//! the real engines: its image, environment, declared port and lifecycle
//! commands (create commands once per container, two launches at once
//! included; the start command at every start), its notes under `-v` and
//! in `verify`; and what it asks that dual refuses, refused before anything
//! is made.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::proxy::Proxy;
use crate::support::{dual_path, each_engine, ensure_test_image, heavy, http_get, wait_for};
use crate::workspaces::TestEnv;

/// The bar's devcontainer.json, JSONC as VS Code writes it: comments,
/// trailing commas. Each create command adds a line to `created.log` in the
/// clone, the start command one to `started.log`.
fn devcontainer_json(image: &str) -> String {
    format!(
        r#"// The project's dev container.
{{
  "name": "shop",
  "image": "{image}", /* a local image: no registry here */
  "forwardPorts": [8000,],
  "portsAttributes": {{ "8000": {{ "label": "Web" }} }},
  "containerEnv": {{
    "GREETING": "hello from devcontainer",
    "CLONE": "${{containerWorkspaceFolder}}",
    // The host's environment never reaches the container.
    "LEAKED": "${{localEnv:HOME}}",
  }},
  "postCreateCommand": {{
    "one": "echo one >> created.log",
    "two": ["sh", "-c", "echo two >> created.log"],
  }},
  "postStartCommand": "echo start >> started.log",
  "mounts": ["source=cache,target=/var/cache/shop,type=volume"],
  "customizations": {{ "vscode": {{ "extensions": ["x.y"] }} }},
  "features": {{ "ghcr.io/devcontainers/features/node:1": {{}} }},
}}
"#
    )
}

/// A repo whose only config is `.devcontainer/devcontainer.json` = `json`.
fn devcontainer_repo(kind: crate::support::EngineKind, json: &str) -> TestEnv {
    let env = TestEnv::new(Some(kind), "");
    let source = env.source();
    std::fs::remove_file(source.join(".dual.toml")).unwrap();
    std::fs::create_dir_all(source.join(".devcontainer")).unwrap();
    std::fs::write(source.join(".devcontainer/devcontainer.json"), json).unwrap();
    env.git(&source, &["add", "-A"]);
    env.git(&source, &["commit", "-qm", "only a devcontainer.json"]);
    env
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[test]
fn a_repo_with_only_a_devcontainer_json_launches_as_it_says() {
    each_engine("devcontainer", |kind| {
        let _heavy = heavy();
        let image = ensure_test_image(kind);
        let env = devcontainer_repo(kind, &devcontainer_json(image));
        let name = env.name("main");
        env.ok(&["create", "main"]);

        // Two launches at once: one clones and creates, the other waits for
        // it; the create commands run once, the start command once.
        let launches: Vec<std::process::Child> = (0..2)
            .map(|_| {
                env.command(dual_path())
                    .args(["launch", &name])
                    .current_dir(env.dir.path())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<std::process::Output> = launches
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect();
        for output in &outputs {
            assert!(
                output.status.success(),
                "{kind}: {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let clone = env.clone_path("main");
        assert_eq!(
            sorted(lines(&clone.join("created.log"))),
            ["one", "two"],
            "{kind}: postCreateCommand's two commands, once"
        );
        assert_eq!(lines(&clone.join("started.log")), ["start"], "{kind}");
        let first = outputs
            .iter()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .find(|out| out.contains("created and started"))
            .unwrap_or_else(|| panic!("{kind}: neither launch created the container"));
        assert!(
            first.contains("running postCreateCommand"),
            "{kind}: {first}"
        );
        assert!(
            first.contains(&format!("http://{name}.localhost:8000  (Web)")),
            "{kind}: the port, with its label: {first}"
        );
        // Without -v the notes are counted, not listed.
        assert!(
            first.contains("`dual launch -v` or `dual verify` lists them"),
            "{kind}: {first}"
        );
        assert!(
            !first.contains("`customizations` is for editors"),
            "{kind}: {first}"
        );

        // The environment, and nothing of the host's.
        let printed = env.run_in("main", "", &["env"]);
        let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
        assert!(
            printed.contains("GREETING=hello from devcontainer"),
            "{kind}: {printed}"
        );
        assert!(
            printed.contains(&format!("CLONE={}", clone.display())),
            "{kind}: {printed}"
        );
        assert!(!printed.contains("LEAKED="), "{kind}: {printed}");

        // Launched again, running: nothing runs again; -v lists each note once.
        let again = env.ok(&["launch", "-v", &name]);
        assert_eq!(
            sorted(lines(&clone.join("created.log"))),
            ["one", "two"],
            "{kind}"
        );
        assert_eq!(lines(&clone.join("started.log")), ["start"], "{kind}");
        for note in [
            "`customizations` is for editors",
            "feature `ghcr.io/devcontainers/features/node:1` is not installed",
            "`containerEnv.LEAKED`: `${localEnv:HOME}` names your host's environment",
        ] {
            assert_eq!(
                again.matches(note).count(),
                1,
                "{kind}: `{note}` once in:\n{again}"
            );
        }

        // `:8000` is routed before anything listens there: the proxy knows
        // the workspace (a 502 that says what to bind, not a 404), and
        // serves it once something does.
        if std::net::TcpListener::bind(("127.0.0.1", 8000)).is_ok() {
            let _proxy = Proxy::start(&env, 8000);
            let host = format!("{name}.localhost:8000");
            let (status, body) = wait_for(Duration::from_secs(15), "the route to :8000", || {
                http_get(8000, &host, "/").and_then(|(status, body)| {
                    if status == 502 {
                        Ok((status, body))
                    } else {
                        Err(format!("{status}: {body}"))
                    }
                })
            });
            assert!(body.contains("0.0.0.0"), "{kind}: {status} {body}");
            let started = env.run_in(
                "main",
                "",
                &[
                    "sh",
                    "-c",
                    "dual test-server --name devc --port 8000 >/dev/null 2>&1 &",
                ],
            );
            assert!(started.status.success(), "{kind}: {started:?}");
            wait_for(
                Duration::from_secs(15),
                "the server behind :8000",
                || match http_get(8000, &host, "/") {
                    Ok((200, body)) if body.contains("devc") => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            );
        } else {
            eprintln!(
                "!!!!! {kind}: port 8000 is held on this host: the route to :8000 was not tried through the proxy"
            );
            let urls = env.ok(&["urls"]);
            assert!(
                urls.contains(&format!("http://{name}.localhost:8000")),
                "{kind}: {urls}"
            );
        }

        // Stopped and launched: the start command again, the create ones not.
        env.ok(&["stop", &name]);
        env.ok(&["launch", &name]);
        assert_eq!(
            lines(&clone.join("started.log")),
            ["start", "start"],
            "{kind}"
        );
        assert_eq!(
            sorted(lines(&clone.join("created.log"))),
            ["one", "two"],
            "{kind}"
        );
        // A container made anew runs the create commands again, and keeps
        // the workspace's volume.
        let wrote = env.run_in("main", "", &["sh", "-c", "echo kept > /var/cache/shop/f"]);
        assert!(
            wrote.status.success(),
            "{kind}: the volume is the user's: {wrote:?}"
        );
        env.ok(&["launch", "--recreate", &name]);
        assert_eq!(
            sorted(lines(&clone.join("created.log"))),
            ["one", "one", "two", "two"],
            "{kind}"
        );
        let read = env.run_in("main", "", &["cat", "/var/cache/shop/f"]);
        assert_eq!(
            String::from_utf8_lossy(&read.stdout),
            "kept\n",
            "{kind}: {read:?}"
        );

        // verify in the clone names the file and each note once.
        let output = env
            .cmd(&["verify", "--json"])
            .current_dir(&clone)
            .output()
            .unwrap();
        let report = crate::support::json_report(&output);
        let checks: Vec<&serde_json::Value> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "devcontainer")
            .collect();
        let detail = |c: &serde_json::Value| c["detail"].as_str().unwrap_or_default().to_owned();
        assert!(
            checks.iter().any(|c| c["status"] == "pass"
                && detail(c).contains("`.devcontainer/devcontainer.json` read")),
            "{kind}: {checks:#?}"
        );
        let customizations = checks
            .iter()
            .filter(|c| detail(c).contains("`customizations` is for editors"))
            .count();
        assert_eq!(customizations, 1, "{kind}: {checks:#?}");

        // The volume is the workspace's (labelled as its own), and goes
        // with it.
        let volume = format!("dual-{name}-m-cache");
        assert!(
            env.volumes().contains(&volume),
            "{kind}: {:?}",
            env.volumes()
        );
        env.ok(&["destroy", "--force", &name]);
        let gone = env.engine(&["volume", "inspect", &volume]);
        assert!(
            !gone.status.success(),
            "{kind}: {volume} outlived its workspace"
        );
    });
}

/// What would run on the host or widen the container's privileges is
/// refused naming the key, before anything is made (no clone, no
/// container, no volume); `--skip-initialize-command` launches without it.
#[test]
fn initialize_command_and_privileged_run_args_are_refused_before_anything_is_made() {
    each_engine("devcontainer refusals", |kind| {
        let image = ensure_test_image(kind);
        let marker = tempfile::tempdir().unwrap();
        let pwned = marker.path().join("pwned");
        let json =
            format!("{{ \"image\": \"{image}\", \"runArgs\": [\"--init\", \"--privileged\"] }}");
        let env = devcontainer_repo(kind, &json);
        env.ok(&["create", "main"]);
        let error = env.fails(&["launch", "main"]);
        assert!(error.contains("`runArgs`"), "{kind}: {error}");
        assert!(
            error.contains("`--privileged` would give"),
            "{kind}: {error}"
        );
        assert!(
            error.contains("hint: remove it from `runArgs`"),
            "{kind}: {error}"
        );
        assert!(!env.clone_path("main").exists(), "{kind}: no clone left");
        assert!(
            env.containers().is_empty(),
            "{kind}: {:?}",
            env.containers()
        );
        assert!(env.volumes().is_empty(), "{kind}: {:?}", env.volumes());

        let source = env.source();
        std::fs::write(
            source.join(".devcontainer/devcontainer.json"),
            format!(
                "{{ \"image\": \"{image}\", \"initializeCommand\": \"touch {}\" }}",
                pwned.display()
            ),
        )
        .unwrap();
        env.git(&source, &["commit", "-qam", "initializeCommand"]);
        let error = env.fails(&["launch", "main"]);
        assert!(
            error.contains("`initializeCommand` would run"),
            "{kind}: {error}"
        );
        assert!(
            error.contains("--skip-initialize-command"),
            "{kind}: {error}"
        );
        assert!(!pwned.exists(), "{kind}: it never ran on the host");
        assert!(!env.clone_path("main").exists(), "{kind}");
        assert!(
            env.containers().is_empty(),
            "{kind}: {:?}",
            env.containers()
        );

        let output = env.run(&["launch", "--skip-initialize-command", "main"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{kind}: {stderr}");
        assert!(
            stderr.contains("`initializeCommand` of `.devcontainer/devcontainer.json` not run (--skip-initialize-command)"),
            "{kind}: {stderr}"
        );
        assert!(!pwned.exists(), "{kind}: skipped, not run");
    });
}
