//! Sidecars: the containers a workspace's app needs beside it (a database,
//! a cache, a queue), each joined to the workspace container's network
//! namespace so that inside the workspace `localhost:5432` is this branch's
//! own Postgres. Declared under `[sidecars.NAME]` in `.dual.toml` or read
//! from the repo's compose file (see `compose`); this module is what both
//! become, and the checks every value passes before it reaches the engine.
//!
//! ```toml
//! [sidecars.db]
//! image = "postgres:16"
//! env = { POSTGRES_PASSWORD = "dev" }
//! volumes = ["pgdata:/var/lib/postgresql/data"]   # kept per workspace
//! ready = "pg_isready -h localhost"                # or a port: ready = 5432
//! [sidecars.cache]
//! image = "redis:7"
//! ready = 6379
//! depends_on = ["db"]
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// One sidecar, checked: every value can be given to the engine as the
/// argument it becomes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sidecar {
    /// The image it runs: the repo's reference, or for a compose service
    /// with `build:`, the tag dual builds it under (see `build`).
    pub image: String,
    pub build: Option<Build>,
    pub env: BTreeMap<String, String>,
    /// Replaces the image's entrypoint (argv).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command (argv).
    pub command: Option<Vec<String>>,
    /// Who it runs as: a name or `uid[:gid]` of the image's; else the
    /// image's own user, which must not be root.
    pub user: Option<String>,
    /// Its data directories: named volumes, one set per workspace.
    pub volumes: Vec<Volume>,
    /// Paths mounted as tmpfs.
    pub tmpfs: Vec<String>,
    pub ready: Option<Ready>,
    /// How long `launch` waits for it to be ready (default
    /// `READY_TIMEOUT`, or what a compose healthcheck's retries give).
    pub ready_timeout: Option<Duration>,
    pub depends_on: Vec<Dependency>,
    /// Where it listens inside the workspace (from `ports` or its ready
    /// port): shown, and offered to `dual forward`; never published.
    pub ports: Vec<u16>,
    pub origin: Origin,
}

/// A compose service's `build:`: made with the engine's `build`, once per
/// content of its context, shared by the repo's workspaces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Build {
    /// Relative to the clone's root.
    pub context: String,
    /// Relative to the context.
    pub dockerfile: Option<String>,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Volume {
    /// The name the repo gave it (`pgdata`), or one made from its target.
    pub name: String,
    /// An absolute path inside the sidecar.
    pub target: String,
}

/// How dual knows a sidecar (or a service) is ready for what depends on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Ready {
    /// Something accepts connections on this port of the workspace's
    /// localhost.
    Port(u16),
    /// This command, run inside it, exits 0 (a compose `healthcheck`).
    Command(Check),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// argv, run directly (a compose `CMD-SHELL` string becomes `sh -c`).
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// How long to wait in all before calling it failed.
    pub start_period: Duration,
    pub retries: u32,
}

impl Check {
    pub fn new(test: Vec<String>) -> Self {
        Check {
            test,
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
            start_period: Duration::ZERO,
            retries: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dependency {
    pub name: String,
    pub condition: Condition,
}

/// compose's `depends_on` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Condition {
    /// Started (compose's `service_started`).
    Started,
    /// Its ready check passed (`service_healthy`).
    Ready,
    /// Ran to an exit status of 0 (`service_completed_successfully`).
    CompletedSuccessfully,
}

/// Where a sidecar was declared, for messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Origin {
    DualToml,
    Compose { file: String, service: String },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::DualToml => write!(f, "{}", super::config_file::FILE_NAME),
            Origin::Compose { file, service } => write!(f, "{file}, service `{service}`"),
        }
    }
}

/// How long a sidecar may take to become ready before `launch` gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// `[sidecars.NAME]` as written in `.dual.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSidecar {
    image: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    entrypoint: Option<Words>,
    command: Option<Words>,
    user: Option<String>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    tmpfs: Vec<String>,
    ready: Option<RawReady>,
    /// Seconds.
    ready_timeout: Option<u64>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    ports: Vec<u16>,
}

