//! `.dual.toml`, a repo's settings for its workspaces, read from the root of
//! each clone (so a branch can change them). Every problem is reported with
//! the file, the key, and the line and column the parser saw it at; an
//! unknown key is an error with a guess.
//!
//! ```toml
//! image = "node:22-bookworm"        # the container image
//! ports = [3000]                    # what the dev server listens on
//! setup = "pnpm install"            # run once, on first launch
//! extra_commands = ["just"]         # routed into the container besides the defaults
//! anonymous_volumes = ["node_modules"]  # kept in the container, off the host clone
//! shared_files = [".env.local"]     # copied in by `dual sync`
//! [env]
//! NODE_ENV = "development"
//! [services.web]                    # kept running by `dual launch`
//! command = "pnpm dev"
//! cwd = "web"                       # relative to the clone (default: its root)
//! port = 5173                       # a hint; ports are found as they open
//! depends_on = ["db"]               # started once these are ready
//! ready = 5173                      # or a command: what "ready" means for it
//! [sidecars.db]                     # see `sidecars`; also read from compose.yaml
//! image = "postgres:16"
//! ```
//!
//! Top-level keys besides: `after_start` (a command run in the container
//! at each launch once the sidecars are ready, before the services: the
//! place for migrations), `compose_file` (the compose file to read
//! sidecars from, or `false` for none; default: the first of
//! `compose.yaml`, `compose.yml`, `docker-compose.yml`, `docker-compose.yaml`)
//! and `data_from` (the branch whose workspace a new workspace copies its
//! sidecars' data from; default: the repo's default branch).
//!
//! And for a repo as it is: `build = { dockerfile, context, args, target }`
//! (the image is built from the repo's Dockerfile), `path` (directories of
//! the clone put first on PATH inside), `caches` (`"repo"`, `"user"` or
//! `false`: package managers' downloads in volumes shared by the repo's or
//! all of the user's workspaces), `seed` (dependency directories a new
//! workspace copies from its parent before `setup`) and `devcontainer`
//! (which `.devcontainer/NAME/devcontainer.json` to read, or `false`).
//!
//! Where the clone has no `.dual.toml`, its devcontainer.json gives the
//! settings; where it has both, `.dual.toml` wins key by key. With neither,
//! what `detect` finds in the repo's files (see `ConfigOrigin`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use serde::Deserialize;
use toml::Spanned;

pub use super::compose::ComposeFile;
pub use super::config_file::{
    ConfigError, FILE_NAME, check_image_reference, is_env_name, is_service_name,
};
use super::config_file::{is_plain_relative, is_stage_name};
pub use super::lifecycle::Lifecycle;
use super::sidecars::{Build, RawReady, RawSidecar, Ready, Sidecar, Volume};

/// A repo's `extra_commands` each put a shim on the user's PATH.
const MAX_EXTRA_COMMANDS: usize = 32;
/// Each is a container beside the workspace's; the bound also keeps the
/// walk of their `depends_on` shallow.
const MAX_SIDECARS: usize = 64;
/// Used when `.dual.toml` names no image.
pub const DEFAULT_IMAGE: &str = "node:22-bookworm";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub image: String,
    pub ports: Vec<u16>,
    pub setup: Option<String>,
    pub env: BTreeMap<String, String>,
    pub extra_commands: Vec<String>,
    pub anonymous_volumes: Vec<String>,
    pub shared_files: Vec<String>,
    pub services: BTreeMap<String, Service>,
    pub sidecars: BTreeMap<String, Sidecar>,
    pub after_start: Option<String>,
    pub compose_file: ComposeFile,
    /// The branch whose workspace's sidecar data a new workspace starts
    /// with (`None`: the repo's default branch).
    pub data_from: Option<String>,
    /// What dual could not honour or chose not to (from the compose file):
    /// one line each, shown by `launch` and `verify`.
    pub notes: Vec<String>,
    /// The repo's Dockerfile: `launch` builds it and runs the image built
    /// (`image` is then the tag it was built under).
    pub build: Option<Build>,
    /// Directories of the clone (relative) put first on PATH inside.
    pub path: Vec<String>,
    /// Where package managers' downloads are kept.
    pub caches: CacheScope,
    /// Dependency directories (relative to the clone) a new workspace
    /// copies from its parent workspace before `setup`.
    pub seed: Vec<String>,
    /// Commands run at moments of the container's life (devcontainer.json).
    pub lifecycle: Lifecycle,
    /// Named volumes mounted in the workspace (devcontainer.json `mounts`).
    pub mounts: Vec<Volume>,
    /// Names for ports, shown beside their URLs.
    pub port_labels: BTreeMap<u16, String>,
    /// Which devcontainer.json is read.
    pub devcontainer: DevcontainerChoice,
    /// Where these settings came from.
    pub origin: ConfigOrigin,
    /// What the devcontainer.json asks to run on the host: `launch`
    /// refuses it (see `ops::lifecycle`).
    pub initialize_command: Option<super::lifecycle::HostCommand>,
}

/// Whose workspaces share package managers' caches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheScope {
    /// The workspaces of one repo.
    #[default]
    Repo,
    /// All of the user's workspaces.
    User,
    Off,
}

