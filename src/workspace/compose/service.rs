//! One compose service as a sidecar: each key it honours checked with the
//! sidecars' checks, each it cannot honour one note.

use std::collections::BTreeMap;

use super::yaml::Node;
use super::{Fate, MAX_FILE_BYTES, Reader, interpolate};
use crate::workspace::sidecars::{self, Condition, Dependency, Origin, Sidecar};

/// Ports a range (`8000-8100`) may stand for.
const MAX_PORTS_IN_RANGE: usize = 100;

pub(super) struct Service<'r, 'a> {
    pub(super) reader: &'r mut Reader<'a>,
    /// Its name in the compose file.
    pub(super) name: &'r str,
    pub(super) fates: &'r BTreeMap<String, Fate>,
}

impl<'r, 'a> Service<'r, 'a> {
    pub(super) fn new(
        reader: &'r mut Reader<'a>,
        name: &'r str,
        fates: &'r BTreeMap<String, Fate>,
    ) -> Self {
        Service {
            reader,
            name,
            fates,
        }
    }

    pub(super) fn key(&self, field: &str) -> String {
        format!("services.{}.{field}", self.name)
    }

    pub(super) fn note(&mut self, text: &str) {
        let line = format!("{}, service `{}`: {text}", self.reader.file, self.name);
        self.reader.notes.push(line);
    }

    pub(super) fn sidecar_name(&self) -> &str {
        match self.fates.get(self.name) {
            Some(Fate::Sidecar(name)) => name,
            _ => self.name,
        }
    }

    /// The sidecar; an invalid value is an error naming its key.
    pub(super) fn sidecar(mut self, node: &Node) -> Result<Sidecar, String> {
        let Node::Map(entries) = node else {
            return Err(format!("`services.{}` is not a mapping", self.name));
        };
        let mut sidecar = Sidecar {
            image: String::new(),
            build: None,
            env: BTreeMap::new(),
            entrypoint: None,
            command: None,
            user: None,
            volumes: Vec::new(),
            tmpfs: Vec::new(),
            ready: None,
            ready_timeout: None,
            depends_on: Vec::new(),
            ports: Vec::new(),
            origin: Origin::Compose {
                file: self.reader.file.to_owned(),
                service: self.name.to_owned(),
            },
        };
        let mut image = None;
        let (mut environment, mut env_files) = (None, None);
        for (key, value) in entries {
            match key.as_str() {
                "image" => image = Some(self.text(value, "image")?),
                "build" => sidecar.build = Some(self.build(value)?),
                "environment" => environment = Some(value),
                "env_file" => env_files = Some(value),
                "command" => sidecar.command = self.words(value, "command")?,
                "entrypoint" => sidecar.entrypoint = self.words(value, "entrypoint")?,
                "user" => sidecar.user = self.user(value)?,
                "volumes" => self.volumes(value, &mut sidecar)?,
                "tmpfs" => self.tmpfs(value, &mut sidecar.tmpfs)?,
                "healthcheck" => sidecar.ready = self.healthcheck(value)?,
                "depends_on" => sidecar.depends_on = self.depends_on(value)?,
                "ports" => sidecar.ports = self.ports(value)?,
                // Profiles were read already; dual drops every capability.
                "profiles" | "cap_drop" => {}
                extension if extension.starts_with("x-") => {}
                other => {
                    let line = unsupported(other);
                    self.note(&line);
                }
            }
        }
        if let Some(files) = env_files {
            self.env_files(files, &mut sidecar.env)?;
        }
        if let Some(environment) = environment {
            self.environment(environment, &mut sidecar.env)?;
        }
        sidecar.image = match (image, &sidecar.build) {
            (Some(image), _) => image,
            (None, Some(_)) => {
                let plain = self
                    .sidecar_name()
                    .to_ascii_lowercase()
                    .trim_end_matches(['-', '_'])
                    .to_owned();
                format!("dual-build-{plain}")
            }
            (None, None) => {
                return Err(format!(
                    "service `{}` has neither `image` nor `build`",
                    self.name
                ));
            }
        };
        sidecars::check_image(&self.key("image"), &sidecar.image)?;
        Ok(sidecar)
    }

