//! devcontainer.json as a source of a workspace's settings.
//!
//! Millions of repos describe their development container in
//! `.devcontainer/devcontainer.json` (or `.devcontainer.json`, or one of
//! several `.devcontainer/NAME/devcontainer.json`). dual reads it into a
//! [`ConfigLayer`] that `.dual.toml` overrides key by key, so such a repo
//! launches as it is. What dual honours, and how it differs:
//!
//! - `image`; `build` (`dockerfile`, `context`, `args`, `target`: paths
//!   relative to the devcontainer.json's directory become the clone-relative
//!   build `launch` makes); `dockerComposeFile` + `service` (that service's
//!   image or build is the workspace's, its `environment` the workspace's
//!   env) + `runServices` (which others become sidecars).
//! - `forwardPorts` (numbers: declared ports, routed before anything
//!   listens), `portsAttributes` labels (shown beside the URLs).
//! - `containerEnv` and `remoteEnv`, into the container's environment.
//! - The lifecycle hooks, run in the container as the user, in the clone:
//!   `onCreateCommand`, `updateContentCommand` and `postCreateCommand` once
//!   per container, `postStartCommand` at each start, `postAttachCommand` at
//!   `dual attach` (see `workspace::lifecycle`, `ops::lifecycle`).
//! - `mounts` of named volumes, one set per workspace.
//!
//! The file is the branch's, so it is hostile input:
//! - **Nothing of it runs on the host.** `initializeCommand` is refused by
//!   `launch` unless the user skips it for that one launch.
//! - **No host environment.** `${localEnv:VAR}` is never read from the
//!   user's environment (a branch could otherwise copy the user's
//!   `AWS_SECRET_ACCESS_KEY` into its container): its default is used where
//!   it has one, else the value is left out, with a note.
//! - **No widened privileges, no host paths.** `privileged`, `capAdd`,
//!   `securityOpt`, bind mounts and `runArgs` such as `--privileged`,
//!   `--cap-add`, `--device`, `-v /host:/x` or `--network host` are refused,
//!   naming the key (see `run_args`).
//! - Every value reaching an engine is checked for that argument's syntax,
//!   and the file is read without following a link, within a size bound.
//!
//! What dual does not do as the spec would is one note each (`Config::notes`,
//! shown by `dual launch -v` and `dual verify`): `features` (their registry
//! is out of reach; each named with how to bake it into a Dockerfile),
//! `remoteUser` and `containerUser` (dual runs as the host user),
//! `workspaceFolder` (dual keeps the host path), other `runArgs`, and each
//! key dual does not use.

mod build;
mod compose;
mod find;
mod hooks;
mod mounts;
mod ports;
mod read;
mod reader;
mod run_args;
#[cfg(test)]
mod tests;
mod vars;

use std::path::Path;

use super::config::DevcontainerChoice;
use super::config_file::ConfigError;
use super::layer::ConfigLayer;
pub use super::lifecycle::HostCommand;

/// A devcontainer.json larger than this is refused (real ones are a few
/// KiB; the bound keeps a hostile one from filling memory).
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// The settings of the clone at `dir`'s devcontainer.json (the one
/// `choice` picks, else the user's `DUAL_DEVCONTAINER`), if it has one.
pub fn load(dir: &Path, choice: &DevcontainerChoice) -> Result<Option<Loaded>, ConfigError> {
    let wanted = crate::settings::devcontainer();
    let Some(file) = find::find(dir, choice, wanted.as_deref())? else {
        return Ok(None);
    };
    let path = dir.join(&file);
    let text = crate::confined::read_text(dir, Path::new(&file), MAX_FILE_BYTES)
        .map_err(|source| ConfigError::Read { path, source })?;
    read::read(dir, &file, &text).map(Some)
}

/// A devcontainer.json read into a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Relative to the clone's root.
    pub file: String,
    pub layer: ConfigLayer,
}

/// The notes of `config` that are its devcontainer.json's own (compose
/// notes name the compose file), for `verify` to list apart.
pub fn is_own_note(file: &str, note: &str) -> bool {
    note.strip_prefix(file)
        .is_some_and(|rest| rest.starts_with(": "))
}
