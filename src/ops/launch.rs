//! Making a workspace real and running: clone it if needed, create or start
//! its container, run `setup` until it succeeds once, start its services,
//! and the proxy. Safe to repeat, and to run for many workspaces at once.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;

use crate::engine::endpoint::Location;
use crate::engine::labels::WorkspaceLabels;
use crate::engine::spec::Publish;
use crate::engine::{Engine, EngineError, EngineKind};
use crate::error::{Hint, HintExt as _};
use crate::printer::Printer;
use crate::workspace::config::{self, Config};
use crate::workspace::identity::{self, HostUser};
use crate::workspace::{
    self, Repo, RepoSource, Store, Workspace, WorkspaceError, WorkspaceUrl, git, services, stack,
};

use super::setup::SetupRecord;

/// What `launch` did.
#[derive(Debug)]
pub struct Launched {
    pub workspace: String,
    pub container: String,
    pub engine: EngineKind,
    pub started: Started,
    /// Where it was cloned now (a first launch).
    pub cloned_into: Option<PathBuf>,
    pub urls: Vec<WorkspaceUrl>,
    /// The background proxy's pid, where it runs.
    pub proxy: Option<u32>,
}

/// A workspace's `setup` ended with a failure status.
#[derive(Debug, thiserror::Error)]
#[error("setup `{setup}` failed in `{workspace}` ({status})")]
pub struct SetupFailed {
    pub workspace: String,
    pub setup: String,
    pub status: String,
}

impl Hint for SetupFailed {
    fn hint(&self) -> Option<String> {
        Some(format!(
            "fix it and run `dual launch {}` again; setup runs until it succeeds once",
            self.workspace
        ))
    }
}

/// How `launch_with` launches, besides the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct LaunchOptions {
    /// Make the container again even when its config did not change.
    pub recreate: bool,
    /// Launch without the devcontainer.json's `initializeCommand` (which
    /// would run on the host, and is refused otherwise): this launch only.
    pub skip_initialize_command: bool,
}

/// Launches the workspace `name` (else the one around the current
/// directory): see the module's doc. Progress and warnings go to `printer`,
/// a result line for each step done.
pub fn launch(
    flag: Option<EngineKind>,
    name: Option<&str>,
    recreate: bool,
    printer: &Printer,
) -> anyhow::Result<Launched> {
    let options = LaunchOptions {
        recreate,
        ..LaunchOptions::default()
    };
    launch_with(flag, name, options, printer)
}

