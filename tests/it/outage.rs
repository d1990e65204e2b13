//! The engine going away and coming back, without touching the machine's
//! own daemon: dual's docker CLI is pointed (DOCKER_HOST) at a socket of the
//! test's own that forwards to the real daemon, and the test cuts and
//! restores that socket. To dual this is exactly a daemon that stops
//! answering ("Cannot connect to the Docker daemon") and answers again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

use crate::support::{EngineKind, cpu_time, dual_path, each_engine, ensure_test_image, eventually};
use crate::workspaces::{TestEnv, env_of};

/// Forwards connections on `socket` to the real daemon until stopped; stop
/// ends every connection it carries (the event stream's too).
struct Forwarder {
    runtime: tokio::runtime::Runtime,
    socket: PathBuf,
    tasks: Option<JoinSet<()>>,
}

impl Forwarder {
    fn new(socket: &Path) -> Forwarder {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut forwarder = Forwarder {
            runtime,
            socket: socket.to_owned(),
            tasks: None,
        };
        forwarder.start();
        forwarder
    }

    fn start(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _guard = self.runtime.enter();
        let listener = UnixListener::bind(&self.socket).unwrap();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut daemon) = UnixStream::connect("/var/run/docker.sock").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    fn stop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            // Aborting the accept task drops its JoinSet, which aborts
            // every connection it forwards.
            tasks.abort_all();
            self.runtime
                .block_on(async { while tasks.join_next().await.is_some() {} });
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A GET through the proxy on `port`, whole response as text.
fn get(port: u16, host: &str) -> String {
    use std::io::{Read, Write};
    // Nothing listens while no workspace uses the port: no answer.
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_daemon_away_for_10_s_costs_a_few_log_lines_and_no_cpu() {
    each_engine("outage", |kind| {
        if kind != EngineKind::Docker {
            eprintln!("--- outage: the forwarded socket is docker's; podman has no daemon to lose");
            return;
        }
        let _heavy = crate::support::heavy();
        let image = ensure_test_image(kind);
        let port = 20_000 + (std::process::id() % 5000) as u16 * 2 + 1;
        let config = format!(
            "image = \"{image}\"\nports = [{port}]\n\
             [services.web]\ncommand = \"dual test-server --name $(hostname) --port {port}\"\n"
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "away"]);
        env.ok(&["launch", "away"]);
        // Stopped by the user before the outage: it stays stopped after.
        env.ok(&["create", "kept"]);
        env.ok(&["launch", "kept"]);
        env.ok(&["stop", "kept"]);

        let socket = env.dir.path().join("docker.sock");
        let mut forwarder = Forwarder::new(&socket);
        let log = env.dir.path().join("proxy-outage.log");
        // Stopped on drop: a failed assertion must not leave it running.
        let proxy = crate::proxy::Proxy::from_child(
            Command::new(dual_path())
                .envs(env_of(&env))
                .env("DOCKER_HOST", format!("unix://{}", socket.display()))
                .args(["--engine", "docker", "proxy"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        // Started: both addresses listen (the last lines it logs at start).
        let started = eventually(Duration::from_secs(15), || {
            let lines = lines(&log);
            lines
                .iter()
                .any(|l| l.contains("listening on http://127.0.0.1"))
                && lines
                    .iter()
                    .any(|l| l.contains("listening on http://[::1]"))
        });
        assert!(started, "the proxy never listened: {:?}", lines(&log));
        let before = lines(&log).len();

        // The daemon goes away for 10 s.
        forwarder.stop();
        let cpu_before = cpu_time(proxy.id());
        // The outage itself, measured: a window, not a wait for anything.
        std::thread::sleep(Duration::from_secs(10));
        let cpu = cpu_time(proxy.id()) - cpu_before;
        let during: Vec<String> = lines(&log)[before..].to_vec();
        // The workspace's container stops as it would with its daemon (through
        // the real socket): the proxy's answer names the engine.
        let container = format!("dual-{}", env.name("away"));
        assert!(
            env.engine(&["stop", "-t", "0", &container])
                .status
                .success()
        );
        let page = get(port, &format!("{}.localhost:{port}", env.name("away")));

        // And comes back.
        forwarder.start();
        let back = Instant::now();
        let told = eventually(Duration::from_secs(15), || {
            lines(&log)
                .iter()
                .skip(before)
                .any(|l| l.contains("reachable again"))
        });
        assert!(
            told,
            "the proxy never said the engine was back: {:#?}",
            lines(&log)
        );
        let came_back = back.elapsed();
        // The workspace that was running answers again, by itself.
        let name = env.name("away");
        let mut response = String::new();
        let again = eventually(Duration::from_secs(15), || {
            response = get(port, &format!("{name}.localhost:{port}"));
            response.starts_with("HTTP/1.1 200") && response.ends_with(&name)
        });
        assert!(
            again,
            "{name} never answered again: {response}\n{:#?}",
            lines(&log)
        );
        let answered = back.elapsed();
        let kept = get(port, &format!("{}.localhost:{port}", env.name("kept")));
        drop(proxy);
        assert!(
            kept.starts_with("HTTP/1.1 502") && kept.contains("is stopped"),
            "a workspace stopped with `dual stop` stays stopped: {kept}"
        );

        assert!(
            during.len() <= 5,
            "{} log lines while the daemon was away:\n{}",
            during.len(),
            during[..during.len().min(20)].join("\n")
        );
        assert!(
            during.iter().any(|l| l.contains("not reachable")),
            "the outage is told once: {during:#?}"
        );
        // Alone on this VM it is 40–60 ms (research/engine-outage.md);
        // scripts/bench-budgets reports it. The guard here is only against
        // spinning (the bug used 9.95 s).
        assert!(
            cpu < Duration::from_secs(2),
            "the proxy and its engine calls used {cpu:?} of CPU in the 10 s outage"
        );
        assert!(
            page.starts_with("HTTP/1.1 502") && page.contains("docker does not answer"),
            "{page}"
        );
        eprintln!(
            "bench: outage: {} lines, {cpu:?} CPU in 10 s; told back {came_back:?} and answering {answered:?} after the daemon answered",
            during.len()
        );
    });
}

/// After a reboot (or a daemon restart with no proxy running), the first
/// proxy to start brings back what was running; what `dual stop` stopped
/// stays stopped. Podman has no daemon: this is how its workspaces return.
#[test]
fn the_proxy_brings_back_what_was_running_and_leaves_what_was_stopped() {
    each_engine("revive", |kind| {
        let _heavy = crate::support::heavy();
        let port = crate::proxy::free_port();
        let config = format!(
            "image = \"{}\"\n[services.web]\ncommand = \"dual test-server --name $(hostname) --port {port}\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        for branch in ["back", "kept"] {
            env.ok(&["create", branch]);
            env.ok(&["launch", branch]);
        }
        env.ok(&["stop", "kept"]);
        let back = env.name("back");
        // Gone as a reboot would take it, behind dual's back.
        assert!(
            env.engine(&["stop", "-t", "1", &format!("dual-{back}")])
                .status
                .success()
        );
        let list = env.list();
        let state = |name: &str| {
            list.iter()
                .find(|w| w["name"] == name)
                .map(|w| w["state"].as_str().unwrap().to_owned())
        };
        assert_eq!(state(&back).as_deref(), Some("down"), "{list:?}");
        assert_eq!(state(&env.name("kept")).as_deref(), Some("stopped"));

        let started = Instant::now();
        let _proxy = crate::proxy::Proxy::spawn(&env, None);
        let mut response = String::new();
        let came = eventually(Duration::from_secs(15), || {
            response = get(port, &format!("{back}.localhost:{port}"));
            response.starts_with("HTTP/1.1 200") && response.ends_with(&back)
        });
        assert!(came, "{back} never came back: {response}");
        let answered = started.elapsed();
        eprintln!("{kind}: back and answering {answered:?} after the proxy started");
        let list = env.list();
        let kept = list.iter().find(|w| w["name"] == env.name("kept")).unwrap();
        assert_eq!(kept["state"], "stopped", "{list:?}");
    });
}

/// Podman has no daemon to lose; what it has is an events file that can be
/// rotated or emptied behind dual's back. The proxy's routes must still
/// follow containers by their events (within 2 s), not by its 30 s
/// reconcile.
#[test]
fn podman_events_rotated_or_emptied_are_still_followed() {
    let events = std::path::Path::new("/run/libpod/events/events.log");
    if !crate::support::engines().contains(&EngineKind::Podman) {
        eprintln!("!!!!! SKIPPED podman_events_rotated…: podman does not answer");
        return;
    }
    if !events.exists() || !rustix::process::geteuid().is_root() {
        eprintln!(
            "!!!!! SKIPPED podman_events_rotated…: needs root podman's events file at {}",
            events.display()
        );
        return;
    }
    let _heavy = crate::support::heavy();
    let port = crate::proxy::free_port();
    let config = format!(
        "image = \"{}\"\n[services.web]\ncommand = \"dual test-server --name $(hostname) --port {port}\"\n",
        ensure_test_image(EngineKind::Podman)
    );
    let env = TestEnv::new(Some(EngineKind::Podman), &config);
    env.ok(&["create", "rot"]);
    env.ok(&["launch", "rot"]);
    let name = env.name("rot");
    let host = format!("{name}.localhost:{port}");
    let _proxy = crate::proxy::Proxy::spawn(&env, None);
    let answers = |want: bool, limit: Duration| {
        let start = Instant::now();
        let mut response = String::new();
        let as_wanted = eventually(limit, || {
            response = get(port, &host);
            (response.starts_with("HTTP/1.1 200") && response.ends_with(&name)) == want
        });
        assert!(
            as_wanted,
            "{host} did not turn answering={want} within {limit:?}: {response}"
        );
        start.elapsed()
    };
    answers(true, Duration::from_secs(10));
    // Rotated: moved away (podman starts a new file), then emptied.
    let rotated = events.with_extension("log.dual-test");
    std::fs::rename(events, &rotated).unwrap();
    env.ok(&["stop", "rot"]);
    let stopped = answers(false, Duration::from_secs(2));
    std::fs::write(events, b"").unwrap();
    env.ok(&["launch", "rot"]);
    let back = answers(true, Duration::from_secs(3));
    let _ = std::fs::remove_file(&rotated);
    eprintln!(
        "podman: with its events file rotated, then emptied: unrouted {stopped:?} after stop, routed {back:?} after launch"
    );
}

/// A Docker daemon of the test's own: its own socket, data root, exec root
/// and bridge (no iptables rules), so the machine's daemon is never touched.
/// Stopping it stops its containers, as a real daemon restart does.
struct SecondDaemon {
    dir: tempfile::TempDir,
    bridge: String,
    child: Option<std::process::Child>,
}

impl SecondDaemon {
    /// `None` (said loudly) where it cannot run: not root, or no dockerd.
    fn new() -> Option<SecondDaemon> {
        if !rustix::process::geteuid().is_root() || dual::process::find_on_path("dockerd").is_none()
        {
            eprintln!("!!!!! SKIPPED the second-daemon rig: needs root and dockerd");
            return None;
        }
        let n = std::process::id() % 200 + 20;
        let bridge = format!("dualt{n}");
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        let _ = ip(&["link", "del", &bridge]);
        assert!(ip(&["link", "add", &bridge, "type", "bridge"]));
        assert!(ip(&[
            "addr",
            "add",
            &format!("10.123.{n}.1/24"),
            "dev",
            &bridge
        ]));
        assert!(ip(&["link", "set", &bridge, "up"]));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("daemon.json"), "{}").unwrap();
        let mut daemon = SecondDaemon {
            dir,
            bridge,
            child: None,
        };
        daemon.start();
        Some(daemon)
    }

    fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(std::process::Child::id)
            .expect("a running daemon")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts it and waits until it answers.
    fn start(&mut self) -> Instant {
        let dir = self.dir.path();
        let child = Command::new("dockerd")
            .arg(format!(
                "--config-file={}",
                dir.join("daemon.json").display()
            ))
            .arg(format!("--host={}", self.host()))
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("docker.pid").display()))
            .arg(format!("--bridge={}", self.bridge))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--shutdown-timeout=5",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("dockerd.log")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let answering = eventually(Duration::from_secs(30), || {
            self.docker(&["version"]).status.success()
        });
        assert!(
            answering,
            "the second dockerd never answered: {}",
            std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
        Instant::now()
    }

