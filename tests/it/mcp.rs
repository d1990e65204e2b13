//! `dual mcp` over its real transport (JSON-RPC lines on a child's stdin
//! and stdout), from a client written here; `mcp_sdk` drives it with the
//! official Python SDK. Engine tests run the whole flow on real containers.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::proxy::{Proxy, free_port};
use crate::support::{dual_path, each_engine, ensure_test_image, eventually};
use crate::workspaces::TestEnv;

/// A `dual mcp` child and what it wrote, line by line.
pub struct McpClient {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Each line, with when it was read.
    lines: Receiver<(Value, Instant)>,
    next_id: u64,
    /// Notifications seen while waiting for answers.
    pub notifications: Vec<Value>,
    /// When each of `notifications` came.
    notified_at: Vec<Instant>,
    /// What its stdout is (`pipe:[INODE]`).
    stdout_pipe: std::path::PathBuf,
}

impl McpClient {
    /// `dual mcp` in `env`'s installation (or a fresh one), initialized.
    pub fn start(mut command: Command) -> McpClient {
        let mut child = command
            .arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdout_pipe = {
            use std::os::fd::AsRawFd as _;
            std::fs::read_link(format!("/proc/self/fd/{}", stdout.as_raw_fd())).unwrap()
        };
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("dual mcp wrote a line that is not JSON ({e}): {line}")
                });
                if sender.send((value, Instant::now())).is_err() {
                    break;
                }
            }
        });
        let mut client = McpClient {
            stdin: child.stdin.take(),
            child,
            lines,
            next_id: 0,
            notifications: Vec::new(),
            notified_at: Vec::new(),
            stdout_pipe,
        };
        let hello = client.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "dual-tests", "version": "1"}}),
        );
        assert_eq!(hello["result"]["serverInfo"]["name"], "dual", "{hello}");
        client.send_line(
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        );
        client
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a request; its id.
    pub fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(&line.to_string());
        id
    }

    /// The next line that is not a notification (kept in `notifications`).
    pub fn answer(&mut self, limit: Duration) -> Value {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((line, at)) if line.get("id").is_none() && line.get("method").is_some() => {
                    self.notifications.push(line);
                    self.notified_at.push(at);
                }
                Ok((line, _)) => return line,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no answer from dual mcp within {limit:?}")
                }
                Err(RecvTimeoutError::Disconnected) => panic!("dual mcp closed its stdout"),
            }
        }
    }

    /// Forgets the notifications seen so far.
    pub fn clear_notifications(&mut self) {
        self.notifications.clear();
        self.notified_at.clear();
    }

    /// The first notification `matches` accepts, among those already seen
    /// and those that come within `limit`, with when it came; `None` when
    /// none comes. Waits with no request outstanding: an answer meanwhile
    /// fails the test.
    pub fn wait_notification(
        &mut self,
        matches: impl Fn(&Value) -> bool,
        limit: Duration,
    ) -> Option<(Value, Instant)> {
        if let Some(seen) = self.notifications.iter().position(&matches) {
            return Some((self.notifications[seen].clone(), self.notified_at[seen]));
        }
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((line, at)) if line.get("id").is_none() && line.get("method").is_some() => {
                    let found = matches(&line);
                    self.notifications.push(line.clone());
                    self.notified_at.push(at);
                    if found {
                        return Some((line, at));
                    }
                }
                Ok((line, _)) => panic!("an answer while no request waits: {line}"),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => panic!("dual mcp closed its stdout"),
            }
        }
    }

    /// The answer to request `id`.
    pub fn answer_to(&mut self, id: u64, limit: Duration) -> Value {
        let answer = self.answer(limit);
        assert_eq!(answer["id"], id, "answers come in order here: {answer}");
        answer
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        self.answer_to(id, Duration::from_secs(60))
    }

    /// Calls a tool; its result (`structuredContent`), failing the test on a
    /// protocol error or an error result.
    pub fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let answer = self.call_raw(tool, arguments, Duration::from_secs(300));
        let result = &answer["result"];
        assert_eq!(result["isError"], false, "{tool} failed: {answer}");
        result["structuredContent"].clone()
    }

    pub fn call_raw(&mut self, tool: &str, arguments: Value, limit: Duration) -> Value {
        let id = self.send("tools/call", json!({"name": tool, "arguments": arguments}));
        self.answer_to(id, limit)
    }

    /// Closes its stdin, as a client that goes away does.
    pub fn hang_up(&mut self) {
        self.stdin = None;
    }

    /// How it exited, within `limit`.
    pub fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        self.stdin = None;
        if self.exited_within(Duration::from_secs(30)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn sandboxed_mcp() -> (tempfile::TempDir, McpClient) {
    let dir = tempfile::tempdir().unwrap();
    crate::support::prepare_sandbox(dir.path());
    let client = McpClient::start(crate::support::sandboxed(dual_path(), dir.path()));
    (dir, client)
}

#[test]
fn bad_requests_get_protocol_errors_and_the_server_keeps_serving() {
    let (_dir, mut mcp) = sandboxed_mcp();
    let tools = mcp.request("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "list_workspaces",
            "create_workspace",
            "launch",
            "stop",
            "destroy",
            "run",
            "logs",
            "restart_service",
            "urls",
            "focus",
            "http_request"
        ]
    );
    for tool in tools["result"]["tools"].as_array().unwrap() {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
    }

    // Not JSON: a parse error with no id.
    mcp.send_line("{\"jsonrpc\": \"2.0\", \"id\": 99, \"method\": ");
    let parse = mcp.answer(Duration::from_secs(10));
    assert_eq!(
        (parse["error"]["code"].clone(), parse["id"].clone()),
        (json!(-32700), Value::Null),
        "{parse}"
    );
    // JSON, but no message.
    mcp.send_line("[1, 2, 3]");
    let invalid = mcp.answer(Duration::from_secs(10));
    assert_eq!(invalid["error"]["code"], -32600, "{invalid}");

    let unknown = mcp.call_raw("format_disk", json!({}), Duration::from_secs(10));
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("format_disk"),
        "{unknown}"
    );

    for (tool, arguments) in [
        ("run", json!({"workspace": "a", "argv": "rm -rf /"})),
        ("run", json!({"workspace": 7, "argv": ["true"]})),
        ("destroy", json!({"workspace": "a", "force": "yes"})),
        ("logs", json!({"workspace": "a", "tail": -1})),
        ("create_workspace", json!({})),
        ("stop", json!({"workspace": "a", "also": "b"})),
    ] {
        let answer = mcp.call_raw(tool, arguments.clone(), Duration::from_secs(10));
        assert_eq!(
            answer["error"]["code"], -32602,
            "{tool} {arguments}: {answer}"
        );
    }

    let unknown_method = mcp.request("workspaces/format", json!({}));
    assert_eq!(unknown_method["error"]["code"], -32601, "{unknown_method}");

    // A tool that runs and fails is a result the agent reads, with a hint.
    let missing = mcp.call_raw(
        "stop",
        json!({"workspace": "nope"}),
        Duration::from_secs(30),
    );
    assert_eq!(missing["result"]["isError"], true, "{missing}");
    let error = &missing["result"]["structuredContent"];
    assert!(
        error["error"].as_str().unwrap().contains("nope"),
        "{missing}"
    );
    assert!(error["hint"].is_string(), "{missing}");

    // Nothing dual starts on the host gets the protocol's stdout.
    let inherited = inherited_descriptors(mcp.pid(), &mcp.stdout_pipe);
    assert!(inherited.is_empty(), "children would get: {inherited:?}");

    // Still serving.
    let listed = mcp.call("list_workspaces", json!({}));
    assert_eq!(listed["workspaces"], json!([]));
    mcp.hang_up();
    let status = mcp
        .exited_within(Duration::from_secs(10))
        .expect("exits once its client is gone");
    assert!(status.success(), "{status:?}");
}