/// `launch`, with `options`.
pub fn launch_with(
    flag: Option<EngineKind>,
    name: Option<&str>,
    options: LaunchOptions,
    printer: &Printer,
) -> anyhow::Result<Launched> {
    let recreate = options.recreate;
    let store = Store::open_default();
    let named = workspace::resolve(&store.load().hinted()?, name)
        .hinted()?
        .name();
    // One launch of a workspace at a time: a second one waits, then finds
    // the clone, the container and `setup` done.
    let _launching = store.lock_workspace(&named).hinted()?;
    let state = store.load().hinted()?;
    let workspace = state
        .workspace(&named)
        .cloned()
        .ok_or_else(|| WorkspaceError::UnknownWorkspace(named.clone()))
        .hinted()?;
    let repo = state
        .repos
        .get(&workspace.repo)
        .ok_or_else(|| WorkspaceError::UnknownRepo(workspace.repo.clone()))
        .hinted()?
        .clone();
    let engine = super::engine_for(flag, Some(&workspace)).hinted()?;
    // A first launch on this engine settles where the workspace lives: on
    // the engine's host as the user's settings say now.
    let engine = if workspace.engine == Some(engine.kind()) {
        engine
    } else {
        let endpoint = engine.configured_endpoint().hinted()?;
        engine.at(endpoint)
    };
    let location = engine.location().hinted()?;
    // Podman has no daemon to hang: its status calls do real work under its
    // storage locks and took over 5 s on a busy machine, which must not fail
    // a launch. Docker's daemon answers them at once unless it hangs, and a
    // hung daemon is told within the status timeout.
    let engine = if engine.kind() == EngineKind::Podman {
        engine.patient()
    } else {
        engine
    };

    let fresh_clone = !workspace.path.exists();
    if fresh_clone {
        clone_atomically(&repo, &workspace, printer)?;
        printer.out(format!(
            "cloned `{}` into {}",
            workspace.branch,
            workspace.path.display()
        ));
    }
    warn_if_config_is_not_committed(&repo, &workspace, printer);
    let started = Config::load(&workspace.path)
        .map_err(anyhow::Error::from)
        .and_then(|mut config| {
            // Before anything is made: it would run on the host.
            let skip = options.skip_initialize_command;
            super::lifecycle::check_host_command(&workspace, &config, skip, printer)?;
            super::image::resolve_build(&engine, &workspace, &mut config, printer)?;
            // The clone on the engine's host, whole, before its container.
            if let Some(ssh) = location.ssh() {
                super::remote_host::ensure_sync(&ssh, &workspace, &config, printer)?;
            }
            let started =
                ensure_container(&engine, &location, &workspace, &config, recreate, printer)?;
            Ok((config, started))
        });
    let (config, started) = match started {
        Ok(done) => done,
        Err(error) => {
            // A first launch that failed leaves the workspace as it was: lazy.
            if fresh_clone {
                let root = crate::paths::workspace_root();
                if let Ok(clone) = workspace::check_inside_root(&workspace.path, &root) {
                    let _ = std::fs::remove_dir_all(clone);
                }
            }
            return Err(error);
        }
    };
    if !matches!(started, Started::AlreadyRunning) {
        steady_bridges(&engine, &workspace, started.made_for().is_some(), printer);
    }
    let mut workspace = workspace;
    let user = started.made_for().or(workspace.user);
    let routed = Some(config.extra_commands.clone());
    warn_of_commands_no_longer_routed(&workspace, &config, printer);
    let endpoint = engine.endpoint().cloned();
    if workspace.engine != Some(engine.kind())
        || workspace.endpoint != endpoint
        || workspace.user != user
        || workspace.stopped
        || workspace.routed != routed
    {
        workspace.engine = Some(engine.kind());
        workspace.endpoint = endpoint;
        workspace.user = user;
        workspace.stopped = false;
        workspace.routed = routed;
        store
            .update(|state| -> Result<(), crate::workspace::state::StateError> {
                if let Some(record) = state.workspace_mut(&workspace.name()) {
                    record.engine = workspace.engine;
                    record.endpoint = workspace.endpoint.clone();
                    record.user = workspace.user;
                    record.stopped = false;
                    record.routed = workspace.routed.clone();
                }
                Ok(())
            })
            .hinted()?;
    }
    let at = location
        .label()
        .map(|label| format!(" ({label})"))
        .unwrap_or_default();
    printer.out(format!(
        "{} `{}` on {}{at}{}",
        started.describe(),
        workspace.container_name(),
        engine.kind(),
        started.why()
    ));

    if let config::ConfigOrigin::Detected(summary) = &config.origin {
        printer.out(format!(
            "detected {summary}; `dual init` in the repo writes this to {}, to pin or change it",
            config::FILE_NAME
        ));
    }
    report_notes(&config, printer);
    // Before setup, so that migrations in it meet this branch's database.
    let rejoin = !matches!(started, Started::AlreadyRunning);
    start_sidecars(&engine, &workspace, &config, &state, rejoin, printer)?;
    if started.made_for().is_some() {
        super::seed::seed(&engine, &workspace, &config, &state, printer)?;
    }
    super::lifecycle::run_at_launch(&engine, &workspace, &config, rejoin, printer)?;
    match config.setup.as_deref().filter(|_| !workspace.setup_done) {
        Some(setup) => run_setup_once(&store, &engine, &workspace, setup, printer)?,
        // A failed setup that .dual.toml no longer has is nothing to report.
        None => {
            let _ = SetupRecord::clear(&workspace.name());
        }
    }
    if let Some(hook) = &config.after_start {
        run_after_start(&engine, &workspace, hook, printer)?;
    }
    start_services(&engine, &workspace, &config, printer)?;
    let urls = workspace::urls(&workspace, &config.known_ports());
    for url in &urls {
        match config.port_labels.get(&url.port) {
            Some(label) => printer.out(format!("  {url}  ({label})")),
            None => printer.out(format!("  {url}")),
        }
    }
    let mut proxy = None;
    if crate::settings::proxy_autostart() {
        match start_proxy_following(Some(engine.kind()), engine.endpoint()) {
            Ok(pid) => {
                proxy = Some(pid);
                printer.out(format!("proxy: running (pid {pid})"));
                for warning in crate::proxy::conflicts::warnings(&config.known_ports()) {
                    printer.warn(warning);
                }
            }
            Err(error) => printer.warn(format!(
                "the proxy did not start: {error:#}\nhint: `dual proxy` runs it in the foreground"
            )),
        }
    }
    Ok(Launched {
        workspace: workspace.name(),
        container: workspace.container_name(),
        engine: engine.kind(),
        started,
        cloned_into: fresh_clone.then(|| workspace.path.clone()),
        urls,
        proxy,
    })
}