/// A command as a string (split as a shell would, never run by one) or as
/// an array of words.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Words {
    Line(String),
    List(Vec<String>),
}

impl Words {
    fn into_argv(self, key: &str) -> Result<Vec<String>, String> {
        match self {
            Words::List(words) => Ok(words),
            Words::Line(line) => split_words(&line).map_err(|why| format!("`{key}`: {why}")),
        }
    }
}

/// `ready = 5432` or `ready = "pg_isready"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawReady {
    Port(u16),
    Command(Words),
}

impl RawReady {
    /// The check; `key` names it in errors.
    pub(super) fn check(self, key: &str) -> Result<Ready, String> {
        match self {
            RawReady::Port(0) => Err(format!("`{key}`: 0 is not a port")),
            RawReady::Port(port) => Ok(Ready::Port(port)),
            RawReady::Command(words) => {
                let argv = words.into_argv(key)?;
                check_argv(key, &argv)?;
                if argv.is_empty() {
                    return Err(format!("`{key}` is an empty command"));
                }
                Ok(Ready::Command(Check::new(argv)))
            }
        }
    }
}

impl RawSidecar {
    /// The sidecar `name` of `.dual.toml`, checked; errors name the key.
    pub(super) fn check(self, name: &str) -> Result<Sidecar, String> {
        let key = |field: &str| format!("sidecars.{name}.{field}");
        check_sidecar_name(name)?;
        check_image(&key("image"), &self.image)?;
        for (variable, value) in &self.env {
            check_env(&key("env"), variable, value)?;
        }
        let entrypoint = self
            .entrypoint
            .map(|words| words.into_argv(&key("entrypoint")))
            .transpose()?;
        let command = self
            .command
            .map(|words| words.into_argv(&key("command")))
            .transpose()?;
        for (field, argv) in [("entrypoint", &entrypoint), ("command", &command)] {
            if let Some(argv) = argv {
                check_argv(&key(field), argv)?;
            }
        }
        if let Some(user) = &self.user {
            check_user(&key("user"), user)?;
        }
        let mut volumes = Vec::new();
        for volume in &self.volumes {
            let (name, target) = match volume.split_once(':') {
                Some((name, target)) => (name.to_owned(), target.to_owned()),
                None => (volume_name_for(volume), volume.clone()),
            };
            check_volume(&key("volumes"), &name, &target)?;
            volumes.push(Volume { name, target });
        }
        for path in &self.tmpfs {
            check_container_path(&key("tmpfs"), path)?;
        }
        let ready = self
            .ready
            .map(|ready| ready.check(&key("ready")))
            .transpose()?;
        let mut ports = self.ports;
        if ports.contains(&0) {
            return Err(format!("`{}`: 0 is not a port", key("ports")));
        }
        if let Some(Ready::Port(port)) = &ready
            && !ports.contains(port)
        {
            ports.push(*port);
        }
        let depends_on = self
            .depends_on
            .into_iter()
            .map(|name| Dependency {
                name,
                condition: Condition::Ready,
            })
            .collect();
        Ok(Sidecar {
            image: self.image,
            build: None,
            env: self.env,
            entrypoint,
            command,
            user: self.user,
            volumes,
            tmpfs: self.tmpfs,
            ready,
            ready_timeout: self.ready_timeout.map(Duration::from_secs),
            depends_on,
            ports,
            origin: Origin::DualToml,
        })
    }
}

/// A name for a volume given only as a path: its last component, made
/// plain (`/var/lib/postgresql/data` → `data`).
pub fn volume_name_for(target: &str) -> String {
    let last = target
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let plain: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if plain.trim_matches('-').is_empty() {
        "data".into()
    } else {
        plain
    }
}

/// Splits `line` into words as a POSIX shell would (quotes, backslashes),
/// without running one: a sidecar's image need not have a shell.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    shell_words::split(line).map_err(|_| format!("`{}` has an unclosed quote", line.escape_debug()))
}

