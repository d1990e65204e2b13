//! Where the user's shell in a workspace comes from: the shims written for
//! every routed command (the defaults, the user's and each workspace's), and
//! the user's own shell started with dual's rc file after theirs.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::shell::user_config::UserConfig;
use crate::workspace::config::Config;
use crate::workspace::{DEFAULT_ROUTED, Store};

/// How to start the user's shell (`$SHELL`) in a workspace, with the shims
/// first on PATH after its rc files and at every prompt.
pub fn interactive_shell() -> anyhow::Result<super::Interactive> {
    let (shims, _) = write_shims()?;
    let program = std::env::var_os("SHELL")
        .filter(|shell| !shell.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    let rc_dir = crate::paths::shell_dir();
    super::interactive(std::path::Path::new(&program), &shims, &rc_dir).with_context(|| {
        format!(
            "could not write dual's rc files into `{}`",
            rc_dir.display()
        )
    })
}

/// Writes (or refreshes) the shims; returns their directory and a warning
/// for each config whose commands are not routed.
pub fn write_shims() -> anyhow::Result<(std::path::PathBuf, Vec<String>)> {
    let dual = std::env::current_exe().context("could not find dual's own path")?;
    let shims = crate::paths::shims_dir();
    let (commands, warnings) = routed_commands();
    super::write_shims(&shims, &dual, &commands)
        .with_context(|| format!("could not write the shims into `{}`", shims.display()))?;
    Ok((shims, warnings))
}

/// The defaults, the user's `extra_commands` and every workspace's. A config
/// that cannot be read (a repo's that names `sudo` or `.`, say) adds none,
/// and is named once per repo; the rest keep working.
fn routed_commands() -> (Vec<String>, Vec<String>) {
    let mut commands: Vec<String> = DEFAULT_ROUTED.iter().map(|c| (*c).to_owned()).collect();
    let mut warnings = Vec::new();
    match UserConfig::load() {
        Ok(user) => commands.extend(user.extra_commands),
        Err(error) => warnings.push(format!("{error}; none of its commands are routed")),
    }
    let mut broken: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    if let Ok(state) = Store::open_default().load() {
        for workspace in &state.workspaces {
            // What its last launch checked; the clone's config only for a
            // workspace launched by an older dual (read anyway: a broken
            // one is worth a warning).
            let config = Config::load(&workspace.path);
            match (&workspace.routed, config) {
                (Some(routed), Ok(_)) => commands.extend(routed.iter().cloned()),
                (None, Ok(config)) => commands.extend(config.extra_commands),
                (routed, Err(error)) => {
                    if let Some(routed) = routed {
                        commands.extend(routed.iter().cloned());
                    }
                    let (names, _) = broken
                        .entry(workspace.repo.clone())
                        .or_insert_with(|| (Vec::new(), error.to_string()));
                    names.push(format!("`{}`", workspace.name()));
                }
            }
        }
    }
    for (repo, (workspaces, error)) in broken {
        let error = error.replace('\n', "\n  ");
        warnings.push(format!(
            "repo `{repo}`: the .dual.toml of {} does not load, so no command it names now is routed (those its last launch checked still are): {error}",
            workspaces.join(", ")
        ));
    }
    commands.sort();
    commands.dedup();
    (commands, warnings)
}
