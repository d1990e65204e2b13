//! `.dual.toml`, a repo's settings for its workspaces, read from the root of
//! each clone (so a branch can change them). Every problem is reported with
//! the file, the key and the line; an unknown key is an error with a guess.
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
//! ```

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

pub const FILE_NAME: &str = ".dual.toml";
/// A repo's `extra_commands` each put a shim on the user's PATH.
const MAX_EXTRA_COMMANDS: usize = 32;
/// Used when `.dual.toml` names no image.
pub const DEFAULT_IMAGE: &str = "node:22-bookworm";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub image: String,
    pub ports: Vec<u16>,
    pub setup: Option<String>,
    pub env: BTreeMap<String, String>,
    pub extra_commands: Vec<String>,
    pub anonymous_volumes: Vec<String>,
    pub shared_files: Vec<String>,
    pub services: BTreeMap<String, Service>,
}

/// A long-running command (a dev server) that dual starts with the
/// workspace, restarts when it exits, and keeps the output of.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub command: String,
    /// Relative to the clone's root.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Where it listens, when known before it does: shown as a URL.
    #[serde(default)]
    pub port: Option<u16>,
}

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
        }
    }
}

const KEYS: [&str; 8] = [
    "image",
    "ports",
    "setup",
    "env",
    "extra_commands",
    "anonymous_volumes",
    "shared_files",
    "services",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: crate::confined::ConfinedError,
    },
    #[error("`{}`: {message}", .path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// The config of the clone at `dir`; defaults when it has none.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join(FILE_NAME);
        match read_config_text(dir) {
            Ok(text) => Config::parse(&text, &path),
            Err(error) if error.is_not_found() => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// A hash of what the container is made from (image, ports, env,
    /// volumes), recorded on it: when it changes, `launch` recreates it.
    /// `setup`, `extra_commands` and `shared_files` act on the host or once,
    /// so a change to them keeps the container.
    pub fn container_hash(&self) -> String {
        let made_from = serde_json::json!([
            self.image,
            self.ports,
            self.env,
            self.anonymous_volumes,
            CONTAINER_LAYOUT
        ]);
        super::names::long_hash(&made_from.to_string())
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let config: Config = toml::from_str(text).map_err(|error| {
            let mut message = error.to_string().trim_end().to_owned();
            if let Some(guess) = unknown_key(&message).and_then(closest_key) {
                message.push_str(&format!("\ndid you mean `{guess}`?"));
            }
            invalid(message)
        })?;
        let line_of =
            |key: &str| key_line(text, key).map_or(String::new(), |line| format!(" (line {line})"));
        if config.image.trim().is_empty() {
            return Err(invalid(format!("`image`{} is empty", line_of("image"))));
        }
        if let Err(why) = check_image_reference(&config.image) {
            return Err(invalid(format!(
                "`image`{}: `{}` is not an image reference ({why})",
                line_of("image"),
                config.image.escape_debug()
            )));
        }
        if let Some(port) = config.ports.iter().find(|port| **port == 0) {
            return Err(invalid(format!(
                "`ports`{}: {port} is not a port",
                line_of("ports")
            )));
        }
        if let Some((bad, _)) = config.env.iter().find(|(_, value)| value.contains('\0')) {
            return Err(invalid(format!(
                "`env.{bad}`{}: a value cannot hold a NUL character",
                line_of(bad)
            )));
        }
        if let Some(bad) = config.env.keys().find(|key| !is_env_name(key)) {
            return Err(invalid(format!(
                "`env.{bad}`{}: an environment variable name is letters, digits and `_`, not starting with a digit",
                line_of(bad)
            )));
        }
        // Which names a repo may route is the shell integration's policy;
        // how many, a bound on the shims it puts on every PATH.
        if config.extra_commands.len() > MAX_EXTRA_COMMANDS {
            return Err(invalid(format!(
                "`extra_commands`{}: {} names, at most {MAX_EXTRA_COMMANDS}",
                line_of("extra_commands"),
                config.extra_commands.len()
            )));
        }
        let repo = crate::shell::policy::Origin::Repo;
        for name in &config.extra_commands {
            if let Err(refusal) = crate::shell::policy::check(name, repo) {
                return Err(invalid(format!(
                    "`extra_commands`{}: {refusal}\nhint: {}",
                    line_of("extra_commands"),
                    refusal.advice(repo)
                )));
            }
        }
        for (key, paths) in [
            ("anonymous_volumes", &config.anonymous_volumes),
            ("shared_files", &config.shared_files),
        ] {
            // The clone's root itself (`.`) is no place for a volume or a file.
            let names_the_root = |p: &&String| {
                !Path::new(p.as_str())
                    .components()
                    .any(|c| matches!(c, Component::Normal(_)))
            };
            if let Some(bad) = paths
                .iter()
                .find(|p| !is_inside_relative(p) || names_the_root(p))
            {
                return Err(invalid(format!(
                    "`{key}`{}: `{bad}` must be a relative path inside the repo, without `..`, below its root",
                    line_of(key)
                )));
            }
            if let Some(bad) = paths.iter().find(|p| !is_plain_path(p)) {
                return Err(invalid(format!(
                    "`{key}`{}: `{}` may hold only letters, digits, `/`, `.`, `_`, `-`, `+`, `@` and spaces \
                     (a comma or a quote would change the engine's mount options)",
                    line_of(key),
                    bad.escape_debug()
                )));
            }
            if let Some(bad) = paths.iter().find(|p| touches_git_dir(p)) {
                return Err(invalid(format!(
                    "`{key}`{}: `{bad}` is in `.git`, which dual never writes and workspaces cannot change",
                    line_of(key)
                )));
            }
        }
        for (name, service) in &config.services {
            let at = line_of(&format!("[services.{name}]"));
            if !is_service_name(name) {
                return Err(invalid(format!(
                    "`services.{name}`{at}: a service name is letters, digits, `_` and `-`, at most 40"
                )));
            }
            if service.command.trim().is_empty() {
                return Err(invalid(format!("`services.{name}.command`{at} is empty")));
            }
            if let Some(cwd) = service
                .cwd
                .as_deref()
                .filter(|cwd| !is_inside_relative(cwd))
            {
                return Err(invalid(format!(
                    "`services.{name}.cwd`{at}: `{cwd}` must be a relative path inside the repo, without `..`"
                )));
            }
            if service.port == Some(0) {
                return Err(invalid(format!(
                    "`services.{name}.port`{at}: 0 is not a port"
                )));
            }
        }
        Ok(config)
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

pub fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Where a setting of the clone at `dir` comes from, for messages:
/// "`/w/.dual.toml` line 2", or the default and why.
pub fn origin_of(key: &str, dir: &Path) -> String {
    let path = dir.join(FILE_NAME);
    let Ok(text) = read_config_text(dir) else {
        return format!("the default: the clone has no {FILE_NAME}");
    };
    match key_line(&text, key) {
        Some(line) => format!("from `{}` line {line}", path.display()),
        None => format!("the default: `{}` names no {key}", path.display()),
    }
}

/// `.dual.toml` of the clone at `dir`: a regular file, never a link (a
/// branch can commit `.dual.toml -> ~/.ssh/id_rsa`; its text would then be
/// shown in a parse error).
fn read_config_text(dir: &Path) -> Result<String, crate::confined::ConfinedError> {
    crate::confined::read_text(dir, Path::new(FILE_NAME), 1024 * 1024)
}

/// The (1-based) line that sets `key`: `key = …`, not a longer key that
/// starts with it.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            if key.starts_with('[') {
                return line.starts_with(key);
            }
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|index| index + 1)
}

