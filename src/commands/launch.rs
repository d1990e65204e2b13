//! `dual launch [WORKSPACE]`: make a workspace real and running: clone it if
//! needed, create or start its container, run `setup` on first launch.
//! Safe to repeat, and to run for many workspaces at once.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::print;
use crate::engine::labels::{KIND, MANAGED};
use crate::engine::spec::Publish;
use crate::engine::{Engine, EngineError, EngineKind, ExecSpec};
use crate::workspace::config::Config;
use crate::workspace::{self, Store, Workspace, WorkspaceError, git};

pub fn run(flag: Option<EngineKind>, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let store = Store::open_default();
    let state = store.load()?;
    let workspace = workspace::resolve(&state, name)?.clone();
    let repo = state
        .repos
        .get(&workspace.repo)
        .ok_or_else(|| WorkspaceError::UnknownRepo(workspace.repo.clone()))?
        .clone();
    let engine = super::engine_for(flag, Some(&workspace))?;

    if !workspace.path.exists() {
        clone_atomically(&repo.source, &workspace, &repo.default_branch)?;
        print(&format!(
            "cloned `{}` into {}\n",
            workspace.branch,
            workspace.path.display()
        ))?;
    }
    let config = Config::load(&workspace.path)?;
    let started = ensure_container(&engine, &workspace, &config)?;
    if !matches!(started, Started::AlreadyRunning) {
        steady_bridges(&engine, &workspace);
    }
    store.update(|state| -> anyhow::Result<()> {
        if let Some(record) = state.workspace_mut(&workspace.name()) {
            record.engine = Some(engine.kind());
        }
        Ok(())
    })?;
    print(&format!(
        "{} `{}` on {}\n",
        started.describe(),
        workspace.container_name(),
        engine.kind()
    ))?;

    if let Some(setup) = config.setup.as_deref().filter(|_| !workspace.setup_done) {
        print(&format!("running setup: {setup}\n"))?;
        let status = run_setup(&engine, &workspace, setup)?;
        if !status.success() {
            anyhow::bail!(crate::error::Hinted {
                message: format!(
                    "setup `{setup}` failed in `{}` ({})",
                    workspace.name(),
                    crate::process::StatusText(status)
                ),
                hint: format!(
                    "fix it and run `dual launch {}` again; setup runs until it succeeds once",
                    workspace.name()
                ),
            });
        }
        store.update(|state| -> anyhow::Result<()> {
            if let Some(record) = state.workspace_mut(&workspace.name()) {
                record.setup_done = true;
            }
            Ok(())
        })?;
    }
    for url in workspace::urls(&workspace, &config.ports) {
        print(&format!("  {url}\n"))?;
    }
    if std::env::var("DUAL_PROXY_AUTOSTART").map_or(true, |v| v != "0") {
        match super::proxy::start_background(Some(engine.kind())) {
            Ok(pid) => print(&format!("proxy: running (pid {pid})\n"))?,
            Err(error) => eprintln!(
                "warning: the proxy did not start: {error:#}\nhint: `dual proxy` runs it in the foreground"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Clones into a temporary sibling and renames it into place, so a failed
/// or interrupted clone never looks like a workspace.
fn clone_atomically(
    source: &str,
    workspace: &Workspace,
    default_branch: &str,
) -> anyhow::Result<()> {
    let parent = workspace
        .path
        .parent()
        .context("a workspace path has a parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("could not create `{}`", parent.display()))?;
    let partial = parent.join(format!(
        ".{}.partial-{}",
        workspace.label,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&partial);
    let cloned = git::clone(source, &partial, &workspace.branch, default_branch);
    if let Err(error) = cloned {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(error)
            .with_context(|| format!("could not clone `{source}` for `{}`", workspace.name()));
    }
    if let Err(error) = std::fs::rename(&partial, &workspace.path) {
        let _ = std::fs::remove_dir_all(&partial);
        // Another launch of the same workspace got there first: fine.
        if !workspace.path.exists() {
            return Err(error).with_context(|| {
                format!("could not move the clone to `{}`", workspace.path.display())
            });
        }
    }
    Ok(())
}

/// Podman's bridge may change its MAC address as containers come and go,
/// stalling this workspace's traffic (see engine::bridge); fix it now.
fn steady_bridges(engine: &Engine, workspace: &Workspace) {
    if engine.kind() != EngineKind::Podman {
        return;
    }
    let result = engine
        .inspect_one(&workspace.container_name())
        .map_err(|error| error.to_string())
        .and_then(|container| {
            let networks: Vec<&str> = container.networks.keys().map(String::as_str).collect();
            crate::engine::bridge::steady(engine, &networks)
        });
    if let Err(error) = result {
        eprintln!(
            "dual: warning: {error}\n  the workspace runs, but its connections may stall for seconds when other containers start or stop"
        );
    }
}

pub enum Started {
    Created,
    Restarted,
    AlreadyRunning,
}

impl Started {
    fn describe(&self) -> &'static str {
        match self {
            Started::Created => "created and started",
            Started::Restarted => "started",
            Started::AlreadyRunning => "already running:",
        }
    }
}

/// Creates the container if it is missing (or was removed behind dual's
/// back), starts it if stopped.
pub fn ensure_container(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
) -> anyhow::Result<Started> {
    let name = workspace.container_name();
    if let Some(existing) = engine.inspect(&[&name])?.pop() {
        let label = |key: &str| existing.labels.get(key).map(String::as_str);
        let ours = label(MANAGED) == Some("true")
            && label(KIND) == Some(workspace::KIND_WORKSPACE)
            && label(workspace::OWNER_LABEL) == Some(workspace::owner_id().as_str());
        if !ours {
            return Err(WorkspaceError::ForeignContainer(name).into());
        }
        if existing.running {
            return Ok(Started::AlreadyRunning);
        }
        match engine.start(&name) {
            Ok(()) => return Ok(Started::Restarted),
            // A container that cannot start again (its image or a mount is
            // gone) is recreated; the clone and volumes hold the state.
            Err(error) => {
                crate::log::debug(&format!("recreating {name}: {error}"));
                engine.remove(&[&name])?;
            }
        }
    }
    let labels = workspace::labels(workspace);
    for index in 0..config.anonymous_volumes.len() {
        engine.volume_create(&workspace::volume_name(workspace, index), &labels)?;
    }
    let home = crate::paths::user_home();
    let home_source = crate::paths::workspace_home(&workspace.name());
    std::fs::create_dir_all(&home_source)
        .with_context(|| format!("could not create `{}`", home_source.display()))?;
    let mode = host_mode(engine)?;
    let ids = mode.ids;
    let mut spec = workspace::container_spec(workspace, config, ids, &home, &home_source);
    spec.keep_host_uid = mode.keep_host_uid;
    if mode.publish_ports {
        spec.publish
            .extend(config.ports.iter().map(|&port| Publish::loopback(0, port)));
    }
    match engine.run_detached(&spec) {
        Ok(_) => {}
        // Two launches of one workspace at once: the other created it.
        Err(EngineError::Command { source, .. }) if source.stderr().contains("already in use") => {
            return Ok(Started::AlreadyRunning);
        }
        Err(error) => return Err(error.into()),
    }
    give_volumes_to_user(engine, workspace, config, ids)?;
    Ok(Started::Created)
}

struct HostMode {
    /// The uid and gid the container's processes run as, so that files they
    /// write in the clone belong to the user on the host.
    ids: (u32, u32),
    keep_host_uid: bool,
    /// The host cannot reach container IPs: publish the workspace's ports on
    /// 127.0.0.1 (ephemeral host ports) for the proxy to route to.
    publish_ports: bool,
}

fn host_mode(engine: &Engine) -> anyhow::Result<HostMode> {
    let ids = workspace::host_ids();
    let info = engine.info()?;
    let remote = std::env::var("DOCKER_HOST").is_ok_and(|h| !h.starts_with("unix://"))
        || info.operating_system.contains("Docker Desktop");
    let publish_ports = info.rootless || remote;
    let (ids, keep_host_uid) = match (engine.kind(), info.rootless) {
        _ if ids.0 == 0 => (ids, false),
        // keep-id maps the user to the same uid inside: full fidelity.
        (EngineKind::Podman, true) => (ids, true),
        // Rootless docker maps container root to the user, and has no
        // keep-id: root inside is the user outside (`id -u` says 0).
        (EngineKind::Docker, true) => ((0, 0), false),
        _ => (ids, false),
    };
    Ok(HostMode {
        ids,
        keep_host_uid,
        publish_ports,
    })
}

/// Fresh volumes belong to root; the user's processes must write them.
fn give_volumes_to_user(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    ids: (u32, u32),
) -> anyhow::Result<()> {
    if config.anonymous_volumes.is_empty() || ids.0 == 0 {
        return Ok(());
    }
    let mut command = vec!["chown".into(), format!("{}:{}", ids.0, ids.1).into()];
    command.extend(
        config
            .anonymous_volumes
            .iter()
            .map(|dir| workspace.path.join(dir).into_os_string()),
    );
    let spec = ExecSpec {
        container: workspace.container_name(),
        user: Some((0, 0)),
        command,
        ..ExecSpec::default()
    };
    let output = engine.exec_spec(&spec)?;
    if !output.success() {
        anyhow::bail!(
            "could not give the volumes to uid {}: {}",
            ids.0,
            output.stderr
        );
    }
    Ok(())
}

/// Runs `setup` in the container with its output streamed as it comes.
fn run_setup(
    engine: &Engine,
    workspace: &Workspace,
    setup: &str,
) -> anyhow::Result<std::process::ExitStatus> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let spec = ExecSpec {
        container: workspace.container_name(),
        workdir: Some(workspace.path.clone()),
        // The container's own user (see launch::user_mapping).
        user: None,
        env: Vec::new(),
        interactive: false,
        tty,
        command: vec!["sh".into(), "-c".into(), setup.into()],
    };
    Ok(engine.exec_cmd(&spec).run_attached(!tty, |_| {})?)
}
