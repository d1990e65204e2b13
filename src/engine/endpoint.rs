//! Where an engine's CLI sends its calls: this host's daemon, or one on
//! another host (`DOCKER_HOST=ssh://…`, a docker context, podman's
//! `CONTAINER_HOST` or a connection).
//!
//! A workspace records the endpoint it was launched on, and every later call
//! for it is pinned there (`DOCKER_HOST`, `CONTAINER_HOST` set for that call
//! alone): a shell without the user's remote settings still reaches the
//! workspace where it runs, and one with them still reaches a local one.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError, EngineKind};
use crate::remote::{Ssh, SshTarget};

/// An engine daemon elsewhere, as its CLI is told to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// `ssh://user@host[:port][/socket]`.
    pub url: String,
    /// The key a podman connection names (docker's ssh reads ~/.ssh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
}

/// Where an engine's containers live, as far as files and ports go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// This host: bind mounts see its files, its `/proc` shows their sockets.
    Local,
    /// Another host, reached over SSH.
    Remote { endpoint: Endpoint, ssh: SshTarget },
}

impl Location {
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote { .. })
    }

    /// The shared SSH connection to the engine's host, if it is remote.
    pub fn ssh(&self) -> Option<Ssh> {
        match self {
            Location::Local => None,
            Location::Remote { endpoint, ssh } => {
                Some(Ssh::new(ssh.clone(), endpoint.identity.clone()))
            }
        }
    }

    /// `remote: user@host` (lists, verify, the browser), or nothing.
    pub fn label(&self) -> Option<String> {
        match self {
            Location::Local => None,
            Location::Remote { ssh, .. } => Some(format!("remote: {ssh}")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{kind} is set to reach `{url}`, which dual cannot reach files and ports through")]
    Unsupported { kind: EngineKind, url: String },
    #[error("{kind}'s remote `{url}`: {source}")]
    BadTarget {
        kind: EngineKind,
        url: String,
        source: crate::remote::ssh::TargetError,
    },
    #[error("podman has no connection named `{0}`")]
    NoConnection(String),
    #[error("docker has no context named `{0}`")]
    NoContext(String),
    #[error("{target} does not answer over ssh: {detail}")]
    Unreachable { target: String, detail: String },
}

impl EndpointError {
    pub fn hint(&self) -> String {
        match self {
            EndpointError::Unsupported { kind, .. } => format!(
                "use an ssh:// address for a remote {kind} (e.g. DOCKER_HOST=ssh://user@host), or a local engine"
            ),
            EndpointError::BadTarget { .. } => {
                "write it as ssh://user@host[:port] (a host name or address, a user name)".into()
            }
            EndpointError::NoConnection(_) => {
                "`podman system connection list` shows the connections there are".into()
            }
            EndpointError::NoContext(_) => {
                "`docker context ls` shows the contexts there are".into()
            }
            EndpointError::Unreachable { target, .. } => format!(
                "check that `ssh {target} true` works without a prompt (dual runs ssh with BatchMode)"
            ),
        }
    }
}

impl Endpoint {
    /// The endpoint's location, its URL checked: only `ssh://` reaches
    /// another host in a way dual can follow with files and ports.
    pub fn location(&self, kind: EngineKind) -> Result<Location, EndpointError> {
        if self.url.starts_with("unix://") {
            return Ok(Location::Local);
        }
        if !self.url.starts_with("ssh://") {
            return Err(EndpointError::Unsupported {
                kind,
                url: self.url.clone(),
            });
        }
        let ssh = SshTarget::parse(&self.url).map_err(|source| EndpointError::BadTarget {
            kind,
            url: self.url.clone(),
            source,
        })?;
        Ok(Location::Remote {
            endpoint: self.clone(),
            ssh,
        })
    }

    /// The variables that pin one call of `kind`'s CLI to this endpoint, and
    /// those that would otherwise compete with them.
    pub(super) fn pinned_env(
        &self,
        kind: EngineKind,
    ) -> (Vec<(&'static str, String)>, &'static [&'static str]) {
        match kind {
            EngineKind::Docker => (vec![("DOCKER_HOST", self.url.clone())], &["DOCKER_CONTEXT"]),
            EngineKind::Podman => {
                let mut set = vec![("CONTAINER_HOST", self.url.clone())];
                if let Some(identity) = &self.identity {
                    set.push(("CONTAINER_SSHKEY", identity.display().to_string()));
                }
                (set, &["CONTAINER_CONNECTION"])
            }
        }
    }
}

/// `--context` and `--connection`, for this run of dual.
static CHOSEN: std::sync::OnceLock<(Option<String>, Option<String>)> = std::sync::OnceLock::new();

/// The docker context (`--context`) and podman connection (`--connection`)
/// this run of dual was given: they choose where a workspace goes on its
/// first launch, and where `verify` looks. Later calls for a workspace go
/// where it was launched, whatever these say.
pub fn choose(context: Option<String>, connection: Option<String>) {
    let _ = CHOSEN.set((context, connection));
}

fn chosen_context() -> Option<&'static str> {
    CHOSEN.get()?.0.as_deref()
}

fn chosen_connection() -> Option<&'static str> {
    CHOSEN.get()?.1.as_deref()
}

/// Whether `--context` or `--connection` chose an engine host for `kind`.
pub fn chosen_for(kind: EngineKind) -> bool {
    match kind {
        EngineKind::Docker => chosen_context().is_some(),
        EngineKind::Podman => chosen_connection().is_some(),
    }
}

/// A podman connection, as `podman system connection list` lists it.
#[derive(Deserialize)]
struct Connection {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "URI")]
    uri: String,
    #[serde(rename = "Identity", default)]
    identity: String,
}