fn unknown_key(message: &str) -> Option<&str> {
    let rest = message.split("unknown field `").nth(1)?;
    rest.split('`').next()
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

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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

/// An image reference as the engines read one:
/// `[host[:port]/]path[:tag][@algorithm:hex]`, path components lower-case.
/// Checked here so that a repo's `image` can only ever name an image (an
/// `image` starting with `-` would otherwise be an option to the engine).
pub fn check_image_reference(image: &str) -> Result<(), &'static str> {
    if image.len() > 512 {
        return Err("longer than 512 characters");
    }
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or("a digest is `algorithm:hex`")?;
        let algorithm_ok = algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
            && algorithm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-_".contains(c));
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("a digest is `algorithm:hex`");
        }
    }
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        let tag_ok = tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !tag_ok {
            return Err("a tag is letters, digits, `_`, `.` and `-`");
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        let is_host = first.contains(['.', ':']) || first == "localhost";
        if is_host {
            let (host, port) = match first.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (first, None),
            };
            let host_ok = host.starts_with(|c: char| c.is_ascii_alphanumeric())
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
            let port_ok =
                port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            if !host_ok || !port_ok {
                return Err("a registry is `host` or `host:port`");
            }
            components.remove(0);
        }
    }
    let component_ok = |part: &str| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes[bytes.len() - 1].is_ascii_lowercase() | bytes[bytes.len() - 1].is_ascii_digit()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    };
    if components.is_empty() || !components.iter().all(|part| component_ok(part)) {
        return Err(
            "a name is lower-case letters, digits and `.`, `_`, `-` between them, in parts separated by `/`",
        );
    }
    Ok(())
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

    #[test]
    fn defaults_and_a_full_file() {
        assert_eq!(parse("").unwrap(), Config::default());
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
                "`services.web.command` (line 1) is empty",
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
            origin_of("image", dir.path()),
            "the default: the clone has no .dual.toml"
        );
        std::fs::write(
            dir.path().join(FILE_NAME),
            "ports = [1]\nimage_x = 1\n  image = \"x\"\n",
        )
        .unwrap();
        let file = dir.path().join(FILE_NAME);
        assert_eq!(
            origin_of("image", dir.path()),
            format!("from `{}` line 3", file.display())
        );
        assert_eq!(
            origin_of("setup", dir.path()),
            format!("the default: `{}` names no setup", file.display())
        );
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
                .contains("`image` (line 1) is empty")
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
