//! `dual shell-init [bash|zsh|fish]` and the hidden `dual shim NAME …` that
//! every shim runs.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::print;
use crate::shell::{self, Shell};
use crate::workspace::config::Config;
use crate::workspace::{DEFAULT_ROUTED, Store};

pub fn run(shell: Option<Shell>) -> anyhow::Result<ExitCode> {
    let shell = shell.unwrap_or_else(Shell::detect);
    let shims = write_shims()?;
    print(&shell::init_code(shell, &shims))?;
    Ok(ExitCode::SUCCESS)
}

/// A PATH with the shims first (written or refreshed now): what a shell
/// needs for runtime commands to run in the workspace's container.
pub fn routed_path() -> anyhow::Result<String> {
    let shims = write_shims()?;
    Ok(format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    ))
}

/// Writes (or refreshes) the shims; returns their directory.
pub fn write_shims() -> anyhow::Result<std::path::PathBuf> {
    let dual = std::env::current_exe().context("could not find dual's own path")?;
    let shims = crate::paths::shims_dir();
    shell::write_shims(&shims, &dual, &routed_commands())
        .with_context(|| format!("could not write the shims into `{}`", shims.display()))?;
    Ok(shims)
}

/// The defaults plus every `extra_commands` of the workspaces' configs.
fn routed_commands() -> Vec<String> {
    let mut commands: Vec<String> = DEFAULT_ROUTED.iter().map(|c| (*c).to_owned()).collect();
    if let Ok(state) = Store::open_default().load() {
        for workspace in &state.workspaces {
            if let Ok(config) = Config::load(&workspace.path) {
                commands.extend(config.extra_commands);
            }
        }
    }
    commands.sort();
    commands.dedup();
    commands
}

/// `dual shim NAME ARGS…`, as the shims run it (dispatched before clap, so
/// ARGS are the command's own, untouched).
pub fn shim_main(args: &[OsString]) -> anyhow::Result<ExitCode> {
    let Some((name, args)) = args.split_first() else {
        eprintln!(
            "error: `dual shim` needs a command name\nhint: it is run by the shims that `dual shell-init` writes, as `dual shim NAME ARGS…`"
        );
        return Ok(ExitCode::from(2));
    };
    let Some(name) = name
        .to_str()
        .filter(|name| crate::workspace::config::is_command_name(name))
    else {
        anyhow::bail!(
            "`{}` is not a command name a shim runs",
            name.to_string_lossy()
        );
    };
    shim(name, args)
}

/// Inside a workspace that routes `name`: run it in the container. Anywhere
/// else: become the host's own `name`, as if no shim were there.
fn shim(name: &str, args: &[OsString]) -> anyhow::Result<ExitCode> {
    let here = crate::workspace::current_dir().unwrap_or_default();
    let root = crate::paths::workspace_root();
    let in_root = root.canonicalize().is_ok_and(|root| here.starts_with(root));
    if in_root {
        let state = Store::open_default().load()?;
        if let Some(workspace) = state.workspace_at(&here) {
            let config = Config::load(&workspace.path)?;
            let routed =
                DEFAULT_ROUTED.contains(&name) || config.extra_commands.iter().any(|c| c == name);
            // A URL of another workspace goes through the proxy, from the
            // host: inside, it would reach this workspace's own server.
            let foreign = super::run::foreign_localhost(workspace, args).is_some();
            if routed && !foreign {
                let mut command = vec![OsString::from(name)];
                command.extend(args.iter().cloned());
                return super::run::run_in(None, workspace, &command);
            }
        }
    }
    let shims = crate::paths::shims_dir();
    let host_path = shell::path_without(&shims);
    let found = host_path
        .as_deref()
        .and_then(|path| crate::process::find_in(name, path));
    let Some(program) = found else {
        eprintln!(
            "dual: `{name}` is not installed on this host (and this directory is not in a workspace)"
        );
        return Ok(ExitCode::from(127));
    };
    let error = crate::process::exec_replace(&program, args, None);
    Err(error.into())
}