    /// Stops it (its containers with it) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), rustix::process::Signal::TERM);
            let _ = child.wait();
        }
    }
}

impl Drop for SecondDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        self.stop();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("data"))
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// A private docker daemon with the test image loaded into it, and a
/// workspace launched on it for each of `branches`, its service serving
/// `port`; `None` where no private daemon can run here.
fn private_daemon_serving(branches: &[&str]) -> Option<(SecondDaemon, TestEnv, u16)> {
    let daemon = SecondDaemon::new()?;
    let image = ensure_test_image(EngineKind::Docker);
    // The test image, from the machine's daemon into this one.
    let loaded = Command::new("sh")
        .args([
            "-c",
            &format!(
                "docker save {image} | DOCKER_HOST={} docker load -q",
                daemon.host()
            ),
        ])
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    let port = crate::proxy::free_port();
    let config = format!(
        "image = \"{image}\"\nports = [{port}]\n[services.web]\ncommand = \"dual test-server --name $(hostname) --port {port}\"\n"
    );
    let env = TestEnv::new(Some(EngineKind::Docker), &config);
    for branch in branches {
        dual_on(&env, &daemon, &["create", branch]);
        dual_on(&env, &daemon, &["launch", branch]);
    }
    Some((daemon, env, port))
}

/// `dual ARGS` of `env` on the private `daemon`, which must succeed.
fn dual_on(env: &TestEnv, daemon: &SecondDaemon, args: &[&str]) {
    let output = env
        .cmd(args)
        .env("DOCKER_HOST", daemon.host())
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
}

