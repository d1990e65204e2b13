//! What a container should be, turned into `run`/`create` arguments by a pure
//! function so that the argv can be tested without an engine.
//!
//! There is deliberately no way to ask for `--privileged`, extra capabilities
//! or the engine's socket: nothing dual starts may control the engine. Every
//! container runs with no capabilities and no way to gain privileges
//! (`--cap-drop=ALL`, `no-new-privileges`): a setuid binary in an image the
//! repo chose stays an ordinary program.
//!
//! Values reach the engine's own syntax: `--mount` is a list of `key=value`
//! fields separated by commas (docker reads it as CSV, podman splits on
//! commas), so a path with a comma or a quote could add fields of its own
//! (`x,type=bind,source=/` mounts the host's root). Such values are refused,
//! never escaped: the two engines do not agree on an escape.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

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
    /// `--user uid:gid`: both, so that the engine adds no group of the
    /// image's to them.
    pub user: Option<(u32, u32)>,
    /// Rootless podman: map the host user to the same uid inside
    /// (`--userns=keep-id`), else uid N inside is a subordinate id outside.
    pub keep_host_uid: bool,
    pub bind_mounts: Vec<BindMount>,
    /// Bind mounts get `nosuid` (podman has the option; docker does not).
    pub nosuid_binds: bool,
    /// Named volumes: (volume, target path).
    pub volumes: Vec<(String, PathBuf)>,
    /// Named volumes mounted read-only: (volume, target path).
    pub readonly_volumes: Vec<(String, PathBuf)>,
    /// Paths mounted as world-writable tmpfs.
    pub tmpfs: Vec<String>,
    pub pull: Pull,
    /// `--user=NAME`: a user of the image's, by name (a sidecar's); `user`
    /// wins where both are set.
    pub user_name: Option<String>,
    /// `--entrypoint`: replaces the image's.
    pub entrypoint: Option<String>,
    /// `--restart=on-failure`: the engine starts it again when it crashes.
    pub restart_on_failure: bool,
    /// `--read-only`: its root filesystem cannot be written.
    pub read_only: bool,
    /// `--add-host=NAME:ADDRESS`: names its `/etc/hosts` resolves.
    pub hosts: Vec<(String, std::net::IpAddr)>,
    pub command: Vec<String>,
}

/// A host directory mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub readonly: bool,
}

impl BindMount {
    pub fn new(source: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        BindMount {
            source: source.into(),
            target: target.into(),
            readonly: false,
        }
    }

    pub fn readonly(mut self) -> Self {
        self.readonly = true;
        self
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("`{value}` cannot be given to the engine as {what}: {why}")]
    Refused {
        what: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Whether `value` can stand as one field of `--mount`: no comma or quote
/// (they start new fields or quoting), no control character, and not empty.
pub fn check_mount_field(what: &'static str, value: &Path) -> Result<(), SpecError> {
    let refused_value = |why| SpecError::Refused {
        what,
        value: value.display().to_string(),
        why,
    };
    let Some(text) = value.to_str() else {
        return Err(refused_value("it is not valid UTF-8"));
    };
    if text.is_empty() {
        return Err(refused_value("it is empty"));
    }
    if text.contains([',', '"', '\'']) {
        return Err(refused_value(
            "a comma or a quote would start another field of `--mount`",
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(refused_value("it holds a control character"));
    }
    Ok(())
}

/// A container's name as `--network=container:NAME` takes it.
fn check_container_name(name: &str) -> Result<(), SpecError> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SpecError::Refused {
            what: "a container to join",
            value: name.escape_debug().to_string(),
            why: "a container name is letters, digits, `_`, `.` and `-`",
        })
    }
}

/// `--user=NAME[:GROUP]`: names or ids, never an option, never root.
fn check_user_name(name: &str) -> Result<(), SpecError> {
    let refused = |why| SpecError::Refused {
        what: "a user",
        value: name.escape_debug().to_string(),
        why,
    };
    let part_ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with('-')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    if !name.split(':').all(part_ok) || name.split(':').count() > 2 {
        return Err(refused("a user is `name`, `uid` or `uid:gid`"));
    }
    let user = name.split(':').next().unwrap_or_default();
    if user == "root" || (user.bytes().all(|b| b.is_ascii_digit()) && user.parse() == Ok(0u32)) {
        return Err(refused("nothing dual starts runs as root"));
    }
    Ok(())
}

/// Whether `image` can stand as the image argument: an option-looking or
/// blank value would be read as something else.
pub fn check_image_argument(image: &str) -> Result<(), SpecError> {
    let refused_value = |why| SpecError::Refused {
        what: "an image",
        value: image.to_owned(),
        why,
    };
    if image.is_empty() || image.starts_with('-') {
        return Err(refused_value(
            "an image name cannot be empty or start with `-`",
        ));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refused_value(
            "an image name has no spaces or control characters",
        ));
    }
    Ok(())
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
    /// No network at all: only a loopback of its own.
    None,
    /// Joins the namespace of this container (a sidecar joins its
    /// workspace's): the two share `localhost`.
    Container(String),
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
    pub fn run_args(&self) -> Result<Vec<OsString>, SpecError> {
        let mut args: Vec<OsString> = vec!["run".into(), "--detach".into()];
        self.push_options_and_command(&mut args)?;
        Ok(args)
    }