/// The descriptors of process `pid` on `target` that a child it starts
/// would get (not close-on-exec).
fn inherited_descriptors(pid: u32, target: &std::path::Path) -> Vec<String> {
    const CLOSE_ON_EXEC: u32 = 0o2_000_000;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let fd = entry.file_name().to_string_lossy().into_owned();
        if std::fs::read_link(entry.path()).ok().as_deref() != Some(target) {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
            continue;
        };
        let flags = info
            .lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
            .unwrap_or(0);
        if flags & CLOSE_ON_EXEC == 0 {
            found.push(format!("{fd} -> {}", target.display()));
        }
    }
    found
}

/// A repo whose service `web` is the test server on `port`, answering
/// with the workspace's name.
fn web_env(kind: dual::engine::EngineKind, port: u16) -> TestEnv {
    let config = format!(
        "image = \"{}\"\n[services.web]\ncommand = \"echo web starting; dual test-server --name $(hostname) --port {port}\"\n",
        ensure_test_image(kind)
    );
    TestEnv::new(Some(kind), &config)
}

/// Processes in `container` whose environment holds `DUAL_RUN_ID` (what a
/// held run marks), as `pid args` lines.
fn marked_processes(env: &TestEnv, container: &str) -> String {
    let script = "for e in /proc/[0-9]*/environ; do \
                  if tr '\\000' '\\n' 2>/dev/null < $e | grep -q '^DUAL_RUN_ID='; then \
                  p=${e#/proc/}; p=${p%/environ}; echo \"$p $(tr '\\000' ' ' < /proc/$p/cmdline)\"; fi; done";
    let output = env.engine(&["exec", container, "sh", "-c", script]);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Processes in `container` whose command line holds `text`, as `pid
/// args` lines.
fn processes_running(env: &TestEnv, container: &str, text: &str) -> String {
    let script = "for c in /proc/[0-9]*/cmdline; do \
                  a=$(tr '\\000' ' ' 2>/dev/null < $c); p=${c#/proc/}; p=${p%/cmdline}; \
                  case $a in *\"$1\"*) [ $p != $$ ] && echo \"$p $a\";; esac; done; true";
    let output = env.engine(&["exec", container, "sh", "-c", script, "sh", text]);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Engine commands on the host of a held run into `container` still going
/// (their command line holds the held-run script and the container's name).
fn host_run_commands(container: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains("A command run for a caller that may go away") && text.contains(container)
        {
            found.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                &text[..text.len().min(120)]
            ));
        }
    }
    found
}