impl Engine {
    /// The endpoint this engine's CLI reaches as the user configured it
    /// (their environment, docker's current context, podman's connection
    /// variables); `None` for this host's own daemon.
    pub fn configured_endpoint(&self) -> Result<Option<Endpoint>, EngineError> {
        if let Some(endpoint) = &self.endpoint {
            return Ok(Some(endpoint.clone()));
        }
        let found = match self.kind {
            EngineKind::Docker => self.docker_endpoint()?,
            EngineKind::Podman => self.podman_endpoint()?,
        };
        Ok(found.filter(|endpoint| !endpoint.url.starts_with("unix://")))
    }

    /// The engine's location: where its containers' files and ports are.
    pub fn location(&self) -> Result<Location, EngineError> {
        match self.configured_endpoint()? {
            None => Ok(Location::Local),
            Some(endpoint) => endpoint
                .location(self.kind)
                .map_err(|error| EngineError::Endpoint(Box::new(error))),
        }
    }

    fn docker_endpoint(&self) -> Result<Option<Endpoint>, EngineError> {
        let chosen = chosen_context();
        if chosen.is_none()
            && let Some(url) = non_empty_var("DOCKER_HOST")
        {
            return Ok(Some(Endpoint {
                url,
                identity: None,
            }));
        }
        // The context chosen, else the current one (DOCKER_CONTEXT, else
        // docker's config).
        let mut args = vec![
            "context",
            "inspect",
            "--format",
            "{{json .Endpoints.docker.Host}}",
        ];
        if let Some(name) = chosen {
            args.extend(["--", name]);
        }
        let output = self
            .run(&self.cmd(args))
            .map_err(|error| match (chosen, &error) {
                (Some(name), EngineError::Command { source, .. })
                    if source.stderr().contains("not found") =>
                {
                    EngineError::Endpoint(Box::new(EndpointError::NoContext(name.to_owned())))
                }
                _ => error,
            })?;
        let url: String = self.parse(serde_json::from_str(output.stdout.trim()).map_err(|e| {
            super::model::ParseError::new("docker context inspect", e, &output.stdout)
        }))?;
        Ok(Some(Endpoint {
            url,
            identity: None,
        }))
    }

    fn podman_endpoint(&self) -> Result<Option<Endpoint>, EngineError> {
        if let Some(name) = chosen_connection() {
            return self.podman_connection(name).map(Some);
        }
        if let Some(url) = non_empty_var("CONTAINER_HOST") {
            let identity = non_empty_var("CONTAINER_SSHKEY").map(PathBuf::from);
            return Ok(Some(Endpoint { url, identity }));
        }
        // Plain `podman` uses a connection only when told to by name.
        let Some(name) = non_empty_var("CONTAINER_CONNECTION") else {
            return Ok(None);
        };
        self.podman_connection(&name).map(Some)
    }

    /// A podman connection by name (`--connection`, `CONTAINER_CONNECTION`).
    pub fn podman_connection(&self, name: &str) -> Result<Endpoint, EngineError> {
        let output = self.run(&self.cmd(["system", "connection", "list", "--format", "json"]))?;
        let connections: Vec<Connection> =
            self.parse(serde_json::from_str(&output.stdout).map_err(|e| {
                super::model::ParseError::new("podman system connection list", e, &output.stdout)
            }))?;
        let chosen = connections
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                EngineError::Endpoint(Box::new(EndpointError::NoConnection(name.into())))
            })?;
        Ok(Endpoint {
            url: chosen.uri,
            identity: Some(chosen.identity)
                .filter(|i| !i.is_empty())
                .map(PathBuf::from),
        })
    }
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ssh_reaches_another_host_dual_can_follow() {
        let at = |url: &str| Endpoint {
            url: url.into(),
            identity: None,
        };
        assert_eq!(
            at("unix:///var/run/docker.sock")
                .location(EngineKind::Docker)
                .unwrap(),
            Location::Local
        );
        let remote = at("ssh://root@10.9.0.2")
            .location(EngineKind::Docker)
            .unwrap();
        assert_eq!(remote.label().unwrap(), "remote: root@10.9.0.2");
        assert!(matches!(
            at("tcp://10.9.0.2:2375").location(EngineKind::Docker),
            Err(EndpointError::Unsupported { .. })
        ));
        assert!(matches!(
            at("ssh://-oProxyCommand=x").location(EngineKind::Podman),
            Err(EndpointError::BadTarget { .. })
        ));
    }

    #[test]
    fn a_pinned_call_names_the_endpoint_and_clears_what_competes() {
        let endpoint = Endpoint {
            url: "ssh://core@h/run/podman/podman.sock".into(),
            identity: Some("/home/u/.ssh/id".into()),
        };
        let (set, cleared) = endpoint.pinned_env(EngineKind::Podman);
        assert_eq!(
            set,
            vec![
                (
                    "CONTAINER_HOST",
                    "ssh://core@h/run/podman/podman.sock".to_owned()
                ),
                ("CONTAINER_SSHKEY", "/home/u/.ssh/id".to_owned())
            ]
        );
        assert_eq!(cleared, ["CONTAINER_CONNECTION"]);
    }
}
