//! The repo's compose file as sidecars.
//!
//! A repo that already describes its Postgres and Redis in `compose.yaml`
//! gets them as sidecars without writing them again in `.dual.toml` (whose
//! own `[sidecars.NAME]` win over a compose service of that name). `find`
//! picks the file (`compose.yaml`, `compose.yml`, `docker-compose.yml`,
//! `docker-compose.yaml`, or `.dual.toml`'s `compose_file`); `load` reads
//! it. What dual does not do as compose would is one line in
//! `Stack::notes`, never silently dropped; a value that cannot reach the
//! engine safely is an error naming the file, the service and the key.
//!
//! How it differs from compose, and why:
//! - **Variables come from the `.env` file beside the compose file only,
//!   never from the host's environment.** The file is the branch's: with the
//!   host's environment, `environment: { X: ${AWS_SECRET_ACCESS_KEY} }`
//!   would copy the user's secret into a container the repo controls. An
//!   unset variable is empty (or its default), with one note naming them;
//!   `${VAR:?why}` unset is an error. For the same reason a variable listed
//!   without a value (`environment: [TOKEN]`, an `env_file` line `TOKEN`)
//!   is not set, with a note.
//! - **The service that runs the repo's own code is skipped**: the
//!   workspace container is that. It is a service that bind-mounts the
//!   clone's root (`.:/app`, `./:/src`, `..:/app` from a compose file in a
//!   subdirectory), or is built from the clone's root (`build: .`).
//! - **No host path is mounted.** A bind mount in a sidecar is dropped with
//!   a note: a path outside the clone is the user's, and one inside it would
//!   let the sidecar write the clone (and its `.git`). Named volumes are kept
//!   per workspace; an anonymous one (`/var/lib/x` alone) becomes a named
//!   per-workspace volume `SERVICE-x` (compose keeps one per container, so
//!   the service's name keeps two sidecars' `/data` apart).
//! - **Ports are not published**: each workspace's sidecars listen on that
//!   workspace's own localhost; the host reaches one with `dual forward`.
//! - **Privileges are refused**: `privileged`, `cap_add`, `devices`, host
//!   network, pid or ipc namespaces and the like are dropped with a note that
//!   says so (the rest of the file still works).
//! - A service with `build:` keeps its context (relative to the clone's
//!   root, inside it); its `image` is the service's `image:`, or the
//!   placeholder `dual-build-SERVICE`, which the launcher replaces with a
//!   tag made from the context's content.
//! - A service name dual cannot use as a sidecar's (compose allows `.`)
//!   becomes one with `-` for `.`, with a note.
//! - Services in a profile are not started (dual activates none).

mod build;
mod health;
mod interpolate;
mod mounts;
mod select;
mod service;
#[cfg(test)]
mod tests;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use self::interpolate::EnvFile;
pub use self::select::Selection;
use self::yaml::Node;
use super::config_file::ConfigError;
use super::sidecars::Sidecar;
use crate::untrusted::shown;

/// Which compose file sidecars come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ComposeFile {
    /// The first of the usual names that the clone has.
    #[default]
    Usual,
    /// This one, relative to the clone's root.
    Named(String),
    /// None: `compose_file = false`.
    Off,
}

/// What a compose file gives dual.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stack {
    pub sidecars: BTreeMap<String, Sidecar>,
    /// One line each for what dual does not do as compose would.
    pub notes: Vec<String>,
    /// The service `Selection::app` names, read as a sidecar would be
    /// (its image or build, environment and ports are the workspace's).
    pub app: Option<Sidecar>,
}

/// The names compose looks for, in its order.
pub const USUAL_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// A compose file (and each `.env` or `env_file`) larger than this is refused.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The compose file of the clone at `dir` that `setting` names, relative
/// to `dir`; `None` when there is none. A name that is a link is found
/// (and `load` then refuses it) rather than passed over for the next.
pub fn find(dir: &Path, setting: &ComposeFile) -> Result<Option<String>, ConfigError> {
    match setting {
        ComposeFile::Off => Ok(None),
        ComposeFile::Usual => Ok(USUAL_NAMES
            .iter()
            .find(|name| crate::confined::exists(dir, Path::new(name)))
            .map(|name| (*name).to_owned())),
        ComposeFile::Named(file) => {
            if crate::confined::exists(dir, Path::new(file)) {
                Ok(Some(file.clone()))
            } else {
                Err(invalid(
                    &dir.join(super::config_file::FILE_NAME),
                    format!(
                        "`compose_file`: the clone has no `{file}`\nhint: name the repo's compose file, or write `compose_file = false`"
                    ),
                ))
            }
        }
    }
}

