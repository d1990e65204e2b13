//! Engine failures as values a user can act on: each variant knows its hint.

use std::time::Duration;

use super::EngineKind;
use super::model::ParseError;
use crate::process::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("`{value}` is not a container engine dual knows (from {source_name})")]
    UnknownEngine {
        value: String,
        source_name: &'static str,
    },
    #[error("no container engine found: neither `docker` nor `podman` is on PATH")]
    NoEngine,
    #[error("no container engine answers")]
    NoneAnswers {
        #[source]
        first: Box<EngineError>,
    },
    #[error("`{program}` is not installed (not found on PATH)")]
    BinaryMissing { kind: EngineKind, program: String },
    /// Docker's daemon, or the service a remote podman connection names
    /// (local podman has no daemon).
    #[error("{}", unreachable_message(*kind))]
    DaemonUnreachable {
        kind: EngineKind,
        #[source]
        source: CommandError,
    },
    #[error("{kind} did not answer within {}s", .timeout.as_secs())]
    Hung {
        kind: EngineKind,
        timeout: Duration,
        #[source]
        source: CommandError,
    },
    #[error("no such {what}: `{name}`")]
    NotFound { what: &'static str, name: String },
    #[error("{kind} failed")]
    Command {
        kind: EngineKind,
        #[source]
        source: CommandError,
    },
    #[error(transparent)]
    Spec(#[from] super::spec::SpecError),
    #[error(transparent)]
    Endpoint(Box<super::endpoint::EndpointError>),
    /// A pinned engine on another host that did not answer: the link, or
    /// the host, or its daemon.
    #[error("{kind} on {target} does not answer")]
    RemoteUnreachable {
        kind: EngineKind,
        target: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error("{kind} printed something dual cannot read")]
    Parse {
        kind: EngineKind,
        #[source]
        source: ParseError,
    },
}

impl EngineError {
    /// The next thing the user should do, when dual knows it.
    pub fn hint(&self) -> Option<String> {
        match self {
            EngineError::UnknownEngine { .. } => {
                Some("use `--engine docker` or `--engine podman` (or set DUAL_ENGINE to one of them)".into())
            }
            EngineError::NoEngine => Some(
                "install Docker (`apt-get install docker.io`) or Podman (`apt-get install podman`), then run `dual verify`"
                    .into(),
            ),
            EngineError::NoneAnswers { first } => first.hint(),
            EngineError::BinaryMissing { kind, .. } => Some(format!(
                "install {kind} (Debian: `apt-get install {}`) or choose the other engine with `--engine`",
                kind.debian_package()
            )),
            EngineError::DaemonUnreachable { kind, source } => Some(daemon_hint(*kind, source.stderr())),
            EngineError::Hung { kind, .. } => Some(hung_hint(*kind)),
            EngineError::NotFound { .. } => None,
            EngineError::Spec(_) => Some(
                "a value from the repo's .dual.toml or a path dual made holds characters the engine would read as syntax: rename it".into(),
            ),
            EngineError::Command { kind, source } => known_fix(*kind, source.stderr()),
            EngineError::Endpoint(error) => Some(error.hint()),
            EngineError::RemoteUnreachable { kind, target, .. } => Some(format!(
                "check the link and the host's {kind}: `ssh {target} {} info`; the workspace stays on that host, and dual reaches it again once it answers",
                kind.program()
            )),
            EngineError::Parse { kind, .. } => Some(format!(
                "this {kind} version prints JSON dual does not understand; please report it with the output of `{} version`",
                kind.program()
            )),
        }
    }

    /// What the engine itself printed on stderr, when it ran and failed.
    pub fn engine_stderr(&self) -> Option<&str> {
        match self {
            EngineError::Command { source, .. } | EngineError::DaemonUnreachable { source, .. } => {
                Some(source.stderr()).filter(|stderr| !stderr.is_empty())
            }
            _ => None,
        }
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self, EngineError::Command { source, .. } if source.is_interrupted())
    }
}

fn unreachable_message(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Docker => "the docker daemon is not reachable",
        EngineKind::Podman => "the podman service this connection names is not reachable",
    }
}

/// A call that ran past its timeout. Docker's CLI only asks its daemon, so
/// the daemon hangs; podman has no daemon, its CLI does the work, and what
/// makes it slow is the machine or its storage.
fn hung_hint(kind: EngineKind) -> String {
    let patience = crate::settings::ENGINE_TIMEOUT;
    match kind {
        EngineKind::Docker => format!(
            "the docker daemon accepted the connection but never answered: restart it (`systemctl restart {}`), check DOCKER_HOST / the active context, or raise {patience} on a busy machine",
            kind.service_name()
        ),
        EngineKind::Podman => format!(
            "podman runs no daemon: its own command was this slow, on a busy machine or waiting on its storage (another podman holding the lock). Check that `podman info` answers; for rootless podman, that `podman system migrate` and /etc/subuid are in order; or raise {patience}"
        ),
    }
}

