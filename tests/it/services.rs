//! Services and the ports dual finds by itself, end to end: `.dual.toml`
//! services with no `ports`, a real `dual proxy`, real containers.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::proxy::{Proxy, free_port};
use rustix::process::Signal;

use crate::support::http_get as get;
use crate::support::{dual_path, each_engine, ensure_test_image, signal, wait_for, wait_until};
use crate::workspaces::TestEnv;

/// A workspace config whose service `web` is the test server on `port`
/// (answering with the workspace's name), `extra` lines in its table.
pub fn web_service_env(kind: dual::engine::EngineKind, port: u16, extra: &str) -> TestEnv {
    let config = format!(
        "image = \"{}\"\n[services.web]\ncommand = \"dual test-server --name $(hostname) --port {port}\"\n{extra}",
        ensure_test_image(kind)
    );
    TestEnv::new(Some(kind), &config)
}

/// How long until `host` on `port` answers 200 with `body`; fails the test
/// after `limit`, with the last answer.
fn answers_within(port: u16, host: &str, body: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    wait_for(limit, &format!("{host} to answer `{body}`"), || {
        match get(port, host, "/") {
            Ok((200, text)) if text == body => Ok(()),
            other => Err(other),
        }
    });
    start.elapsed()
}

/// How long until `{name}.localhost:{port}` answers with its own name.
fn serves_own_name(port: u16, name: &str, limit: Duration) -> Duration {
    answers_within(port, &format!("{name}.localhost:{port}"), name, limit)
}

/// How long until `host` on `port` stops answering 200.
fn unrouted_within(port: u16, host: &str, limit: Duration) -> Duration {
    wait_until(limit, &format!("{host} to stop answering"), || {
        !matches!(get(port, host, "/"), Ok((200, _)))
    })
}

fn listed<'a>(list: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list:?}"))
}

/// Kills, inside the container, the process whose command line starts with
/// `dual test-server --name {name}`.
fn kill_server(env: &TestEnv, container: &str, name: &str) {
    let script = format!(
        "ps -o pid,args | awk '$2 == \"dual\" && $3 == \"test-server\" && $5 == \"{name}\" {{ print $1 }}' | xargs kill -9"
    );
    let killed = env.engine(&["exec", container, "sh", "-c", &script]);
    assert!(killed.status.success(), "{killed:?}");
}