/// The sidecars of compose file `file` of the clone at `dir`.
pub fn load(dir: &Path, file: &str) -> Result<Stack, ConfigError> {
    load_selected(dir, file, Selection::default())
}

/// `load`, taking the services `selection` names as it says.
pub fn load_selected(dir: &Path, file: &str, selection: Selection) -> Result<Stack, ConfigError> {
    let path = dir.join(file);
    let read = |relative: &Path| {
        crate::confined::read_text(dir, relative, MAX_FILE_BYTES).map_err(|source| {
            ConfigError::Read {
                path: dir.join(relative),
                source,
            }
        })
    };
    let text = read(Path::new(file))?;
    let base = Path::new(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut unset = BTreeSet::new();
    let dot_env = base.join(".env");
    let variables = match read(&dot_env) {
        Ok(text) => interpolate::parse_env_file(&text, &|_| None, &mut unset)
            .map_err(|why| invalid(&dir.join(&dot_env), why))?,
        Err(ConfigError::Read { source, .. }) if source.is_not_found() => EnvFile::default(),
        Err(error) => return Err(error),
    };
    let tree = yaml::parse(&text)
        .map_err(|why| invalid(&path, format!("not a compose file compose reads: {why}")))?;
    let mut reader = Reader {
        dir,
        file,
        base: &base,
        variables: &variables,
        unset,
        notes: Vec::new(),
        selection,
        app: None,
    };
    let sidecars = reader.stack(tree).map_err(|why| invalid(&path, why))?;
    if !reader.unset.is_empty() {
        let names: Vec<String> = reader
            .unset
            .iter()
            .map(|name| format!("`${name}`"))
            .collect();
        reader.notes.push(format!(
            "{file}: {} not set in `{}`, so empty (dual reads a compose file's variables from that file only, never from your shell's environment)",
            names.join(", "),
            dot_env.display()
        ));
    }
    Ok(Stack {
        sidecars,
        notes: reader.notes.iter().map(|note| shown(note)).collect(),
        app: reader.app,
    })
}

/// `message` as an error about `path`, control characters of the file
/// escaped (it reaches the user's terminal).
fn invalid(path: &Path, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        message: shown(&message),
    }
}

/// What becomes of a compose service.
#[derive(Debug, Clone)]
enum Fate {
    /// A sidecar of this name.
    Sidecar(String),
    /// The workspace itself (`Selection::app`).
    App,
    /// Not started (a note says why).
    Skipped,
}

/// One compose file being read.
struct Reader<'a> {
    dir: &'a Path,
    /// The compose file, relative to `dir`.
    file: &'a str,
    /// Its directory, relative to `dir`: paths in it are relative to this.
    base: &'a Path,
    /// Its `.env`.
    variables: &'a EnvFile,
    unset: BTreeSet<String>,
    notes: Vec<String>,
    selection: Selection<'a>,
    /// The workspace's own service, once read.
    app: Option<Sidecar>,
}