    /// Arguments for `create`: the container made, not started, so that
    /// files can be put in it first (see `workspace::identity`).
    pub fn create_args(&self) -> Result<Vec<OsString>, SpecError> {
        let mut args: Vec<OsString> = vec!["create".into()];
        self.push_options_and_command(&mut args)?;
        Ok(args)
    }

    fn push_options_and_command(&self, args: &mut Vec<OsString>) -> Result<(), SpecError> {
        check_image_argument(&self.image)?;
        args.push(format!("--name={}", self.name).into());
        args.push(
            match self.pull {
                Pull::Never => "--pull=never",
                Pull::Missing => "--pull=missing",
            }
            .into(),
        );
        args.push("--cap-drop=ALL".into());
        args.push("--security-opt=no-new-privileges".into());
        if self.read_only {
            args.push("--read-only".into());
        }
        for (key, value) in &self.labels {
            args.push(format!("--label={key}={value}").into());
        }
        match &self.network {
            Network::Default => {}
            Network::Host => args.push("--network=host".into()),
            Network::None => args.push("--network=none".into()),
            Network::Container(name) => {
                check_container_name(name)?;
                args.push(format!("--network=container:{name}").into());
            }
        }
        if self.restart_on_failure {
            args.push("--restart=on-failure".into());
        }
        if let Some(entrypoint) = &self.entrypoint {
            if entrypoint.contains('\0') {
                return Err(SpecError::Refused {
                    what: "an entrypoint",
                    value: entrypoint.escape_debug().to_string(),
                    why: "it holds a NUL character",
                });
            }
            args.push(format!("--entrypoint={entrypoint}").into());
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
        for (name, address) in &self.hosts {
            let plain = !name.is_empty()
                && !name.starts_with('-')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !plain {
                return Err(SpecError::Refused {
                    what: "a host name",
                    value: name.escape_debug().to_string(),
                    why: "a host name is letters, digits, `-`, `_` and `.`",
                });
            }
            args.push(format!("--add-host={name}:{address}").into());
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
        } else if let Some(name) = &self.user_name {
            check_user_name(name)?;
            args.push(format!("--user={name}").into());
        }
        if self.keep_host_uid {
            args.push("--userns=keep-id".into());
        }
        for mount in &self.bind_mounts {
            check_mount_field("a mount source", &mount.source)?;
            check_mount_field("a mount target", &mount.target)?;
            // --mount, unlike -v, refuses a missing host path instead of creating it as root.
            let mut arg = OsString::from("--mount=type=bind,source=");
            arg.push(&mount.source);
            arg.push(",target=");
            arg.push(&mount.target);
            if mount.readonly {
                arg.push(",readonly");
            }
            if self.nosuid_binds {
                arg.push(",nosuid");
            }
            args.push(arg);
        }
        let volumes = self.volumes.iter().map(|volume| (volume, false));
        let readonly = self.readonly_volumes.iter().map(|volume| (volume, true));
        for ((volume, target), readonly) in volumes.chain(readonly) {
            check_mount_field("a volume name", Path::new(volume))?;
            check_mount_field("a volume target", target)?;
            let mut arg = OsString::from(format!("--mount=type=volume,source={volume},target="));
            arg.push(target);
            if readonly {
                // Both engines read `ro` on a volume; podman refuses `readonly` there.
                arg.push(",ro");
            }
            args.push(arg);
        }
        for path in &self.tmpfs {
            check_mount_field("a tmpfs path", Path::new(path))?;
            args.push(format!("--tmpfs={path}:mode=1777").into());
        }
        // Nothing after `--` is read as an option, whatever the image's name.
        args.push("--".into());
        args.push(self.image.clone().into());
        args.extend(self.command.iter().map(OsString::from));
        Ok(())
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
            strings(spec.run_args().unwrap()),
            [
                "run",
                "--detach",
                "--name=dual-probe-x-1",
                "--pull=never",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                "--label=dual.kind=probe",
                "--label=dual.managed=true",
                "--publish=127.0.0.1::3000",
                "--hostname=shop-feat",
                "--",
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
            .push(BindMount::new("/home/u/a b", "/home/u/a b"));
        spec.bind_mounts
            .push(BindMount::new("/home/u/a b/.git", "/home/u/a b/.git").readonly());
        spec.nosuid_binds = true;
        let args = strings(spec.create_args().unwrap());
        assert_eq!(args[0], "create");
        assert!(args.contains(&"--network=host".to_owned()));
        assert!(args.contains(&"--publish=127.0.0.1:8080:3000".to_owned()));
        assert!(args.contains(&"--user=1000:1000".to_owned()));
        assert!(args.contains(
            &"--mount=type=bind,source=/home/u/a b,target=/home/u/a b,nosuid".to_owned()
        ));
        assert!(args.contains(
            &"--mount=type=bind,source=/home/u/a b/.git,target=/home/u/a b/.git,readonly,nosuid"
                .to_owned()
        ));
        assert!(
            !args
                .iter()
                .any(|a| a.contains("privileged") || a.contains(".sock"))
        );
    }

    #[test]
    fn a_value_that_would_add_mount_fields_is_refused() {
        for target in [
            "/w/x,type=bind,source=/,target=/hostroot",
            "/w/\"x",
            "/w/'x",
            "/w/x\ny",
            "",
        ] {
            let mut spec = RunSpec::new("n", "img");
            spec.volumes.push(("v".into(), PathBuf::from(target)));
            assert!(
                matches!(spec.run_args(), Err(SpecError::Refused { .. })),
                "{target:?}"
            );
            let mut spec = RunSpec::new("n", "img");
            spec.bind_mounts.push(BindMount::new(target, "/t"));
            assert!(spec.create_args().is_err(), "{target:?}");
        }
        let mut spec = RunSpec::new("n", "img");
        spec.volumes.push(("v,type=bind".into(), "/t".into()));
        assert!(spec.run_args().is_err());
    }

    #[test]
    fn an_image_is_never_an_option() {
        for image in ["--privileged", "-v/:/h", "", "a b", "x\n--rm"] {
            assert!(RunSpec::new("n", image).run_args().is_err(), "{image:?}");
        }
        let args = strings(RunSpec::new("n", "ghcr.io/a/b:1").run_args().unwrap());
        let dashes = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(args[dashes + 1], "ghcr.io/a/b:1");
    }

    #[test]
    fn every_container_drops_privileges() {
        let args = strings(RunSpec::new("n", "img").run_args().unwrap());
        assert!(args.contains(&"--cap-drop=ALL".to_owned()));
        assert!(args.contains(&"--security-opt=no-new-privileges".to_owned()));
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
