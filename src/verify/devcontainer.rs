//! `dual verify` in a workspace's clone: the devcontainer.json its settings
//! come from (which file, what dual took of it), its `initializeCommand`
//! (refused by `launch`), and every key dual did not take as written, once
//! each. Outside a workspace, or without a devcontainer.json, nothing. No
//! engine call: this is what the file says.

use std::collections::BTreeSet;

use super::{Check, error_chain};
use crate::workspace::config::{Config, ConfigOrigin};
use crate::workspace::devcontainer;
use crate::workspace::{self, Store, Workspace};

const NAME: &str = "devcontainer";
const FIX_NOTE: &str = "nothing, if the workspace works without it; else set it in .dual.toml, which wins over devcontainer.json key by key";

/// The checks for the workspace around the current directory, if it is in
/// one and it has a devcontainer.json.
pub fn checks() -> Vec<Check> {
    let Ok(state) = Store::open_default().load() else {
        return Vec::new();
    };
    let Ok(workspace) = workspace::resolve(&state, None) else {
        return Vec::new();
    };
    of_workspace(workspace)
}

fn of_workspace(workspace: &Workspace) -> Vec<Check> {
    let config = match Config::load(&workspace.path) {
        Ok(config) => config,
        Err(error) => {
            let text = error_chain(&error);
            // Another file's error is the sidecars check's to report.
            if !text.contains(".devcontainer") {
                return Vec::new();
            }
            let (detail, fix) = match text.split_once("\nhint: ") {
                Some((detail, fix)) => (detail.to_owned(), fix.to_owned()),
                None => (
                    text,
                    "fix the devcontainer.json (`dual launch` refuses it too)".into(),
                ),
            };
            return vec![Check::fail(NAME, detail, fix)];
        }
    };
    let (file, under) = match &config.origin {
        ConfigOrigin::Devcontainer(file) => (file.clone(), ""),
        ConfigOrigin::DualToml {
            devcontainer: Some(file),
        } => (file.clone(), ", under .dual.toml (which wins key by key)"),
        _ => return Vec::new(),
    };
    let mut checks = vec![Check::pass(
        NAME,
        format!("`{file}` read{under}: {}", taken(&config)),
    )];
    if let Some(host) = &config.initialize_command {
        let commands: Vec<String> = host
            .hook
            .commands
            .iter()
            .map(|(_, command)| match command {
                workspace::lifecycle::HookCommand::Shell(line) => line.clone(),
                workspace::lifecycle::HookCommand::Argv(words) => words.join(" "),
            })
            .collect();
        checks.push(Check::fail(
            "devcontainer-initialize",
            format!(
                "`initializeCommand` would run `{}` on this host: `dual launch` refuses it",
                crate::untrusted::shown_line(&commands.join("; "))
            ),
            format!(
                "`dual launch --skip-initialize-command {}` launches without it (that launch only); if you trust it, run it yourself in the clone first",
                workspace.name()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for note in &config.notes {
        if devcontainer::is_own_note(&file, note) && seen.insert(note) {
            checks.push(Check::warn(NAME, note.clone(), FIX_NOTE));
        }
    }
    checks
}

/// What dual took of the file, in a few words.
fn taken(config: &Config) -> String {
    let mut parts = Vec::new();
    match &config.build {
        Some(build) => parts.push(format!("the image built from `{}`", build.context)),
        None => parts.push(format!("image `{}`", config.image)),
    }
    let ports: Vec<String> = config.ports.iter().map(u16::to_string).collect();
    parts.push(format!("ports {}", ports.join(", ")));
    let lifecycle = &config.lifecycle;
    let hooks: Vec<&str> = lifecycle
        .on_create
        .iter()
        .chain(&lifecycle.post_start)
        .chain(&lifecycle.post_attach)
        .map(|hook| hook.key.as_str())
        .collect();
    if !hooks.is_empty() {
        parts.push(format!("runs {}", hooks.join(", ")));
    }
    let counted = |count: usize, what: &str| match count {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    };
    if !config.env.is_empty() {
        parts.push(counted(config.env.len(), "environment variable"));
    }
    if !config.mounts.is_empty() {
        parts.push(counted(config.mounts.len(), "volume"));
    }
    if !config.sidecars.is_empty() {
        let names: Vec<&str> = config.sidecars.keys().map(String::as_str).collect();
        parts.push(format!("sidecars {}", names.join(", ")));
    }
    parts.join("; ")
}