#[test]
fn two_services_without_ports_are_routed_logged_restarted_and_relaunched() {
    each_engine("services", |kind| {
        let (web, api) = (free_port(), free_port());
        let config = format!(
            "image = \"{}\"\nports = []\n\
             [services.web]\ncommand = \"dual test-server --name $(hostname)-web --port {web}\"\n\
             [services.api]\ncommand = \"echo api says hello; dual test-server --name $(hostname)-api --port {api}\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "svc"]);
        let name = env.name("svc");
        let _proxy = Proxy::spawn(&env, None);
        let launched = env.ok(&["launch", "svc"]);
        assert!(launched.contains("service `web`: started"), "{launched}");
        let (web_host, api_host) = (
            format!("{name}.localhost:{web}"),
            format!("{name}.localhost:{api}"),
        );
        // Both answer, each with its own name; how long the first took.
        let both_answer = || {
            let took = answers_within(
                web,
                &web_host,
                &format!("{name}-web"),
                Duration::from_secs(5),
            );
            answers_within(
                api,
                &api_host,
                &format!("{name}-api"),
                Duration::from_secs(5),
            );
            took
        };
        let took = both_answer();
        eprintln!("{kind}: both services routed {took:?} after `launch` returned");

        // SSE on a port nobody declared.
        let (status, events) = get(web, &web_host, "/sse?interval=10&count=3").unwrap();
        assert_eq!(
            (status, events.matches("data: ").count()),
            (200, 3),
            "{events}"
        );

        let list = env.list();
        let workspace = listed(&list, &name);
        let states: Vec<(&str, &str)> = workspace["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap()))
            .collect();
        assert_eq!(
            states,
            [("api", "running"), ("web", "running")],
            "{workspace}"
        );
        let mut ports = vec![web, api];
        ports.sort_unstable();
        assert_eq!(
            workspace["listening"],
            serde_json::json!(ports),
            "{workspace}"
        );

        // The whole of what `dual logs` shows of a service that started once.
        let ports = [
            (format!(r"\b{api}\b"), "[API PORT]"),
            (format!(r"\b{web}\b"), "[WEB PORT]"),
        ];
        crate::support::assert_transcript!(
            "logs-of-a-service",
            env.run(&["logs", &name, "api"]),
            env.dir.path(),
            ports
        );

        // Killed inside: restarted by its supervisor, and the log says so.
        let container = format!("dual-{name}");
        kill_server(&env, &container, &format!("{name}-web"));
        let back = answers_within(
            web,
            &web_host,
            &format!("{name}-web"),
            Duration::from_secs(5),
        );
        eprintln!("{kind}: a killed service answered again after {back:?}");
        let logs = env.ok(&["logs", &name, "web", "--tail", "5"]);
        assert!(logs.contains("exited (137); restarting"), "{logs}");
        let list = env.list();
        assert_eq!(
            listed(&list, &name)["services"][1]["restarts"],
            1,
            "{list:?}"
        );

        // Stopped and launched: both back.
        env.ok(&["stop", "svc"]);
        let list = env.list();
        let workspace = listed(&list, &name);
        assert_eq!(workspace["state"], "stopped");
        assert_eq!(workspace["services"][0]["state"], "stopped");
        let logs = env.ok(&["logs", &name, "web", "--tail", "1"]);
        assert!(
            logs.contains("stopped"),
            "SIGTERM, then the supervisor's last line: {logs}"
        );
        env.ok(&["launch", "svc"]);
        both_answer();

        // `dual restart` of one service.
        let restarted = env.ok(&["restart", &name, "api"]);
        assert!(restarted.contains("restarted api"), "{restarted}");
        answers_within(
            api,
            &api_host,
            &format!("{name}-api"),
            Duration::from_secs(5),
        );
        let logs = env.ok(&["logs", &name, "api"]);
        let said = logs
            .lines()
            .filter(|line| *line == "api says hello")
            .count();
        assert_eq!(said, 3, "launched, relaunched, restarted: {logs}");
    });
}

/// `dual run SERVER` in the background, as a person would in a terminal.
fn run_in_background(env: &TestEnv, args: &[&str]) -> Child {
    env.command(dual_path())
        .args(["run", "-w"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_server_started_by_hand_is_routed_while_it_listens() {
    each_engine("discovered", |kind| {
        let declared = free_port();
        let config = format!(
            "image = \"{}\"\nports = [{declared}]\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "byhand"]);
        env.ok(&["launch", "byhand"]);
        let name = env.name("byhand");
        let _proxy = Proxy::start(&env, declared);
        let port = free_port();
        let server_name = format!("{name}-adhoc");
        let mut server = run_in_background(
            &env,
            &[
                &name,
                "dual",
                "test-server",
                "--name",
                &server_name,
                "--port",
                &port.to_string(),
            ],
        );
        let host = format!("{name}.localhost:{port}");
        let routed = answers_within(port, &host, &server_name, Duration::from_secs(10));
        eprintln!("{kind}: routed {routed:?} after `dual run` started");
        let list = env.list();
        assert!(
            listed(&list, &name)["urls"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(format!("http://{host}"))),
            "{list:?}"
        );

        // Its exit closes the route; the declared port's page says it listens nowhere.
        // `dual run` passes the signal on.
        signal(&server, Signal::TERM);
        let _ = server.wait();
        let gone = unrouted_within(port, &host, Duration::from_secs(10));
        eprintln!("{kind}: unrouted {gone:?} after the server exited");
        let (status, page) = get(declared, &format!("{name}.localhost:{port}"), "/").unwrap();
        assert_eq!(status, 502, "{page}");

        // Bound to loopback inside: shown with the fix, never routed.
        let mut hidden = run_in_background(&env, &[&name, "httpd", "-f", "-p", "127.0.0.1:9229"]);
        wait_until(
            Duration::from_secs(20),
            "9229 shown as loopback only",
            || listed(&env.list(), &name)["loopback_only"] == serde_json::json!([9229]),
        );
        let listing = env.ok(&["list"]);
        assert!(
            listing.contains(&format!("{name} listens on 127.0.0.1:9229 only")),
            "{listing}"
        );
        signal(&hidden, Signal::TERM);
        let _ = hidden.wait();
    });
}

#[test]
fn fifteen_workspaces_serve_one_port_each_their_own() {
    each_engine("fifteen_services", |kind| {
        let _heavy = crate::support::heavy();
        let port = free_port();
        let config = format!(
            "image = \"{}\"\n\
             [services.web]\ncommand = \"dual test-server --name $(hostname) --port {port}\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        let branches: Vec<String> = (0..15).map(|i| format!("b{i}")).collect();
        for branch in &branches {
            env.ok(&["create", branch]);
        }
        let _proxy = Proxy::spawn(&env, None);
        std::thread::scope(|scope| {
            for branch in &branches {
                let env = &env;
                scope.spawn(move || env.ok(&["launch", branch]));
            }
        });
        for branch in &branches {
            let name = env.name(branch);
            serves_own_name(port, &name, Duration::from_secs(10));
        }
    });
}

#[test]
fn a_port_held_on_the_host_is_served_on_no_address_and_said_loudly() {
    each_engine("held_port", |kind| {
        let port = free_port();
        let env = web_service_env(kind, port, &format!("port = {port}\n"));
        env.ok(&["create", "held"]);
        let name = env.name("held");
        // A program of the host's own on 127.0.0.1 only, as a forgotten dev
        // server would be.
        let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let me = format!("pid {}", std::process::id());
        let _proxy = Proxy::spawn(&env, None);
        let launched = env
            .cmd(&["launch", "held"])
            .env_remove("DUAL_PROXY_AUTOSTART")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&launched.stderr);
        assert!(launched.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("port {port} is not served")) && stderr.contains(&me),
            "launch names the holder: {stderr}"
        );
        // The workspace listens (the proxy has seen it): the proxy still
        // serves the port on neither address, so a browser (::1) cannot
        // reach a server curl does not.
        wait_until(
            Duration::from_secs(20),
            "the workspace seen listening",
            || {
                listed(&env.list(), &name)["listening"]
                    .as_array()
                    .is_some_and(|ports| ports.contains(&serde_json::json!(port)))
            },
        );
        if std::net::TcpListener::bind(("::1", 0)).is_ok() {
            assert!(
                std::net::TcpStream::connect(("::1", port)).is_err(),
                "::1:{port} served while 127.0.0.1:{port} is another program's"
            );
        }
        let listed = env.cmd(&["list"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&listed.stderr);
        assert!(stderr.contains(&me), "list names the holder: {stderr}");
        // Let go: the proxy takes the port.
        drop(squatter);
        serves_own_name(port, &name, Duration::from_secs(5));
        // Each loopback address is taken on its own retry: ::1 within
        // moments of 127.0.0.1, not necessarily at once.
        if std::net::TcpListener::bind(("::1", 0)).is_ok() {
            wait_until(Duration::from_secs(5), "::1 served too", || {
                std::net::TcpStream::connect(("::1", port)).is_ok()
            });
        }
        wait_until(Duration::from_secs(5), "list no longer warns", || {
            let listed = env.cmd(&["list"]).output().unwrap();
            !String::from_utf8_lossy(&listed.stderr).contains("not served")
        });
    });
}

#[test]
fn focus_sends_plain_localhost_to_one_workspace_and_switches() {
    each_engine("focus", |kind| {
        let port = free_port();
        let env = web_service_env(kind, port, "");
        let (one, two) = (env.name("one"), env.name("two"));
        for branch in ["one", "two"] {
            env.ok(&["create", branch]);
            env.ok(&["launch", branch]);
        }
        let _proxy = Proxy::spawn(&env, None);
        serves_own_name(port, &one, Duration::from_secs(10));
        serves_own_name(port, &two, Duration::from_secs(10));

        // No focus: a page with a link to each workspace serving the port.
        let (status, page) = get(port, &format!("localhost:{port}"), "/").unwrap();
        assert_eq!(status, 404, "{page}");
        for name in [&one, &two] {
            assert!(
                page.contains(&format!("http://{name}.localhost:{port}/")),
                "{page}"
            );
        }

        // How fast a switch takes effect is measured by scripts/bench-focus;
        // here only that it does, with room for a busy machine.
        for name in [&one, &two, &one] {
            env.ok(&["focus", name]);
            let took = answers_within(
                port,
                &format!("localhost:{port}"),
                name,
                Duration::from_secs(10),
            );
            answers_within(
                port,
                &format!("127.0.0.1:{port}"),
                name,
                Duration::from_secs(10),
            );
            answers_within(
                port,
                &format!("[::1]:{port}"),
                name,
                Duration::from_secs(10),
            );
            eprintln!("{kind}: focus on {name} took effect in {took:?}");
        }
        let list = env.list();
        assert_eq!(listed(&list, &one)["focus"], true);
        assert_eq!(listed(&list, &two)["focus"], false);
        assert!(env.ok(&["list"]).contains(&format!("{one} *")));

        env.ok(&["focus", "--clear"]);
        unrouted_within(port, &format!("localhost:{port}"), Duration::from_secs(10));
        // Other names than loopback's own stay refused.
        let (status, _) = get(port, &format!("example.com:{port}"), "/").unwrap();
        assert_eq!(status, 403);
    });
}

/// A workspace on docker and one on podman, at once, behind the one proxy
/// (before, a proxy started for one engine answered 404 for the other's).
#[test]
fn one_proxy_routes_docker_and_podman_workspaces_at_once() {
    let engines = crate::support::engines();
    if engines.len() < 2 {
        eprintln!(
            "!!!!! SKIPPED one_proxy_routes_docker_and_podman…: needs both engines, found {engines:?}"
        );
        return;
    }
    let port = free_port();
    let image = "dual-test:latest";
    for &kind in engines {
        assert_eq!(ensure_test_image(kind), image);
    }
    let config = format!(
        "image = \"{image}\"\n[services.web]\ncommand = \"dual test-server --name $(hostname) --port {port}\"\n"
    );
    let env = TestEnv::new(Some(dual::engine::EngineKind::Docker), &config);
    env.ok(&["create", "on-docker"]);
    env.ok(&["create", "on-podman"]);
    env.ok(&["--engine", "docker", "launch", "on-docker"]);
    env.ok(&["--engine", "podman", "launch", "on-podman"]);
    // Started for docker: it routes podman's workspace too.
    let _proxy = Proxy::spawn(&env, None);
    for branch in ["on-docker", "on-podman"] {
        let name = env.name(branch);
        serves_own_name(port, &name, Duration::from_secs(10));
    }
    let list = env.list();
    assert_eq!(listed(&list, &env.name("on-docker"))["engine"], "docker");
    assert_eq!(listed(&list, &env.name("on-podman"))["engine"], "podman");
}

/// Inside workspace A, every `*.localhost` name is A's own loopback: a
/// request to B's URL from A fails saying why (the shims, `dual run`),
/// never gets A's answer, and reaches B from outside the workspace.
#[test]
fn a_request_to_another_workspace_from_inside_reaches_it_or_says_why() {
    each_engine("cross_workspace", |kind| {
        let port = free_port();
        let env = web_service_env(kind, port, &format!("port = {port}\n"));
        let (a, b) = (env.name("a"), env.name("b"));
        for branch in ["a", "b"] {
            env.ok(&["create", branch]);
            env.ok(&["launch", branch]);
        }
        let _proxy = Proxy::spawn(&env, None);
        let b_url = format!("http://{b}.localhost:{port}/");
        serves_own_name(port, &b, Duration::from_secs(10));

        // `dual run` in A: refused, with the reason.
        let output = env.run(&["run", "-w", &a, "wget", "-qO-", &b_url]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(
            stderr.contains("every *.localhost name is the container's own loopback"),
            "{stderr}"
        );
        assert!(!String::from_utf8_lossy(&output.stdout).contains(&a));

        // The shell integration in A's clone: curl of B's URL refuses (on
        // the host, in the clone, it would read and write through links the
        // container planted) and says why; from outside the workspace it
        // answers B, through the proxy; of localhost in A, A.
        let init = env.ok(&["shell-init", "bash"]);
        let script = format!(
            "eval \"$1\"; cd {} && {{ curl -s {b_url} || echo refused; }}; cd / && curl -s {b_url}; echo; cd {} && {{ curl -s http://localhost:{port}/ || wget -qO- http://localhost:{port}/; }}",
            env.clone_path("a").display(),
            env.clone_path("a").display()
        );
        let output = env
            .command("bash")
            .args(["-c", &script, "bash", &init])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines.first(),
            Some(&"refused"),
            "B's URL from A: {stdout} {stderr}"
        );
        assert!(stderr.contains("own loopback"), "{stderr}");
        assert_eq!(
            lines.get(1),
            Some(&b.as_str()),
            "B's URL from outside: {stdout} {stderr}"
        );
        assert_eq!(
            lines.get(2),
            Some(&a.as_str()),
            "localhost from A: {stdout}"
        );
    });
}
