//! Where dual keeps its files on the host (XDG on Linux).
//!
//! `DUAL_HOME` puts everything (state, shims, homes, shared files) under one
//! directory: tests use it, and so can a user who wants dual self-contained.
//! Workspace clones go under `DUAL_WORKSPACE_ROOT`, else `~/dual`.

use std::path::PathBuf;

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// State, shims and per-workspace homes.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = crate::settings::home() {
        return dir;
    }
    match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("dual"),
        None => home().join(".local/share/dual"),
    }
}

/// Where clones live: `{root}/{repo}/{branch-label}`.
pub fn workspace_root() -> PathBuf {
    match crate::settings::workspace_root() {
        Some(dir) => dir,
        None if crate::settings::home().is_some() => data_dir().join("workspaces"),
        None => home().join("dual"),
    }
}

pub fn state_file() -> PathBuf {
    data_dir().join("state.json")
}

pub fn shims_dir() -> PathBuf {
    data_dir().join("shims")
}

/// The user's own settings (the commands they route besides the repos'):
/// `$DUAL_HOME/config.toml` when `DUAL_HOME` is set, else
/// `$XDG_CONFIG_HOME/dual/config.toml`, else `~/.config/dual/config.toml`.
/// Never in a clone: a repo cannot write it.
pub fn user_config_file() -> PathBuf {
    if let Some(dir) = crate::settings::home() {
        return dir.join("config.toml");
    }
    match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("dual/config.toml"),
        None => home().join(".config/dual/config.toml"),
    }
}

/// Files dual writes for the shells it starts (a workspace's tmux session,
/// the browser's subshell): rc files that read the user's own first.
pub fn shell_dir() -> PathBuf {
    data_dir().join("shell")
}

/// A workspace's home directory, mounted as `$HOME` inside its container.
pub fn workspace_home(workspace: &str) -> PathBuf {
    data_dir().join("homes").join(workspace)
}

/// Files shared by every workspace of a repo (`.env.local`, …).
pub fn shared_dir(repo: &str) -> PathBuf {
    data_dir().join("shared").join(repo)
}

/// The user's own home, whose path is `$HOME` inside containers too.
pub fn user_home() -> PathBuf {
    home()
}