/// The peak resident memory of process `pid`, in KiB.
fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn an_agent_creates_launches_checks_runs_reads_and_destroys() {
    each_engine("mcp flow", |kind| {
        let port = free_port();
        let env = web_env(kind, port);
        let _proxy = Proxy::spawn(&env, None);
        let mut mcp = McpClient::start(env.command(dual_path()));
        let name = env.name("feature");

        let created = mcp.call(
            "create_workspace",
            json!({"branch": "feature", "repo": env.repo}),
        );
        assert_eq!(created["workspace"], name, "{created}");

        let id = mcp.send(
            "tools/call",
            json!({"name": "launch", "arguments": {"workspace": name}, "_meta": {"progressToken": "launch-1"}}),
        );
        let launched = mcp.answer_to(id, Duration::from_secs(300));
        let launched = &launched["result"];
        assert_eq!(launched["isError"], false, "{launched}");
        let launched = &launched["structuredContent"];
        assert_eq!(launched["ready"], true, "{launched}");
        let progress: Vec<&str> = mcp
            .notifications
            .iter()
            .filter(|n| n["method"] == "notifications/progress")
            .filter(|n| n["params"]["progressToken"] == "launch-1")
            .filter_map(|n| n["params"]["message"].as_str())
            .collect();
        assert!(
            progress.iter().any(|m| m.contains("web: ready")),
            "{progress:?}"
        );
        eprintln!(
            "{kind}: launch sent {} progress notifications",
            progress.len()
        );

        // `ready` means its page answers through the proxy: at once.
        let page = mcp.call("http_request", json!({"workspace": name, "path": "/"}));
        assert_eq!(page["status"], 200, "{page}");
        assert_eq!(page["body"], name, "{page}");
        assert_eq!(page["url"], format!("http://{name}.localhost:{port}/"));

        let urls = mcp.call("urls", json!({"workspace": name}));
        assert!(
            urls["urls"][&name]
                .as_array()
                .unwrap()
                .contains(&json!(format!("http://{name}.localhost:{port}"))),
            "{urls}"
        );
        // A failing command: its exit code and both outputs.
        let failed = mcp.call(
            "run",
            json!({"workspace": name, "argv": ["sh", "-c", "echo out; echo err >&2; pwd; exit 3"], "env": {"GREETING": "hi"}}),
        );
        assert_eq!(failed["exit_code"], 3, "{failed}");
        assert_eq!(failed["stderr"], "err\n", "{failed}");
        let clone = env.clone_path("feature");
        assert_eq!(
            failed["stdout"],
            format!("out\n{}\n", clone.display()),
            "{failed}"
        );
        let env_seen = mcp.call(
            "run",
            json!({"workspace": name, "argv": ["sh", "-c", "echo $GREETING; id -u"], "env": {"GREETING": "hi"}}),
        );
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(env_seen["stdout"], format!("hi\n{uid}\n"), "{env_seen}");

        // Its service's log, and only what is new after `next`.
        let logs = mcp.call("logs", json!({"workspace": name, "service": "web"}));
        let log = &logs["logs"][0];
        assert!(
            log["text"].as_str().unwrap().contains("web starting"),
            "{logs}"
        );

        // Its log is a resource, listed; a URI that climbs out is no resource.
        let log_uri = format!("dual://workspaces/{name}/log");
        let resources = mcp.request("resources/list", json!({}));
        let uris: Vec<&str> = resources["result"]["resources"]
            .as_array()
            .unwrap_or_else(|| panic!("{resources}"))
            .iter()
            .filter_map(|r| r["uri"].as_str())
            .collect();
        assert!(uris.contains(&log_uri.as_str()), "{resources}");
        for climbing in [
            "dual://workspaces/../../etc/passwd",
            "dual://workspaces/../log",
            "dual://workspaces/%2e%2e%2f%2e%2e%2fetc%2fpasswd/log",
            &format!("dual://workspaces/{name}/../../etc/passwd/log"),
        ] {
            let read = mcp.request("resources/read", json!({"uri": climbing}));
            assert!(
                read["error"]["message"].is_string(),
                "resources/read {climbing}: {read}"
            );
        }

        // Subscribed to the log (the handshake era's way), a restart's
        // lines are told of: the watcher looks once a second.
        mcp.request("resources/subscribe", json!({"uri": log_uri}));
        mcp.clear_notifications();
        let sent = Instant::now();
        // Started in the clone, the server reads `workspace` as a workspace's
        // name only, never as a service of the directory's workspace.
        let mut inside = McpClient::start({
            let mut command = env.command(dual_path());
            command.current_dir(env.clone_path("feature"));
            command
        });
        let answer = inside.call_raw(
            "restart_service",
            json!({"workspace": "web"}),
            Duration::from_secs(60),
        );
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        drop(inside);
        let restarted = mcp.call(
            "restart_service",
            json!({"workspace": name, "service": "web"}),
        );
        assert_eq!(restarted["restarted"], json!(["web"]), "{restarted}");
        let answered = sent.elapsed();
        let updated = mcp.wait_notification(
            |n| n["method"] == "notifications/resources/updated" && n["params"]["uri"] == log_uri,
            Duration::from_secs(10),
        );
        let Some((_, at)) = updated else {
            panic!(
                "no notifications/resources/updated for {log_uri} within 10 s of restart_service; seen: {:?}",
                mcp.notifications
            )
        };
        eprintln!(
            "{kind}: {log_uri} updated {:.2?} after restart_service was sent (its answer took {answered:.2?})",
            at.duration_since(sent)
        );
        let mut since = Value::Null;
        let new_lines = eventually(Duration::from_secs(20), || {
            since = mcp.call(
                "logs",
                json!({"workspace": name, "service": "web", "since": log["next"]}),
            );
            since["logs"][0]["text"]
                .as_str()
                .unwrap()
                .contains("web starting")
        });
        assert!(new_lines, "{since}");
        let text = since["logs"][0]["text"].as_str().unwrap();
        assert_eq!(
            text.lines().filter(|l| *l == "web starting").count(),
            1,
            "only what is new: {text}"
        );

        let focused = mcp.call("focus", json!({"workspace": name}));
        assert_eq!(focused["focus"], name, "{focused}");
        assert_eq!(mcp.call("focus", json!({}))["focus"], name);
        mcp.call("focus", json!({"clear": true}));

        // A run past its timeout: killed, with what it left in the background.
        let container = format!("dual-{name}");
        let started = Instant::now();
        let slow = mcp.call(
            "run",
            json!({"workspace": name, "argv": ["sh", "-c", "sleep 300 & setsid sleep 301 & env -i sleep 303 & echo begun; sleep 302"], "timeout_seconds": 2}),
        );
        assert_eq!(
            (slow["timed_out"].clone(), slow["stdout"].clone()),
            (json!(true), json!("begun\n")),
            "{slow}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            marked_processes(&env, &container),
            "",
            "processes of the timed-out run are left"
        );
        // Its environment cleared, it is still in the run's session.
        assert_eq!(
            processes_running(&env, &container, "sleep 30"),
            "",
            "processes of the timed-out run are left"
        );
        assert_eq!(host_run_commands(&container), Vec::<String>::new());

        // 50 MB of output: bounded, with a note, in bounded memory.
        let before = peak_memory_kib(mcp.pid());
        let flood = mcp.call(
            "run",
            json!({"workspace": name, "argv": ["sh", "-c", "yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM | head -c 50000000; echo done >&2"], "max_output_bytes": 65536}),
        );
        let grown = peak_memory_kib(mcp.pid()).saturating_sub(before);
        assert_eq!(
            flood["exit_code"],
            0,
            "{}",
            &flood.to_string()[..500.min(flood.to_string().len())]
        );
        assert_eq!(flood["stdout_bytes"], 50_000_000);
        let kept = flood["stdout"].as_str().unwrap();
        assert!(kept.len() < 65536 + 200, "{}", kept.len());
        assert!(kept.contains("bytes left out here"));
        assert!(
            flood["notes"][0]
                .as_str()
                .unwrap()
                .contains("stdout was 50000000 bytes"),
            "{}",
            flood["notes"]
        );
        assert_eq!(flood["stderr"], "done\n");
        eprintln!("{kind}: 50 MB of output: the server's peak memory grew {grown} KiB");
        assert!(
            grown < 32 * 1024,
            "the server's peak memory grew {grown} KiB for 50 MB of output"
        );

        // Destroy: refused while the clone has uncommitted work, unless forced.
        std::fs::write(clone.join("notes.txt"), "work in progress\n").unwrap();
        let refused = mcp.call_raw(
            "destroy",
            json!({"workspace": name}),
            Duration::from_secs(120),
        );
        assert_eq!(refused["result"]["isError"], true, "{refused}");
        assert!(
            refused["result"]["structuredContent"]["error"]
                .as_str()
                .unwrap()
                .contains("uncommitted"),
            "{refused}"
        );
        let hint = refused["result"]["structuredContent"]["hint"]
            .as_str()
            .unwrap();
        assert!(hint.contains("force: true"), "{hint}");
        let destroyed = mcp.call("destroy", json!({"workspace": name, "force": true}));
        assert_eq!(destroyed["workspace"], name);
        let listed = mcp.call("list_workspaces", json!({}));
        assert_eq!(listed["workspaces"], json!([]), "{listed}");
    });
}