/// Starts the proxy unless one runs, making sure it follows the engine host
/// at `endpoint` (another host, where a workspace was just launched): one
/// started before that workspace existed is started again, which takes its
/// routes away for a moment. Its pid.
fn start_proxy_following(
    flag: Option<EngineKind>,
    endpoint: Option<&crate::engine::endpoint::Endpoint>,
) -> anyhow::Result<u32> {
    use crate::proxy::{control, instance};
    if let (Some(endpoint), Some(_)) = (endpoint, instance::running_pid()) {
        let follows = control::status().is_some_and(|status| {
            status
                .engines
                .iter()
                .any(|engine| engine.remote.as_deref() == Some(endpoint.url.as_str()))
        });
        if !follows {
            instance::stop_running()?;
        }
    }
    instance::start_background(flag)
}

/// What dual did not take of the repo's config files (`Config::notes`),
/// each once: listed under `-v` (and by `dual verify`), else counted in one
/// line that says where to see them.
fn report_notes(config: &Config, printer: &Printer) {
    let mut seen = std::collections::BTreeSet::new();
    let notes: Vec<&String> = config.notes.iter().filter(|n| seen.insert(*n)).collect();
    if notes.is_empty() {
        return;
    }
    if printer.verbosity() == crate::printer::Verbosity::Verbose {
        for note in notes {
            // One line each, whatever file's text it quotes.
            printer.out(format!("note: {}", crate::untrusted::shown_line(note)));
        }
        return;
    }
    let (count, what) = match notes.len() {
        1 => ("1".to_owned(), "setting"),
        n => (n.to_string(), "settings"),
    };
    printer.out(format!(
        "note: {count} {what} of the repo's config files not taken as written; `dual launch -v` or `dual verify` lists them"
    ));
}

