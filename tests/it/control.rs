//! The proxy's control socket, end to end: a real `dual proxy`, clients
//! speaking its protocol (see `dual::proxy::control`), `dual focus`, and the
//! browser following the event stream in a tmux pane.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::proxy::{Proxy, free_port};
use crate::support::http_get;
use crate::support::{EngineKind, dual_path, each_engine, ensure_test_image, eventually};
use crate::workspaces::{TestEnv, env_of};

fn socket(env: &TestEnv) -> PathBuf {
    env.dir.path().join("data").join("proxy.sock")
}

/// Starts the proxy and waits for its control socket to answer.
fn proxy_with_socket(env: &TestEnv) -> Proxy {
    let proxy = Proxy::spawn(env, None);
    let answering = eventually(Duration::from_secs(15), || {
        UnixStream::connect(socket(env)).is_ok()
    });
    assert!(
        answering,
        "the control socket never answered:\n{}",
        std::fs::read_to_string(env.dir.path().join("proxy-test.log")).unwrap_or_default()
    );
    proxy
}

/// A client of the control socket, reading its answers line by line.
struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    fn connect(env: &TestEnv) -> Client {
        let stream = UnixStream::connect(socket(env)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, line: &str) {
        self.reader.get_mut().write_all(line.as_bytes()).unwrap();
    }

    /// The next line, parsed; `None` at the end of the stream.
    fn next(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))),
            Err(error) => panic!("no answer: {error}"),
        }
    }

    fn ask(&mut self, line: &str) -> serde_json::Value {
        self.send(line);
        self.next().expect("an answer")
    }
}

fn web_env(kind: EngineKind, port: u16) -> TestEnv {
    let config = format!(
        "image = \"{}\"\n[services.web]\ncommand = \"dual test-server --name $(hostname) --port {port}\"\n",
        ensure_test_image(kind)
    );
    TestEnv::new(Some(kind), &config)
}

fn serves_own_name(port: u16, name: &str) {
    let host = format!("{name}.localhost:{port}");
    let mut last = Err(String::new());
    let served = eventually(Duration::from_secs(15), || {
        last = http_get(port, &host, "/");
        matches!(&last, Ok((200, body)) if body == name)
    });
    assert!(served, "{host} never answered its name; last: {last:?}");
}

#[test]
fn dual_focus_then_curl_reaches_the_new_workspace_20_times_out_of_20() {
    each_engine("control_focus", |kind| {
        let port = free_port();
        let env = web_env(kind, port);
        let (one, two) = (env.name("one"), env.name("two"));
        for branch in ["one", "two"] {
            env.ok(&["create", branch]);
            env.ok(&["launch", branch]);
        }
        let _proxy = proxy_with_socket(&env);
        serves_own_name(port, &one);
        serves_own_name(port, &two);
        let mut reached = Vec::new();
        for round in 0..20 {
            let name = if round % 2 == 0 { &one } else { &two };
            let said = env.ok(&["focus", name]);
            assert!(said.contains("(now)"), "{said}");
            // At once: no wait, no retry.
            let answer = http_get(port, &format!("localhost:{port}"), "/");
            reached.push(matches!(&answer, Ok((200, body)) if body == name));
            if !reached[round] {
                eprintln!("round {round}: focus on {name}, got {answer:?}");
            }
        }
        let hits = reached.iter().filter(|hit| **hit).count();
        eprintln!("{kind}: `dual focus` then curl reached the new focus {hits} times out of 20");
        assert_eq!(hits, 20);
        assert_eq!(env.ok(&["focus"]).trim(), two);
        // The proxy's own view says the same.
        let status = Client::connect(&env).ask("{\"v\":1,\"op\":\"status\"}\n");
        assert_eq!(status["reply"], "status", "{status}");
        assert_eq!(status["focus"], two.as_str(), "{status}");
        let workspaces = status["workspaces"].as_array().unwrap();
        for name in [&one, &two] {
            let listed = workspaces
                .iter()
                .find(|w| w["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} not in {status}"));
            assert_eq!(listed["running"], true, "{status}");
            assert_eq!(listed["engine"], kind.program(), "{status}");
            assert!(
                listed["listening"]["reachable"]
                    .as_array()
                    .unwrap()
                    .contains(&port.into()),
                "{status}"
            );
        }
        assert_eq!(status["engines"][0]["engine"], kind.program(), "{status}");
        assert_eq!(status["engines"][0]["reachable"], true, "{status}");
    });
}