/// Which devcontainer.json of a clone is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DevcontainerChoice {
    /// The user's `DUAL_DEVCONTAINER=NAME` where the clone has it, else
    /// `.devcontainer/devcontainer.json`, else `.devcontainer.json`, else
    /// the only `.devcontainer/NAME/devcontainer.json` (several: an error
    /// that lists them).
    #[default]
    Usual,
    /// `.devcontainer/NAME/devcontainer.json`.
    Named(String),
    Off,
}

/// Where a workspace's settings came from, for `launch` and `verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// dual's defaults: nothing in the repo said or suggested anything.
    #[default]
    Defaults,
    /// `.dual.toml`, with the devcontainer.json under it, if any (its path,
    /// relative to the clone).
    DualToml { devcontainer: Option<String> },
    /// A devcontainer.json alone.
    Devcontainer(String),
    /// Guessed from the repo's files: one line saying what.
    Detected(String),
}

/// A long-running command (a dev server) that dual starts with the
/// workspace, restarts when it exits, and keeps the output of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub command: String,
    /// Relative to the clone's root.
    pub cwd: Option<String>,
    /// Where it listens, when known before it does: shown as a URL.
    pub port: Option<u16>,
    /// Sidecars and services started (and ready) before it.
    pub depends_on: Vec<String>,
    pub ready: Option<Ready>,
}

/// `.dual.toml` as written, each value with where it stands in the text,
/// so that an error can name its line and column. Defaults are applied (and
/// values checked) when it becomes a [`Config`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    image: Option<Spanned<String>>,
    ports: Option<Vec<Spanned<u16>>>,
    setup: Option<String>,
    env: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    extra_commands: Option<Vec<Spanned<String>>>,
    anonymous_volumes: Option<Vec<Spanned<String>>>,
    shared_files: Option<Vec<Spanned<String>>>,
    services: Option<BTreeMap<Spanned<String>, RawService>>,
    sidecars: Option<BTreeMap<Spanned<String>, Spanned<RawSidecar>>>,
    after_start: Option<Spanned<String>>,
    compose_file: Option<Spanned<RawComposeFile>>,
    data_from: Option<Spanned<String>>,
    build: Option<Spanned<RawBuild>>,
    path: Option<Vec<Spanned<String>>>,
    caches: Option<Spanned<RawCaches>>,
    seed: Option<Vec<Spanned<String>>>,
    devcontainer: Option<Spanned<RawComposeFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    #[serde(default = "current_dir")]
    context: String,
    dockerfile: Option<String>,
    #[serde(default)]
    args: BTreeMap<String, String>,
    target: Option<String>,
}