#[test]
fn a_client_that_goes_away_leaves_no_process_behind() {
    each_engine("mcp hang-up", |kind| {
        let port = free_port();
        let env = web_env(kind, port);
        env.ok(&["create", "gone"]);
        env.ok(&["launch", "gone"]);
        let name = env.name("gone");
        let container = format!("dual-{name}");
        for hard in [false, true] {
            let mut mcp = McpClient::start(env.command(dual_path()));
            mcp.send(
                "tools/call",
                json!({"name": "run", "arguments": {"workspace": name, "argv": ["sh", "-c", "sleep 600 & setsid sleep 601 & env -i sleep 603 & sleep 602"], "timeout_seconds": 900}}),
            );
            let running = eventually(Duration::from_secs(30), || {
                marked_processes(&env, &container).contains("sleep 602")
            });
            assert!(
                running,
                "the run never started: {}",
                marked_processes(&env, &container)
            );
            let started = Instant::now();
            if hard {
                // The server itself is killed: its engine command dies with
                // it, which closes the run's held stdin.
                let pid = rustix::process::Pid::from_raw(mcp.pid() as i32).unwrap();
                rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
            } else {
                mcp.hang_up();
            }
            let status = mcp
                .exited_within(Duration::from_secs(30))
                .expect("dual mcp exits");
            let cleaned = eventually(Duration::from_secs(30), || {
                marked_processes(&env, &container).is_empty()
                    && processes_running(&env, &container, "sleep 60").is_empty()
                    && host_run_commands(&container).is_empty()
            });
            eprintln!(
                "{kind}: client {} -> exited {status:?}, container clean after {:?}",
                if hard { "killed the server" } else { "hung up" },
                started.elapsed()
            );
            assert!(
                cleaned,
                "left in the container: {}{}\nleft on the host: {:?}",
                marked_processes(&env, &container),
                processes_running(&env, &container, "sleep 60"),
                host_run_commands(&container)
            );
        }
        // A stopped workspace: the run says so, with what to do.
        env.ok(&["stop", "gone"]);
        let mut mcp = McpClient::start(env.command(dual_path()));
        let stopped = mcp.call_raw(
            "run",
            json!({"workspace": name, "argv": ["true"]}),
            Duration::from_secs(60),
        );
        let error = &stopped["result"]["structuredContent"];
        assert_eq!(stopped["result"]["isError"], true, "{stopped}");
        assert!(
            error["error"].as_str().unwrap().contains("is not running"),
            "{stopped}"
        );
        assert!(
            error["hint"].as_str().unwrap().contains("dual launch"),
            "{stopped}"
        );
        env.ok(&["destroy", "--force", "gone"]);
    });
}

