//! A workspace's services (see `workspace::services`): which one a name
//! means, and restarting them.

use crate::engine::EngineKind;
use crate::error::HintExt as _;
use crate::printer::Printer;
use crate::workspace::config::Config;
use crate::workspace::config_file::is_service_name;
use crate::workspace::services::{self, Control};
use crate::workspace::{self, State, Workspace, WorkspaceError};

/// What `restart` did.
#[derive(Debug)]
pub struct Restarted {
    pub workspace: String,
    pub services: Vec<String>,
}

/// A workspace and maybe one of its services, from up to two names: `dual
/// logs web` in a workspace's clone means its service `web` when no
/// workspace is called `web`.
pub fn resolve<'s>(
    state: &'s State,
    first: Option<&str>,
    second: Option<&str>,
) -> anyhow::Result<(&'s Workspace, Config, Option<String>)> {
    let (workspace, service) = match (first, second) {
        (Some(first), Some(second)) => (
            workspace::resolve(state, Some(first)).hinted()?,
            Some(second),
        ),
        (Some(first), None) => match workspace::resolve(state, Some(first)) {
            Ok(workspace) => (workspace, None),
            Err(WorkspaceError::UnknownWorkspace(_)) => {
                (workspace::resolve(state, None).hinted()?, Some(first))
            }
            Err(error) => return Err(crate::error::hinted(error)),
        },
        (None, _) => (workspace::resolve(state, None).hinted()?, None),
    };
    with_service(workspace, service)
}

/// A workspace (by name; else the one around the working directory) and
/// maybe one of its services or sidecars, named as such.
pub fn resolve_named<'s>(
    state: &'s State,
    workspace: Option<&str>,
    service: Option<&str>,
) -> anyhow::Result<(&'s Workspace, Config, Option<String>)> {
    with_service(workspace::resolve(state, workspace).hinted()?, service)
}

/// The workspace's config, and `service` checked against it.
fn with_service<'s>(
    workspace: &'s Workspace,
    service: Option<&str>,
) -> anyhow::Result<(&'s Workspace, Config, Option<String>)> {
    let config = Config::load(&workspace.path)?;
    // A service the config no longer names still has its log; the name
    // must be one a config could give, never a path (`/home/me/x`,
    // `../other/web`) that would read another file through it.
    if let Some(service) = service
        && !config.services.contains_key(service)
        && !config.sidecars.contains_key(service)
        && !(is_service_name(service) && services::log_file(&workspace.name(), service).exists())
    {
        let known: Vec<&str> = config
            .services
            .keys()
            .chain(config.sidecars.keys())
            .map(String::as_str)
            .collect();
        anyhow::bail!(crate::error::Hinted {
            message: format!(
                "`{}` has no service `{service}`{}",
                workspace.name(),
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (it has {})", known.join(", "))
                }
            ),
            hint: "services are `[services.NAME]` tables in .dual.toml; sidecars `[sidecars.NAME]` or the compose file's services".into(),
        });
    }
    Ok((workspace, config, service.map(str::to_owned)))
}

/// Restarts the services of a workspace (all, or the one named): `first`
/// and `second` as `resolve` reads them.
pub fn restart(
    flag: Option<EngineKind>,
    state: &State,
    first: Option<&str>,
    second: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<Restarted> {
    let (workspace, config, service) = resolve(state, first, second)?;
    if let Some(name) = service
        .as_deref()
        .filter(|s| config.sidecars.contains_key(*s))
    {
        let engine = super::engine_for(flag, Some(workspace)).hinted()?;
        printer.detail(format!(
            "restarting sidecar `{name}` of `{}`",
            workspace.name()
        ));
        crate::workspace::stack::restart(&engine, workspace, &config, name).hinted()?;
        return Ok(Restarted {
            workspace: workspace.name(),
            services: vec![name.to_owned()],
        });
    }
    if config.services.is_empty() {
        anyhow::bail!(crate::error::Hinted {
            message: format!("`{}` has no services to restart", workspace.name()),
            hint: "add a `[services.NAME]` table with a `command` to its .dual.toml".into(),
        });
    }
    let engine = super::engine_for(flag, Some(workspace)).hinted()?;
    let running = engine
        .inspect(&[&workspace.container_name()])
        .hinted()?
        .pop()
        .is_some_and(|container| container.running);
    if !running {
        anyhow::bail!(crate::error::Hinted {
            message: format!("`{}` is not running", workspace.name()),
            hint: format!(
                "`dual launch {}` starts it with its services",
                workspace.name()
            ),
        });
    }
    let names: Vec<String> = service.into_iter().collect();
    printer.detail(format!("restarting the services of `{}`", workspace.name()));
    services::control(&engine, workspace, &config, Control::Restart(&names)).hinted()?;
    let which = if names.is_empty() {
        config.services.keys().cloned().collect()
    } else {
        names
    };
    Ok(Restarted {
        workspace: workspace.name(),
        services: which,
    })
}

/// The last `lines` lines (else all) sidecar `name` of `workspace` printed:
/// its container's log, which the engine keeps (a service's is a file),
/// read as `dual logs` reads it (each stream bounded: see `ops::logs`).
pub fn sidecar_log(
    flag: Option<EngineKind>,
    workspace: &Workspace,
    name: &str,
    lines: Option<usize>,
) -> anyhow::Result<String> {
    let engine = super::engine_for(flag, Some(workspace)).hinted()?;
    let container = crate::workspace::stack::container_name(workspace, name);
    Ok(super::logs::read_container(&engine, &container, lines, None)?.text)
}
