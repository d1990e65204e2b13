//! Package managers' download caches, in named volumes shared by a repo's
//! workspaces (or all of a user's), with the tools pointed at them: the
//! second workspace's install finds in the cache what the first one
//! downloaded.
//!
//! One volume per scope, mounted at [`CACHE_DIR`], a directory in it per
//! tool, each named by the variable its tool reads (npm, pnpm, yarn, pip,
//! uv, Go, bundler). Cargo has no variable for its registry alone: its
//! registry is `$CARGO_HOME/registry`, and setting `CARGO_HOME` would hide
//! the image's own (its `config.toml`, the tools `cargo install` put in its
//! `bin`, on PATH). So where the image sets `CARGO_HOME`, a second volume
//! is mounted at its `registry`; where it does not, cargo's home would be
//! the workspace's own empty `~/.cargo`, and `CARGO_HOME` points into the
//! cache instead (nothing of the image's is hidden).
//!
//! Shared means writable by every workspace of the scope: a branch can put
//! in the cache what another branch then installs. The README says so, and
//! `caches = false` keeps a workspace out of them. The volumes outlive
//! `destroy` (the next workspace is the one they are for); `dual prune`
//! removes those of repos no longer registered.

use std::path::{Path, PathBuf};

use super::Workspace;
use super::config::{CacheScope, Config};
use crate::engine::labels::CacheLabels;
use crate::engine::spec::RunSpec;
use crate::engine::{Engine, EngineError};

/// Where the cache volume is mounted in a workspace's container.
pub const CACHE_DIR: &str = "/var/cache/dual";

/// Each tool's variable and its directory under [`CACHE_DIR`].
const TOOL_DIRS: [(&str, &str); 9] = [
    ("npm_config_cache", "npm"),
    // pnpm reads npm's configuration, `store-dir` included.
    ("npm_config_store_dir", "pnpm-store"),
    // Yarn 1, and Yarn 2+ without its global cache.
    ("YARN_CACHE_FOLDER", "yarn"),
    // Yarn 2+: its global cache is `$YARN_GLOBAL_FOLDER/cache`.
    ("YARN_GLOBAL_FOLDER", "yarn-berry"),
    ("PIP_CACHE_DIR", "pip"),
    ("UV_CACHE_DIR", "uv"),
    ("GOMODCACHE", "go/mod"),
    // Content-addressed and safe to share between builds at once.
    ("GOCACHE", "go/build"),
    ("BUNDLE_USER_CACHE", "bundler"),
];

/// Settings that make the tools use the cache as it is mounted.
const TOOL_SETTINGS: [(&str, &str); 2] = [
    // The cache and the clone are two file systems: uv cannot link across
    // them, and would warn at every install before copying anyway.
    ("UV_LINK_MODE", "copy"),
    // Bundler keeps downloaded gems in its user cache only when asked.
    ("BUNDLE_GLOBAL_GEM_CACHE", "true"),
];

/// Cargo's home in the cache, for images that set none.
const CARGO_HOME_DIR: &str = "cargo";

/// The cache volume `workspace` mounts, `None` where its config turns the
/// caches off. Named by the installation (two users of one engine never
/// share one) and, for a repo's, by the repo (a label: `[a-z0-9-]`, so
/// never taken for the owner's part).
pub fn volume_name(workspace: &Workspace, scope: CacheScope) -> Option<String> {
    named("dual-cache", workspace, scope)
}

/// The volume mounted at the image's `$CARGO_HOME/registry`.
pub fn cargo_volume_name(workspace: &Workspace, scope: CacheScope) -> Option<String> {
    named("dual-cargo", workspace, scope)
}

fn named(prefix: &str, workspace: &Workspace, scope: CacheScope) -> Option<String> {
    let owner = super::owner_id();
    match scope {
        CacheScope::Off => None,
        CacheScope::User => Some(format!("{prefix}.{owner}")),
        CacheScope::Repo => Some(format!("{prefix}.{owner}.{}", workspace.repo)),
    }
}