#[test]
fn a_log_line_written_right_after_subscribing_is_told_of() {
    each_engine("mcp subscribe race", |kind| {
        let env = web_env(kind, free_port());
        env.ok(&["create", "early"]);
        env.ok(&["launch", "early"]);
        let name = env.name("early");
        let log = env.dir.path().join("data/logs").join(&name).join("web.log");
        // Quiet once its server is up: what comes next is the test's line.
        let up = eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(&log).is_ok_and(|text| text.contains("listening on"))
        });
        assert!(up, "{}: {:?}", log.display(), std::fs::read_to_string(&log));
        let mut mcp = McpClient::start(env.command(dual_path()));

        // The subscription is the session's first word on resources: the
        // line written as soon as it is answered must still count as news.
        let log_uri = format!("dual://workspaces/{name}/log");
        mcp.request("resources/subscribe", json!({"uri": log_uri}));
        let written = Instant::now();
        let mut appending = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        appending.write_all(b"a line of the test's\n").unwrap();
        let updated = mcp.wait_notification(
            |n| n["method"] == "notifications/resources/updated" && n["params"]["uri"] == log_uri,
            Duration::from_secs(5),
        );
        let Some((_, at)) = updated else {
            panic!(
                "no notifications/resources/updated for {log_uri} within 5 s of a line written right after subscribing; seen: {:?}",
                mcp.notifications
            )
        };
        eprintln!(
            "{kind}: told {:.2?} after the line was written",
            at.duration_since(written)
        );
        drop(mcp);
        env.ok(&["destroy", "--force", "early"]);
    });
}
/// `logs` reads the logs of the workspace's services, and of a service its
/// config no longer names; never a file a service name that is a path
/// points at.
#[test]
fn logs_never_read_a_file_outside_the_workspaces_logs() {
    let env = TestEnv::new(None, "[services.web]\ncommand = \"true\"\n");
    env.ok(&["create", "peek"]);
    let name = env.name("peek");
    let logs = env.dir.path().join("data/logs").join(&name);
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("web.log"), "web line\n").unwrap();
    std::fs::write(logs.join("old.log"), "a service removed from the config\n").unwrap();
    let secret = env.dir.path().join("secret.log");
    std::fs::write(&secret, "host secret\n").unwrap();
    let other = env.dir.path().join("data/logs/other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("web.log"), "another workspace's\n").unwrap();

    let mut mcp = McpClient::start(env.command(dual_path()));
    let old = mcp.call("logs", json!({"workspace": name, "service": "old"}));
    assert_eq!(
        old["logs"][0]["text"], "a service removed from the config\n",
        "{old}"
    );
    let secret = secret.with_extension("");
    for service in [
        secret.to_str().unwrap().to_owned(),
        format!("../../../{}", secret.strip_prefix("/").unwrap().display()),
        "../other/web".to_owned(),
        "./web".to_owned(),
    ] {
        let answer = mcp.call_raw(
            "logs",
            json!({"workspace": name, "service": service}),
            Duration::from_secs(30),
        );
        assert_eq!(answer["result"]["isError"], true, "{service}: {answer}");
        let text = answer.to_string();
        assert!(
            !text.contains("host secret") && !text.contains("another workspace"),
            "{service}: {answer}"
        );
    }
}

