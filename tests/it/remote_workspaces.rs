//! Workspaces on another engine host (`scripts/remote-rig`: sshd, dockerd
//! and a podman service in namespaces of their own, whose `/tmp` and
//! `/home` are not this host's): launched with `DOCKER_HOST=ssh://…` or a
//! `CONTAINER_HOST`, their clones synced there, their ports routed here by
//! name through the shared ssh link.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dual::engine::EngineKind;

use crate::proxy::{Proxy, free_port};
use crate::support::{Rig, ensure_test_image, http_get, remote_rig, signal, wait_until};
use crate::workspaces::TestEnv;

/// A test env whose commands reach the rig's engine, and which removes
/// what it made there.
struct OnRig {
    env: TestEnv,
    rig: &'static Rig,
    kind: EngineKind,
}

impl OnRig {
    fn new(rig: &'static Rig, kind: EngineKind, config: &str) -> OnRig {
        let env = TestEnv::new(Some(kind), config);
        rig.trust_in(&env.home());
        OnRig { env, rig, kind }
    }

    fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = self.env.cmd(args);
        for (key, value) in self.rig.engine_env(self.kind) {
            cmd.env(key, value);
        }
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        crate::workspaces::succeeded(args, &self.cmd(args).output().unwrap())
    }

    /// `dual run ARGS` in `branch`'s clone, from a shell that has none of
    /// the rig's settings: the workspace remembers where it runs.
    fn run_in(&self, branch: &str, args: &[&str]) -> Output {
        let mut all = vec!["run", "--"];
        all.extend_from_slice(args);
        self.env
            .cmd(&all)
            .env_remove("DOCKER_HOST")
            .env_remove("CONTAINER_HOST")
            .current_dir(self.env.clone_path(branch))
            .output()
            .unwrap()
    }

    /// The rig's containers and volumes of this env.
    fn on_rig(&self, list: &[&str]) -> Vec<String> {
        let filter = format!("label={}", self.env.repo_label());
        let mut args = list.to_vec();
        args.extend(["--filter", &filter]);
        let output = self.rig.engine(self.kind).args(&args).output().unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for OnRig {
    fn drop(&mut self) {
        let containers = self.on_rig(&["ps", "-aq"]);
        if !containers.is_empty() {
            let mut rm = self.rig.engine(self.kind);
            rm.args(["rm", "-f"]).args(&containers);
            let _ = rm.output();
        }
        let volumes = self.on_rig(&["volume", "ls", "-q"]);
        if !volumes.is_empty() {
            let mut rm = self.rig.engine(self.kind);
            rm.args(["volume", "rm", "-f"]).args(&volumes);
            let _ = rm.output();
        }
    }
}

fn server_config(kind: EngineKind, port: u16) -> String {
    format!(
        "image = \"{}\"\nports = [{port}]\n[services.web]\ncommand = \"dual test-server --name $(hostname) --port {port}\"\n",
        ensure_test_image(kind)
    )
}

/// `line` run by the shell of the rig's root over ssh.
fn on_rig_host(rig: &Rig, line: &str) -> Output {
    Command::new("ssh")
        .arg(format!("root@{}", rig.ip))
        .arg(line)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until `path` holds `content` here; how long that took.
fn until_here(path: &Path, content: &str, within: Duration) -> Duration {
    wait_until(
        within,
        &format!("{} to read {content:?}", path.display()),
        || std::fs::read_to_string(path).is_ok_and(|text| text == content),
    )
}

/// `dual run` in `branch`'s clone as a child, stdin and stdout piped.
fn spawn_run(on: &OnRig, branch: &str, args: &[&str]) -> std::process::Child {
    let mut all = vec!["run", "--"];
    all.extend_from_slice(args);
    on.env
        .command(crate::support::dual_path())
        .env_remove("DOCKER_HOST")
        .env_remove("CONTAINER_HOST")
        .current_dir(on.env.clone_path(branch))
        .args(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Workspace `name` answers `/` through the proxy on `port` with its name;
/// how long until it did.
fn routed(port: u16, name: &str, within: Duration) -> Duration {
    let host = format!("{name}.localhost");
    wait_until(within, &format!("{host}:{port} to answer"), || {
        http_get(port, &host, "/").is_ok_and(|(status, body)| status == 200 && body.contains(name))
    })
}

/// An SSE stream and a WebSocket through the proxy and the tunnel.
fn streams_pass(port: u16, name: &str) {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    let host = format!("{name}.localhost:{port}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream
            .write_all(
                format!("GET /sse?interval=200&count=3 HTTP/1.1\r\nHost: {host}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while seen.matches("data: ").count() < 3 {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no SSE event for 5 s; so far: {seen}"))
                .unwrap();
            assert!(n > 0, "the SSE stream closed early: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{host}/ws"), socket)
            .await
            .unwrap();
        for text in ["hello", "through the tunnel"] {
            ws.send(Message::text(text)).await.unwrap();
            let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(echoed.into_text().unwrap().as_str(), text);
        }
    });
}

#[test]
fn three_remote_workspaces_serve_one_port_each_routed_here_by_name() {
    let Some(rig) = remote_rig("three_remote_workspaces_serve_one_port_each_routed_here_by_name")
    else {
        return;
    };
    // It cuts the link and restarts the rig's docker: no other rig test
    // meanwhile.
    let _link = crate::support::rig_link_alone();
    let kind = EngineKind::Docker;
    let port = free_port();
    let on = OnRig::new(rig, kind, &server_config(kind, port));
    let branches = ["a", "b", "c"];
    // `c` goes there through a docker context named by `--context`, from a
    // shell whose DOCKER_HOST says nothing.
    let docker_config = on.env.dir.path().join("docker-config");
    let made = Command::new("docker")
        .env("DOCKER_CONFIG", &docker_config)
        .args([
            "context",
            "create",
            "rig",
            "--docker",
            &format!("host={}", rig.docker_host),
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    for branch in branches {
        on.ok(&["create", branch]);
        let launched = if branch == "c" {
            let output = on
                .env
                .cmd(&["--context", "rig", "launch", branch])
                .env_remove("DOCKER_HOST")
                .env("DOCKER_CONFIG", &docker_config)
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            stdout(&output)
        } else {
            on.ok(&["launch", branch])
        };
        assert!(
            launched.contains(&format!("remote: root@{}", rig.ip)),
            "{launched}"
        );
    }
    let listed = on.ok(&["list"]);
    assert!(listed.contains("remote: root@"), "{listed}");
    let _proxy = Proxy::spawn(&on.env, None);
    for branch in branches {
        routed(port, &on.env.name(branch), Duration::from_secs(30));
    }
    streams_pass(port, &on.env.name("a"));

    // A port no config declares, opened by hand there: found on the
    // engine's host (not in this host's /proc) and routed here.
    let undeclared = free_port();
    let container = format!("dual-{}", on.env.name("b"));
    let server = format!(
        "dual test-server --name {} --port {undeclared}",
        on.env.name("b")
    );
    let opened = on
        .rig
        .engine(kind)
        .args(["exec", "-d", &container, "sh", "-c", &server])
        .output()
        .unwrap();
    assert!(opened.status.success(), "{opened:?}");
    let took = routed(undeclared, &on.env.name("b"), Duration::from_secs(10));
    eprintln!(
        "an undeclared port routed {} ms after it was opened",
        took.as_millis()
    );

    // Files: an edit here is seen inside, a file made inside comes back.
    let clone = on.env.clone_path("a");
    std::fs::write(clone.join("edited.txt"), "from the host\n").unwrap();
    let started = Instant::now();
    wait_until(Duration::from_secs(5), "the edit to be seen inside", || {
        stdout(&on.run_in("a", &["cat", "edited.txt"])) == "from the host\n"
    });
    eprintln!("edit here → inside: {} ms", started.elapsed().as_millis());
    let made = on.run_in("a", &["sh", "-c", "echo made inside > made.txt"]);
    assert!(made.status.success(), "{made:?}");
    let back = until_here(
        &clone.join("made.txt"),
        "made inside\n",
        Duration::from_secs(5),
    );
    eprintln!("written inside → here: {} ms", back.as_millis());

    // `dual run`: exit codes, stdin, and Ctrl-C that ends the process there.
    let failed = on.run_in("a", &["sh", "-c", "exit 7"]);
    assert_eq!(failed.status.code(), Some(7), "{failed:?}");
    let mut cat = spawn_run(&on, "a", &["cat"]);
    std::io::Write::write_all(&mut cat.stdin.take().unwrap(), b"typed here\n").unwrap();
    let echoed = cat.wait_with_output().unwrap();
    assert_eq!(stdout(&echoed), "typed here\n");
    let mut sleeper = spawn_run(&on, "a", &["sleep", "100"]);
    let container = format!("dual-{}", on.env.name("a"));
    let ps = || {
        let output = on
            .rig
            .engine(kind)
            .args(["exec", &container, "ps"])
            .output()
            .unwrap();
        stdout(&output)
    };
    wait_until(Duration::from_secs(30), "sleep 100 to start there", || {
        ps().contains("sleep 100")
    });
    signal(&sleeper, rustix::process::Signal::INT);
    assert_eq!(sleeper.wait().unwrap().code(), Some(130));
    wait_until(
        Duration::from_secs(10),
        "sleep 100 to end there after Ctrl-C",
        || !ps().contains("sleep 100"),
    );

    // The link drops and comes back: routes and sync follow by themselves.
    rig.control(&["drop-link"]);
    std::thread::sleep(Duration::from_secs(8));
    std::fs::write(
        clone.join("offline.txt"),
        "written while the link was down\n",
    )
    .unwrap();
    rig.control(&["restore-link"]);
    let back = routed(port, &on.env.name("a"), Duration::from_secs(10));
    eprintln!(
        "routed again {} ms after the link returned",
        back.as_millis()
    );
    let synced = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "the offline edit to reach inside",
        || stdout(&on.run_in("a", &["cat", "offline.txt"])) == "written while the link was down\n",
    );
    eprintln!(
        "the offline edit was inside {} ms after the route",
        synced.elapsed().as_millis()
    );

    // The engine's daemon restarts: the proxy starts the workspaces again.
    rig.control(&["restart-docker"]);
    for branch in branches {
        let took = routed(port, &on.env.name(branch), Duration::from_secs(60));
        eprintln!(
            "{branch} routed {} ms after the daemon restarted",
            took.as_millis()
        );
    }

    for branch in branches {
        on.ok(&["destroy", branch, "--force"]);
    }
    assert!(
        on.on_rig(&["ps", "-aq"]).is_empty(),
        "containers left on the rig"
    );
    // Nor its files.
    let mirror = on_rig_host(
        rig,
        &format!("ls -d /root/.local/share/dual-remote/*{}", clone.display()),
    );
    assert!(
        !mirror.status.success(),
        "the clone's mirror stayed: {}",
        stdout(&mirror)
    );
}

#[test]
fn a_workspace_on_remote_podman_launches_runs_and_routes() {
    let Some(rig) = remote_rig("a_workspace_on_remote_podman_launches_runs_and_routes") else {
        return;
    };
    let _link = crate::support::rig_link_up();
    let kind = EngineKind::Podman;
    let port = free_port();
    let on = OnRig::new(rig, kind, &server_config(kind, port));
    on.ok(&["create", "p"]);
    let launched = on.ok(&["launch", "p"]);
    assert!(
        launched.contains(&format!("remote: root@{}", rig.ip)),
        "{launched}"
    );
    let _proxy = Proxy::spawn(&on.env, None);
    routed(port, &on.env.name("p"), Duration::from_secs(30));
    let failed = on.run_in("p", &["sh", "-c", "echo $HOSTNAME; exit 3"]);
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    std::fs::write(on.env.clone_path("p").join("edited.txt"), "podman\n").unwrap();
    wait_until(Duration::from_secs(5), "the edit to be seen inside", || {
        stdout(&on.run_in("p", &["cat", "edited.txt"])) == "podman\n"
    });
    on.ok(&["destroy", "p", "--force"]);
    assert!(
        on.on_rig(&["ps", "-aq"]).is_empty(),
        "containers left on the rig"
    );
}

/// A new workspace on the engine host is seeded from its parent's mirror
/// there, never from whatever that host has at the paths the clones have
/// here: a copy that mounted those wrote into that host's own directories
/// (before: `<feat's path>/.venv` made there, outside every mirror, and
/// nothing seeded).
#[test]
fn a_remote_workspace_is_seeded_from_its_parent_s_mirror_not_the_engine_host_s_files() {
    let Some(rig) = remote_rig(
        "a_remote_workspace_is_seeded_from_its_parent_s_mirror_not_the_engine_host_s_files",
    ) else {
        return;
    };
    let _link = crate::support::rig_link_up();
    let kind = EngineKind::Docker;
    let config = format!(
        "image = \"{}\"\nseed = [\".venv\"]\nsetup = \"test -e .venv/where || {{ mkdir -p .venv && hostname > .venv/where; }}\"\n",
        ensure_test_image(kind)
    );
    let on = OnRig::new(rig, kind, &config);
    let ssh = |line: &str| {
        let output = on_rig_host(rig, line);
        assert!(output.status.success(), "ssh {line}: {output:?}");
        stdout(&output)
    };
    on.ok(&["create", "main"]);
    on.ok(&["launch", "main"]);
    let (main, feat) = (on.env.clone_path("main"), on.env.clone_path("feat"));
    until_here(
        &main.join(".venv/where"),
        &format!("{}\n", on.env.name("main")),
        Duration::from_secs(10),
    );
    // The engine's host has directories of its own where the clones are
    // here (as a host whose homes are laid out like this one's has).
    let decoys = format!(
        "mkdir -p {main}/.venv {feat}/.git && echo the-engine-host-s-own > {main}/.venv/where",
        main = main.display(),
        feat = feat.display()
    );
    ssh(&decoys);
    on.ok(&["create", "feat", "--from", &on.env.name("main")]);
    let launched = on.ok(&["launch", "feat"]);
    let on_the_host = ssh(&format!("ls -A {}", feat.display()));
    ssh(&format!(
        "rm -rf {} {}",
        on.env.root().display(),
        on.env.dir.path().display()
    ));
    assert!(
        launched.contains(&format!("seeded `.venv` from `{}`", on.env.name("main"))),
        "{launched}"
    );
    assert_eq!(
        on_the_host.trim(),
        ".git",
        "the seed wrote into the engine host's own directory"
    );
    until_here(
        &feat.join(".venv/where"),
        &format!("{}\n", on.env.name("main")),
        Duration::from_secs(10),
    );
    for branch in ["feat", "main"] {
        on.ok(&["destroy", branch, "--force"]);
    }
}

/// The container cannot make the sync write outside its mirror on the
/// engine's host: unison there resolves every path it writes from the
/// mirror's root, one lookup at a time, so a directory the container swaps
/// for a link between unison's check and its write would send the file
/// (this host's, so the repo's own, in a pull) to the link's target, as the
/// ssh user (root, here), were unison not confined there to the mirror.
#[test]
fn a_container_cannot_make_the_sync_write_outside_its_mirror_on_the_engine_host() {
    let Some(rig) =
        remote_rig("a_container_cannot_make_the_sync_write_outside_its_mirror_on_the_engine_host")
    else {
        return;
    };
    let _link = crate::support::rig_link_up();
    let kind = EngineKind::Docker;
    let config = format!("image = \"{}\"\n", ensure_test_image(kind));
    let on = OnRig::new(rig, kind, &config);
    on.ok(&["create", "atk"]);
    on.ok(&["launch", "atk"]);
    let clone = on.env.clone_path("atk");
    // A directory of the engine host's own, outside every mirror (the rig's
    // /root is its own): `~/.ssh` in a real attack.
    let target = format!("/root/dual-escape-{}", on.env.repo);
    let ssh = |line: &str| {
        let output = on_rig_host(rig, line);
        stdout(&output)
    };
    ssh(&format!("mkdir -p {target}"));
    std::fs::create_dir(clone.join("x")).unwrap();
    wait_until(Duration::from_secs(10), "x to be there", || {
        on.run_in("atk", &["test", "-d", "x"]).status.success()
    });
    // Inside: `x` swapped for a link to that directory and back, for 60 s.
    let swap = format!(
        "end=$(($(date +%s) + 60)); while [ $(date +%s) -lt $end ]; do \
         mv x x.d && ln -s {target} x && rm x && mv x.d x; done"
    );
    let container = format!("dual-{}", on.env.name("atk"));
    let started = on
        .rig
        .engine(kind)
        .args(["exec", "-d", "-w"])
        .arg(&clone)
        .args([&container, "sh", "-c", &swap])
        .output()
        .unwrap();
    assert!(started.status.success(), "{started:?}");
    // Here: files written in `x` as a user (or `git pull`) writes them.
    let began = Instant::now();
    let mut landed = Vec::new();
    let mut written = 0;
    while landed.is_empty() && began.elapsed() < Duration::from_secs(40) {
        if std::fs::symlink_metadata(clone.join("x")).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::write(clone.join(format!("x/p{written}")), "a key\n");
            written += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
        landed = ssh(&format!("ls -A {target}"))
            .lines()
            .map(str::to_owned)
            .collect();
    }
    ssh(&format!("rm -rf {target}"));
    let _ = on.rig.engine(kind).args(["rm", "-f", &container]).output();
    on.ok(&["destroy", "atk", "--force"]);
    assert!(
        landed.is_empty(),
        "after {written} files written here ({:.0?}), the sync wrote {landed:?} into {target} on the engine's host, outside the mirror",
        began.elapsed()
    );
}