#[test]
fn without_a_proxy_dual_focus_says_the_choice_waits_for_it() {
    let kind = crate::support::engines()[0];
    let env = TestEnv::new(
        Some(kind),
        &format!("image = \"{}\"\n", ensure_test_image(kind)),
    );
    env.ok(&["create", "one"]);
    let name = env.name("one");
    let output = env.run(&["focus", &name]);
    assert!(output.status.success(), "{output:?}");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(stdout.contains("once the proxy starts"), "{stdout}");
    assert!(
        stderr.contains("the proxy is not running; the choice takes effect when it starts"),
        "{stderr}"
    );
    assert_eq!(env.ok(&["focus"]).trim(), name);
    // A proxy started later takes the choice.
    let _proxy = proxy_with_socket(&env);
    let focus = Client::connect(&env).ask("{\"v\":1,\"op\":\"focus\"}\n");
    assert_eq!(focus["focus"], name.as_str(), "{focus}");
}

#[test]
fn the_control_socket_is_the_users_alone_and_outlives_bad_clients() {
    let kind = crate::support::engines()[0];
    let env = TestEnv::new(
        Some(kind),
        &format!("image = \"{}\"\n", ensure_test_image(kind)),
    );
    let _proxy = proxy_with_socket(&env);
    let mode = std::fs::metadata(socket(&env))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    // One that connects and says nothing holds nothing up.
    let _silent = UnixStream::connect(socket(&env)).unwrap();
    let started = Instant::now();
    let status = Client::connect(&env).ask("{\"v\":1,\"op\":\"status\"}\n");
    assert_eq!(status["reply"], "status", "{status}");
    assert!(started.elapsed() < Duration::from_secs(1));

    // Requests it cannot read get an error that says why; the connection
    // goes on serving.
    let mut client = Client::connect(&env);
    for (request, why) in [
        ("hello\n", "not a JSON object"),
        ("{\"op\":\"status\"}\n", "no protocol version"),
        ("{\"v\":2,\"op\":\"status\"}\n", "version 2"),
        ("{\"v\":1,\"op\":\"reboot\"}\n", "not a request"),
        (
            "{\"v\":1,\"op\":\"focus\",\"set\":\"a\",\"clear\":true}\n",
            "both",
        ),
    ] {
        let answer = client.ask(request);
        assert_eq!(answer["v"], 1, "{answer}");
        assert_eq!(answer["reply"], "error", "{request}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(why),
            "{request}: {answer}"
        );
    }
    let answer = client.ask("{\"v\":1,\"op\":\"conflicts\"}\n");
    assert_eq!(answer["reply"], "conflicts", "{answer}");

    // A line past the limit: an error, then the end of the connection.
    let mut long = Client::connect(&env);
    long.send(&format!("{}\n", "x".repeat(100_000)));
    let answer = long.next().expect("an error first");
    assert!(
        answer["error"].as_str().unwrap().contains("longer than"),
        "{answer}"
    );
    assert!(long.next().is_none(), "the connection stays open");

    // A subscriber that reads nothing is dropped, and holds nothing up: a
    // reading subscriber and requests go on.
    let mut stuck = Client::connect(&env);
    assert_eq!(
        stuck.ask("{\"v\":1,\"op\":\"subscribe\"}\n")["reply"],
        "subscribed"
    );
    let mut reading = Client::connect(&env);
    assert_eq!(
        reading.ask("{\"v\":1,\"op\":\"subscribe\"}\n")["reply"],
        "subscribed"
    );
    let (seen_tx, seen) = mpsc::channel();
    std::thread::spawn(move || {
        while let Some(event) = reading.next() {
            if seen_tx.send(event).is_err() {
                return;
            }
        }
    });
    let long_name = "w".repeat(250);
    let changes = 2000;
    let mut slowest = Duration::ZERO;
    let mut asking = Client::connect(&env);
    for round in 0..changes {
        let started = Instant::now();
        let answer = asking.ask(&format!(
            "{{\"v\":1,\"op\":\"focus\",\"set\":\"{long_name}{}\"}}\n",
            round % 2
        ));
        slowest = slowest.max(started.elapsed());
        assert_eq!(answer["reply"], "focus", "{answer}");
    }
    eprintln!(
        "{changes} focus changes with a stuck subscriber: the slowest answer took {slowest:?}"
    );
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    let focus_events = seen
        .try_iter()
        .chain(std::iter::from_fn(|| {
            seen.recv_timeout(Duration::from_secs(2)).ok()
        }))
        .filter(|event| event["event"] == "focus")
        .take(changes)
        .count();
    assert_eq!(
        focus_events, changes,
        "the reading subscriber missed events"
    );
    let mut stuck_events = 0;
    while stuck.next().is_some() {
        stuck_events += 1;
    }
    assert!(
        stuck_events < changes,
        "the stuck subscriber was never dropped ({stuck_events} events)"
    );
}