/// A workspace that listens on a port another program holds on this host:
/// the proxy routes it but cannot serve it there, so 127.0.0.1:PORT is
/// that program, which `http_request` never reaches.
#[test]
fn http_request_never_reaches_another_program_on_the_host() {
    each_engine("mcp http conflict", |kind| {
        let (port, taken) = (free_port(), free_port());
        let host_program = std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap();
        std::thread::spawn(move || {
            for stream in host_program.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut request = [0; 4096];
                let _ = std::io::Read::read(&mut stream, &mut request);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhost program",
                );
            }
        });
        let config = format!(
            "image = \"{}\"\n[services.web]\ncommand = \"dual test-server --name web --port {port}\"\n\
             [services.decoy]\ncommand = \"dual test-server --name decoy --port {taken}\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        let _proxy = Proxy::spawn(&env, None);
        env.ok(&["create", "decoy"]);
        env.ok(&["launch", "decoy"]);
        let name = env.name("decoy");
        let mut mcp = McpClient::start(env.command(dual_path()));

        let mut answer = Value::Null;
        let routed = eventually(Duration::from_secs(30), || {
            answer = mcp.call_raw(
                "http_request",
                json!({"workspace": name, "port": taken}),
                Duration::from_secs(60),
            );
            !answer.to_string().contains("routes no port")
        });
        assert!(routed, "the proxy never routed {taken}: {answer}");
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        assert!(!answer.to_string().contains("host program"), "{answer}");
        eprintln!(
            "{kind}: port {taken} held on the host: {}",
            answer["result"]["structuredContent"]["error"]
        );
        // The default port is one the proxy serves (once it routes `web`).
        let served = eventually(Duration::from_secs(30), || {
            answer = mcp.call_raw(
                "http_request",
                json!({"workspace": name}),
                Duration::from_secs(60),
            );
            answer["result"]["isError"] == false
        });
        assert!(served, "{answer}");
        for _ in 0..5 {
            let page = mcp.call("http_request", json!({"workspace": name}));
            assert_eq!(page["body"], "web", "{page}");
        }
        drop(mcp);
        env.ok(&["destroy", "--force", "decoy"]);
    });
}