impl Reader<'_> {
    fn stack(&mut self, tree: Node) -> Result<BTreeMap<String, Sidecar>, String> {
        let tree = self.interpolate(tree, "")?;
        let entries = match tree {
            Node::Map(entries) => entries,
            Node::Null => Vec::new(),
            other => return Err(format!("the file is {}, not a mapping", other.kind())),
        };
        let mut services = Vec::new();
        for (key, value) in entries {
            match key.as_str() {
                "services" => match value {
                    Node::Map(entries) => services = entries,
                    Node::Null => {}
                    other => return Err(format!("`services` is {}, not a mapping", other.kind())),
                },
                "volumes" => self.top_level_volumes(&value)?,
                // `version` is obsolete and `name` the project's: nothing to do.
                "version" | "name" => {}
                "networks" => self.note_file(
                    "top-level `networks` are not used: a workspace's sidecars share its network namespace and reach each other on `localhost`",
                ),
                "secrets" | "configs" => self.note_file(&format!(
                    "top-level `{key}` are not supported: give sidecars values with `environment` or `env_file`"
                )),
                "include" => self.note_file(
                    "`include` is not read: only this file's services become sidecars",
                ),
                extension if extension.starts_with("x-") => {}
                other => self.note_file(&format!(
                    "top-level `{other}` is not a compose key dual knows; ignored"
                )),
            }
        }
        if services.is_empty() {
            self.note_file("no services: no sidecars from it");
        }
        let fates = self.fates(&services)?;
        let mut sidecars = BTreeMap::new();
        let mut with_ports = Vec::new();
        for (name, node) in &services {
            if matches!(fates[name], Fate::App) {
                let (node, dropped) = Selection::app_node(node);
                for key in dropped {
                    self.note_file(&format!(
                        "service `{name}` is the workspace: its `{key}` is not used (dual mounts the clone at its own path and runs its own first process)"
                    ));
                }
                self.app = Some(service::Service::new(self, name, &fates).sidecar(&node)?);
                continue;
            }
            let Fate::Sidecar(sidecar_name) = &fates[name] else {
                continue;
            };
            let sidecar = service::Service::new(self, name, &fates).sidecar(node)?;
            if !sidecar.ports.is_empty() {
                let ports: Vec<String> = sidecar.ports.iter().map(u16::to_string).collect();
                with_ports.push(format!("{} for `{sidecar_name}`", ports.join(", ")));
            }
            sidecars.insert(sidecar_name.clone(), sidecar);
        }
        if !with_ports.is_empty() {
            self.note_file(&format!(
                "`ports` are not published: sidecars listen on each workspace's own localhost ({}); reach one from the host with `dual forward`",
                with_ports.join("; ")
            ));
        }
        Ok(sidecars)
    }

    /// Every string value of `node` interpolated (keys are not); `path`
    /// names it in errors.
    fn interpolate(&mut self, node: Node, path: &str) -> Result<Node, String> {
        let join = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        Ok(match node {
            Node::String(text) => {
                let variables = self.variables;
                let lookup = |name: &str| variables.get(name);
                Node::String(
                    interpolate::expand(&text, &lookup, &mut self.unset)
                        .map_err(|why| format!("`{path}`: {why}"))?,
                )
            }
            Node::Seq(items) => Node::Seq(
                items
                    .into_iter()
                    .map(|item| self.interpolate(item, path))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Map(entries) => Node::Map(
                entries
                    .into_iter()
                    .map(|(key, value)| {
                        let value = self.interpolate(value, &join(&key))?;
                        Ok((key, value))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            scalar => scalar,
        })
    }

    fn top_level_volumes(&mut self, volumes: &Node) -> Result<(), String> {
        let entries = match volumes {
            Node::Map(entries) => entries,
            Node::Null => return Ok(()),
            other => return Err(format!("`volumes` is {}, not a mapping", other.kind())),
        };
        for (name, declaration) in entries {
            let Node::Map(settings) = declaration else {
                continue;
            };
            for (key, value) in settings {
                match key.as_str() {
                    "external" if value == &Node::Bool(false) => {}
                    "external" => {
                        self.note_file(&format!(
                            "volume `{name}` is `external`: dual keeps one per workspace instead of sharing that one"
                        ));
                    }
                    extension if extension.starts_with("x-") => {}
                    other => self.note_file(&format!(
                        "`volumes.{name}.{other}` is not used: dual makes each workspace's volumes itself"
                    )),
                }
            }
        }
        Ok(())
    }

    /// Which services become sidecars, under which names; notes for the
    /// others and for renames.
    fn fates(&mut self, services: &[(String, Node)]) -> Result<BTreeMap<String, Fate>, String> {
        let mut fates = BTreeMap::new();
        let mut taken: BTreeMap<String, String> = BTreeMap::new();
        let wanted = self.selection.wanted(services);
        if let Some(app) = self.selection.app
            && !services.iter().any(|(name, _)| name == app)
        {
            return Err(format!(
                "`{}` is not a service of this file (devcontainer.json's `service` names it)",
                app.escape_debug()
            ));
        }
        for (name, node) in services {
            if !matches!(node, Node::Map(_)) {
                return Err(format!(
                    "`services.{name}` is {}, not a mapping",
                    node.kind()
                ));
            }
            if self.selection.app == Some(name.as_str()) {
                fates.insert(name.clone(), Fate::App);
                continue;
            }
            if wanted.as_ref().is_some_and(|wanted| !wanted.contains(name)) {
                self.note_file(&format!(
                    "service `{name}` is not started: devcontainer.json's `runServices` does not name it"
                ));
                fates.insert(name.clone(), Fate::Skipped);
                continue;
            }
            let profiles = match node.get("profiles") {
                Some(Node::Seq(items)) => items.iter().filter_map(Node::as_text).collect(),
                Some(Node::String(one)) => vec![one.clone()],
                _ => Vec::new(),
            };
            if !profiles.is_empty() {
                let profiles: Vec<String> = profiles.iter().map(|p| format!("`{p}`")).collect();
                self.note_file(&format!(
                    "service `{name}` is not started: it is in profile {}, and dual activates none",
                    profiles.join(", ")
                ));
                fates.insert(name.clone(), Fate::Skipped);
                continue;
            }
            if self.runs_repo_code(node) {
                self.note_file(&format!(
                    "service `{name}` runs the repo's own code: the workspace container does that; not started as a sidecar"
                ));
                fates.insert(name.clone(), Fate::Skipped);
                continue;
            }
            let sidecar_name = if super::sidecars::check_sidecar_name(name).is_ok() {
                name.clone()
            } else {
                let dashed = name.replace('.', "-");
                super::sidecars::check_sidecar_name(&dashed).map_err(|_| {
                    format!(
                        "service `{name}` cannot be a sidecar's name (letters, digits, `_` and `-`, at most 40)\nhint: rename it, or declare it in `.dual.toml` under `[sidecars.NAME]` and write `compose_file = false`"
                    )
                })?;
                self.note_file(&format!("service `{name}` is sidecar `{dashed}`"));
                dashed
            };
            if let Some(other) = taken.insert(sidecar_name.clone(), name.clone()) {
                return Err(format!(
                    "services `{other}` and `{name}` would both be sidecar `{sidecar_name}`"
                ));
            }
            fates.insert(name.clone(), Fate::Sidecar(sidecar_name));
        }
        Ok(fates)
    }

    /// Whether a service runs the clone's own code: it bind-mounts the
    /// clone's root, or is built from it.
    fn runs_repo_code(&self, service: &Node) -> bool {
        let is_root = |source: &str| {
            self.inside(source)
                .is_some_and(|path| path.as_os_str().is_empty())
        };
        let mounts_root = match service.get("volumes") {
            Some(Node::Seq(volumes)) => volumes.iter().any(|volume| match volume {
                Node::String(short) => {
                    let source = short.split(':').next().unwrap_or_default();
                    short.contains(':') && is_bind_source(source) && is_root(source)
                }
                long @ Node::Map(_) => {
                    long.get("type").and_then(Node::as_text).as_deref() == Some("bind")
                        && long
                            .get("source")
                            .and_then(Node::as_text)
                            .is_some_and(|source| is_root(&source))
                }
                _ => false,
            }),
            _ => false,
        };
        let built_from_root = match service.get("build") {
            Some(Node::String(context)) => is_root(context),
            Some(build @ Node::Map(_)) => is_root(
                &build
                    .get("context")
                    .and_then(Node::as_text)
                    .unwrap_or(".".into()),
            ),
            _ => false,
        };
        mounts_root || built_from_root
    }

    /// `path` of the compose file's (relative to its directory) as a path
    /// relative to the clone's root, when it stays inside the clone (`..`
    /// resolved as written: the result has none).
    fn inside(&self, path: &str) -> Option<PathBuf> {
        let path = Path::new(path);
        let relative = match path.strip_prefix(self.dir) {
            Ok(below_root) => below_root.to_path_buf(),
            Err(_) if path.is_absolute() => return None,
            Err(_) => self.base.join(path),
        };
        super::config_file::normalized_inside(&relative)
    }

    fn note_file(&mut self, text: &str) {
        self.notes.push(format!("{}: {text}", self.file));
    }
}

/// A volume's source that names a host path rather than a volume (as
/// compose tells them apart).
fn is_bind_source(source: &str) -> bool {
    source.starts_with(['.', '/', '~']) || source.contains('/')
}
