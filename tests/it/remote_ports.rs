//! Ports a workspace container on another engine host opens, undeclared:
//! the proxy finds them through its one stream to that host (the
//! container's pid is that host's, not this one's), judges them through its
//! tunnel and routes the HTTP ones there. Against the remote rig
//! (`scripts/remote-rig`), with a container started there by hand under a
//! workspace's labels: no `dual launch`, whose file sync is tested apart.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::proxy::free_port;
use crate::support::{EngineKind, Sandbox, dual_path, http_get};

/// One engine of the remote rig, as its CLI and dual's proxy reach it:
/// the variables `scripts/remote-rig start` prints (`eval` them).
struct RigEngine {
    kind: EngineKind,
    /// The rig's address.
    ip: String,
    /// What points the engine's CLI there.
    env: Vec<(&'static str, String)>,
}

/// The rig's `kind` (see `support::remote_rig`); `None` after saying
/// loudly that `test` is skipped, a failure under `DUAL_REQUIRE_ENGINE=1`.
fn rig_engine(test: &str, kind: EngineKind) -> Option<RigEngine> {
    let rig = crate::support::remote_rig(test)?;
    let env = rig
        .engine_env(kind)
        .into_iter()
        .map(|(key, value)| (key, value.to_string_lossy().into_owned()))
        .collect();
    Some(RigEngine {
        kind,
        ip: rig.ip.clone(),
        env,
    })
}

impl RigEngine {
    /// The engine's CLI on the rig, required to succeed; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(self.kind.program())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{} {args:?} on the rig: {}",
            self.kind,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

/// A container of the test's own on the rig, removed on drop.
struct RigContainer<'a> {
    engine: &'a RigEngine,
    id: String,
}

impl RigContainer<'_> {
    /// Runs `command` in it, detached.
    fn exec(&self, command: &str) {
        self.engine
            .run(&["exec", "-d", &self.id, "sh", "-c", command]);
    }
}

impl Drop for RigContainer<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.engine.kind.program())
            .envs(self.engine.env.iter().map(|(k, v)| (k, v)))
            .args(["rm", "-f", &self.id])
            .output();
    }
}

/// The proxy's shared ssh connection to the rig, ended on drop (it would
/// otherwise outlive the proxy for its `ControlPersist`).
struct Master {
    control_path: String,
    destination: String,
}

impl Master {
    /// `ssh OPTIONS DESTINATION COMMAND` on its control socket.
    fn ssh(&self, options: &[&str], command: &[&str]) -> std::process::Output {
        Command::new("ssh")
            .args(["-o", "BatchMode=yes", "-o"])
            .arg(format!("ControlPath={}", self.control_path))
            .args(options)
            .arg(&self.destination)
            .args(command)
            .output()
            .unwrap()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.ssh(&["-O", "exit"], &[]);
    }
}

/// The proxy's events, each with when it came.
fn subscribe(socket: &std::path::Path) -> mpsc::Receiver<(Instant, serde_json::Value)> {
    let stream = UnixStream::connect(socket).unwrap();
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(b"{\"v\":1,\"op\":\"subscribe\"}\n")
        .unwrap();
    let (sender, events) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let event = serde_json::from_str(&line).unwrap();
            if sender.send((Instant::now(), event)).is_err() {
                return;
            }
            line.clear();
        }
    });
    events
}

/// Waits up to `within` for an event `wanted` takes; when it came.
fn event_within(
    events: &mpsc::Receiver<(Instant, serde_json::Value)>,
    within: Duration,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok((at, event)) if wanted(&event) => return at,
            Ok(_) => {}
            Err(_) => panic!("no event for {what} within {within:?}"),
        }
    }
}

#[test]
fn a_port_opened_on_a_remote_host_is_found_judged_and_routed_through_the_tunnel() {
    let _link = crate::support::rig_link_up();
    for kind in EngineKind::ALL {
        if let Some(engine) = rig_engine("remote_ports", kind) {
            ports_of_a_remote_container(&engine);
        }
    }
}

