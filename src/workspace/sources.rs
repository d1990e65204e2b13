//! Where a workspace's settings come from: the clone's `.dual.toml`, its
//! devcontainer.json under it, what detection finds where it has neither,
//! and dual's defaults. Apart from `config` (which reads `.dual.toml` and
//! holds the types), so that the readers of the other sources can use
//! those types without `config` depending on them.

use std::collections::BTreeSet;
use std::path::Path;

use super::config::{self, Config, ConfigError, ConfigOrigin, FILE_NAME};

impl Config {
    /// The config of the clone at `dir`: its `.dual.toml` over its
    /// devcontainer.json; with neither, what detection finds; else the
    /// defaults.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join(FILE_NAME);
        let (mut config, set) = match config::read_config_text(dir) {
            Ok(text) => {
                let (config, set) = Config::parse_keys(&text, &path)?;
                (config, Some(set))
            }
            Err(error) if error.is_not_found() => (Config::default(), None),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let devcontainer = super::devcontainer::load(dir, &config.devcontainer)?;
        match (&set, devcontainer) {
            (Some(set), devcontainer) => {
                let file = devcontainer.map(|loaded| {
                    loaded.layer.fill(&mut config, set);
                    loaded.file
                });
                config.origin = ConfigOrigin::DualToml { devcontainer: file };
            }
            (None, Some(loaded)) => {
                loaded.layer.fill(&mut config, &BTreeSet::new());
                config.origin = ConfigOrigin::Devcontainer(loaded.file);
            }
            (None, None) => {
                if let Some(detected) = super::detect::detect(dir) {
                    detected.layer.fill(&mut config, &BTreeSet::new());
                    config.origin = ConfigOrigin::Detected(detected.summary);
                }
            }
        }
        super::env::check_loaded(dir, &config)?;
        // `node_modules` in a volume is for Node projects only.
        let volumes_set = set
            .as_ref()
            .is_some_and(|set| set.contains("anonymous_volumes"))
            || config.anonymous_volumes != Config::default().anonymous_volumes;
        if !volumes_set && !super::detect::is_node_project(dir) {
            config.anonymous_volumes.clear();
        }
        // A directory is one volume: an anonymous volume's wins over a
        // devcontainer mount at the same place (the engine refuses two).
        let volume_dirs: Vec<std::path::PathBuf> = config
            .anonymous_volumes
            .iter()
            .map(|d| dir.join(d))
            .collect();
        config.mounts.retain(|mount| {
            let twice = volume_dirs.iter().any(|d| *d == Path::new(&mount.target));
            if twice {
                config.notes.push(format!(
                    "the volume `{}` at `{}` is not mounted: `anonymous_volumes` keeps that directory in a volume already",
                    mount.name, mount.target
                ));
            }
            !twice
        });
        config.add_compose_sidecars(dir)?;
        Ok(config)
    }
}

/// Where a setting of the clone at `dir` comes from, for messages:
/// "`/w/.dual.toml` line 2", what detection guessed it from, or the
/// default and why.
pub fn origin_of(key: &str, dir: &Path) -> String {
    config::toml_origin_of(key, dir).unwrap_or_else(|| {
        super::detect::reason(dir, key).map_or_else(
            || format!("the default: the clone has no {FILE_NAME}"),
            |why| {
                format!(
                    "guessed from the repo's files: {why}; `dual init` writes it to {FILE_NAME}"
                )
            },
        )
    })
}