#[test]
fn a_real_daemon_restart_brings_the_running_workspaces_back_and_not_the_stopped() {
    if !crate::support::engines().contains(&EngineKind::Docker) {
        eprintln!("!!!!! SKIPPED a_real_daemon_restart…: docker does not answer");
        return;
    }
    // One private daemon at a time: they share a bridge name.
    let _heavy = crate::support::heavy();
    let Some((mut daemon, env, port)) = private_daemon_serving(&["alive", "kept"]) else {
        return;
    };
    let dual = |args: &[&str]| dual_on(&env, &daemon, args);
    dual(&["stop", "kept"]);
    let (alive, kept) = (env.name("alive"), env.name("kept"));
    let log = env.dir.path().join("proxy-restart.log");
    let _proxy = crate::proxy::Proxy::from_child(
        Command::new(dual_path())
            .envs(env_of(&env))
            .env("DOCKER_HOST", daemon.host())
            .args(["--engine", "docker", "proxy"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let answers = |name: &str| {
        let response = get(port, &format!("{name}.localhost:{port}"));
        response.starts_with("HTTP/1.1 200") && response.ends_with(name)
    };
    assert!(
        eventually(Duration::from_secs(15), || answers(&alive)),
        "{alive} never answered"
    );

    // The daemon stops (its containers with it) and starts again.
    daemon.stop();
    // Down for a while, as a restart is: a pause, not a wait for anything.
    std::thread::sleep(Duration::from_secs(3));
    let up = daemon.start();
    assert!(
        eventually(Duration::from_secs(20), || answers(&alive)),
        "{alive} never came back:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let back = up.elapsed();
    eprintln!(
        "bench: docker (a daemon of the test's own) restarted: {alive} answering {back:?} after the daemon answered"
    );
    assert!(
        !answers(&kept),
        "a workspace stopped with `dual stop` stays stopped"
    );
    let running = daemon.docker(&["ps", "-q", "--filter", &format!("name=dual-{kept}")]);
    assert!(String::from_utf8_lossy(&running.stdout).trim().is_empty());
}

/// A daemon stopped with SIGSTOP, continued on drop whatever happens (a
/// failed assertion included).
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        signal(pid, rustix::process::Signal::STOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, rustix::process::Signal::CONT);
    }
}

/// Signals one of our own processes; one already gone is no error (a
/// guard's drop may come after it ended).
fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// The children of process `parent` whose command line holds `word`.
fn children_running(parent: u32, word: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let ppid = dual::sockets::parent_of(pid);
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains(word) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_hung_daemon_leaves_focus_known_routes_and_stopping_the_proxy_working() {
    if !crate::support::engines().contains(&EngineKind::Docker) {
        eprintln!("!!!!! SKIPPED a_hung_daemon…: docker does not answer");
        return;
    }
    // One private daemon at a time: they share a bridge name.
    let _heavy = crate::support::heavy();
    let Some((daemon, env, port)) = private_daemon_serving(&["one", "two"]) else {
        return;
    };
    let (one, two) = (env.name("one"), env.name("two"));
    let log = env.dir.path().join("proxy-hung.log");
    // Stopped on drop, on every path out of this test.
    let mut proxy = crate::proxy::Proxy::from_child(
        Command::new(dual_path())
            .envs(env_of(&env))
            .env("DOCKER_HOST", daemon.host())
            .args(["--engine", "docker", "proxy"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let answers = |host: &str, name: &str| {
        let response = get(port, host);
        response.starts_with("HTTP/1.1 200") && response.ends_with(name)
    };
    for name in [&one, &two] {
        let host = format!("{name}.localhost:{port}");
        assert!(
            eventually(Duration::from_secs(15), || answers(&host, name)),
            "{name} never answered:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    // The daemon hangs. Its event stream is cut, so that the proxy reads
    // the engine again now, and that read hangs (up to the engine timeout).
    let hung = Stopped::new(daemon.pid());
    let stopped_at = Instant::now();
    let streams = children_running(proxy.id(), "events");
    assert!(!streams.is_empty(), "the proxy follows no event stream");
    for events in streams {
        signal(events, rustix::process::Signal::KILL);
    }
    // Known routes keep serving; focus switches within 0.5 s, each time.
    for name in [&one, &two, &one, &two] {
        let switch = Instant::now();
        let output = env.cmd(&["focus", name]).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        assert!(
            answers(&format!("localhost:{port}"), name),
            "focus on {name} did not route"
        );
        let took = switch.elapsed();
        eprintln!("with the daemon stopped: `dual focus {name}` routed in {took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert!(answers(&format!("{name}.localhost:{port}"), name));
    }
    // The control socket answers, from the proxy's memory.
    let status = env.cmd(&["proxy", "status"]).output().unwrap();
    assert!(status.status.success(), "{status:?}");
    // `dual list` returns within 10 s, naming the engine that hangs.
    let listing = Instant::now();
    let listed = env
        .cmd(&["list"])
        .env("DOCKER_HOST", daemon.host())
        .output()
        .unwrap();
    let took = listing.elapsed();
    let stderr = String::from_utf8_lossy(&listed.stderr);
    eprintln!("with the daemon stopped: `dual list` returned in {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}: {stderr}");
    assert!(
        listed.status.success() && stderr.contains("docker") && stderr.contains("unknown"),
        "{listed:?}"
    );
    // `dual proxy stop` ends it within 2 s.
    let stopping = Instant::now();
    let output = env.cmd(&["proxy", "stop"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let ended = eventually(Duration::from_secs(2), || proxy.has_ended());
    let took = stopping.elapsed();
    eprintln!("with the daemon stopped: `dual proxy stop` ended the proxy in {took:?}");
    assert!(
        ended,
        "the proxy still ran 2 s after `dual proxy stop`:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    drop(hung);
    assert!(
        stopped_at.elapsed() < Duration::from_secs(20),
        "the private docker rig stayed stopped too long"
    );
}
