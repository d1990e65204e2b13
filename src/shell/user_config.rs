//! The user's own config file (`paths::user_config_file`), for what only
//! the user may decide: commands routed into every workspace's container
//! besides dual's defaults and the repos' `extra_commands`. A repo cannot
//! write it, so the deny list of [`policy`] does not apply
//! here; the name rules (plain names, no shell builtins) do.
//!
//! ```toml
//! extra_commands = ["just", "ssh"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::policy::{self, Origin};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    pub extra_commands: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserConfigError {
    #[error("could not read your config `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("your config `{}`: {message}", .path.display())]
    Invalid { path: PathBuf, message: String },
}

impl UserConfig {
    /// The user's config; empty when there is none.
    pub fn load() -> Result<UserConfig, UserConfigError> {
        UserConfig::load_from(&crate::paths::user_config_file())
    }

    pub fn load_from(path: &Path) -> Result<UserConfig, UserConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => UserConfig::parse(&text, path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(UserConfig::default()),
            Err(source) => Err(UserConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<UserConfig, UserConfigError> {
        let invalid = |message: String| UserConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let config: UserConfig = toml::from_str(text)
            .map_err(|error| invalid(error.to_string().trim_end().to_owned()))?;
        for name in &config.extra_commands {
            if let Err(refusal) = policy::check(name, Origin::User) {
                return Err(invalid(format!(
                    "`extra_commands`: {refusal}; {}",
                    refusal.advice(Origin::User)
                )));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UserConfig, String> {
        UserConfig::parse(text, Path::new("/home/u/.config/dual/config.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_user_routes_what_a_repo_may_not_under_the_same_name_rules() {
        assert_eq!(parse("").unwrap(), UserConfig::default());
        assert_eq!(
            parse("extra_commands = [\"just\", \"ssh\", \"sudo\"]\n")
                .unwrap()
                .extra_commands,
            ["just", "ssh", "sudo"]
        );
        let builtin = parse("extra_commands = [\"cd\"]\n").unwrap_err();
        assert!(
            builtin.starts_with("your config `/home/u/.config/dual/config.toml`: `extra_commands`: `cd` is a builtin"),
            "{builtin}"
        );
        assert!(parse("extra_commands = [\"..\"]\n").is_err());
        let unknown = parse("extra_comands = []\n").unwrap_err();
        assert!(unknown.contains("unknown field"), "{unknown}");
    }

    #[test]
    fn a_missing_file_is_an_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            UserConfig::load_from(&dir.path().join("config.toml")).unwrap(),
            UserConfig::default()
        );
    }
}
