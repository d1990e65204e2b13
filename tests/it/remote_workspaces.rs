//! Workspaces on another engine host (`scripts/remote-rig`: sshd, dockerd
//! and a podman service in namespaces of their own, whose `/tmp` and
//! `/home` are not this host's): launched with `DOCKER_HOST=ssh://…` or a
//! `CONTAINER_HOST`, their clones synced there, their ports routed here by
//! name through the shared ssh link.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dual::engine::EngineKind;

use crate::proxy::{Proxy, free_port};
use crate::support::{Rig, ensure_test_image, http_get, remote_rig, wait_until};
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
        let output = self.cmd(args).output().unwrap();
        assert!(
            output.status.success(),
            "dual {args:?} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
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

#[test]
fn three_remote_workspaces_serve_one_port_each_routed_here_by_name() {
    let Some(rig) = remote_rig("three_remote_workspaces_serve_one_port_each_routed_here_by_name")
    else {
        return;
    };
    let kind = EngineKind::Docker;
    let port = free_port();
    let on = OnRig::new(rig, kind, &server_config(kind, port));
    let branches = ["a", "b", "c"];
    for branch in branches {
        on.ok(&["create", branch]);
        let launched = on.ok(&["launch", branch]);
        assert!(
            launched.contains(&format!("remote: root@{}", rig.ip)),
            "{launched}"
        );
    }
    // The clone is not on the engine's host: only its synced copy is.
    let listed = on.ok(&["list"]);
    assert!(listed.contains("remote: root@"), "{listed}");
    let _proxy = Proxy::spawn(&on.env, None);
    for branch in branches {
        let name = on.env.name(branch);
        let host = format!("{name}.localhost");
        wait_until(
            Duration::from_secs(30),
            &format!("{host}:{port} to answer"),
            || {
                http_get(port, &host, "/")
                    .is_ok_and(|(status, body)| status == 200 && body.contains(&name))
            },
        );
    }

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

    // Exit codes pass through the link.
    let failed = on.run_in("a", &["sh", "-c", "exit 7"]);
    assert_eq!(failed.status.code(), Some(7), "{failed:?}");

    for branch in branches {
        on.ok(&["destroy", branch, "--force"]);
    }
    assert!(
        on.on_rig(&["ps", "-aq"]).is_empty(),
        "containers left on the rig"
    );
    // Nor its files.
    let mirror = Command::new("ssh")
        .arg(format!("root@{}", rig.ip))
        .arg(format!(
            "ls -d /root/.local/share/dual-remote/*{}",
            clone.display()
        ))
        .output()
        .unwrap();
    assert!(
        !mirror.status.success(),
        "the clone's mirror stayed: {}",
        stdout(&mirror)
    );
}