/// A sidecar's name becomes part of its container's and volumes' names and
/// of `dual logs WS NAME`: the same rule as a service's.
pub fn check_sidecar_name(name: &str) -> Result<(), String> {
    if super::config_file::is_service_name(name) {
        Ok(())
    } else {
        Err(format!(
            "`sidecars.{}`: a sidecar name is letters, digits, `_` and `-`, at most 40",
            name.escape_debug()
        ))
    }
}

pub fn check_image(key: &str, image: &str) -> Result<(), String> {
    super::config_file::check_image_reference(image).map_err(|why| {
        format!(
            "`{key}`: `{}` is not an image reference ({why})",
            image.escape_debug()
        )
    })
}

/// `--env=NAME=value`: the name as a shell's, no NUL anywhere.
pub fn check_env(key: &str, name: &str, value: &str) -> Result<(), String> {
    if !super::config_file::is_env_name(name) {
        return Err(format!(
            "`{key}`: `{}` is not an environment variable name (letters, digits and `_`, not starting with a digit)",
            name.escape_debug()
        ));
    }
    if value.contains('\0') {
        return Err(format!(
            "`{key}.{name}`: a value cannot hold a NUL character"
        ));
    }
    Ok(())
}

/// Words of a command: anything but NUL (they are argv, after the image).
pub fn check_argv(key: &str, argv: &[String]) -> Result<(), String> {
    if argv.iter().any(|word| word.contains('\0')) {
        return Err(format!("`{key}`: a word cannot hold a NUL character"));
    }
    Ok(())
}

/// `--user=VALUE`: a user or group name of the image's, or numeric ids.
pub fn check_user(key: &str, user: &str) -> Result<(), String> {
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 32
            && !part.starts_with('-')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let ok = match user.split_once(':') {
        Some((user, group)) => part_ok(user) && part_ok(group),
        None => part_ok(user),
    };
    if !ok {
        return Err(format!(
            "`{key}`: `{}` is not a user (`name`, `uid` or `uid:gid`)",
            user.escape_debug()
        ));
    }
    let name = user.split(':').next().unwrap_or_default();
    let zero = name.bytes().all(|b| b.is_ascii_digit()) && name.parse() == Ok(0u32);
    if name == "root" || zero {
        return Err(format!(
            "`{key}`: dual runs nothing as root in a workspace; name the image's own user"
        ));
    }
    Ok(())
}

/// A named volume: `NAME:/absolute/path`, each part plain enough to stand
/// in `--mount` and in a volume's name.
pub fn check_volume(key: &str, name: &str, target: &str) -> Result<(), String> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !name_ok {
        return Err(format!(
            "`{key}`: `{}` is not a volume name (letters, digits, `_`, `.`, `-`, starting with a letter or digit)",
            name.escape_debug()
        ));
    }
    check_container_path(key, target)
}

/// A path inside a sidecar: absolute, not `/`, without `..`, and plain
/// (a comma or a quote would add fields to `--mount` or `--tmpfs`).
pub fn check_container_path(key: &str, path: &str) -> Result<(), String> {
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c));
    let absolute = path.starts_with('/') && !path.trim_matches('/').is_empty();
    let no_parent = !path.split('/').any(|part| part == "..");
    if !(plain && absolute && no_parent) {
        return Err(format!(
            "`{key}`: `{}` must be an absolute path below `/`, without `..`, of letters, digits and `/._-+@`",
            path.escape_debug()
        ));
    }
    Ok(())
}

