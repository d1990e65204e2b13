//! The remote engine host (`scripts/remote-rig`) that the tests of
//! workspaces on another machine run against: that it is one (its own
//! engines, files and network, reached over ssh only).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::{EngineKind, Rig, http_get_at, remote_rig, wait_for};

const IMAGE: &str = "dual-test:latest";
const BOTH: [EngineKind; 2] = [EngineKind::Docker, EngineKind::Podman];

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn stdout_of(what: &str, cmd: &mut Command) -> String {
    let output = run(cmd);
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The rig's name for itself, as `kind`'s `info` gives it.
fn info_hostname(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Docker => "{{.Name}}",
        EngineKind::Podman => "{{.Host.Hostname}}",
    }
}

#[test]
fn the_rig_is_a_separate_engine_host() {
    let Some(rig) = remote_rig("the_rig_is_a_separate_engine_host") else {
        return;
    };
    let _link = crate::support::rig_link_up();
    let here = stdout_of("hostname", &mut Command::new("hostname"));
    for kind in BOTH {
        eprintln!("--- the rig's {kind}");
        // A directory of this host with a file in it, which the rig must
        // not see (one per engine: docker makes the missing path in the rig).
        let host_dir = tempfile::tempdir().unwrap();
        std::fs::write(host_dir.path().join("only-on-this-host"), "x").unwrap();
        let mount = format!("{}:/mnt/host", host_dir.path().display());
        // Both engines answer as the rig, not as this host: through the
        // variables a sandbox keeps, and through root's ssh config or the
        // registered podman connection.
        let through_env = stdout_of(
            &format!("{kind} info through {:?}", rig.engine_env(kind)),
            Command::new(kind.program())
                .envs(rig.engine_env(kind))
                .args(["info", "--format", info_hostname(kind)]),
        );
        assert_eq!(
            through_env, "dual-remote-rig",
            "{kind} answered as {through_env}"
        );
        assert_ne!(through_env, here);
        let through_config = stdout_of(
            &format!("{kind} info"),
            rig.engine(kind)
                .args(["info", "--format", info_hostname(kind)]),
        );
        assert_eq!(through_config, "dual-remote-rig");

        // The test image runs there.
        let hi = stdout_of(
            &format!("{kind} run {IMAGE}"),
            rig.engine(kind).args(["run", "--rm", IMAGE, "echo", "hi"]),
        );
        assert_eq!(hi, "hi");

        // This host's path does not exist there: docker binds an empty
        // directory it makes, podman refuses the missing source.
        let listing = run(rig.engine(kind).args([
            "run",
            "--rm",
            "-v",
            &mount,
            IMAGE,
            "ls",
            "-A",
            "/mnt/host",
        ]));
        let stdout = String::from_utf8_lossy(&listing.stdout);
        let stderr = String::from_utf8_lossy(&listing.stderr);
        assert!(
            !stdout.contains("only-on-this-host"),
            "{kind}: the rig sees this host's {}",
            host_dir.path().display()
        );
        match kind {
            EngineKind::Docker => assert!(
                listing.status.success() && stdout.trim().is_empty(),
                "docker: the bind of a path the rig lacks: {stdout}{stderr}"
            ),
            EngineKind::Podman => assert!(
                !listing.status.success() && stderr.contains("no such file or directory"),
                "podman: the bind of a path the rig lacks: {stdout}{stderr}"
            ),
        }
    }
}

/// A container of the rig's, removed on drop.
struct RigContainer<'a> {
    rig: &'a Rig,
    kind: EngineKind,
    name: String,
}

impl Drop for RigContainer<'_> {
    fn drop(&mut self) {
        let _ = run(self.rig.engine(self.kind).args(["rm", "-f", &self.name]));
    }
}

/// An `ssh -N -L` forward, ended (by its pid) on drop.
struct Forward(std::process::Child);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_rig_container_is_reached_through_an_ssh_forward() {
    let Some(rig) = remote_rig("a_rig_container_is_reached_through_an_ssh_forward") else {
        return;
    };
    let _link = crate::support::rig_link_up();
    for kind in BOTH {
        eprintln!("--- the rig's {kind}");
        let container = RigContainer {
            rig,
            kind,
            name: format!("dual-rig-test-{}-{kind}", std::process::id()),
        };
        stdout_of(
            &format!("{kind} run -d"),
            rig.engine(kind).args([
                "run",
                "-d",
                "--name",
                &container.name,
                IMAGE,
                "dual",
                "test-server",
                "--name",
                &container.name,
                "--port",
                "3000",
            ]),
        );
        let ip = stdout_of(
            &format!("{kind} inspect"),
            rig.engine(kind).args([
                "inspect",
                "--format",
                "{{.NetworkSettings.IPAddress}}",
                &container.name,
            ]),
        );
        assert!(!ip.is_empty(), "{kind}: the rig's container has no address");

        // Its bridge lives in the rig's network namespace: this host has no
        // route to it (the rig routes its prefix to "unreachable" here; asked
        // of the routing table, so no packet is sent).
        let route = run(Command::new("ip").args(["route", "get", &ip]));
        assert!(
            !route.status.success(),
            "{kind}: this host routes to the rig's container at {ip}: {}",
            String::from_utf8_lossy(&route.stdout)
        );

        // Through ssh, as dual reaches a remote host's containers.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let _forward = Forward(
            Command::new("ssh")
                .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
                .arg(format!("127.0.0.1:{port}:{ip}:3000"))
                .arg(format!("root@{}", rig.ip))
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let body = wait_for(
            Duration::from_secs(15),
            &format!("{kind}: the rig's container through ssh -L"),
            || match http_get_at(address, "localhost", "/") {
                Ok((200, body)) => Ok(body),
                other => Err(format!("{other:?}")),
            },
        );
        assert_eq!(body.trim(), container.name);
    }
}