    /// A scalar's text, or an error naming `field`.
    pub(super) fn text(&self, node: &Node, field: &str) -> Result<String, String> {
        node.as_text()
            .ok_or_else(|| format!("`{}` is {}, not a string", self.key(field), node.kind()))
    }

    /// A list of scalars, or a single one as a list of one.
    pub(super) fn texts(&self, node: &Node, field: &str) -> Result<Vec<String>, String> {
        match node {
            Node::Seq(items) => items.iter().map(|item| self.text(item, field)).collect(),
            Node::Null => Ok(Vec::new()),
            scalar => Ok(vec![self.text(scalar, field)?]),
        }
    }

    /// `command` or `entrypoint`: a string split as a shell would (never
    /// run by one), or a list of words.
    fn words(&self, node: &Node, field: &str) -> Result<Option<Vec<String>>, String> {
        let key = self.key(field);
        let argv = match node {
            Node::Null => return Ok(None),
            Node::Seq(_) => self.texts(node, field)?,
            scalar => sidecars::split_words(&self.text(scalar, field)?)
                .map_err(|why| format!("`{key}`: {why}"))?,
        };
        sidecars::check_argv(&key, &argv)?;
        Ok(Some(argv))
    }

    fn user(&mut self, node: &Node) -> Result<Option<String>, String> {
        let user = self.text(node, "user")?;
        // `user: "${UID}:${GID}"` with neither in `.env`: the image's own
        // user (the note on unset variables says why).
        if user.split(':').all(str::is_empty) {
            self.note("`user` is empty: the image's own user is used");
            return Ok(None);
        }
        sidecars::check_user(&self.key("user"), &user)?;
        Ok(Some(user))
    }

    /// `environment`, as a mapping or a list of `NAME=value`, over what the
    /// `env_file`s set.
    fn environment(
        &mut self,
        node: &Node,
        env: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        let key = self.key("environment");
        let mut without_value = Vec::new();
        let mut set = |name: String, value: Option<String>| match value {
            Some(value) => {
                sidecars::check_env(&key, &name, &value)?;
                env.insert(name, value);
                Ok::<(), String>(())
            }
            None => {
                without_value.push(name);
                Ok(())
            }
        };
        match node {
            Node::Map(entries) => {
                for (name, value) in entries {
                    match value {
                        Node::Null => set(name.clone(), None)?,
                        scalar => set(name.clone(), Some(self.text(scalar, "environment")?))?,
                    }
                }
            }
            Node::Seq(_) => {
                for item in self.texts(node, "environment")? {
                    match item.split_once('=') {
                        Some((name, value)) => set(name.to_owned(), Some(value.to_owned()))?,
                        None => set(item, None)?,
                    }
                }
            }
            Node::Null => {}
            other => {
                return Err(format!(
                    "`{key}` is {}, not a mapping or a list",
                    other.kind()
                ));
            }
        }
        self.note_without_value("environment", &without_value);
        Ok(())
    }

    pub(super) fn note_without_value(&mut self, field: &str, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let names: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
        self.note(&format!(
            "`{field}` lists {} without a value: compose would take them from your shell's environment, which dual does not read; not set",
            names.join(", ")
        ));
    }