/// Starts the workspace's sidecars and waits until each is ready, saying
/// what became of each.
fn start_sidecars(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    state: &crate::workspace::State,
    rejoin: bool,
    printer: &Printer,
) -> anyhow::Result<()> {
    let progress = |line: String| printer.progress(line);
    if !config.sidecars.is_empty() {
        printer.progress(format!(
            "starting sidecars: {}",
            config
                .sidecars
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let keep = |container: &str, mounts: &[String]| {
        super::keep::keep_writes(engine, container, mounts, printer)
            .map(drop)
            .map_err(|error| error.to_string())
    };
    let hooks = stack::Hooks {
        progress: &progress,
        before_recreate: Some(&keep),
        terminal: printer.is_terminal() && std::io::stderr().is_terminal(),
    };
    let ups = stack::ensure(engine, workspace, config, state, rejoin, &hooks)
        .hinted()
        .with_context(|| format!("could not start the sidecars of `{}`", workspace.name()))?;
    for up in ups {
        let sidecar = &config.sidecars[&up.name];
        let ports: Vec<String> = sidecar
            .ports
            .iter()
            .map(|p| format!("localhost:{p}"))
            .collect();
        printer.out(format!(
            "sidecar `{}`: {} ({}{})",
            up.name,
            up.how.describe(),
            sidecar.image,
            if ports.is_empty() {
                String::new()
            } else {
                format!(", on {}", ports.join(" "))
            }
        ));
        for copied in up.copied {
            printer.out(format!(
                "  data `{}` copied from `{}` in {:.1} s (its `{}` paused {:.1} s)",
                copied.volume,
                copied.parent,
                copied.took.as_secs_f64(),
                up.name,
                copied.parent_paused.as_secs_f64()
            ));
        }
    }
    Ok(())
}

/// `after_start`: at every launch, once the sidecars are ready and before
/// the services start (migrations). A failure stops the launch.
fn run_after_start(
    engine: &Engine,
    workspace: &Workspace,
    hook: &str,
    printer: &Printer,
) -> anyhow::Result<()> {
    let status = {
        // The repo's text: shown escaped, run as it is.
        let shown = crate::untrusted::shown(hook);
        printer.out(format!("running after_start: {shown}"));
        run_setup(engine, workspace, hook, printer)?
    };
    if status.success() {
        return Ok(());
    }
    Err(crate::error::hinted(crate::error::Hinted {
        message: format!(
            "after_start `{}` failed in `{}` ({})",
            crate::untrusted::shown(hook),
            workspace.name(),
            crate::process::StatusText(status)
        ),
        hint: format!(
            "fix it (or `after_start` in .dual.toml) and `dual launch {}` again; the services start once it succeeds",
            workspace.name()
        ),
    }))
}

/// Runs `setup`, recording that it runs (and how it failed) for `dual
/// list`, and marks it done once it succeeds.
fn run_setup_once(
    store: &Store,
    engine: &Engine,
    workspace: &Workspace,
    setup: &str,
    printer: &Printer,
) -> anyhow::Result<()> {
    let name = workspace.name();
    printer.out(format!("running setup: {}", crate::untrusted::shown(setup)));
    let record = |record: SetupRecord| {
        if let Err(error) = record.write(&name) {
            printer.warn(format!(
                "could not record the state of setup of `{name}` for `dual list`: {error}"
            ));
        }
    };
    record(SetupRecord::Running {
        pid: std::process::id(),
    });
    let status = match run_setup(engine, workspace, setup, printer) {
        Ok(status) => status,
        Err(error) => {
            // It did not run to an end: nothing to report but the error.
            let _ = SetupRecord::clear(&name);
            return Err(error);
        }
    };
    if !status.success() {
        let status = crate::process::StatusText(status).to_string();
        record(SetupRecord::Failed {
            status: status.clone(),
        });
        return Err(crate::error::hinted(SetupFailed {
            workspace: name,
            setup: crate::untrusted::shown(setup),
            status,
        }));
    }
    store
        .update(|state| -> Result<(), crate::workspace::state::StateError> {
            if let Some(record) = state.workspace_mut(&name) {
                record.setup_done = true;
            }
            Ok(())
        })
        .hinted()?;
    if let Err(error) = SetupRecord::clear(&name) {
        printer.warn(format!(
            "could not clear the record of setup of `{name}`: {error}"
        ));
    }
    Ok(())
}

/// A command the workspace routed at its last launch and its `.dual.toml`
/// no longer names is now the host's when typed in its clone: a branch (or
/// its container, which can write the clone) could use that to have the
/// user run the host's `perl` on its files. Say so.
fn warn_of_commands_no_longer_routed(workspace: &Workspace, config: &Config, printer: &Printer) {
    let Some(before) = &workspace.routed else {
        return;
    };
    let dropped: Vec<&String> = before
        .iter()
        .filter(|name| !config.extra_commands.contains(name))
        .collect();
    if dropped.is_empty() {
        return;
    }
    let names: Vec<String> = dropped.iter().map(|name| format!("`{name}`")).collect();
    printer.warn(format!(
        "{} no longer routed in `{}`: its .dual.toml dropped {}; typed in its clone, {} the host's own and would run this branch's files on the host\nhint: check who changed `{}`; `dual run NAME …` still runs a command in the container",
        names.join(", "),
        workspace.name(),
        if dropped.len() == 1 { "it" } else { "them" },
        if dropped.len() == 1 {
            "it is"
        } else {
            "they are"
        },
        workspace.path.join(config::FILE_NAME).display()
    ));
}

/// Starts the services `.dual.toml` names that are not running (and stops
/// those it no longer names).
fn start_services(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    printer: &Printer,
) -> anyhow::Result<()> {
    if config.services.is_empty() && !services::any_state(&workspace.name()) {
        return Ok(());
    }
    services::control(engine, workspace, config, services::Control::Ensure)
        .hinted()
        .with_context(|| format!("could not start the services of `{}`", workspace.name()))?;
    for (name, service) in &config.services {
        let when = if service.depends_on.is_empty() {
            "started".to_owned()
        } else {
            let verb = if service.depends_on.len() == 1 {
                "is"
            } else {
                "are"
            };
            format!("starts once {} {verb} ready", service.depends_on.join(", "))
        };
        printer.out(format!(
            "service `{name}`: {when}; its output: dual logs {} {name}",
            workspace.name()
        ));
    }
    Ok(())
}

/// A `.dual.toml` that exists only in the source's working tree never
/// reaches the clone: say so, rather than launch on defaults in silence.
fn warn_if_config_is_not_committed(repo: &Repo, workspace: &Workspace, printer: &Printer) {
    let RepoSource::Path(source) = &repo.source else {
        return;
    };
    if workspace.path.join(config::FILE_NAME).exists() {
        return;
    }
    let source = source.join(config::FILE_NAME);
    if source.exists() {
        printer.warn(format!(
            "`{}` has a `.dual.toml` that is not committed on `{}`, so the clone has none and dual uses the defaults\n\
             hint: commit it in the source repo, or copy it in: `cp {} {}/`, then `dual launch {}`",
            repo.source,
            workspace.branch,
            crate::process::quote(&source.display().to_string()),
            crate::process::quote(&workspace.path.display().to_string()),
            workspace.name()
        ));
    }
}

/// Clones into a temporary sibling and renames it into place, so a failed
/// or interrupted clone never looks like a workspace.
fn clone_atomically(repo: &Repo, workspace: &Workspace, printer: &Printer) -> anyhow::Result<()> {
    let source = &repo.source;
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
    printer.detail(format!("cloning `{}` of `{source}`", workspace.branch));
    let cloned = git::clone(source, &partial, &workspace.branch, &repo.default_branch);
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
/// stalling this workspace's traffic (see engine::bridge); fix it now. For
/// a container `made_now` (on the default network), the networks are known
/// from an earlier one, without an `inspect` (~50 ms).
fn steady_bridges(engine: &Engine, workspace: &Workspace, made_now: bool, printer: &Printer) {
    if engine.kind() != EngineKind::Podman {
        return;
    }
    // Every bridge already fixed: nothing to ask the engine (two calls,
    // ~50 ms on podman).
    if crate::engine::bridge::all_pinned_already() {
        crate::log::debug("podman bridges: all already fixed");
        return;
    }
    let known = made_now
        .then(|| engine.host_facts().ok()?.default_networks)
        .flatten();
    let networks = match known {
        Some(networks) => networks,
        None => match engine.inspect_one(&workspace.container_name()) {
            Ok(container) => {
                let networks: Vec<String> = container.networks.into_keys().collect();
                if made_now {
                    engine.remember_default_networks(&networks);
                }
                networks
            }
            Err(error) => return warn_unsteady(&error, printer),
        },
    };
    let networks: Vec<&str> = networks.iter().map(String::as_str).collect();
    if let Err(error) = crate::engine::bridge::steady(engine, &networks) {
        warn_unsteady(&error, printer);
    }
}

/// The workspace runs; say what may go wrong with it, and why.
fn warn_unsteady(error: &dyn std::fmt::Display, printer: &Printer) {
    printer.warn(format!(
        "{error}\n  the workspace runs, but its connections may stall for seconds when other containers start or stop"
    ));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Made now; commands run in it as `user`.
    Created {
        user: (u32, u32),
    },
    Restarted,
    AlreadyRunning,
    /// Removed and made again (the clone and the volumes kept, and what
    /// it wrote outside them as an image, where it wrote anything).
    Recreated {
        forced: bool,
        user: (u32, u32),
        kept: bool,
    },
}

impl Started {
    pub fn describe(&self) -> &'static str {
        match self {
            Started::Created { .. } => "created and started",
            Started::Restarted => "started",
            Started::AlreadyRunning => "already running:",
            Started::Recreated { .. } => "recreated",
        }
    }

    fn why(&self) -> &'static str {
        match self {
            Started::Recreated {
                forced: true,
                kept: false,
                ..
            } => " (--recreate; clone and volumes kept)",
            Started::Recreated {
                forced: true,
                kept: true,
                ..
            } => " (--recreate; clone and volumes kept, its own files as an image)",
            Started::Recreated {
                forced: false,
                kept: false,
                ..
            } => ": its .dual.toml changed (image, ports, env or volumes); clone and volumes kept",
            Started::Recreated {
                forced: false,
                kept: true,
                ..
            } => {
                ": its .dual.toml changed (image, ports, env or volumes); clone and volumes kept, its own files as an image"
            }
            _ => "",
        }
    }

    /// The user commands run as in a container made now.
    pub fn made_for(&self) -> Option<(u32, u32)> {
        match self {
            Started::Created { user } | Started::Recreated { user, .. } => Some(*user),
            Started::Restarted | Started::AlreadyRunning => None,
        }
    }
}

/// Creates the container if it is missing (or was removed behind dual's
/// back), starts it if stopped, and recreates it when `.dual.toml` no
/// longer gives the settings it was made from (or when asked to).
pub fn ensure_container(
    engine: &Engine,
    location: &Location,
    workspace: &Workspace,
    config: &Config,
    recreate: bool,
    printer: &Printer,
) -> anyhow::Result<Started> {
    let name = workspace.container_name();
    let wanted = workspace::labels(workspace, Some(config));
    // Some(forced) once the existing container is to be replaced.
    let mut replacing = None;
    // Two independent questions, asked at once (each ~25 ms on podman).
    let (existing, image_id) = std::thread::scope(|scope| {
        let image = scope.spawn(|| engine.image_id(&config.image));
        let existing = engine.inspect(&[&name]);
        let image = image
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (existing, image)
    });
    let image_id = image_id.hinted()?;
    if let Some(existing) = existing.hinted()?.pop() {
        let found = WorkspaceLabels::from_labels(&existing.labels);
        match found {
            Some(found) if found.same_workspace(&wanted) => {
                let changed = found.settings != wanted.settings;
                if !changed && !recreate {
                    if existing.running {
                        return Ok(Started::AlreadyRunning);
                    }
                    match engine.start(&name) {
                        Ok(()) => return Ok(Started::Restarted),
                        // A container that cannot start again (its image or a
                        // mount is gone) is recreated; the clone and volumes
                        // hold the state.
                        Err(error) => crate::log::debug(&format!("recreating {name}: {error}")),
                    }
                }
                replacing = Some(!changed);
            }
            other => {
                return Err(crate::error::hinted(WorkspaceError::ForeignContainer {
                    name,
                    holder: other.map(|l| format!("branch `{}` of `{}`", l.branch, l.repo)),
                }));
            }
        }
    }
    if image_id.is_none() {
        pull_image(engine, &config.image, &workspace.path, printer)?;
    }
    let kept = if replacing.is_some() {
        // What it wrote outside its mounts would go with it: kept as an
        // image first (or, where that fails, it is not removed).
        let kept = super::keep::keep_writes(engine, &name, &[], printer).hinted()?;
        // Its sidecars go first (they share its namespace) and are made
        // again with it; their data volumes stay.
        workspace::stack::remove_containers(engine, workspace).hinted()?;
        // `rm --volumes` removes anonymous volumes only: the named ones stay.
        engine.remove(&[&name]).hinted()?;
        kept.is_some()
    } else {
        false
    };
    let mode = workspace::host_mode(engine).hinted()?;
    let labels = workspace::labels(workspace, None).to_labels();
    for dir in &config.anonymous_volumes {
        engine
            .volume_create(&workspace::volume_name(workspace, dir), &labels)
            .hinted()?;
    }
    for mount in &config.mounts {
        let volume = workspace::mount_volume_name(workspace, &mount.name);
        engine.volume_create(&volume, &labels).hinted()?;
    }
    let home = crate::paths::user_home();
    let home_source = crate::paths::workspace_home(&workspace.name());
    let logs = workspace::services::logs_dir(&workspace.name());
    for dir in [&home_source, &logs] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create `{}`", dir.display()))?;
    }
    // Where the clone sits inside the home (`~/dual/…`), its mount point in
    // the mounted home is made now, by the user: else the runtime makes it
    // as root, in dual's store, where `destroy` cannot remove it. The home
    // is the container's to write, so never through a link.
    if let Ok(inside) = workspace.path.strip_prefix(&home) {
        crate::confined::create_dirs(&home_source, inside)
            .with_context(|| format!("could not prepare the home of `{}`", workspace.name()))?;
    }
    let user = HostUser::lookup_or_named(mode.ids);
    let named_user = HostUser::lookup(mode.ids).filter(|user| user.uid != 0);
    // Pulled just now where it was missing. The id keys the accounts files
    // (content-addressed, so never stale): without one, nothing to key.
    let image_id = match image_id {
        Some(id) => id,
        None => engine
            .image_id(&config.image)
            .hinted()?
            .ok_or_else(|| EngineError::NotFound {
                what: "image",
                name: config.image.clone(),
            })
            .hinted()?,
    };
    let accounts = identity::accounts(
        engine,
        &config.image,
        &image_id,
        &user,
        &home.display().to_string(),
    )?;
    let mut spec = workspace::container_spec(
        workspace,
        config,
        mode.ids,
        named_user.as_ref(),
        accounts.as_ref(),
        &home,
        &home_source,
    );
    let cache_dirs = workspace::caches::prepare(engine, workspace, config, &mut spec).hinted()?;
    spec.keep_host_uid = mode.keep_host_uid;
    spec.nosuid_binds = engine.kind() == EngineKind::Podman;
    if mode.publish_ports {
        // The host reaches nothing in it but what is published: its
        // sidecars' ports too, for `dual forward` (never the proxy's HTTP
        // routes: they do not speak HTTP).
        spec.publish.extend(
            config
                .published_ports()
                .into_iter()
                .map(|port| Publish::loopback(0, port)),
        );
    }
    if let Some(ssh) = location.ssh() {
        super::remote_host::prepare(&ssh, workspace, &mut spec)?;
    }
    match engine.run_detached(&spec) {
        Ok(_) => {}
        // Two launches of one workspace at once: the other created it.
        Err(EngineError::Command { source, .. }) if source.stderr().contains("already in use") => {
            return Ok(Started::AlreadyRunning);
        }
        Err(error) => return Err(crate::error::hinted(error)),
    }
    // Before anything of the user's runs in it (`setup`, services).
    let volume_dirs: Vec<std::path::PathBuf> = config
        .anonymous_volumes
        .iter()
        .map(|dir| workspace.path.join(dir))
        .chain(config.mounts.iter().map(|m| m.target.clone().into()))
        .chain(cache_dirs)
        .collect();
    if let Err(error) = identity::hand_over_volumes(engine, &name, &user, &volume_dirs) {
        let _ = engine.remove(&[&name]);
        return Err(error.into());
    }
    Ok(match replacing {
        Some(forced) => Started::Recreated {
            forced,
            user: mode.ids,
            kept,
        },
        None => Started::Created { user: mode.ids },
    })
}

/// Pulls a missing image (with its progress on a terminal); where it cannot
/// be had, an error naming it and where it came from, before anything is
/// created.
fn pull_image(
    engine: &Engine,
    image: &str,
    clone: &std::path::Path,
    printer: &Printer,
) -> anyhow::Result<()> {
    // The engine's own progress bars where the output is a terminal's.
    let on_terminal = printer.is_terminal() && std::io::stderr().is_terminal();
    if on_terminal || !printer.is_terminal() {
        printer.progress(format!("pulling `{image}` with {}", engine.kind()));
    }
    engine.pull(image, on_terminal).map_err(|error| {
        let reason = match &error {
            EngineError::Command { source, .. } => one_line(source.stderr()),
            other => other.to_string(),
        };
        crate::error::hinted(ImageUnavailable {
            image: image.to_owned(),
            origin: crate::workspace::sources::origin_of("image", clone),
            kind: engine.kind(),
            reason: Reason(reason),
        })
    })
}

/// The engine's reason, without its `Error:` prefixes, on one line.
fn one_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("no reason given");
    let line = line
        .trim_start_matches("Error: ")
        .trim_start_matches("Error response from daemon: ");
    let mut text: String = line.chars().take(300).collect();
    if text.len() < line.len() {
        text.push('…');
    }
    text
}

