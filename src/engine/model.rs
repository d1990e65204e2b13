//! Typed views of what `docker` and `podman` print as JSON.
//!
//! The two engines agree on `inspect` but not elsewhere: `ps` is JSON lines with
//! labels flattened to one `a=b,c=d` string on docker and a JSON array with a
//! label map on podman; `events` names the same happenings differently
//! (`die`/`died`, `destroy`/`remove`); `stats` prints binary units on docker
//! (`516KiB`) and decimal ones on podman (`716.8kB`). Each parser here takes the
//! engine's raw stdout and returns one engine-neutral type.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::EngineKind;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
#[error("could not read the output of `{command}`: {reason}\n  output began: {snippet}")]
pub struct ParseError {
    pub command: &'static str,
    pub reason: String,
    pub snippet: String,
}

impl ParseError {
    pub fn new(command: &'static str, reason: impl ToString, raw: &str) -> Self {
        let snippet: String = raw.trim().chars().take(160).collect();
        ParseError {
            command,
            reason: reason.to_string(),
            snippet,
        }
    }
}

fn from_json<T: DeserializeOwned>(command: &'static str, raw: &str) -> Result<T, ParseError> {
    serde_json::from_str(raw).map_err(|error| ParseError::new(command, error, raw))
}

/// Parses JSON lines, skipping blank ones.
fn from_json_lines<T: DeserializeOwned>(
    command: &'static str,
    raw: &str,
) -> Result<Vec<T>, ParseError> {
    raw.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| from_json(command, line))
        .collect()
}

/// `image inspect --format '{{json .Config.Env}}'`: `null` where the image
/// sets no variable.
pub fn parse_image_env(raw: &str) -> Result<Vec<String>, ParseError> {
    let entries: Option<Vec<String>> = from_json("image inspect", raw.trim())?;
    Ok(entries.unwrap_or_default())
}

