//! What a repo with no config is, guessed from its files: its stack, the
//! image, install command, dev server and port that stack usually has.

use std::path::Path;

use super::layer::ConfigLayer;

/// What was detected in the clone at `dir`, if anything was.
pub fn detect(dir: &Path) -> Option<Detected> {
    let _ = dir;
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// One line: what was guessed ("a Node project (pnpm, Vite: :5173)").
    pub summary: String,
    pub layer: ConfigLayer,
}

/// Whether the clone at `dir` is a Node project (a `package.json` at its
/// root): the default `node_modules` volume is for those only.
pub fn is_node_project(dir: &Path) -> bool {
    crate::confined::exists(dir, Path::new("package.json"))
}