#[derive(Debug, thiserror::Error)]
#[error("the image `{image}` ({origin}) is not on {kind} and cannot be pulled")]
pub struct ImageUnavailable {
    image: String,
    origin: String,
    kind: EngineKind,
    #[source]
    reason: Reason,
}

/// The engine's one-line reason, as the error's cause.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reason(String);

impl Hint for ImageUnavailable {
    fn hint(&self) -> Option<String> {
        Some(format!(
            "build or load it (`{} build -t {} .`, `{} load`), or name another `image` in .dual.toml",
            self.kind, self.image, self.kind
        ))
    }
}

/// Runs `setup` in the container. On a terminal its output streams as it
/// comes; for another printer (the browser) each line of it is progress,
/// once it ends.
fn run_setup(
    engine: &Engine,
    workspace: &Workspace,
    setup: &str,
    printer: &Printer,
) -> anyhow::Result<std::process::ExitStatus> {
    let command = ["sh".into(), "-c".into(), setup.into()];
    if !printer.is_terminal() {
        let spec = workspace::exec_spec(workspace, &command, false);
        let output = engine.exec_cmd(&spec).timeout(SETUP_TIMEOUT).output()?;
        for line in output.stdout.lines().chain(output.stderr.lines()) {
            printer.progress(format!("setup: {line}"));
        }
        return Ok(output.status);
    }
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let spec = workspace::exec_spec(workspace, &command, tty);
    Ok(engine.exec_cmd(&spec).run_attached(!tty, |_| {})?)
}

/// How long `setup` may run where its output is not on a terminal (a
/// browser's launch), where nobody could see it hang.
const SETUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);