fn labels_of(workspace: &Workspace, scope: CacheScope) -> CacheLabels {
    CacheLabels {
        owner: super::owner_id(),
        repo: (scope == CacheScope::Repo).then(|| workspace.repo.clone()),
    }
}

/// Mounts the caches `config` asks for into `spec` and points the tools
/// at them. A variable the config's `env` sets is left as the config says.
/// Cargo needs the image's settings: see [`prepare`].
pub fn apply(spec: &mut RunSpec, workspace: &Workspace, config: &Config) {
    let Some(volume) = volume_name(workspace, config.caches) else {
        return;
    };
    spec.volumes.push((volume, PathBuf::from(CACHE_DIR)));
    let tools = TOOL_DIRS
        .iter()
        .map(|(name, dir)| (*name, format!("{CACHE_DIR}/{dir}")));
    let settings = TOOL_SETTINGS
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()));
    for (name, value) in tools.chain(settings) {
        if !config.env.contains_key(name) {
            spec.env.push((name.to_owned(), value));
        }
    }
}

/// Before the container is made: creates the cache volumes (labelled as
/// the installation's, and the repo's), places cargo's registry in them
/// (the image's `CARGO_HOME` decides how, see the module's doc), and
/// returns the mount points to hand to the user (`identity::hand_over_volumes`).
pub fn prepare(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    spec: &mut RunSpec,
) -> Result<Vec<PathBuf>, EngineError> {
    let (Some(volume), Some(cargo_volume)) = (
        volume_name(workspace, config.caches),
        cargo_volume_name(workspace, config.caches),
    ) else {
        return Ok(Vec::new());
    };
    let labels = labels_of(workspace, config.caches).to_labels();
    engine.volume_create(&volume, &labels)?;
    let mut targets = vec![PathBuf::from(CACHE_DIR)];
    if config.env.contains_key("CARGO_HOME") {
        return Ok(targets);
    }
    let image_env = engine.image_env(&spec.image)?;
    let image_cargo_home = image_env
        .iter()
        .find(|(name, _)| name == "CARGO_HOME")
        .map(|(_, value)| value.as_str());
    let home = spec
        .env
        .iter()
        .find(|(name, _)| name == "HOME")
        .map(|(_, value)| PathBuf::from(value));
    match cargo_placement(image_cargo_home, home.as_deref(), &workspace.path) {
        CargoPlacement::Home => spec
            .env
            .push(("CARGO_HOME".into(), format!("{CACHE_DIR}/{CARGO_HOME_DIR}"))),
        CargoPlacement::Registry(registry) => {
            engine.volume_create(&cargo_volume, &labels)?;
            spec.volumes.push((cargo_volume, registry.clone()));
            targets.push(registry);
        }
        CargoPlacement::None => {}
    }
    Ok(targets)
}

/// Where cargo's downloads go, given the image's `CARGO_HOME`.
#[derive(Debug, PartialEq, Eq)]
enum CargoPlacement {
    /// The image sets none: `CARGO_HOME` in the cache.
    Home,
    /// A volume mounted at this `registry` of the image's `CARGO_HOME`.
    Registry(PathBuf),
    /// The image's `CARGO_HOME` is no place for a mount (relative, in the
    /// home or the clone, which are bind mounts of host directories, or
    /// not a value `--mount` can hold): cargo keeps its own registry.
    None,
}

fn cargo_placement(
    image_cargo_home: Option<&str>,
    home: Option<&Path>,
    clone: &Path,
) -> CargoPlacement {
    let Some(cargo_home) = image_cargo_home else {
        return CargoPlacement::Home;
    };
    let cargo_home = Path::new(cargo_home);
    let plain = cargo_home.is_absolute()
        && cargo_home.components().all(|c| {
            matches!(
                c,
                std::path::Component::RootDir | std::path::Component::Normal(_)
            )
        });
    let in_host_dir =
        home.is_some_and(|home| cargo_home.starts_with(home)) || cargo_home.starts_with(clone);
    let registry = cargo_home.join("registry");
    if !plain
        || in_host_dir
        || crate::engine::spec::check_mount_field("a volume target", &registry).is_err()
    {
        return CargoPlacement::None;
    }
    CargoPlacement::Registry(registry)
}

