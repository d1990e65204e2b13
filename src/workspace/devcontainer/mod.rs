//! devcontainer.json as a source of a workspace's settings.

use std::path::Path;

use super::config::{ConfigError, DevcontainerChoice};
use super::layer::ConfigLayer;

/// The settings of the clone at `dir`'s devcontainer.json (the one
/// `choice` picks), if it has one.
pub fn load(dir: &Path, choice: &DevcontainerChoice) -> Result<Option<Loaded>, ConfigError> {
    let _ = (dir, choice);
    Ok(None)
}

/// A devcontainer.json read into a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Relative to the clone's root.
    pub file: String,
    pub layer: ConfigLayer,
}