    /// `env_file`: a path, a list of paths, or of `{ path, required }`,
    /// each relative to the compose file and read without following links.
    fn env_files(&mut self, node: &Node, env: &mut BTreeMap<String, String>) -> Result<(), String> {
        let key = self.key("env_file");
        let items = match node {
            Node::Seq(items) => items.clone(),
            single => vec![single.clone()],
        };
        for item in items {
            let (path, required) = match &item {
                Node::Map(_) => {
                    let path = item
                        .get("path")
                        .and_then(Node::as_text)
                        .ok_or_else(|| format!("`{key}`: an entry without `path`"))?;
                    let required = item.get("required") != Some(&Node::Bool(false));
                    (path, required)
                }
                scalar => (self.text(scalar, "env_file")?, true),
            };
            let relative = self
                .reader
                .inside(&path)
                .filter(|p| !p.as_os_str().is_empty());
            let Some(relative) = relative else {
                return Err(format!(
                    "`{key}`: `{}` is not a file inside the clone",
                    path.escape_debug()
                ));
            };
            let text = match crate::confined::read_text(self.reader.dir, &relative, MAX_FILE_BYTES)
            {
                Ok(text) => text,
                Err(error) if error.is_not_found() && !required => continue,
                Err(error) if error.is_not_found() => {
                    return Err(format!(
                        "`{key}`: the clone has no `{}`",
                        relative.display()
                    ));
                }
                Err(error) => {
                    let cause = std::error::Error::source(&error)
                        .map(|cause| format!(": {cause}"))
                        .unwrap_or_default();
                    return Err(format!("`{key}`: {error}{cause}"));
                }
            };
            let variables = self.reader.variables;
            let outer = |name: &str| variables.get(name);
            let file = interpolate::parse_env_file(&text, &outer, &mut self.reader.unset)
                .map_err(|why| format!("`{key}`: `{}` {why}", relative.display()))?;
            for (name, value) in file.values {
                sidecars::check_env(&key, &name, &value)?;
                env.insert(name, value);
            }
            self.note_without_value(&format!("env_file` `{}", relative.display()), &file.bare);
        }
        Ok(())
    }

    /// `depends_on`, as a list (started) or a mapping with conditions.
    fn depends_on(&mut self, node: &Node) -> Result<Vec<Dependency>, String> {
        let key = self.key("depends_on");
        let mut wanted: Vec<(String, Condition, bool)> = Vec::new();
        match node {
            Node::Map(entries) => {
                for (name, settings) in entries {
                    let condition = match settings.get("condition").and_then(Node::as_text) {
                        None => Condition::Started,
                        Some(condition) => match condition.as_str() {
                            "service_started" => Condition::Started,
                            "service_healthy" => Condition::Ready,
                            "service_completed_successfully" => Condition::CompletedSuccessfully,
                            other => {
                                return Err(format!(
                                    "`{key}.{name}.condition`: `{}` is not `service_started`, `service_healthy` or `service_completed_successfully`",
                                    other.escape_debug()
                                ));
                            }
                        },
                    };
                    let required = settings.get("required") != Some(&Node::Bool(false));
                    wanted.push((name.clone(), condition, required));
                }
            }
            _ => {
                for name in self.texts(node, "depends_on")? {
                    wanted.push((name, Condition::Started, true));
                }
            }
        }
        let mut dependencies = Vec::new();
        for (name, condition, required) in wanted {
            match self.fates.get(&name) {
                Some(Fate::Sidecar(sidecar)) => dependencies.push(Dependency {
                    name: sidecar.clone(),
                    condition,
                }),
                // The workspace container runs before any sidecar.
                Some(Fate::App) => {}
                Some(Fate::Skipped) => self.note(&format!(
                    "depends on `{name}`, which is not started as a sidecar: it starts without waiting for it"
                )),
                None if !required => {}
                None => {
                    return Err(format!(
                        "`{key}`: `{}` is not a service of this file",
                        name.escape_debug()
                    ));
                }
            }
        }
        Ok(dependencies)
    }