/// What `dual verify` says of a workspace's caches: the volumes, and who
/// shares them.
pub fn describe(workspace: &Workspace, config: &Config) -> Option<String> {
    let volume = volume_name(workspace, config.caches)?;
    let sharers = match config.caches {
        CacheScope::User => {
            "every workspace of yours whose repo says `caches = \"user\"`".to_owned()
        }
        _ => format!("the workspaces of `{}`", workspace.repo),
    };
    Some(format!(
        "`{volume}` at {CACHE_DIR} (npm, pnpm, yarn, pip, uv, Go, bundler, cargo), shared by {sharers}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> Workspace {
        Workspace::for_test("shop", "main", "/home/u/dual/shop/main")
    }

    fn env_of(spec: &RunSpec, name: &str) -> Option<String> {
        spec.env
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    #[test]
    fn the_tools_point_into_one_volume_of_the_repo() {
        let mut spec = RunSpec::new("c", "img");
        let mut config = Config::default();
        config.env.insert("PIP_CACHE_DIR".into(), "/mine".into());
        apply(&mut spec, &workspace(), &config);
        let owner = crate::workspace::owner_id();
        assert_eq!(
            spec.volumes,
            [(format!("dual-cache.{owner}.shop"), PathBuf::from(CACHE_DIR))]
        );
        assert_eq!(
            env_of(&spec, "npm_config_cache").as_deref(),
            Some("/var/cache/dual/npm")
        );
        assert_eq!(
            env_of(&spec, "UV_CACHE_DIR").as_deref(),
            Some("/var/cache/dual/uv")
        );
        assert_eq!(env_of(&spec, "UV_LINK_MODE").as_deref(), Some("copy"));
        assert_eq!(
            env_of(&spec, "PIP_CACHE_DIR"),
            None,
            "the config's own value stands (the spec's env takes it from the config)"
        );
    }

    #[test]
    fn scopes_name_distinct_volumes_and_off_mounts_nothing() {
        let owner = crate::workspace::owner_id();
        assert_eq!(
            volume_name(&workspace(), CacheScope::User),
            Some(format!("dual-cache.{owner}"))
        );
        let mut user_repo = workspace();
        user_repo.repo = "user".into();
        assert_ne!(
            volume_name(&user_repo, CacheScope::Repo),
            volume_name(&workspace(), CacheScope::User),
            "a repo named `user` has its own"
        );
        let mut spec = RunSpec::new("c", "img");
        let config = Config {
            caches: CacheScope::Off,
            ..Config::default()
        };
        apply(&mut spec, &workspace(), &config);
        assert!(spec.volumes.is_empty() && spec.env.is_empty(), "{spec:?}");
    }

    #[test]
    fn cargo_keeps_the_image_s_home_and_caches_its_registry() {
        let clone = Path::new("/home/u/dual/shop/main");
        let home = Some(Path::new("/home/u"));
        assert_eq!(cargo_placement(None, home, clone), CargoPlacement::Home);
        assert_eq!(
            cargo_placement(Some("/usr/local/cargo"), home, clone),
            CargoPlacement::Registry("/usr/local/cargo/registry".into())
        );
        for unfit in [
            "cargo",
            "/usr/../etc",
            "/home/u/.cargo",
            "/home/u/dual/shop/main/.cargo",
            "/x,type=bind,source=/",
        ] {
            assert_eq!(
                cargo_placement(Some(unfit), home, clone),
                CargoPlacement::None,
                "{unfit}"
            );
        }
    }
}