/// The order to start `sidecars` in: each after what it depends on. An
/// unknown name or a cycle is an error naming it.
pub fn start_order(sidecars: &BTreeMap<String, Sidecar>) -> Result<Vec<String>, String> {
    let mut order: Vec<String> = Vec::new();
    let mut visiting: Vec<&str> = Vec::new();
    fn visit<'a>(
        name: &'a str,
        sidecars: &'a BTreeMap<String, Sidecar>,
        visiting: &mut Vec<&'a str>,
        order: &mut Vec<String>,
    ) -> Result<(), String> {
        if order.iter().any(|done| done == name) {
            return Ok(());
        }
        if visiting.contains(&name) {
            visiting.push(name);
            return Err(format!(
                "sidecars depend on each other in a cycle: {}",
                visiting.join(" → ")
            ));
        }
        visiting.push(name);
        let sidecar = &sidecars[name];
        for dependency in &sidecar.depends_on {
            if !sidecars.contains_key(&dependency.name) {
                return Err(format!(
                    "sidecar `{name}` ({}) depends on `{}`, which is not a sidecar",
                    sidecar.origin, dependency.name
                ));
            }
            visit(&dependency.name, sidecars, visiting, order)?;
        }
        visiting.pop();
        order.push(name.to_owned());
        Ok(())
    }
    for name in sidecars.keys() {
        visit(name, sidecars, &mut visiting, &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar(text: &str) -> Result<Sidecar, String> {
        let raw: RawSidecar = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.check("db")
    }

    #[test]
    fn a_toml_sidecar_becomes_argv_ready_for_the_engine() {
        let db = sidecar(
            r#"image = "postgres:16"
               env = { POSTGRES_PASSWORD = "dev" }
               command = "postgres -c 'fsync=off'"
               volumes = ["pgdata:/var/lib/postgresql/data", "/var/log/pg"]
               ready = 5432"#,
        )
        .unwrap();
        assert_eq!(
            db.command.as_deref(),
            Some(&["postgres".into(), "-c".into(), "fsync=off".into()][..])
        );
        assert_eq!(db.volumes[0].name, "pgdata");
        assert_eq!(db.volumes[1].name, "pg");
        assert_eq!(db.ready, Some(Ready::Port(5432)));
        assert_eq!(db.ports, vec![5432]);
    }

    #[test]
    fn values_that_would_reach_the_engine_as_options_are_refused() {
        let refused = [
            r#"image = "--privileged""#,
            "image = \"pg\"\nuser = \"root\"",
            "image = \"pg\"\nuser = \"00\"",
            "image = \"pg\"\nuser = \"000:0\"",
            "image = \"pg\"\nuser = \"--privileged\"",
            "image = \"pg\"\nvolumes = [\"x:/data,type=bind,source=/\"]",
            "image = \"pg\"\nvolumes = [\"../x:/data\"]",
            "image = \"pg\"\nvolumes = [\"x:relative\"]",
            "image = \"pg\"\nvolumes = [\"x:/\"]",
            "image = \"pg\"\ntmpfs = [\"/run,exec\"]",
            "image = \"pg\"\nenv = { \"A=B\" = \"x\" }",
            "image = \"pg\"\nready = 0",
            "image = \"pg\"\ncommand = \"unclosed 'quote\"",
        ];
        for text in refused {
            assert!(sidecar(text).is_err(), "accepted: {text}");
        }
    }

    #[test]
    fn sidecars_start_after_what_they_depend_on_and_a_cycle_is_named() {
        let make = |deps: &[&str]| Sidecar {
            depends_on: deps
                .iter()
                .map(|name| Dependency {
                    name: (*name).into(),
                    condition: Condition::Ready,
                })
                .collect(),
            ..sidecar("image = \"x\"").unwrap()
        };
        let mut all = BTreeMap::new();
        all.insert("app-db".to_owned(), make(&["cache"]));
        all.insert("cache".to_owned(), make(&[]));
        assert_eq!(start_order(&all).unwrap(), ["cache", "app-db"]);
        all.insert("cache".to_owned(), make(&["app-db"]));
        assert!(start_order(&all).unwrap_err().contains("cycle"));
        all.insert("cache".to_owned(), make(&["nope"]));
        assert!(start_order(&all).unwrap_err().contains("`nope`"));
    }
}