#[test]
fn subscribers_see_a_launch_a_restart_and_a_new_port_within_a_second() {
    each_engine("control_events", |kind| {
        let port = free_port();
        let env = web_env(kind, port);
        env.ok(&["create", "ev"]);
        let name = env.name("ev");
        let _proxy = proxy_with_socket(&env);
        let mut events = Client::connect(&env);
        assert_eq!(
            events.ask("{\"v\":1,\"op\":\"subscribe\"}\n")["reply"],
            "subscribed"
        );
        let (seen_tx, seen) = mpsc::channel::<(Instant, serde_json::Value)>();
        std::thread::spawn(move || {
            events.reader.get_ref().set_read_timeout(None).unwrap();
            while let Some(event) = events.next() {
                if seen_tx.send((Instant::now(), event)).is_err() {
                    return;
                }
            }
        });
        // Waits for an event `wanted` took, seen within a second of `done`.
        let within_a_second =
            |what: &str, done: Instant, wanted: &dyn Fn(&serde_json::Value) -> bool| {
                let deadline = done + Duration::from_secs(10);
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let (at, event) = seen
                        .recv_timeout(left)
                        .unwrap_or_else(|_| panic!("no event for {what}"));
                    if wanted(&event) {
                        let late = at.saturating_duration_since(done);
                        eprintln!("{kind}: {what} seen {late:?} after the command returned");
                        assert!(late < Duration::from_secs(1), "{what}: {late:?}");
                        return;
                    }
                }
            };
        let running = |event: &serde_json::Value| {
            event["event"] == "routes"
                && event["workspaces"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w["name"] == name.as_str() && w["running"] == true)
        };
        env.ok(&["launch", "ev"]);
        within_a_second("the launch", Instant::now(), &running);
        serves_own_name(port, &name);
        while seen.try_recv().is_ok() {}

        env.ok(&["restart", &name, "web"]);
        within_a_second("the restart", Instant::now(), &|event| {
            event["event"] == "services" && event["workspace"] == name.as_str()
        });

        let second = serve_by_hand(&env, &name);
        within_a_second("a new port", Instant::now(), &|event| {
            event["event"] == "listening"
                && event["listening"][name.as_str()]["reachable"]
                    .as_array()
                    .is_some_and(|ports| ports.contains(&second.into()))
        });
    });
}