fn current_dir() -> String {
    ".".into()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCaches {
    Switch(bool),
    Scope(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawComposeFile {
    Off(bool),
    Named(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    command: Spanned<String>,
    cwd: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    ready: Option<Spanned<RawReady>>,
}

/// Byte offsets into the text of `.dual.toml`.
type Span = std::ops::Range<usize>;

impl Default for Config {
    fn default() -> Self {
        Config {
            image: DEFAULT_IMAGE.into(),
            ports: vec![3000],
            setup: None,
            env: BTreeMap::new(),
            extra_commands: Vec::new(),
            anonymous_volumes: vec!["node_modules".into()],
            shared_files: Vec::new(),
            services: BTreeMap::new(),
            sidecars: BTreeMap::new(),
            after_start: None,
            compose_file: ComposeFile::Usual,
            data_from: None,
            notes: Vec::new(),
            build: None,
            path: Vec::new(),
            caches: CacheScope::Repo,
            seed: Vec::new(),
            lifecycle: Lifecycle::default(),
            mounts: Vec::new(),
            port_labels: BTreeMap::new(),
            devcontainer: DevcontainerChoice::Usual,
            origin: ConfigOrigin::Defaults,
            initialize_command: None,
        }
    }
}

const KEYS: [&str; 17] = [
    "image",
    "ports",
    "setup",
    "env",
    "extra_commands",
    "anonymous_volumes",
    "shared_files",
    "services",
    "sidecars",
    "after_start",
    "compose_file",
    "data_from",
    "build",
    "path",
    "caches",
    "seed",
    "devcontainer",
];

impl Config {
    /// The sidecars of the compose file `compose_file` names, under those
    /// `.dual.toml` declares (a name in both: `.dual.toml`'s).
    pub(super) fn add_compose_sidecars(&mut self, dir: &Path) -> Result<(), ConfigError> {
        let Some(file) = super::compose::find(dir, &self.compose_file)? else {
            return Ok(());
        };
        let stack = super::compose::load(dir, &file)?;
        for (name, sidecar) in stack.sidecars {
            if self.services.contains_key(&name) {
                self.notes.push(format!(
                    "compose service `{name}` ({file}) is not started: `.dual.toml` has a service of that name"
                ));
                continue;
            }
            self.sidecars.entry(name).or_insert(sidecar);
        }
        self.notes.extend(stack.notes);
        self.check_sidecar_graph(&dir.join(file))
    }

    /// Every `depends_on` names something that exists, without cycles.
    fn check_sidecar_graph(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if self.sidecars.len() > MAX_SIDECARS {
            return Err(invalid(format!(
                "{} sidecars; dual starts at most {MAX_SIDECARS} beside a workspace",
                self.sidecars.len()
            )));
        }
        super::sidecars::start_order(&self.sidecars).map_err(invalid)?;
        for (name, service) in &self.services {
            for dependency in &service.depends_on {
                if !self.sidecars.contains_key(dependency)
                    && !self.services.contains_key(dependency)
                {
                    return Err(invalid(format!(
                        "`services.{name}.depends_on`: `{dependency}` is neither a sidecar nor a service"
                    )));
                }
            }
        }
        if let Some(cycle) = self.service_cycle() {
            return Err(invalid(format!(
                "services depend on each other in a cycle: {}; none of them would ever start",
                cycle.join(" → ")
            )));
        }
        Ok(())
    }

    /// A cycle of services through their `depends_on` (from a service back
    /// to it), if there is one; sidecars end a path (theirs have no
    /// services in them).
    fn service_cycle(&self) -> Option<Vec<&str>> {
        fn visit<'a>(
            name: &'a str,
            services: &'a BTreeMap<String, Service>,
            path: &mut Vec<&'a str>,
            done: &mut Vec<&'a str>,
        ) -> Option<Vec<&'a str>> {
            if let Some(start) = path.iter().position(|on| *on == name) {
                let mut cycle = path[start..].to_vec();
                cycle.push(name);
                return Some(cycle);
            }
            if done.contains(&name) {
                return None;
            }
            path.push(name);
            for dependency in &services[name].depends_on {
                if let Some((dependency, _)) = services.get_key_value(dependency)
                    && let Some(cycle) = visit(dependency, services, path, done)
                {
                    return Some(cycle);
                }
            }
            path.pop();
            done.push(name);
            None
        }
        let (mut path, mut done) = (Vec::new(), Vec::new());
        self.services
            .keys()
            .find_map(|name| visit(name, &self.services, &mut path, &mut done))
    }

    /// A hash of what the container is made from (image, ports, env,
    /// volumes), recorded on it: when it changes, `launch` recreates it.
    /// `setup`, `extra_commands` and `shared_files` act on the host or once,
    /// so a change to them keeps the container.
    pub fn container_hash(&self) -> String {
        // Sidecars' names (the host names its `/etc/hosts` gives them) and
        // ports (published where the host cannot reach it by address).
        let sidecars: Vec<(&String, &Vec<u16>)> = self
            .sidecars
            .iter()
            .map(|(name, sidecar)| (name, &sidecar.ports))
            .collect();
        let mut made_from = serde_json::json!([
            self.image,
            self.ports,
            self.env,
            self.anonymous_volumes,
            CONTAINER_LAYOUT
        ]);
        // Appended only when set, so that containers made before these
        // existed are not recreated for nothing.
        let mounts: Vec<(&String, &String)> =
            self.mounts.iter().map(|v| (&v.name, &v.target)).collect();
        let extras = [
            (
                "sidecars",
                (!sidecars.is_empty()).then(|| serde_json::json!(sidecars)),
            ),
            (
                "path",
                (!self.path.is_empty()).then(|| serde_json::json!(self.path)),
            ),
            (
                "mounts",
                (!mounts.is_empty()).then(|| serde_json::json!(mounts)),
            ),
            (
                "trust",
                super::trust::fingerprint().map(|bundle| serde_json::json!(bundle)),
            ),
            (
                "caches",
                (self.caches != CacheScope::Repo)
                    .then(|| serde_json::json!(format!("{:?}", self.caches))),
            ),
        ];
        for (key, value) in extras {
            if let (Some(value), Some(list)) = (value, made_from.as_array_mut()) {
                if key == "sidecars" {
                    list.push(value);
                } else {
                    list.push(serde_json::json!({ key: value }));
                }
            }
        }
        super::names::long_hash(&made_from.to_string())
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_keys(text, path).map(|(config, _)| config)
    }

    /// `parse`, and the top-level keys the text set.
    pub(super) fn parse_keys(
        text: &str,
        path: &Path,
    ) -> Result<(Config, BTreeSet<&'static str>), ConfigError> {
        // The file is the branch's: a control character of it (a key or a
        // line quoted in the message) reaches the user's terminal escaped.
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message: message
                .chars()
                .map(|c| match c {
                    '\n' => c.to_string(),
                    c if c.is_control() => c.escape_debug().to_string(),
                    c => c.to_string(),
                })
                .collect(),
        };
        let raw: RawConfig = toml::from_str(text).map_err(|error| {
            let mut message = error.to_string().trim_end().to_owned();
            if let Some(guess) = rejected_key(text, &error).and_then(closest_key) {
                message.push_str(&format!("\ndid you mean `{guess}`?"));
            }
            invalid(message)
        })?;
        let set: BTreeSet<&'static str> = [
            ("image", raw.image.is_some()),
            ("ports", raw.ports.is_some()),
            ("setup", raw.setup.is_some()),
            ("after_start", raw.after_start.is_some()),
            ("anonymous_volumes", raw.anonymous_volumes.is_some()),
            ("build", raw.build.is_some()),
            ("path", raw.path.is_some()),
            ("seed", raw.seed.is_some()),
            ("compose_file", raw.compose_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, present)| present.then_some(key))
        .collect();
        let at = |span: Span| {
            let (line, column) = position(text, span.start);
            format!(" (line {line}, column {column})")
        };
        let defaults = Config::default();
        let image = raw.image.map_or((defaults.image, None), |image| {
            let span = image.span();
            (image.into_inner(), Some(span))
        });
        let image_at = image.1.map_or(String::new(), at);
        let image = image.0;
        if image.trim().is_empty() {
            return Err(invalid(format!("`image`{image_at} is empty")));
        }
        if let Err(why) = check_image_reference(&image) {
            return Err(invalid(format!(
                "`image`{image_at}: `{}` is not an image reference ({why})",
                image.escape_debug()
            )));
        }
        let ports = match raw.ports {
            None => defaults.ports,
            Some(ports) => {
                if let Some(zero) = ports.iter().find(|port| *port.get_ref() == 0) {
                    return Err(invalid(format!(
                        "`ports`{}: 0 is not a port",
                        at(zero.span())
                    )));
                }
                ports.into_iter().map(Spanned::into_inner).collect()
            }
        };
        let mut env = BTreeMap::new();
        for (name, value) in raw.env.unwrap_or_default() {
            if !is_env_name(name.get_ref()) {
                return Err(invalid(format!(
                    "`env.{}`{}: an environment variable name is letters, digits and `_`, not starting with a digit",
                    name.get_ref(),
                    at(name.span())
                )));
            }
            if value.get_ref().contains('\0') {
                return Err(invalid(format!(
                    "`env.{}`{}: a value cannot hold a NUL character",
                    name.get_ref(),
                    at(value.span())
                )));
            }
            env.insert(name.into_inner(), value.into_inner());
        }
        // Which names a repo may route is the shell integration's policy;
        // how many, a bound on the shims it puts on every PATH.
        let extra_commands = raw.extra_commands.unwrap_or_default();
        if extra_commands.len() > MAX_EXTRA_COMMANDS {
            return Err(invalid(format!(
                "`extra_commands`{}: {} names, at most {MAX_EXTRA_COMMANDS}",
                at(extra_commands[MAX_EXTRA_COMMANDS].span()),
                extra_commands.len()
            )));
        }
        let repo = crate::shell::policy::Origin::Repo;
        for name in &extra_commands {
            if let Err(refusal) = crate::shell::policy::check(name.get_ref(), repo) {
                return Err(invalid(format!(
                    "`extra_commands`{}: {refusal}\nhint: {}",
                    at(name.span()),
                    refusal.advice(repo)
                )));
            }
        }
        if let Some(volumes) = &raw.anonymous_volumes {
            check_paths("anonymous_volumes", volumes, &at).map_err(invalid)?;
        }
        let anonymous_volumes = raw
            .anonymous_volumes
            .map_or(defaults.anonymous_volumes, |paths| {
                paths.into_iter().map(Spanned::into_inner).collect()
            });
        let shared_files = raw.shared_files.unwrap_or_default();
        check_paths("shared_files", &shared_files, &at).map_err(invalid)?;
        let mut services = BTreeMap::new();
        for (name, service) in raw.services.unwrap_or_default() {
            let name_at = at(name.span());
            let name = name.into_inner();
            if !is_service_name(&name) {
                return Err(invalid(format!(
                    "`services.{name}`{name_at}: a service name is letters, digits, `_` and `-`, at most 40"
                )));
            }
            if service.command.get_ref().trim().is_empty() {
                return Err(invalid(format!(
                    "`services.{name}.command`{} is empty",
                    at(service.command.span())
                )));
            }
            if let Some(cwd) = service
                .cwd
                .as_ref()
                .filter(|cwd| !is_inside_relative(cwd.get_ref()))
            {
                return Err(invalid(format!(
                    "`services.{name}.cwd`{}: `{}` must be a relative path inside the repo, without `..`",
                    at(cwd.span()),
                    cwd.get_ref()
                )));
            }
            if let Some(port) = service.port.as_ref().filter(|port| *port.get_ref() == 0) {
                return Err(invalid(format!(
                    "`services.{name}.port`{}: 0 is not a port",
                    at(port.span())
                )));
            }
            let ready = match service.ready {
                None => None,
                Some(ready) => {
                    let ready_at = at(ready.span());
                    let key = format!("services.{name}.ready");
                    Some(
                        ready
                            .into_inner()
                            .check(&key)
                            .map_err(|why| invalid(format!("{why}{ready_at}")))?,
                    )
                }
            };
            let depends_on = service
                .depends_on
                .into_iter()
                .map(Spanned::into_inner)
                .collect();
            services.insert(
                name,
                Service {
                    command: service.command.into_inner(),
                    cwd: service.cwd.map(Spanned::into_inner),
                    port: service.port.map(Spanned::into_inner),
                    depends_on,
                    ready,
                },
            );
        }
        let mut sidecars = BTreeMap::new();
        for (name, sidecar) in raw.sidecars.unwrap_or_default() {
            let sidecar_at = at(sidecar.span());
            let name = name.into_inner();
            if services.contains_key(&name) {
                return Err(invalid(format!(
                    "`sidecars.{name}`{sidecar_at}: a service has that name too (`dual logs` and `restart` name either)"
                )));
            }
            let sidecar = sidecar
                .into_inner()
                .check(&name)
                .map_err(|why| invalid(format!("{why}{sidecar_at}")))?;
            sidecars.insert(name, sidecar);
        }
        let compose_file = match raw.compose_file.map(Spanned::into_inner) {
            None | Some(RawComposeFile::Off(true)) => ComposeFile::Usual,
            Some(RawComposeFile::Off(false)) => ComposeFile::Off,
            Some(RawComposeFile::Named(file)) => {
                if !is_inside_relative(&file) {
                    return Err(invalid(format!(
                        "`compose_file`: `{}` must be a relative path inside the repo, without `..`",
                        file.escape_debug()
                    )));
                }
                ComposeFile::Named(file)
            }
        };
        let data_from = raw.data_from.map(Spanned::into_inner);
        if let Some(branch) = &data_from {
            super::names::validate_branch(branch)
                .map_err(|error| invalid(format!("`data_from`: {error}")))?;
        }
        let build = match raw.build {
            None => None,
            Some(build) => {
                let build_at = at(build.span());
                Some(
                    check_build(build.into_inner())
                        .map_err(|why| invalid(format!("{why}{build_at}")))?,
                )
            }
        };
        let dir_path = raw.path.unwrap_or_default();
        check_paths("path", &dir_path, &at).map_err(invalid)?;
        let seed = raw.seed.unwrap_or_default();
        check_paths("seed", &seed, &at).map_err(invalid)?;
        let caches = match raw.caches {
            None => CacheScope::Repo,
            Some(caches) => match caches.get_ref() {
                RawCaches::Switch(true) => CacheScope::Repo,
                RawCaches::Switch(false) => CacheScope::Off,
                RawCaches::Scope(scope) if scope == "repo" => CacheScope::Repo,
                RawCaches::Scope(scope) if scope == "user" => CacheScope::User,
                RawCaches::Scope(other) => {
                    return Err(invalid(format!(
                        "`caches`{}: `{}` is not a scope: `\"repo\"`, `\"user\"` or `false`",
                        at(caches.span()),
                        other.escape_debug()
                    )));
                }
            },
        };
        let devcontainer = match raw.devcontainer.map(Spanned::into_inner) {
            None | Some(RawComposeFile::Off(true)) => DevcontainerChoice::Usual,
            Some(RawComposeFile::Off(false)) => DevcontainerChoice::Off,
            Some(RawComposeFile::Named(name)) => {
                if !is_service_name(&name) {
                    return Err(invalid(format!(
                        "`devcontainer`: `{}` is not the name of a directory of `.devcontainer` (letters, digits, `_` and `-`)",
                        name.escape_debug()
                    )));
                }
                DevcontainerChoice::Named(name)
            }
        };
        let config = Config {
            build,
            path: dir_path.into_iter().map(Spanned::into_inner).collect(),
            caches,
            seed: seed.into_iter().map(Spanned::into_inner).collect(),
            lifecycle: Lifecycle::default(),
            mounts: Vec::new(),
            port_labels: BTreeMap::new(),
            devcontainer,
            origin: ConfigOrigin::DualToml { devcontainer: None },
            initialize_command: None,
            sidecars,
            after_start: raw.after_start.map(Spanned::into_inner),
            compose_file,
            data_from,
            notes: Vec::new(),
            image,
            ports,
            setup: raw.setup,
            env,
            extra_commands: extra_commands
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            anonymous_volumes,
            shared_files: shared_files.into_iter().map(Spanned::into_inner).collect(),
            services,
        };
        config.check_sidecar_graph(path)?;
        Ok((config, set))
    }

    /// What a container that the host cannot reach by address (rootless
    /// podman) publishes on loopback: the declared ports and the ports its
    /// sidecars listen on, once each.
    pub fn published_ports(&self) -> Vec<u16> {
        let mut ports = self.ports.clone();
        for port in self.sidecars.values().flat_map(|s| s.ports.iter().copied()) {
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        ports
    }

    /// The declared ports and the services' port hints, once each.
    pub fn known_ports(&self) -> Vec<u16> {
        let mut ports = self.ports.clone();
        for port in self.services.values().filter_map(|service| service.port) {
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        ports
    }
}

/// What a container is made of besides `.dual.toml` (the mounts and main
/// process dual gives it): a new layout recreates older containers at their
/// next launch. 2: service logs mounted, services stopped with the container.
/// 3: no root inside (the user known by files put in before start), no
/// capabilities, no new privileges, `.git` read-only.
const CONTAINER_LAYOUT: u32 = 3;

/// `build = { … }`: a context and Dockerfile inside the clone, plain
/// build args, a stage name.
fn check_build(raw: RawBuild) -> Result<Build, String> {
    if !is_plain_relative(&raw.context) {
        return Err(format!(
            "`build.context`: `{}` must be a relative path inside the repo, without `..`, of letters, digits and `/._-+@`",
            raw.context.escape_debug()
        ));
    }
    if let Some(dockerfile) = raw.dockerfile.as_ref().filter(|d| !is_plain_relative(d)) {
        return Err(format!(
            "`build.dockerfile`: `{}` must be a relative path inside the context, without `..`, of letters, digits and `/._-+@`",
            dockerfile.escape_debug()
        ));
    }
    for (name, value) in &raw.args {
        super::sidecars::check_env("build.args", name, value)?;
    }
    if let Some(target) = raw.target.as_ref().filter(|t| !is_stage_name(t)) {
        return Err(format!(
            "`build.target`: `{}` is not a build stage name",
            target.escape_debug()
        ));
    }
    Ok(Build {
        context: raw.context,
        dockerfile: raw.dockerfile,
        args: raw.args,
        target: raw.target,
    })
}

/// Checks the paths of `anonymous_volumes` or `shared_files`; the error
/// names the first bad one and where it is.
fn check_paths(
    key: &str,
    paths: &[Spanned<String>],
    at: &dyn Fn(Span) -> String,
) -> Result<(), String> {
    // The clone's root itself (`.`) is no place for a volume or a file.
    let names_the_root = |path: &str| {
        !Path::new(path)
            .components()
            .any(|c| matches!(c, Component::Normal(_)))
    };
    for spanned in paths {
        let (path, at) = (spanned.get_ref(), at(spanned.span()));
        if !is_inside_relative(path) || names_the_root(path) {
            return Err(format!(
                "`{key}`{at}: `{path}` must be a relative path inside the repo, without `..`, below its root"
            ));
        }
        if !is_plain_path(path) {
            return Err(format!(
                "`{key}`{at}: `{}` may hold only letters, digits, `/`, `.`, `_`, `-`, `+`, `@` and spaces \
                 (a comma or a quote would change the engine's mount options)",
                path.escape_debug()
            ));
        }
        if touches_git_dir(path) {
            return Err(format!(
                "`{key}`{at}: `{path}` is in `.git`, which dual never writes and workspaces cannot change"
            ));
        }
    }
    Ok(())
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The key a parse error points at, when it points at one (a key the
/// config does not know): its span opens a line (`key = …`) or a table
/// header (`[key]`), not a value.
fn rejected_key<'t>(text: &'t str, error: &toml::de::Error) -> Option<&'t str> {
    let span = error.span()?;
    let key = text.get(span.clone())?;
    let line_start = text
        .get(..span.start)?
        .rfind('\n')
        .map_or(0, |newline| newline + 1);
    let before = text.get(line_start..span.start)?.trim();
    let after = text.get(span.end..)?.trim_start();
    let assigned = before.is_empty() && (after.starts_with('=') || after.starts_with('.'));
    let header = before.trim_start_matches('[').is_empty()
        && !before.is_empty()
        && (after.starts_with(']') || after.starts_with('.'));
    (assigned || header).then(|| key.trim_matches('"'))
}

/// Where `.dual.toml` of the clone at `dir` sets `key`, for messages:
/// "from `/w/.dual.toml` line 2", or that it names none; `None` where the
/// clone has no `.dual.toml` (see `sources::origin_of`).
pub(super) fn toml_origin_of(key: &str, dir: &Path) -> Option<String> {
    let path = dir.join(FILE_NAME);
    let text = read_config_text(dir).ok()?;
    // Only the top-level keys, so that a file with other problems still
    // says where `key` is.
    let keys: BTreeMap<Spanned<String>, serde::de::IgnoredAny> =
        toml::from_str(&text).unwrap_or_default();
    Some(match keys.keys().find(|found| found.get_ref() == key) {
        Some(found) => {
            let (line, _) = position(&text, found.span().start);
            format!("from `{}` line {line}", path.display())
        }
        None => format!("the default: `{}` names no {key}", path.display()),
    })
}

/// `.dual.toml` of the clone at `dir`: a regular file, never a link (a
/// branch can commit `.dual.toml -> ~/.ssh/id_rsa`; its text would then be
/// shown in a parse error).
pub(super) fn read_config_text(dir: &Path) -> Result<String, crate::confined::ConfinedError> {
    crate::confined::read_text(dir, Path::new(FILE_NAME), 1024 * 1024)
}

/// The known key nearest to a misspelt one, if any is near.
fn closest_key(unknown: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|key| (edit_distance(unknown, key), *key))
        .filter(|(distance, key)| *distance <= key.len() / 3 + 1)
        .min()
        .map(|(_, key)| key)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The characters a volume or shared-file path may hold: enough for real
/// directory names, none that means something to `--mount` or a shell.
fn is_plain_path(path: &str) -> bool {
    path.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@ ".contains(c))
}

fn touches_git_dir(path: &str) -> bool {
    Path::new(path)
        .components()
        .any(|component| component.as_os_str() == ".git")
}

fn is_inside_relative(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/repo/.dual.toml")).map_err(|e| e.to_string())
    }

    /// A clone holding `files`, as `Config::load` reads it.
    fn load_clone(files: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Config::load(dir.path()).map_err(|e| e.to_string())
    }

    const COMPOSE: &str = "services:\n  db:\n    image: postgres:16\n  cache:\n    image: redis:7\n    privileged: true\n";

    #[test]
    fn compose_sidecars_join_those_of_dual_toml_which_win() {
        let config = load_clone(&[
            ("compose.yaml", COMPOSE),
            (FILE_NAME, "[sidecars.db]\nimage = \"postgres:17\"\n"),
        ])
        .unwrap();
        assert_eq!(config.sidecars["db"].image, "postgres:17");
        assert_eq!(
            config.sidecars["db"].origin,
            super::super::sidecars::Origin::DualToml
        );
        assert_eq!(config.sidecars["cache"].image, "redis:7");
        assert!(
            config
                .notes
                .iter()
                .any(|note| note.contains("`privileged` refused")),
            "{:?}",
            config.notes
        );
        let off = load_clone(&[
            ("compose.yaml", COMPOSE),
            (FILE_NAME, "compose_file = false\n"),
        ])
        .unwrap();
        assert!(off.sidecars.is_empty() && off.notes.is_empty(), "{off:?}");
        let named = load_clone(&[
            ("compose.yaml", COMPOSE),
            (
                "ops/dev.yml",
                "services:\n  search:\n    image: opensearch\n",
            ),
            (FILE_NAME, "compose_file = \"ops/dev.yml\"\n"),
        ])
        .unwrap();
        assert_eq!(named.sidecars.keys().collect::<Vec<_>>(), ["search"]);
        let missing = load_clone(&[(FILE_NAME, "compose_file = \"nope.yml\"\n")]).unwrap_err();
        assert!(missing.contains("the clone has no `nope.yml`"), "{missing}");
        let bad = load_clone(&[(
            "compose.yaml",
            "services:\n  db:\n    image: pg\n    user: root\n",
        )])
        .unwrap_err();
        assert!(bad.contains("compose.yaml`: `services.db.user`"), "{bad}");
    }

    #[test]
    fn services_that_depend_on_each_other_in_a_cycle_are_refused() {
        let service = |name: &str, on: &str| {
            format!("[services.{name}]\ncommand = \"run\"\ndepends_on = [{on}]\n")
        };
        let cycle = [
            service("api", "\"web\""),
            service("web", "\"worker\", \"db\""),
            service("worker", "\"api\""),
            "[sidecars.db]\nimage = \"postgres:16\"\n".to_owned(),
        ]
        .concat();
        let error = parse(&cycle).unwrap_err();
        assert!(
            error.contains("services depend on each other in a cycle: api → web → worker → api"),
            "{error}"
        );
        let itself = service("web", "\"web\"");
        assert!(parse(&itself).unwrap_err().contains("web → web"));
        // A diamond is no cycle.
        let diamond = [
            service("a", "\"b\", \"c\""),
            service("b", "\"d\""),
            service("c", "\"d\""),
            service("d", ""),
        ]
        .concat();
        assert_eq!(
            parse(&diamond).unwrap().services["a"].depends_on,
            ["b", "c"]
        );
        let unknown = service("web", "\"nope\"");
        assert!(parse(&unknown).unwrap_err().contains("`nope` is neither"));
    }

    #[test]
    fn defaults_and_a_full_file() {
        let empty = parse("").unwrap();
        assert_eq!(empty.origin, ConfigOrigin::DualToml { devcontainer: None });
        assert_eq!(
            Config {
                origin: ConfigOrigin::Defaults,
                ..empty
            },
            Config::default()
        );
        let config = parse(
            "image = \"dual-test:latest\"\nports = [3000, 5173]\nsetup = \"npm ci\"\nextra_commands = [\"just\"]\nanonymous_volumes = [\"node_modules\", \"web/.next\"]\nshared_files = [\".env.local\"]\n[env]\nNODE_ENV = \"development\"\n",
        )
        .unwrap();
        assert_eq!(config.ports, [3000, 5173]);
        assert_eq!(config.env["NODE_ENV"], "development");
        assert_eq!(config.setup.as_deref(), Some("npm ci"));
    }

    #[test]
    fn services_are_read_and_checked() {
        let config = parse(
            "[services.web]\ncommand = \"pnpm dev\"\ncwd = \"web\"\nport = 5173\n[services.api]\ncommand = \"flask run\"\n",
        )
        .unwrap();
        assert_eq!(config.services["web"].cwd.as_deref(), Some("web"));
        assert_eq!(config.services["api"].port, None);
        assert_eq!(config.known_ports(), [3000, 5173]);
        let same = parse("[services.web]\ncommand = \"other\"\n").unwrap();
        assert_eq!(
            same.container_hash(),
            Config::default().container_hash(),
            "services run by exec: changing one keeps the container"
        );
        for (text, says) in [
            (
                "[services.\"a b\"]\ncommand = \"x\"\n",
                "a service name is letters",
            ),
            (
                "[services.web]\ncommand = \" \"\n",
                // Its value, on line 2 (it said line 1, the table's header, before).
                "`services.web.command` (line 2, column 11) is empty",
            ),
            (
                "[services.web]\ncommand = \"x\"\ncwd = \"../up\"\n",
                "without `..`",
            ),
            (
                "[services.web]\ncommand = \"x\"\nport = 0\n",
                "0 is not a port",
            ),
            ("[services.web]\ncmd = \"x\"\n", "unknown field `cmd`"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn the_container_hash_follows_what_the_container_is_made_from() {
        let base = parse("image = \"x\"\nports = [3000]\n").unwrap();
        let same = parse("ports = [3000]\nimage = \"x\"\nsetup = \"make\"\n").unwrap();
        assert_eq!(base.container_hash(), same.container_hash());
        for changed in [
            "image = \"y\"\nports = [3000]\n",
            "image = \"x\"\nports = [3000, 4000]\n",
            "image = \"x\"\nports = [3000]\n[env]\nA = \"1\"\n",
            "image = \"x\"\nports = [3000]\nanonymous_volumes = [\"vendor\"]\n",
        ] {
            assert_ne!(
                base.container_hash(),
                parse(changed).unwrap().container_hash(),
                "{changed}"
            );
        }
    }

    #[test]
    fn origins_name_the_line_or_the_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            crate::workspace::sources::origin_of("image", dir.path()),
            "the default: the clone has no .dual.toml"
        );
        std::fs::write(
            dir.path().join(FILE_NAME),
            "ports = [1]\nimage_x = 1\n  image = \"x\"\n",
        )
        .unwrap();
        let file = dir.path().join(FILE_NAME);
        assert_eq!(
            crate::workspace::sources::origin_of("image", dir.path()),
            format!("from `{}` line 3", file.display())
        );
        assert_eq!(
            crate::workspace::sources::origin_of("setup", dir.path()),
            format!("the default: `{}` names no setup", file.display())
        );
    }

    #[test]
    fn an_error_shows_no_control_character_of_the_file() {
        for text in [
            "\"\\u001b]0;pwned\\u0007\" = 1\n",
            "image = \"x\" # \u{1b}]0;pwned\u{7}\n",
            "[services.\"\\u001b]0;pwned\\u0007\"]\ncommand = \"x\"\n",
        ] {
            let message = Config::parse(text, Path::new(".dual.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                !message.chars().any(|c| c.is_control() && c != '\n'),
                "{message:?}"
            );
        }
    }

    #[test]
    fn an_unknown_key_names_the_file_the_line_and_a_guess() {
        let message = parse("image = \"x\"\nprots = [3000]\n").unwrap_err();
        assert!(
            message.starts_with("`/repo/.dual.toml`: TOML parse error at line 2"),
            "{message}"
        );
        assert!(message.contains("unknown field `prots`"), "{message}");
        assert!(message.ends_with("did you mean `ports`?"), "{message}");
        let far = parse("colour = 1\n").unwrap_err();
        assert!(!far.contains("did you mean"), "{far}");
    }

    #[test]
    fn errors_name_the_line_and_column_of_the_value_at_fault() {
        for (text, says) in [
            (
                "image = \"x\"\nports = [\n  3000,\n  0,\n]\n",
                "`ports` (line 4, column 3): 0 is not a port",
            ),
            (
                "[env]\nGOOD = \"1\"\n  1X = \"a\"\n",
                "`env.1X` (line 3, column 3)",
            ),
            (
                "shared_files = [\"a\", \"../b\"]\n",
                "`shared_files` (line 1, column 22): `../b` must be",
            ),
            (
                "# é\nanonymous_volumes = [\"a\", \".git/x\"]\n",
                "`anonymous_volumes` (line 2, column 27): `.git/x` is in `.git`",
            ),
            (
                "[services.web]\ncommand = \"x\"\n[services.api]\ncommand = \"y\"\ncwd = \"/abs\"\n",
                "`services.api.cwd` (line 5, column 7)",
            ),
            (
                "[services.\"a b\"]\ncommand = \"x\"\n",
                "`services.a b` (line 1, column 11)",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_guess_is_offered_for_a_key_never_for_a_value() {
        let message = parse("ports = [imag]\n").unwrap_err();
        assert!(!message.contains("did you mean"), "{message}");
        let message = parse("[servics.web]\ncommand = \"x\"\n").unwrap_err();
        assert!(message.ends_with("did you mean `services`?"), "{message}");
        let message = parse("  setpu = \"make\"\n").unwrap_err();
        assert!(message.contains("line 1, column 3"), "{message}");
        assert!(message.ends_with("did you mean `setup`?"), "{message}");
    }

    #[test]
    fn hostile_values_are_config_errors() {
        for (text, says) in [
            (
                "anonymous_volumes = [\"x,type=bind,source=/,target=/hostroot\"]\n",
                "a comma or a quote would change the engine's mount options",
            ),
            ("anonymous_volumes = [\"a\\\"b\"]\n", "may hold only"),
            ("shared_files = [\"a\\nb\"]\n", "may hold only"),
            ("shared_files = [\".git/config\"]\n", "is in `.git`"),
            ("anonymous_volumes = [\"web/.git\"]\n", "is in `.git`"),
            ("anonymous_volumes = [\".\"]\n", "below its root"),
            ("shared_files = [\"./.\"]\n", "below its root"),
            ("image = \"--privileged\"\n", "is not an image reference"),
            ("image = \"-v/:/host\"\n", "is not an image reference"),
            ("image = \"node:22 --rm\"\n", "is not an image reference"),
            ("image = \"Node:22\"\n", "is not an image reference"),
            ("[env]\nA = \"x\\u0000y\"\n", "cannot hold a NUL"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn real_image_references_are_accepted() {
        for image in [
            "node:22-bookworm",
            "dual-test:latest",
            "localhost/dual-test",
            "ghcr.io/owner/repo/app:v1.2.3",
            "registry.example.com:5000/team/app_x:1",
            "python@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "mcr.microsoft.com/devcontainers/base:bookworm",
        ] {
            assert_eq!(check_image_reference(image), Ok(()), "{image}");
        }
        for image in [
            "-x",
            "a//b",
            "a/",
            ":tag",
            "a:",
            "a b",
            "a@sha256:12",
            "UPPER",
        ] {
            assert!(check_image_reference(image).is_err(), "{image}");
        }
    }

    #[test]
    fn wrong_types_and_bad_values_are_explained() {
        let message = parse("ports = [\"3000\"]\n").unwrap_err();
        assert!(message.contains("line 1"), "{message}");
        assert!(
            parse("ports = [0]\n")
                .unwrap_err()
                .contains("0 is not a port")
        );
        assert!(parse("ports = [70000]\n").unwrap_err().contains("line 1"));
        assert!(
            parse("image = \"\"\n")
                .unwrap_err()
                .contains("`image` (line 1, column 9) is empty")
        );
        assert!(
            parse("[env]\n1X = \"a\"\n")
                .unwrap_err()
                .contains("`env.1X`")
        );
        assert!(
            parse("extra_commands = [\"rm -rf\"]\n")
                .unwrap_err()
                .contains("`rm -rf` is not a command name")
        );
        assert!(
            parse("anonymous_volumes = [\"../x\"]\n")
                .unwrap_err()
                .contains("without `..`")
        );
        assert!(
            parse("shared_files = [\"/etc/passwd\"]\n")
                .unwrap_err()
                .contains("relative path")
        );
    }
}