/// A service's log is the container's to write: megabytes on one line
/// come back bounded, the newest bytes kept, from the tool and the resource.
#[test]
fn huge_logs_come_back_bounded() {
    let config = "[services.web]\ncommand = \"true\"\n[services.api]\ncommand = \"true\"\n";
    let env = TestEnv::new(None, config);
    env.ok(&["create", "loud"]);
    let name = env.name("loud");
    // The clone, as a launch leaves it (its config is what names services).
    let clone = env.clone_path("loud");
    std::fs::create_dir_all(&clone).unwrap();
    std::fs::write(clone.join(".dual.toml"), config).unwrap();
    let logs = env.dir.path().join("data/logs").join(&name);
    std::fs::create_dir_all(&logs).unwrap();
    let mut huge = "x".repeat(1536 * 1024);
    huge.push_str("THE END\n");
    std::fs::write(logs.join("web.log"), &huge).unwrap();
    std::fs::write(logs.join("web.log.1"), "y".repeat(1024 * 1024)).unwrap();
    std::fs::write(logs.join("api.log"), "api line\n").unwrap();

    let mut mcp = McpClient::start(env.command(dual_path()));
    let read = mcp.call("logs", json!({"workspace": name}));
    let total: usize = read["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["text"].as_str().unwrap().len())
        .sum();
    let web = &read["logs"][1];
    assert_eq!(web["service"], "web");
    assert!(web["text"].as_str().unwrap().ends_with("THE END\n"));
    assert!(
        web["note"].as_str().unwrap().contains("left out"),
        "{web:.200}"
    );
    assert_eq!(read["logs"][0]["text"], "api line\n");
    assert!(total <= 1024 * 1024, "{total} bytes");

    let resource = mcp.request(
        "resources/read",
        json!({"uri": format!("dual://workspaces/{name}/log")}),
    );
    let text = resource["result"]["contents"][0]["text"].as_str().unwrap();
    assert!(text.len() <= 1024 * 1024 + 200, "{} bytes", text.len());
    assert!(text.contains("api | api line\n"));
    assert!(text.contains("THE END"));
}