/// A tmux server of the test's own (its socket under `dir`).
struct Tmux {
    dir: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .env("TMUX_TMPDIR", &self.dir)
            .env_remove("TMUX")
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "outer"]).stdout)
            .into_owned()
    }

    /// How long until the screen satisfies `done` (at most 20 s).
    fn until(&self, what: &str, done: impl Fn(&str) -> bool) -> Duration {
        let start = Instant::now();
        let mut screen = String::new();
        let shown = eventually(Duration::from_secs(20), || {
            screen = self.screen();
            done(&screen)
        });
        assert!(shown, "never {what}; the screen:\n{screen}");
        start.elapsed()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn the_browser_shows_a_restart_a_launch_and_a_new_port_within_a_second() {
    if dual::process::find_on_path("tmux").is_none() {
        eprintln!("!!!!! SKIPPED the_browser_shows…: no tmux on PATH");
        return;
    }
    each_engine("control_browser", |kind| {
        let port = free_port();
        let env = web_env(kind, port);
        env.ok(&["create", "seen"]);
        env.ok(&["create", "later"]);
        env.ok(&["launch", "seen"]);
        let (seen, later) = (env.name("seen"), env.name("later"));
        let _proxy = proxy_with_socket(&env);
        serves_own_name(port, &seen);
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            dir: dir.path().to_owned(),
        };
        let mut exports = String::new();
        for (key, value) in env_of(&env) {
            exports.push_str(&format!("export {key}={}; ", sh_quote(Path::new(&value))));
        }
        let script = format!(
            "{exports}unset TMUX; {dual}; sleep 600",
            dual = sh_quote(&dual_path()),
        );
        let opened = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "outer",
            "-x",
            "160",
            "-y",
            "30",
            "sh",
            "-c",
            &script,
        ]);
        assert!(opened.status.success(), "{opened:?}");
        let row = |screen: &str, label: &str| -> String {
            screen
                .lines()
                .find(|line| {
                    line.contains(&format!("  {label} ")) || line.ends_with(&format!("  {label}"))
                })
                .unwrap_or_default()
                .to_owned()
        };
        tmux.until("the browser", |s| {
            row(s, "seen").contains("running") && row(s, "seen").contains(&port.to_string())
        });

        // The service dies and its supervisor starts it again: one restart
        // shown. Then `dual restart` in another process starts it afresh,
        // with none: the browser must show that change.
        let killed = env.engine(&[
            "exec",
            &format!("dual-{seen}"),
            "sh",
            "-c",
            "kill -TERM -$(cat /run/dual/services/web/child)",
        ]);
        assert!(killed.status.success(), "{killed:?}");
        tmux.until("the service's restart by its supervisor", |s| {
            row(s, "seen").contains("web running (1 restarts)")
        });
        env.ok(&["restart", &seen, "web"]);
        let took = tmux.until("the restart", |s| {
            let row = row(s, "seen");
            row.contains("web running") && !row.contains("restarts")
        });
        eprintln!(
            "{kind}: the browser showed the restart in {took:?}: {}",
            row(&tmux.screen(), "seen")
        );
        assert!(took < Duration::from_secs(1), "{took:?}");

        // A launch in another process.
        env.ok(&["launch", &later]);
        let took = tmux.until("the launch", |s| row(s, "later").contains("running"));
        eprintln!("{kind}: the browser showed the launch in {took:?}");
        assert!(took < Duration::from_secs(1), "{took:?}");

        // A port bound by hand in the container.
        let second = serve_by_hand(&env, &seen);
        let took = tmux.until("the new port", |s| {
            row(s, "seen").contains(&second.to_string())
        });
        eprintln!("{kind}: the browser showed the new port in {took:?}");
        assert!(took < Duration::from_secs(1), "{took:?}");
    });
}

#[test]
fn while_a_service_starts_its_502_says_so_and_to_reload() {
    let kind = crate::support::engines()[0];
    let port = free_port();
    let config = format!(
        "image = \"{}\"\nports = [{port}]\n[services.web]\ncommand = \"sleep 8; exec dual test-server --name $(hostname) --port {port}\"\n",
        ensure_test_image(kind)
    );
    let env = TestEnv::new(Some(kind), &config);
    env.ok(&["create", "slow"]);
    let name = env.name("slow");
    let _proxy = proxy_with_socket(&env);
    env.ok(&["launch", "slow"]);
    let host = format!("{name}.localhost:{port}");
    let mut last = Err(String::new());
    let starting = eventually(Duration::from_secs(4), || {
        last = http_get(port, &host, "/");
        matches!(&last, Ok((502, page)) if page.contains("are starting"))
    });
    assert!(starting, "no page saying the service starts: {last:?}");
    let Ok((_, page)) = &last else { unreachable!() };
    assert!(page.contains("Reload in a few seconds"), "{page}");
    assert!(!page.contains("0.0.0.0"), "{page}");
    // Then it listens, and is served.
    serves_own_name(port, &name);
}