fn daemon_hint(kind: EngineKind, stderr: &str) -> String {
    let stderr = stderr.to_ascii_lowercase();
    if stderr.contains("permission denied") {
        return format!(
            "your user may not use the {kind} socket: add it to the `docker` group (`sudo usermod -aG docker $USER`, then log in again) or use rootless {kind}"
        );
    }
    match kind {
        EngineKind::Docker => {
            let target = std::env::var("DOCKER_HOST")
                .map(|host| format!("DOCKER_HOST={host}"))
                .unwrap_or_else(|_| "the current docker context".into());
            format!(
                "start the daemon (`sudo systemctl start docker`, or `dockerd &`), or fix {target} (`docker context ls` shows the choices)"
            )
        }
        EngineKind::Podman => "podman runs no daemon, but this one is set to use a service (CONTAINER_HOST or a default connection): check `podman system connection list`, start the service with `systemctl --user start podman.socket`, or remove the connection to use local podman".into(),
    }
}

/// Failures whose cause is known from the engine's own words (ENGINES.md).
pub(crate) fn known_fix(kind: EngineKind, stderr: &str) -> Option<String> {
    if stderr.contains("cgroups in hybrid mode not supported") {
        return Some(
            "crun cannot run on this host's hybrid cgroups: install runc and set `runtime = \"runc\"` and `cgroup_manager = \"cgroupfs\"` under [engine] in /etc/containers/containers.conf"
                .into(),
        );
    }
    if stderr.contains("error setting rlimit") {
        return Some(
            "the runtime may not raise limits above the host's: set `default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]` (at or under `ulimit -Hn`) under [containers] in /etc/containers/containers.conf"
                .into(),
        );
    }
    if stderr.contains("/dev/net/tun") {
        return Some(
            "rootless networking (slirp4netns) cannot open /dev/net/tun: give it its usual mode with `sudo chmod 0666 /dev/net/tun`"
                .into(),
        );
    }
    if stderr.contains("port is already allocated") || stderr.contains("address already in use") {
        return Some(
            "another process or container holds that host port: pick another or stop it".into(),
        );
    }
    if stderr.contains("pull access denied")
        || stderr.contains("manifest unknown")
        || stderr.contains("image not known")
        || stderr.contains("No such image")
    {
        return Some(format!(
            "the image is not present locally and cannot be pulled: build it (`{} build`) or list what exists with `{} images`",
            kind.program(),
            kind.program()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_host_failures_name_the_config_fix() {
        let hybrid = "Error: OCI runtime error: crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2";
        assert!(
            known_fix(EngineKind::Podman, hybrid)
                .unwrap()
                .contains("runtime = \"runc\"")
        );
        let rlimit = "Error: runc: error setting rlimit type 7: operation not permitted";
        assert!(
            known_fix(EngineKind::Podman, rlimit)
                .unwrap()
                .contains("default_ulimits")
        );
        let tun =
            r#"Error: /usr/bin/slirp4netns failed: "open(\"/dev/net/tun\"): Permission denied"#;
        assert!(
            known_fix(EngineKind::Podman, tun)
                .unwrap()
                .contains("chmod 0666 /dev/net/tun")
        );
        assert_eq!(known_fix(EngineKind::Podman, "something else"), None);
    }

    fn hung(kind: EngineKind) -> EngineError {
        EngineError::Hung {
            kind,
            timeout: Duration::from_secs(5),
            source: CommandError::ProgramNotFound {
                program: kind.program().into(),
            },
        }
    }

    #[test]
    fn a_slow_podman_is_never_blamed_on_a_daemon() {
        let hint = hung(EngineKind::Podman).hint().unwrap();
        assert!(hint.starts_with("podman runs no daemon"), "{hint}");
        assert!(!hint.contains("systemctl restart"), "{hint}");
        assert!(
            hint.contains("`podman info`") && hint.contains("DUAL_ENGINE_TIMEOUT"),
            "{hint}"
        );
        let hint = hung(EngineKind::Docker).hint().unwrap();
        assert!(
            hint.contains("docker daemon") && hint.contains("systemctl restart docker"),
            "{hint}"
        );
        assert_eq!(
            hung(EngineKind::Podman).to_string(),
            "podman did not answer within 5s"
        );
    }
}