// ---------------------------------------------------------------- version

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Version {
    pub client: Option<String>,
    /// Only docker and remote podman have a server apart from the client.
    pub server: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawVersion {
    client: Option<RawVersionPart>,
    server: Option<RawVersionPart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawVersionPart {
    version: Option<String>,
}

pub fn parse_version(raw: &str) -> Result<Version, ParseError> {
    let version: RawVersion = from_json("version", raw)?;
    Ok(Version {
        client: version.client.and_then(|part| part.version),
        server: version.server.and_then(|part| part.version),
    })
}

// ---------------------------------------------------------------- info

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Info {
    pub server_version: String,
    pub rootless: bool,
    pub operating_system: String,
    pub kernel: String,
    pub cgroup_version: String,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub hostname: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerInfo {
    server_version: String,
    #[serde(default)]
    security_options: Vec<String>,
    #[serde(default)]
    operating_system: String,
    #[serde(default)]
    kernel_version: String,
    #[serde(default)]
    cgroup_version: String,
    #[serde(rename = "NCPU", default)]
    ncpu: u64,
    #[serde(default)]
    mem_total: u64,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct PodmanInfo {
    host: PodmanHost,
    version: RawVersionPart,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodmanHost {
    security: PodmanSecurity,
    #[serde(default)]
    distribution: Option<PodmanDistribution>,
    #[serde(default)]
    kernel: String,
    #[serde(default)]
    cgroup_version: String,
    #[serde(default)]
    cpus: u64,
    #[serde(default)]
    mem_total: u64,
    #[serde(default)]
    hostname: String,
}

#[derive(Deserialize)]
struct PodmanSecurity {
    rootless: bool,
}

#[derive(Deserialize)]
struct PodmanDistribution {
    distribution: String,
    #[serde(default)]
    version: String,
}

pub fn parse_info(kind: EngineKind, raw: &str) -> Result<Info, ParseError> {
    match kind {
        EngineKind::Docker => {
            let info: DockerInfo = from_json("info", raw)?;
            Ok(Info {
                rootless: info
                    .security_options
                    .iter()
                    .any(|option| option.split(',').any(|part| part == "name=rootless")),
                server_version: info.server_version,
                operating_system: info.operating_system,
                kernel: info.kernel_version,
                cgroup_version: format!("v{}", info.cgroup_version.trim_start_matches('v')),
                cpus: info.ncpu,
                memory_bytes: info.mem_total,
                hostname: info.name,
            })
        }
        EngineKind::Podman => {
            let info: PodmanInfo = from_json("info", raw)?;
            let host = info.host;
            Ok(Info {
                server_version: info.version.version.unwrap_or_default(),
                rootless: host.security.rootless,
                operating_system: host
                    .distribution
                    .map(|d| {
                        format!("{} {}", d.distribution, d.version)
                            .trim()
                            .to_owned()
                    })
                    .unwrap_or_default(),
                kernel: host.kernel,
                cgroup_version: host.cgroup_version,
                cpus: host.cpus,
                memory_bytes: host.mem_total,
                hostname: host.hostname,
            })
        }
    }
}

// ---------------------------------------------------------------- inspect

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub status: String,
    pub running: bool,
    pub pid: u32,
    pub exit_code: i64,
    /// When it last started, as the engine wrote it (RFC 3339).
    pub started_at: String,
    /// How often the engine started it again after it exited (its restart
    /// policy).
    pub restart_count: u32,
    pub labels: Labels,
    /// Every network the container is on, with its IPv4 address when it has one.
    pub networks: BTreeMap<String, Option<Ipv4Addr>>,
    pub published: Vec<PublishedPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: String,
    pub host_port: u16,
}

impl Container {
    /// The first IPv4 address on any network: where the host may reach it.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.networks.values().flatten().next().copied()
    }

    /// The host address a container port is published on, if it is.
    pub fn published_port(&self, container_port: u16) -> Option<&PublishedPort> {
        self.published
            .iter()
            .find(|port| port.container_port == container_port && port.protocol == "tcp")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    id: String,
    name: String,
    #[serde(default)]
    restart_count: u32,
    #[serde(default)]
    image_name: Option<String>,
    state: RawState,
    config: RawConfig,
    network_settings: RawNetworkSettings,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawState {
    status: String,
    running: bool,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    exit_code: i64,
    #[serde(default)]
    started_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: Option<Labels>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNetworkSettings {
    #[serde(default)]
    networks: Option<BTreeMap<String, RawNetwork>>,
    #[serde(default)]
    ports: Option<BTreeMap<String, Option<Vec<RawBinding>>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNetwork {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawBinding {
    #[serde(default)]
    host_ip: String,
    #[serde(default)]
    host_port: String,
}

pub fn parse_inspect(raw: &str) -> Result<Vec<Container>, ParseError> {
    let raw_containers: Vec<RawContainer> = from_json("container inspect", raw)?;
    raw_containers
        .into_iter()
        .map(|container| container_from_raw(container, raw))
        .collect()
}

fn container_from_raw(container: RawContainer, raw: &str) -> Result<Container, ParseError> {
    let networks = container
        .network_settings
        .networks
        .unwrap_or_default()
        .into_iter()
        .map(|(name, network)| (name, network.ip_address.parse().ok()))
        .collect();
    let mut published = Vec::new();
    for (key, bindings) in container.network_settings.ports.unwrap_or_default() {
        let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let container_port = port
            .parse()
            .map_err(|_| ParseError::new("container inspect", format!("bad port `{key}`"), raw))?;
        for binding in bindings.unwrap_or_default() {
            let host_port = binding.host_port.parse().map_err(|_| {
                ParseError::new(
                    "container inspect",
                    format!("bad host port `{}`", binding.host_port),
                    raw,
                )
            })?;
            published.push(PublishedPort {
                container_port,
                protocol: protocol.to_owned(),
                host_ip: binding.host_ip,
                host_port,
            });
        }
    }
    Ok(Container {
        id: container.id,
        name: container.name.trim_start_matches('/').to_owned(),
        // Podman keeps the name the user typed apart from the resolved image.
        image: container.image_name.unwrap_or(container.config.image),
        status: container.state.status,
        running: container.state.running,
        pid: container.state.pid,
        exit_code: container.state.exit_code,
        started_at: container.state.started_at,
        restart_count: container.restart_count,
        labels: container.config.labels.unwrap_or_default(),
        networks,
        published,
    })
}

// ---------------------------------------------------------------- ps

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub labels: Labels,
}

/// A container's state as `ps` gives it: the same words on both engines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// A word this version of dual does not know (a newer engine's).
    #[serde(untagged)]
    Other(String),
}

impl ContainerState {
    fn parse(word: &str) -> ContainerState {
        // Podman capitalised some states in older versions (`Exited`).
        match word.to_ascii_lowercase().as_str() {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" | "stopped" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            _ => ContainerState::Other(word.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Other(word) => word,
        }
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerPsLine {
    #[serde(rename = "ID")]
    id: String,
    names: String,
    image: String,
    state: String,
    #[serde(default)]
    labels: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodmanPsEntry {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    image: String,
    state: String,
    #[serde(default)]
    labels: Option<Labels>,
}

#[derive(Deserialize)]
struct PodmanNetwork {
    #[serde(default)]
    network_interface: String,
}

/// `podman network inspect`: each network's host interface (its bridge);
/// networks without one (macvlan, host) are left out.
pub fn parse_network_interfaces(raw: &str) -> Result<Vec<String>, ParseError> {
    let networks: Vec<PodmanNetwork> = from_json("network inspect", raw)?;
    Ok(networks
        .into_iter()
        .map(|n| n.network_interface)
        .filter(|name| !name.is_empty())
        .collect())
}

pub fn parse_ps(kind: EngineKind, raw: &str) -> Result<Vec<ContainerSummary>, ParseError> {
    match kind {
        EngineKind::Docker => Ok(from_json_lines::<DockerPsLine>("ps", raw)?
            .into_iter()
            .map(|line| ContainerSummary {
                id: line.id,
                name: line.names.split(',').next().unwrap_or_default().to_owned(),
                image: line.image,
                state: ContainerState::parse(&line.state),
                labels: parse_label_list(&line.labels),
            })
            .collect()),
        EngineKind::Podman => {
            // Podman prints `[]` for none, but older versions printed nothing.
            if raw.trim().is_empty() {
                return Ok(Vec::new());
            }
            Ok(from_json::<Vec<PodmanPsEntry>>("ps", raw)?
                .into_iter()
                .map(|entry| ContainerSummary {
                    id: entry.id,
                    name: entry.names.into_iter().next().unwrap_or_default(),
                    image: entry.image,
                    state: ContainerState::parse(&entry.state),
                    labels: entry.labels.unwrap_or_default(),
                })
                .collect())
        }
    }
}

/// Docker's `ps` flattens labels to `a=b,c=d`. A value with a comma cannot be
/// told apart from two labels there; dual's own label values never hold one,
/// and `inspect` gives the exact map when it matters.
fn parse_label_list(raw: &str) -> Labels {
    raw.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (pair.to_owned(), String::new()),
        })
        .collect()
}

// ---------------------------------------------------------------- volumes

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Volume {
    pub name: String,
    pub labels: Labels,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerVolumeLine {
    name: String,
    #[serde(default)]
    labels: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodmanVolume {
    name: String,
    #[serde(default)]
    labels: Option<Labels>,
}

/// `volume ls` as JSON: lines with flattened labels on docker, an array with
/// a label map on podman (like `ps`).
pub fn parse_volumes(kind: EngineKind, raw: &str) -> Result<Vec<Volume>, ParseError> {
    match kind {
        EngineKind::Docker => Ok(from_json_lines::<DockerVolumeLine>("volume ls", raw)?
            .into_iter()
            .map(|v| Volume {
                name: v.name,
                labels: parse_label_list(&v.labels),
            })
            .collect()),
        EngineKind::Podman => {
            if raw.trim().is_empty() {
                return Ok(Vec::new());
            }
            Ok(from_json::<Vec<PodmanVolume>>("volume ls", raw)?
                .into_iter()
                .map(|v| Volume {
                    name: v.name,
                    labels: v.labels.unwrap_or_default(),
                })
                .collect())
        }
    }
}

// ---------------------------------------------------------------- events

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// `container`, `image`, `network`, …
    pub kind: String,
    pub action: EventAction,
    pub id: String,
    pub name: String,
    /// The container's labels (and, on docker, `name` and `image`).
    pub attributes: Labels,
}

/// What happened to a container, in one vocabulary for both engines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventAction {
    Create,
    Start,
    /// The main process ended (`die` on docker, `died` on podman).
    Die,
    /// The container is gone (`destroy` on docker, `remove` on podman).
    Destroy,
    Other(String),
}

impl EventAction {
    fn from_engine_word(word: &str) -> Self {
        match word {
            "create" => EventAction::Create,
            "start" => EventAction::Start,
            "die" | "died" => EventAction::Die,
            "destroy" | "remove" => EventAction::Destroy,
            other => EventAction::Other(other.to_owned()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEvent {
    #[serde(rename = "Type")]
    kind: String,
    action: String,
    actor: DockerActor,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerActor {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    attributes: Labels,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodmanEvent {
    #[serde(rename = "Type")]
    kind: String,
    status: String,
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    attributes: Option<Labels>,
}

/// Parses one line of the `events` stream.
pub fn parse_event(kind: EngineKind, line: &str) -> Result<Event, ParseError> {
    match kind {
        EngineKind::Docker => {
            let event: DockerEvent = from_json("events", line)?;
            Ok(Event {
                kind: event.kind,
                // Docker appends details to some actions: `exec_start: sh -c …`.
                action: EventAction::from_engine_word(
                    event.action.split(':').next().unwrap_or_default(),
                ),
                id: event.actor.id,
                name: event
                    .actor
                    .attributes
                    .get("name")
                    .cloned()
                    .unwrap_or_default(),
                attributes: event.actor.attributes,
            })
        }
        EngineKind::Podman => {
            let event: PodmanEvent = from_json("events", line)?;
            Ok(Event {
                kind: event.kind,
                action: EventAction::from_engine_word(&event.status),
                id: event.id,
                name: event.name,
                attributes: event.attributes.unwrap_or_default(),
            })
        }
    }
}

// ---------------------------------------------------------------- stats

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub name: String,
    pub memory_bytes: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerStats {
    name: String,
    mem_usage: String,
}

#[derive(Deserialize)]
struct PodmanStats {
    name: String,
    mem_usage: String,
}

pub fn parse_stats(kind: EngineKind, raw: &str) -> Result<Vec<Stats>, ParseError> {
    let pairs: Vec<(String, String)> = match kind {
        EngineKind::Docker => from_json_lines::<DockerStats>("stats", raw)?
            .into_iter()
            .map(|s| (s.name, s.mem_usage))
            .collect(),
        EngineKind::Podman => from_json::<Vec<PodmanStats>>("stats", raw)?
            .into_iter()
            .map(|s| (s.name, s.mem_usage))
            .collect(),
    };
    pairs
        .into_iter()
        .map(|(name, usage)| {
            let used = usage.split('/').next().unwrap_or_default();
            let memory_bytes = parse_size(used).ok_or_else(|| {
                ParseError::new("stats", format!("bad memory figure `{usage}`"), raw)
            })?;
            Ok(Stats { name, memory_bytes })
        })
        .collect()
}

/// `516KiB` → 528384, `716.8kB` → 716800, `0B` → 0.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim() {
        "B" | "" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * factor).round() as u64)
}

/// A workspace's container as `inspect` gives it, for tests: `ports` as its
/// label declares them, `published` as (container port, host port) pairs
/// on loopback.
#[cfg(test)]
pub fn test_container(
    name: &str,
    running: bool,
    ip: Option<[u8; 4]>,
    ports: &[u16],
    published: &[(u16, u16)],
) -> Container {
    Container {
        id: format!("id-{name}"),
        name: format!("dual-{name}"),
        image: "img".into(),
        status: if running { "running" } else { "exited" }.into(),
        running,
        pid: 1,
        exit_code: 0,
        started_at: String::new(),
        restart_count: 0,
        labels: super::labels::WorkspaceLabels {
            owner: "owner".into(),
            workspace: name.to_owned(),
            ports: ports.to_vec(),
            ..super::labels::WorkspaceLabels::default()
        }
        .to_labels(),
        networks: BTreeMap::from([("bridge".to_owned(), ip.map(Into::into))]),
        published: published
            .iter()
            .map(|&(container_port, host_port)| PublishedPort {
                container_port,
                protocol: "tcp".into(),
                host_ip: "127.0.0.1".into(),
                host_port,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_both_unit_systems() {
        assert_eq!(parse_size("516KiB"), Some(528_384));
        assert_eq!(parse_size("716.8kB"), Some(716_800));
        assert_eq!(parse_size("0B"), Some(0));
        assert_eq!(parse_size("1.5GiB"), Some(1_610_612_736));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn docker_label_list_splits_on_first_equals() {
        let labels = parse_label_list("dual.kind=probe,url=a=b,flag");
        assert_eq!(labels["dual.kind"], "probe");
        assert_eq!(labels["url"], "a=b");
        assert_eq!(labels["flag"], "");
        assert!(parse_label_list("").is_empty());
    }

    #[test]
    fn volumes_from_both_engines() {
        let docker = parse_volumes(
            EngineKind::Docker,
            r#"{"Availability":"N/A","Driver":"local","Labels":"a=1,b=2","Name":"tv1","Scope":"local"}"#,
        )
        .unwrap();
        assert_eq!(docker[0].name, "tv1");
        assert_eq!(docker[0].labels["b"], "2");
        let podman = parse_volumes(
            EngineKind::Podman,
            r#"[{"Name":"tv1","Driver":"local","Labels":{"a":"1","b":"2"}},{"Name":"tv2","Labels":null}]"#,
        )
        .unwrap();
        assert_eq!(podman.len(), 2);
        assert!(podman[1].labels.is_empty());
        assert!(parse_volumes(EngineKind::Podman, "").unwrap().is_empty());
    }

    #[test]
    fn event_words_are_unified() {
        assert_eq!(EventAction::from_engine_word("died"), EventAction::Die);
        assert_eq!(EventAction::from_engine_word("die"), EventAction::Die);
        assert_eq!(
            EventAction::from_engine_word("remove"),
            EventAction::Destroy
        );
        assert_eq!(
            EventAction::from_engine_word("destroy"),
            EventAction::Destroy
        );
        assert_eq!(
            EventAction::from_engine_word("cleanup"),
            EventAction::Other("cleanup".into())
        );
    }

    #[test]
    fn garbage_is_an_error_that_shows_the_output() {
        let error = parse_inspect("Error: no such object").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("output began: Error: no such object")
        );
    }
}
