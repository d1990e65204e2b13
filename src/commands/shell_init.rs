//! `dual shell-init [bash|zsh|fish]` and the hidden `dual shim NAME …` that
//! every shim runs.
//!
//! A routed command runs in the workspace's container or refuses; it never
//! falls back to the host's program inside a workspace, since that would run
//! the repo's code (its Makefile, package.json, scripts) on the host.

use std::ffi::OsString;
use std::process::ExitCode;

use super::print;
use crate::shell::user_config::UserConfig;
use crate::shell::{self, Shell};
use crate::workspace::config::Config;
use crate::workspace::{DEFAULT_ROUTED, Store, Workspace};

pub fn run(shell: Option<Shell>) -> anyhow::Result<ExitCode> {
    let shell = shell.unwrap_or_else(Shell::detect);
    let (shims, warnings) = shell::session::write_shims()?;
    for warning in warnings {
        eprintln!("dual: warning: {warning}");
    }
    print(&shell::init_code(shell, &shims))?;
    Ok(ExitCode::SUCCESS)
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
    let Some(name) = name.to_str().filter(|name| shell::policy::is_plain(name)) else {
        anyhow::bail!(
            "`{}` is not a command name a shim runs",
            name.to_string_lossy()
        );
    };
    shim(name, args)
}

/// Inside a workspace that routes `name`: run it in the container.
/// Outside every workspace: become the host's own `name`, as if no shim
/// were there. Anything else refuses, and never falls back to the host,
/// where the program would run the branch's files with the user's rights:
/// a name this workspace does not route (its container can rewrite its
/// `.dual.toml` between two calls), another workspace's URL, a directory
/// under the workspace root that no workspace holds.
fn shim(name: &str, args: &[OsString]) -> anyhow::Result<ExitCode> {
    let here = crate::workspace::current_dir().unwrap_or_default();
    let root = crate::paths::workspace_root();
    let in_root = root.canonicalize().is_ok_and(|root| here.starts_with(root));
    // Outside the root too: a clone made under an earlier root is still a
    // workspace. There, a state that cannot be read means none.
    let state = match Store::open_default().load() {
        Ok(state) => state,
        Err(error) if in_root => return Err(crate::error::hinted(error)),
        Err(_) => Default::default(),
    };
    let workspace = state.workspace_at(&here);
    if let Some(workspace) = workspace {
        if !routes(workspace, name)? {
            return Err(refuse_unrouted(workspace, name));
        }
        if let Some(host) = crate::ops::run::foreign_localhost(workspace, args) {
            return Err(refuse_foreign(workspace, name, &host));
        }
        let mut command = vec![OsString::from(name)];
        command.extend(args.iter().cloned());
        return super::run::run_in(None, workspace, &command);
    }
    if in_root {
        anyhow::bail!(crate::error::Hinted {
            message: format!(
                "`{}` is under dual's workspace root but in no workspace, so dual runs `{name}` neither in a container nor on the host",
                here.display()
            ),
            hint: "cd into a workspace's clone (`dual list --json` shows their paths), or out of the workspace root".into(),
        });
    }
    let Some(program) = host_program(name) else {
        eprintln!(
            "dual: `{name}` is not installed on this host (and this directory is not in a workspace)"
        );
        return Ok(ExitCode::from(127));
    };
    let error = crate::process::exec_replace(&program, args, None);
    Err(error.into())
}

/// The host's own `name`: the first on PATH that is not a shim.
fn host_program(name: &str) -> Option<std::path::PathBuf> {
    crate::process::find_on_path(name)
}

/// Whether `workspace` routes `name`: one of dual's defaults, the user's
/// `extra_commands` or its repo's. When a config that could say cannot be
/// read, nothing runs: not in the container (the config may not route it)
/// and not on the host (it may, and then the host would run the repo's
/// code).
fn routes(workspace: &Workspace, name: &str) -> anyhow::Result<bool> {
    if DEFAULT_ROUTED.contains(&name) {
        return Ok(true);
    }
    let unsure = |error: String, fix: String| {
        // The config's own hint is the `fix` here.
        let error = error.lines().next().unwrap_or_default().to_owned();
        let host = host_program(name).map_or_else(String::new, |path| {
            format!(
                "; the host's own is `{}`, which bypasses dual",
                path.display()
            )
        });
        anyhow::Error::new(crate::error::Hinted {
            message: format!(
                "dual cannot tell whether `{name}` runs in `{}`'s container, so it runs it nowhere: {error}",
                workspace.name()
            ),
            hint: format!("{fix}; meanwhile `dual run {name} …` runs it in the container{host}"),
        })
    };
    let user = UserConfig::load()
        .map_err(|error| unsure(error.to_string(), "fix your config".to_owned()))?;
    if user.extra_commands.iter().any(|c| c == name) {
        return Ok(true);
    }
    // As checked at its last launch: the container can rewrite the clone's
    // `.dual.toml` between two calls.
    if let Some(routed) = &workspace.routed {
        return Ok(routed.iter().any(|c| c == name));
    }
    let config = Config::load(&workspace.path).map_err(|error| {
        unsure(
            error.to_string(),
            format!(
                "fix its `.dual.toml` (`dual launch {}` checks it)",
                workspace.name()
            ),
        )
    })?;
    Ok(config.extra_commands.iter().any(|c| c == name))
}

/// Why a shim whose name this workspace does not route runs nowhere.
fn refuse_unrouted(workspace: &Workspace, name: &str) -> anyhow::Error {
    anyhow::Error::new(crate::error::Hinted {
        message: format!(
            "`{name}` is routed for other workspaces, not for `{}` (neither dual's defaults, your config nor its .dual.toml name it), so dual runs it neither in its container nor on the host, where it would run this branch's files with your rights",
            workspace.name()
        ),
        hint: format!(
            "`dual run {name} …` runs it in the container{}",
            host_program(name).map_or_else(String::new, |path| format!(
                "; if you trust this branch's files, the host's own is `{}`",
                path.display()
            ))
        ),
    })
}

/// Why a routed command naming another workspace's URL runs nowhere, and
/// what to do instead.
fn refuse_foreign(workspace: &Workspace, name: &str, host: &str) -> anyhow::Error {
    let own = workspace.name();
    anyhow::Error::new(crate::error::Hinted {
        message: format!(
            "`{name}` names `{host}`, another workspace, so dual runs it neither in `{own}`'s container (where every *.localhost name is the container's own loopback: it would reach `{own}`'s own server) nor on the host (where `{name}` would run this branch's code, its Makefile, package.json or scripts, with your rights)"
        ),
        hint: format!(
            "reach it from a directory outside the workspace, where `{name}` is the host's own and `{host}` goes through dual's proxy{}",
            host_program(name).map_or_else(String::new, |path| format!(
                "; or, if you trust this branch's files, run the host's `{name}` by its path (`{} …`), which bypasses dual",
                path.display()
            ))
        ),
    })
}