/// A container that listens on many ports: each found port was a listener
/// per worker and loopback address in the proxy, so a workspace listening
/// on enough of them took every descriptor the proxy had, and another
/// workspace was no longer served. Now only so many undeclared ports are
/// routed per workspace.
#[test]
fn a_workspace_listening_on_many_ports_leaves_the_others_served() {
    each_engine("control_many_ports", |kind| {
        let web = free_port();
        // b listens on 100 more ports than are routed, each as many
        // listeners as the proxy has workers and loopback addresses.
        let cap = 64;
        let flood: Vec<u16> = (0..cap + 100).map(|_| free_port()).collect();
        let flags: Vec<String> = flood.iter().map(|p| format!("--port {p}")).collect();
        let config = format!(
            "image = \"{}\"\nports = [{web}]\n[services.web]\ncommand = \"exec dual test-server --name $(hostname) --port {web} $(case $(hostname) in (*-b) echo {};; esac)\"\n",
            ensure_test_image(kind),
            flags.join(" ")
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "a"]);
        env.ok(&["create", "b"]);
        let (a, b) = (env.name("a"), env.name("b"));
        let workers = 2 * std::thread::available_parallelism().map_or(1, usize::from);
        let addresses = if std::net::TcpListener::bind(("::1", 0)).is_ok() {
            2
        } else {
            1
        };
        let descriptors = workers * addresses * (cap + 2) + 200;
        let _proxy = Proxy::spawn(&env, Some(u32::try_from(descriptors).unwrap()));
        assert!(eventually(Duration::from_secs(15), || {
            UnixStream::connect(socket(&env)).is_ok()
        }));
        env.ok(&["launch", "a"]);
        serves_own_name(web, &a);
        env.ok(&["launch", "b"]);
        serves_own_name(web, &b);
        let held = |port: &u16| std::net::TcpListener::bind(("127.0.0.1", *port)).is_err();
        // Once the proxy found them all (b's server holds them in its
        // container, not on the host: a port held here is the proxy's).
        let found = eventually(Duration::from_secs(20), || {
            let status = Client::connect(&env).ask("{\"v\":1,\"op\":\"status\"}\n");
            status["workspaces"].as_array().is_some_and(|all| {
                all.iter().any(|w| {
                    w["name"] == b.as_str()
                        && w["listening"]["reachable"]
                            .as_array()
                            .is_some_and(|ports| ports.len() > flood.len())
                })
            })
        });
        assert!(found, "the proxy never found b's ports");
        std::thread::sleep(Duration::from_secs(2));
        let routed = flood.iter().filter(|port| held(port)).count();
        assert!(routed <= cap, "{routed} of b's ports routed");
        serves_own_name(web, &a);
        let status = Client::connect(&env).ask("{\"v\":1,\"op\":\"status\"}\n");
        assert_eq!(status["reply"], "status", "{status}");
    });
}

/// The CPU time (user and system, in clock ticks) process `pid` has used.
fn cpu_ticks(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The service logs directory is the container's to write: one filled with
/// files made the proxy's watcher read and stat them all four times a
/// second, a core of the host's CPU for as long as the directory was there.
#[test]
fn a_logs_directory_full_of_files_costs_the_proxy_nothing() {
    each_engine("control_logs_flood", |kind| {
        let config = format!(
            "image = \"{}\"\n[services.web]\ncommand = \"cd /var/log/dual && seq 1 100000 | sed 's/$/.state/' | xargs touch; touch done; sleep 300\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "a"]);
        let proxy = proxy_with_socket(&env);
        env.ok(&["launch", "a"]);
        let logs = env.dir.path().join("data/logs").join(env.name("a"));
        crate::support::wait_until(Duration::from_secs(120), "the files to be made", || {
            logs.join("done").exists()
        });
        let status = Client::connect(&env).ask("{\"v\":1,\"op\":\"status\"}\n");
        let pid = status["pid"].as_u64().unwrap();
        // Past the first passes over the new files.
        std::thread::sleep(Duration::from_secs(1));
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(4));
        let used = cpu_ticks(pid) - before;
        // 100 ticks a second: 40 would be a tenth of a core.
        assert!(used < 40, "the proxy used {used} ticks in 4 s");
        drop(proxy);
    });
}

/// A test server started by hand in workspace `name`'s container, on a port
/// of its own; that port.
fn serve_by_hand(env: &TestEnv, name: &str) -> u16 {
    let port = free_port();
    let started = env.engine(&[
        "exec",
        "-d",
        &format!("dual-{name}"),
        "dual",
        "test-server",
        "--name",
        "second",
        "--port",
        &port.to_string(),
    ]);
    assert!(started.status.success(), "{started:?}");
    port
}
