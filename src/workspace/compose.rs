//! The repo's compose file as sidecars: see `load`.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::{ComposeFile, ConfigError};
use super::sidecars::Sidecar;

/// What a compose file gives dual.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stack {
    pub sidecars: BTreeMap<String, Sidecar>,
    /// One line each for what dual does not do as compose would.
    pub notes: Vec<String>,
}

/// The compose file of the clone at `dir` that `setting` names, relative
/// to `dir`; `None` when there is none.
pub fn find(dir: &Path, setting: &ComposeFile) -> Result<Option<String>, ConfigError> {
    let _ = (dir, setting);
    Ok(None)
}

/// The sidecars of compose file `file` of the clone at `dir`.
pub fn load(dir: &Path, file: &str) -> Result<Stack, ConfigError> {
    let _ = (dir, file);
    Ok(Stack::default())
}