    /// The container side of `ports` (TCP), never published.
    fn ports(&mut self, node: &Node) -> Result<Vec<u16>, String> {
        let key = self.key("ports");
        let Node::Seq(items) = node else {
            return Err(format!("`{key}` is {}, not a list", node.kind()));
        };
        let mut ports = Vec::new();
        for item in items {
            let (target, protocol) = match item {
                Node::Map(_) => (
                    item.get("target")
                        .and_then(Node::as_text)
                        .unwrap_or_default(),
                    item.get("protocol").and_then(Node::as_text),
                ),
                scalar => {
                    let short = self.text(scalar, "ports")?;
                    let (mapping, protocol) = match short.split_once('/') {
                        Some((mapping, protocol)) => {
                            (mapping.to_owned(), Some(protocol.to_owned()))
                        }
                        None => (short.clone(), None),
                    };
                    let target = mapping.rsplit(':').next().unwrap_or_default().to_owned();
                    (target, protocol)
                }
            };
            let bad = || {
                format!(
                    "`{key}`: `{}` is not a port or a range of ports",
                    target.escape_debug()
                )
            };
            let number = |text: &str| text.trim().parse::<u16>().ok().filter(|port| *port != 0);
            let (first, last) = match target.split_once('-') {
                Some((first, last)) => (
                    number(first).ok_or_else(bad)?,
                    number(last).ok_or_else(bad)?,
                ),
                None => {
                    let port = number(&target).ok_or_else(bad)?;
                    (port, port)
                }
            };
            if last < first || usize::from(last - first) >= MAX_PORTS_IN_RANGE {
                return Err(format!("{}, at most {MAX_PORTS_IN_RANGE}", bad()));
            }
            if protocol
                .as_deref()
                .is_some_and(|protocol| protocol != "tcp")
            {
                self.note(&format!(
                    "port `{target}` is not {}: only TCP ports are shown and forwarded",
                    protocol.unwrap_or_default()
                ));
                continue;
            }
            for port in first..=last {
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
        }
        Ok(ports)
    }
}

/// The note for a service key dual does not honour: refused (it would give
/// the sidecar a privilege or a host resource) or not passed on.
fn unsupported(key: &str) -> String {
    let refused = |why: &str| format!("`{key}` refused: {why}");
    let ignored = |why: &str| format!("`{key}` is not used: {why}");
    match key {
        "privileged"
        | "cap_add"
        | "security_opt"
        | "userns_mode"
        | "group_add"
        | "cgroup_parent"
        | "device_cgroup_rules"
        | "use_api_socket"
        | "runtime" => refused("nothing in a workspace gains privileges"),
        "devices" | "gpus" | "volumes_from" | "storage_opt" => {
            refused("a sidecar gets nothing of the host's")
        }
        "network_mode" | "pid" | "ipc" | "uts" | "cgroup" => refused(
            "a sidecar joins its workspace's namespaces, never the host's or another container's",
        ),
        "networks" | "links" | "external_links" | "expose" | "hostname" | "domainname"
        | "extra_hosts" | "dns" | "dns_search" | "dns_opt" | "mac_address" => ignored(
            "a sidecar shares its workspace's network namespace; sidecars reach each other on `localhost`",
        ),
        "restart" => ignored("dual starts and restarts sidecars itself"),
        "container_name" => ignored("dual names each workspace's containers itself"),
        "labels" | "annotations" => ignored("dual labels its containers itself"),
        "deploy" | "scale" | "ulimits" | "sysctls" | "shm_size" | "mem_limit"
        | "mem_reservation" | "memswap_limit" | "mem_swappiness" | "cpus" | "cpu_count"
        | "cpu_percent" | "cpu_shares" | "cpu_period" | "cpu_quota" | "cpuset" | "pids_limit"
        | "oom_kill_disable" | "oom_score_adj" | "blkio_config" => {
            ignored("dual runs one of each sidecar, without resource settings")
        }
        "secrets" | "configs" => ignored("give values with `environment` or `env_file`"),
        "logging" => ignored("dual keeps each sidecar's output (`dual logs`)"),
        "stop_grace_period" | "stop_signal" | "init" | "platform" | "pull_policy"
        | "working_dir" | "tty" | "stdin_open" | "read_only" | "attach" | "develop"
        | "post_start" | "pre_stop" | "extends" | "isolation" | "credential_spec" => {
            ignored("dual does not pass it on")
        }
        _ => format!("`{key}` is not a compose key dual knows; ignored"),
    }
}
