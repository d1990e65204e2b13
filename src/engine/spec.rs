//! What a container should be, turned into `run` arguments by a pure function
//! so that the argv can be tested without an engine.
//!
//! There is deliberately no way to ask for `--privileged`, extra capabilities
//! or the engine's socket: nothing dual starts may control the engine.

use std::ffi::OsString;
use std::path::PathBuf;

use super::model::Labels;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    pub labels: Labels,
    pub network: Network,
    pub publish: Vec<Publish>,
    pub hostname: Option<String>,
    pub workdir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// `--user uid:gid`.
    pub user: Option<(u32, u32)>,
    /// Rootless podman: map the host user to the same uid inside
    /// (`--userns=keep-id`), else uid N inside is a subordinate id outside.
    pub keep_host_uid: bool,
    pub bind_mounts: Vec<(PathBuf, PathBuf)>,
    /// Named volumes: (volume, target path).
    pub volumes: Vec<(String, PathBuf)>,
    /// Paths mounted as world-writable tmpfs.
    pub tmpfs: Vec<String>,
    pub pull: Pull,
    pub command: Vec<String>,
}

/// Whether `run` may pull a missing image. dual builds its own images and
/// never pulls behind the user's back unless asked to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pull {
    #[default]
    Never,
    Missing,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Network {
    /// The engine's default bridge: the container gets its own namespace.
    #[default]
    Default,
    /// Shares the host's namespace; only the probes use it, to show the conflict.
    Host,
}

/// `-p host_ip:host_port:container_port`; host_port 0 lets the engine choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
}

impl Publish {
    pub fn loopback(host_port: u16, container_port: u16) -> Self {
        Publish {
            host_ip: "127.0.0.1".into(),
            host_port,
            container_port,
        }
    }
}

impl RunSpec {
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        RunSpec {
            name: name.into(),
            image: image.into(),
            ..RunSpec::default()
        }
    }

    /// Arguments after the engine's program name for a detached `run`.
    pub fn run_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["run".into(), "--detach".into()];
        args.push(format!("--name={}", self.name).into());
        args.push(
            match self.pull {
                Pull::Never => "--pull=never",
                Pull::Missing => "--pull=missing",
            }
            .into(),
        );
        for (key, value) in &self.labels {
            args.push(format!("--label={key}={value}").into());
        }
        if self.network == Network::Host {
            args.push("--network=host".into());
        }
        for publish in &self.publish {
            let host_port = if publish.host_port == 0 {
                String::new()
            } else {
                publish.host_port.to_string()
            };
            args.push(
                format!(
                    "--publish={}:{}:{}",
                    publish.host_ip, host_port, publish.container_port
                )
                .into(),
            );
        }
        if let Some(hostname) = &self.hostname {
            args.push(format!("--hostname={hostname}").into());
        }
        if let Some(workdir) = &self.workdir {
            let mut arg = OsString::from("--workdir=");
            arg.push(workdir);
            args.push(arg);
        }
        for (key, value) in &self.env {
            args.push(format!("--env={key}={value}").into());
        }
        if let Some((uid, gid)) = self.user {
            args.push(format!("--user={uid}:{gid}").into());
        }
        if self.keep_host_uid {
            args.push("--userns=keep-id".into());
        }
        for (host, container) in &self.bind_mounts {
            // --mount, unlike -v, refuses a missing host path instead of creating it as root.
            let mut arg = OsString::from("--mount=type=bind,source=");
            arg.push(host);
            arg.push(",target=");
            arg.push(container);
            args.push(arg);
        }
        for (volume, target) in &self.volumes {
            let mut arg = OsString::from(format!("--mount=type=volume,source={volume},target="));
            arg.push(target);
            args.push(arg);
        }
        for path in &self.tmpfs {
            args.push(format!("--tmpfs={path}:mode=1777").into());
        }
        args.push(self.image.clone().into());
        args.extend(self.command.iter().map(OsString::from));
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn run_args_keep_each_value_in_one_argument() {
        let mut spec = RunSpec::new("dual-probe-x-1", "dual-probe:latest");
        spec.labels.insert("dual.managed".into(), "true".into());
        spec.labels.insert("dual.kind".into(), "probe".into());
        spec.publish.push(Publish::loopback(0, 3000));
        spec.hostname = Some("shop-feat".into());
        spec.command = vec![
            "sh".into(),
            "-c".into(),
            "echo \"$0\"; rm -rf /".into(),
            "x; y".into(),
        ];
        assert_eq!(
            strings(spec.run_args()),
            [
                "run",
                "--detach",
                "--name=dual-probe-x-1",
                "--pull=never",
                "--label=dual.kind=probe",
                "--label=dual.managed=true",
                "--publish=127.0.0.1::3000",
                "--hostname=shop-feat",
                "dual-probe:latest",
                "sh",
                "-c",
                "echo \"$0\"; rm -rf /",
                "x; y",
            ]
        );
    }

    #[test]
    fn host_network_fixed_ports_user_and_mounts() {
        let mut spec = RunSpec::new("n", "img");
        spec.network = Network::Host;
        spec.publish.push(Publish::loopback(8080, 3000));
        spec.user = Some((1000, 1000));
        spec.bind_mounts
            .push(("/home/u/a b".into(), "/home/u/a b".into()));
        let args = strings(spec.run_args());
        assert!(args.contains(&"--network=host".to_owned()));
        assert!(args.contains(&"--publish=127.0.0.1:8080:3000".to_owned()));
        assert!(args.contains(&"--user=1000:1000".to_owned()));
        assert!(
            args.contains(&"--mount=type=bind,source=/home/u/a b,target=/home/u/a b".to_owned())
        );
        assert!(
            !args
                .iter()
                .any(|a| a.contains("privileged") || a.contains(".sock"))
        );
    }
}

/// How to run a command in a running container (`exec`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    pub container: String,
    pub workdir: Option<PathBuf>,
    pub user: Option<(u32, u32)>,
    pub env: Vec<(String, String)>,
    /// Keep stdin open (`-i`).
    pub interactive: bool,
    /// Allocate a TTY (`-t`).
    pub tty: bool,
    pub command: Vec<OsString>,
}

impl ExecSpec {
    pub fn exec_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["exec".into()];
        if self.interactive {
            args.push("--interactive".into());
        }
        if self.tty {
            args.push("--tty".into());
        }
        if let Some(workdir) = &self.workdir {
            let mut arg = OsString::from("--workdir=");
            arg.push(workdir);
            args.push(arg);
        }
        if let Some((uid, gid)) = self.user {
            args.push(format!("--user={uid}:{gid}").into());
        }
        for (key, value) in &self.env {
            args.push(format!("--env={key}={value}").into());
        }
        args.push(self.container.clone().into());
        args.extend(self.command.iter().cloned());
        args
    }
}