fn ports_of_a_remote_container(engine: &RigEngine) {
    let kind = engine.kind;
    let ip = &engine.ip;
    let sandbox = Sandbox::new();
    let owner = dual::workspace::names::short_hash(
        &sandbox.path().join("data/state.json").to_string_lossy(),
    );
    let name = format!("remote-ports-{owner}");
    let id = engine.run(&[
        "run",
        "-d",
        "--label",
        "dual.managed=true",
        "--label",
        "dual.kind=workspace",
        "--label",
        &format!("dual.owner={owner}"),
        "--label",
        &format!("dual.workspace={name}"),
        "--label",
        "dual.ports=",
        "dual-test:latest",
        "sleep",
        "600",
    ]);
    let container = RigContainer { engine, id };
    let log = sandbox.path().join("proxy.log");
    let proxy = crate::proxy::Proxy::from_child(
        sandbox
            .command(dual_path())
            .args(["--verbose", "--engine", kind.program(), "proxy"])
            .envs(engine.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let proxy_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let socket = sandbox.path().join("data/proxy.sock");
    let answering = crate::support::eventually(Duration::from_secs(30), || {
        UnixStream::connect(&socket).is_ok()
    });
    assert!(answering, "the proxy never answered:\n{}", proxy_log());
    let events = subscribe(&socket);
    let listening_on = |port: u16| {
        let name = name.clone();
        move |event: &serde_json::Value| {
            event["event"] == "listening"
                && event["listening"][name.as_str()]["reachable"]
                    .as_array()
                    .is_some_and(|ports| ports.contains(&port.into()))
        }
    };

    // A port that does not speak HTTP (an echo server: a probe gets its
    // own bytes back): found within a second of its bind there, judged
    // through the tunnel, listed apart, never bound here.
    let raw = free_port();
    container.exec(&format!("exec nc -ll -p {raw} -e cat"));
    let opened = Instant::now();
    let found = event_within(
        &events,
        Duration::from_secs(5),
        "the raw port",
        listening_on(raw),
    );
    let found_after = found - opened;
    eprintln!("{kind}: remote port found {found_after:?} after the exec returned");
    assert!(found_after < Duration::from_secs(1), "{found_after:?}");
    event_within(
        &events,
        Duration::from_secs(5),
        "the raw port judged",
        |event| {
            event["event"] == "routes"
                && event["workspaces"].as_array().is_some_and(|all| {
                    all.iter().any(|w| {
                        w["name"] == name.as_str()
                            && w["tcp_ports"]
                                .as_array()
                                .is_some_and(|ports| ports.contains(&raw.into()))
                    })
                })
        },
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", raw)).is_err(),
        "a port that does not speak HTTP is not bound here"
    );

    // A dev server: found, probed through the tunnel, routed within 2 s.
    let http = free_port();
    container.exec(&format!(
        "echo $$ >/tmp/server.pid; exec dual test-server --name {name} --port {http}"
    ));
    let started = Instant::now();
    let host = format!("{name}.localhost:{http}");
    let routed = crate::support::wait_for(Duration::from_secs(5), "the route", || {
        http_get(http, &host, "/").and_then(|(status, body)| match status {
            200 => Ok(body),
            other => Err(format!("{other}: {body}")),
        })
    });
    assert!(routed.contains(&name), "{routed}");
    let routed_after = started.elapsed();
    eprintln!("{kind}: remote dev server routed {routed_after:?} after the exec returned");
    assert!(routed_after < Duration::from_secs(2), "{routed_after:?}");

    // The shared connection ends (as when its link drops) and another user
    // of it dials it again at once, before the tunnel looks: the stream
    // comes back on the new connection, and the tunnel forwards again there.
    let control_path = proxy_log()
        .split("ControlPath=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the proxy's log names its ssh control socket")
        .to_owned();
    let master = Master {
        control_path,
        destination: format!("root@{ip}"),
    };
    let exited = master.ssh(&["-O", "exit"], &[]);
    assert!(exited.status.success(), "{exited:?}");
    let dropped = Instant::now();
    let dialled = master.ssh(
        &["-o", "ControlMaster=auto", "-o", "ControlPersist=60"],
        &["true"],
    );
    assert!(dialled.status.success(), "{dialled:?}");
    crate::support::wait_for(Duration::from_secs(10), "the route again", || {
        http_get(http, &host, "/").and_then(|(status, body)| match status {
            200 => Ok(body),
            other => Err(format!("{other}: {body}")),
        })
    });
    eprintln!(
        "{kind}: routed again {:?} after the connection ended",
        dropped.elapsed()
    );
    let back = crate::support::eventually(Duration::from_secs(10), || {
        proxy_log().contains("port discovery on root@") && proxy_log().contains(" is back")
    });
    assert!(back, "the port stream never came back:\n{}", proxy_log());

    // Closed there: gone here within a second.
    engine.run(&[
        "exec",
        &container.id,
        "sh",
        "-c",
        "kill $(cat /tmp/server.pid)",
    ]);
    let closed = Instant::now();
    let gone = event_within(
        &events,
        Duration::from_secs(5),
        "the port closed",
        |event| event["event"] == "listening" && !listening_on(http)(event),
    );
    eprintln!("{kind}: remote port gone after {:?}", gone - closed);
    assert!(
        gone - closed < Duration::from_secs(1),
        "{:?}",
        gone - closed
    );
    drop(proxy);
    let control_socket = std::path::PathBuf::from(&master.control_path);
    drop(master);
    let ended = crate::support::eventually(Duration::from_secs(5), || !control_socket.exists());
    assert!(ended, "the test's ssh connection outlived it");
    drop(container);
}
