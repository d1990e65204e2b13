//! A workspace's sidecars, run: each a container of its own joined to the
//! workspace container's network namespace (`--network container:…`, on
//! both engines), so it listens on the workspace's `localhost`. They start
//! after the workspace container and before `setup`, in dependency order,
//! each waited for until ready; they run as their image's user (never
//! root), with no capabilities; their data lives in named volumes of the
//! workspace, which a recreate keeps and a new workspace starts with a copy
//! of (from its parent's, see `copy_data`).
//!
//! A sidecar joins the namespace the workspace container has when the
//! sidecar starts: when the workspace container starts again (a new
//! namespace), its sidecars are started again too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::config::Config;
use super::sidecars::{self, Ready, Sidecar};
use super::{State, Workspace, names};
use crate::engine::labels::{SidecarLabels, WorkspaceLabels};
use crate::engine::one_off::OneOff;
use crate::engine::spec::{Network, Pull, RunSpec};
use crate::engine::{Container, Engine, EngineError, EngineKind};
use crate::error::Hint;
use crate::untrusted::shown;

/// What a recreate of a sidecar is made from besides its config: a new
/// layout makes every sidecar again at its next launch.
const SIDECAR_LAYOUT: u32 = 1;
/// How long a sidecar gets to stop on SIGTERM (or its image's stop signal).
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a sidecar with no ready check and no port must keep running
/// to count as started.
const SETTLE: Duration = Duration::from_secs(1);
/// Lines of a sidecar's log an error shows.
const LOG_LINES: usize = 20;

/// The container of sidecar `name` of `workspace`.
pub fn container_name(workspace: &Workspace, name: &str) -> String {
    format!("{}.{name}", workspace.container_name())
}

/// The named volume holding data volume `volume` of sidecar `name`.
pub fn volume_name(workspace: &Workspace, name: &str, volume: &str) -> String {
    format!("{}.{name}.{volume}", workspace.container_name())
}

fn labels_of(workspace: &Workspace, name: &str) -> SidecarLabels {
    SidecarLabels {
        workspace: super::labels(workspace, None),
        name: name.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "sidecar `{name}` ({origin}): the image `{image}` is not on {kind} and cannot be pulled"
    )]
    ImageMissing {
        name: String,
        origin: String,
        image: String,
        kind: EngineKind,
    },
    #[error(
        "sidecar `{name}` ({origin}) would run as root: its image `{image}` names no user, and dual runs nothing as root in a workspace"
    )]
    Root {
        name: String,
        origin: String,
        image: String,
    },
    #[error("sidecar `{name}` did not become ready: {why}{}", log_tail(.log))]
    NotReady {
        name: String,
        workspace: String,
        why: String,
        log: String,
    },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Build(Box<super::image_build::ImageBuildError>),
    #[error("sidecar `{name}` was not recreated: {why}")]
    Keep { name: String, why: String },
    #[error("could not copy the data of sidecar `{name}` from `{parent}`: {why}")]
    Copy {
        name: String,
        parent: String,
        why: String,
    },
}

fn log_tail(log: &str) -> String {
    if log.trim().is_empty() {
        return "\n  (its log is empty)".into();
    }
    let mut text = String::from("\n  its last log lines:");
    for line in log.trim_end().lines() {
        text.push_str("\n  | ");
        // The sidecar's own words: control characters reach the terminal
        // escaped.
        text.push_str(&shown(line));
    }
    text
}

impl Hint for StackError {
    fn hint(&self) -> Option<String> {
        match self {
            StackError::Engine(error) => error.hint(),
            StackError::ImageMissing { image, kind, .. } => Some(format!(
                "build or load it (`{kind} build -t {image} .`, `{kind} load`)"
            )),
            StackError::Root { name, .. } => Some(format!(
                "name the image's own user: `user = \"…\"` under `[sidecars.{name}]` in .dual.toml, or `user:` in the compose service (e.g. `postgres` for Postgres, `redis` for Redis)"
            )),
            StackError::NotReady { name, workspace, .. } => Some(format!(
                "its whole log: `dual logs {workspace} {name}`; fix its config and `dual launch {workspace}` again"
            )),
            StackError::Config(_) => Some("fix .dual.toml or the compose file".into()),
            StackError::Build(error) => error.hint(),
            StackError::Keep { .. } => Some(
                "copy what it wrote out by hand (`docker cp`), remove its container, and launch again".into(),
            ),
            StackError::Copy { .. } => Some(
                "`dual create BRANCH --from WORKSPACE` names where data comes from; a workspace whose copy failed starts empty after `dual destroy` and a new create".into(),
            ),
        }
    }
}

/// What became of one sidecar at a launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Up {
    pub name: String,
    pub how: UpHow,
    /// Where its data came from, when it was copied now.
    pub copied: Vec<Copied>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpHow {
    AlreadyRunning,
    Started,
    /// Started again: its workspace container started anew.
    Rejoined,
    Created,
    /// Made again from a changed config; its data volumes kept.
    Recreated,
}

impl UpHow {
    pub fn describe(self) -> &'static str {
        match self {
            UpHow::AlreadyRunning => "already running",
            UpHow::Started => "started",
            UpHow::Rejoined => "started again with its workspace",
            UpHow::Created => "created and started",
            UpHow::Recreated => "recreated (its config changed; its data volumes kept)",
        }
    }
}

/// One data volume copied from a parent workspace's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub volume: String,
    pub parent: String,
    pub took: Duration,
    /// How long the parent's sidecar was paused (or stopped) for it.
    pub parent_paused: Duration,
}

/// Keeps what a container (named, with its mount targets) wrote outside
/// its mounts.
pub type KeepWrites<'a> = dyn Fn(&str, &[String]) -> Result<(), String> + 'a;

/// What the caller does at two moments of `ensure`.
pub struct Hooks<'a> {
    /// A line of progress.
    pub progress: &'a dyn Fn(String),
    /// Before a sidecar whose config changed is removed to be made again
    /// (its container's name and mount targets): keep what it wrote
    /// outside its volumes. `None`: do not recreate now (a revival starts
    /// what exists; the next launch recreates).
    pub before_recreate: Option<&'a KeepWrites<'a>>,
    /// The engine's own output (a sidecar image's build) may go to dual's
    /// stderr: it is the terminal the user watches, no other face's.
    pub terminal: bool,
}

/// Starts `config`'s sidecars of `workspace` that do not run (in
/// dependency order, each waited for until ready), recreates those whose
/// config changed, and removes those it no longer names (their data
/// volumes kept). `rejoin`: the workspace container started anew, so every
/// running sidecar starts again in its new namespace. `state` finds the
/// parent workspace whose data new volumes start with.
pub fn ensure(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    state: &State,
    rejoin: bool,
    hooks: &Hooks,
) -> Result<Vec<Up>, StackError> {
    let progress = hooks.progress;
    let mine = super::labels(workspace, None);
    let existing = existing_sidecars(engine, &mine)?;
    for (name, container) in &existing {
        if !config.sidecars.contains_key(name) {
            progress(format!(
                "sidecar `{name}`: no longer in the config, removed (its data volumes kept)"
            ));
            engine.remove(&[&container.name])?;
        }
    }
    if config.sidecars.is_empty() {
        return Ok(Vec::new());
    }
    let order = sidecars::start_order(&config.sidecars).map_err(StackError::Config)?;
    let host = engine.inspect_one(&workspace.container_name())?;
    let volumes: BTreeSet<String> = engine.volume_names(&mine.filters())?.into_iter().collect();
    let mut ups = Vec::new();
    for name in order {
        let sidecar = &config.sidecars[&name];
        let up = ensure_one(
            engine,
            Wanted {
                workspace,
                name: &name,
                sidecar,
                host: &host,
            },
            existing.get(&name),
            &volumes,
            state,
            config,
            rejoin,
            hooks,
        )?;
        ups.push(up);
    }
    Ok(ups)
}

struct Wanted<'a> {
    workspace: &'a Workspace,
    name: &'a str,
    sidecar: &'a Sidecar,
    /// The workspace container, running.
    host: &'a Container,
}

/// The sidecar containers of a workspace that carry its labels, by name.
fn existing_sidecars(
    engine: &Engine,
    mine: &WorkspaceLabels,
) -> Result<BTreeMap<String, Container>, EngineError> {
    let listed = engine.ps(&mine.sidecar_filters())?;
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(engine
        .inspect(&ids)?
        .into_iter()
        .filter_map(|container| {
            let labels = SidecarLabels::from_labels(&container.labels)?;
            labels
                .workspace
                .same_workspace(mine)
                .then_some((labels.name, container))
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn ensure_one(
    engine: &Engine,
    wanted: Wanted,
    existing: Option<&Container>,
    volumes: &BTreeSet<String>,
    state: &State,
    config: &Config,
    rejoin: bool,
    hooks: &Hooks,
) -> Result<Up, StackError> {
    let progress = hooks.progress;
    let Wanted {
        workspace,
        name,
        sidecar,
        host,
    } = wanted;
    // A compose service's `build:` runs from the image of its context's
    // content: in its settings too, so a changed context recreates it.
    let built;
    let sidecar = match &sidecar.build {
        Some(build) => {
            let image = super::image_build::prepare(
                engine,
                workspace,
                &super::image_build::Owner::Sidecar(name.to_owned()),
                build,
                progress,
                hooks.terminal,
            )
            .map_err(|error| StackError::Build(Box::new(error)))?;
            built = Sidecar {
                image,
                ..sidecar.clone()
            };
            &built
        }
        None => sidecar,
    };
    let image_id = image_or_pull(engine, name, sidecar)?;
    let root = || StackError::Root {
        name: name.to_owned(),
        origin: sidecar.origin.to_string(),
        image: sidecar.image.clone(),
    };
    let user = user_of(engine, name, sidecar)?;
    let container = container_name(workspace, name);
    if is_root(&user) {
        return Err(root());
    }
    // Before anything of it runs: a name the image's passwd maps to uid 0,
    // or `00`, is root too. (A running sidecar was checked when made.)
    if existing.is_none_or(|c| !c.running) {
        let uid = super::identity::image_uid(engine, &sidecar.image, &image_id, &user)
            .map_err(|error| StackError::Config(format!("sidecar `{name}`: {error}")))?;
        if uid == Some(0) {
            return Err(root());
        }
    }
    if let Some(paused) = existing.filter(|c| c.status == "paused") {
        // A copy of its data for a branch ended without resuming it.
        engine.unpause(&paused.name)?;
    }
    let settings = names::long_hash(
        &serde_json::json!([sidecar, image_id, user, host.id, SIDECAR_LAYOUT]).to_string(),
    );
    let mut how = UpHow::Created;
    if let Some(existing) = existing {
        let same = SidecarLabels::from_labels(&existing.labels)
            .is_some_and(|labels| labels.workspace.settings == settings);
        if same || hooks.before_recreate.is_none() {
            let stale = rejoin || in_another_namespace(existing, host);
            if existing.running && !stale {
                return Ok(Up {
                    name: name.to_owned(),
                    how: UpHow::AlreadyRunning,
                    copied: Vec::new(),
                });
            }
            let how = if existing.running {
                engine.restart(&container, STOP_GRACE)?;
                UpHow::Rejoined
            } else {
                engine.start(&container)?;
                UpHow::Started
            };
            wait_ready(engine, workspace, name, sidecar, &container, host)?;
            return Ok(Up {
                name: name.to_owned(),
                how,
                copied: Vec::new(),
            });
        }
        progress(format!(
            "sidecar `{name}`: its config changed; recreating it (its data volumes kept)"
        ));
        if let Some(keep) = hooks.before_recreate {
            let mounts: Vec<String> = sidecar.volumes.iter().map(|v| v.target.clone()).collect();
            keep(&container, &mounts).map_err(|why| StackError::Keep {
                name: name.to_owned(),
                why,
            })?;
        }
        engine.remove(&[&container])?;
        how = UpHow::Recreated;
    }
    let labels = labels_of(workspace, name);
    // Volumes made now are new data: a copy of the parent's where there is
    // one; removed again if the sidecar never becomes ready, so that the
    // next launch initialises them afresh.
    let mut fresh = Vec::new();
    let mut copied = Vec::new();
    let parent = data_parent(state, workspace, config);
    for volume in &sidecar.volumes {
        let volume_name = volume_name(workspace, name, &volume.name);
        if volumes.contains(&volume_name) {
            continue;
        }
        engine.volume_create(&volume_name, &labels.volume_labels(&volume.name))?;
        fresh.push(volume_name.clone());
        if let Some(parent) = parent.filter(|p| p.engine == Some(engine.kind())) {
            match copy_data(
                engine, parent, workspace, name, sidecar, &user, volume, progress,
            ) {
                Ok(Some(done)) => copied.push(done),
                Ok(None) => {}
                Err(error) => {
                    let _ = engine.volume_remove(&[&volume_name]);
                    return Err(error);
                }
            }
        }
    }
    let mut spec = run_spec(workspace, name, sidecar, &user);
    let mut made_from = labels.clone();
    made_from.workspace.settings = settings;
    spec.labels = made_from.to_labels();
    let started = engine
        .run_detached(&spec)
        .map_err(StackError::from)
        .and_then(|_| wait_ready(engine, workspace, name, sidecar, &container, host));
    if let Err(error) = started {
        // Nothing half-made stays: the container, and data that never
        // became a sidecar's.
        let _ = engine.remove(&[&container]);
        let fresh: Vec<&str> = fresh.iter().map(String::as_str).collect();
        let _ = engine.volume_remove(&fresh);
        return Err(error);
    }
    Ok(Up {
        name: name.to_owned(),
        how,
        copied,
    })
}

/// Who sidecar `name` runs as: its `user`, else its image's own user,
/// which must not be root (`dual verify` asks the same).
pub fn user_of(engine: &Engine, name: &str, sidecar: &Sidecar) -> Result<String, StackError> {
    if let Some(user) = &sidecar.user {
        return Ok(user.clone());
    }
    match engine.image_user(&sidecar.image)? {
        Some(user) if !is_root(&user) => Ok(user),
        _ => Err(StackError::Root {
            name: name.to_owned(),
            origin: sidecar.origin.to_string(),
            image: sidecar.image.clone(),
        }),
    }
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default().trim();
    name.is_empty()
        || name == "root"
        || (name.bytes().all(|b| b.is_ascii_digit()) && name.parse() == Ok(0u32))
}

/// The sidecar's `run` arguments: see the module's doc.
fn run_spec(workspace: &Workspace, name: &str, sidecar: &Sidecar, user: &str) -> RunSpec {
    let mut spec = RunSpec::new(container_name(workspace, name), sidecar.image.clone());
    spec.network = Network::Container(workspace.container_name());
    spec.pull = Pull::Never;
    spec.user_name = Some(user.to_owned());
    spec.restart_on_failure = true;
    spec.env = sidecar
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    spec.volumes = sidecar
        .volumes
        .iter()
        .map(|volume| {
            (
                volume_name(workspace, name, &volume.name),
                PathBuf::from(&volume.target),
            )
        })
        .collect();
    spec.tmpfs = sidecar.tmpfs.clone();
    let mut command = Vec::new();
    if let Some(entrypoint) = &sidecar.entrypoint {
        // `--entrypoint` takes one program; its other words lead the command.
        let mut words = entrypoint.iter();
        spec.entrypoint = Some(words.next().cloned().unwrap_or_default());
        command.extend(words.cloned());
    }
    if let Some(args) = &sidecar.command {
        command.extend(args.iter().cloned());
    }
    spec.command = command;
    spec
}

/// The image's id; a missing image is pulled once (where a registry is
/// reachable), else an error naming the sidecar.
fn image_or_pull(engine: &Engine, name: &str, sidecar: &Sidecar) -> Result<String, StackError> {
    if let Some(id) = engine.image_id(&sidecar.image)? {
        return Ok(id);
    }
    let missing = || StackError::ImageMissing {
        name: name.to_owned(),
        origin: sidecar.origin.to_string(),
        image: sidecar.image.clone(),
        kind: engine.kind(),
    };
    engine.pull(&sidecar.image, false).map_err(|_| missing())?;
    engine.image_id(&sidecar.image)?.ok_or_else(missing)
}

/// Whether a running sidecar is in another network namespace than its
/// workspace container (which started again without it). Unknown (another
/// user's processes under rootless podman): no.
fn in_another_namespace(sidecar: &Container, host: &Container) -> bool {
    let namespace = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    match (namespace(sidecar.pid), namespace(host.pid)) {
        (Some(a), Some(b)) => a != b,
        _ => {
            // Started before its workspace container last started: it
            // joined an older namespace. Both times come from one engine
            // in one format; compare only when they are alike.
            let (a, b) = (&sidecar.started_at, &host.started_at);
            sidecar.running && a.len() == b.len() && !a.is_empty() && a < b
        }
    }
}

/// Waits until a sidecar is ready (see `Ready`); an exit or the deadline
/// is an error with its last log lines.
fn wait_ready(
    engine: &Engine,
    workspace: &Workspace,
    name: &str,
    sidecar: &Sidecar,
    container: &str,
    host: &Container,
) -> Result<(), StackError> {
    let deadline = match &sidecar.ready {
        _ if sidecar.ready_timeout.is_some() => sidecar.ready_timeout.unwrap_or_default(),
        Some(Ready::Command(check)) if check.retries > 0 => {
            let tries = check.interval * check.retries + check.timeout;
            (check.start_period + tries).clamp(Duration::from_secs(10), Duration::from_secs(600))
        }
        _ => sidecars::READY_TIMEOUT,
    };
    let started = Instant::now();
    let pause = match &sidecar.ready {
        Some(Ready::Command(check)) => check.interval.min(Duration::from_millis(500)),
        _ => Duration::from_millis(100),
    };
    let port = match &sidecar.ready {
        Some(Ready::Port(port)) => Some(*port),
        Some(Ready::Command(_)) => None,
        None => sidecar.ports.first().copied(),
    };
    let not_ready = |why: String| StackError::NotReady {
        name: name.to_owned(),
        workspace: workspace.name(),
        why,
        log: engine
            .logs_tail(container, Some(LOG_LINES))
            .unwrap_or_default(),
    };
    let mut restarts = None;
    loop {
        let now = engine.inspect_one(container)?;
        // Exited, or exited and started again by its restart policy: a
        // crash, which waiting longer would only repeat.
        let first_restarts = *restarts.get_or_insert(now.restart_count);
        if !now.running || now.status == "restarting" || now.restart_count > first_restarts {
            return Err(not_ready(exit_reason(engine, container, now)));
        }
        let ready = match (&sidecar.ready, port) {
            (Some(Ready::Command(check)), _) => {
                let argv: Vec<&str> = check.test.iter().map(String::as_str).collect();
                engine.exec(container, &argv)?.success()
            }
            (_, Some(port)) => listens(engine, &now, host, port),
            // Nothing to ask: ready once it has kept running a moment (an
            // image that fails at once fails here, not after setup).
            (_, None) => now.running && started.elapsed() >= SETTLE,
        };
        if ready {
            return Ok(());
        }
        if started.elapsed() > deadline {
            let what = match (&sidecar.ready, port) {
                (Some(Ready::Command(check)), _) => {
                    format!("`{}` did not succeed", check.test.join(" "))
                }
                (_, Some(port)) => format!("nothing listened on port {port}"),
                (_, None) => "it did not keep running".into(),
            };
            return Err(not_ready(format!("{what} within {} s", deadline.as_secs())));
        }
        std::thread::sleep(pause);
    }
}

/// Why a sidecar that exited is not ready. One already started again by its
/// restart policy shows exit code 0 while it runs, so wait a moment for it
/// to be down again (the engine's back-off grows) to read the real status.
fn exit_reason(engine: &Engine, container: &str, mut now: Container) -> String {
    let deadline = Instant::now() + Duration::from_secs(3);
    while now.running && now.status != "restarting" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        match engine.inspect_one(container) {
            Ok(again) => now = again,
            Err(_) => break,
        }
    }
    if now.running && now.status != "restarting" {
        return format!(
            "it kept exiting (restarted {} times by the engine)",
            now.restart_count
        );
    }
    format!("it exited with status {}", now.exit_code)
}

/// Whether something listens on `port` in the namespace the sidecar shares
/// with its workspace: from `/proc` here where it can be read, else from
/// inside the workspace container (rootless podman's processes are
/// another user's).
fn listens(engine: &Engine, sidecar: &Container, host: &Container, port: u16) -> bool {
    if let Some(listening) = crate::sockets::listening_in(sidecar.pid, &sidecar.id) {
        return listening.reachable.contains(&port) || listening.loopback_only.contains(&port);
    }
    let tables = engine.exec(&host.name, &["cat", "/proc/net/tcp", "/proc/net/tcp6"]);
    tables.is_ok_and(|output| crate::sockets::listening_ports_in(&output.stdout).contains(&port))
}

/// The workspace whose sidecars' data a new one of `workspace` starts with:
/// the one `dual create --from` named, else the config's `data_from`
/// branch's, else the repo's default branch's; never itself.
pub fn data_parent<'s>(
    state: &'s State,
    workspace: &Workspace,
    config: &Config,
) -> Option<&'s Workspace> {
    if let Some(parent) = &workspace.data_from {
        return state
            .workspace(parent)
            .filter(|p| p.name() != workspace.name());
    }
    let branch = config
        .data_from
        .clone()
        .or_else(|| Some(state.repos.get(&workspace.repo)?.default_branch.clone()))?;
    state
        .workspaces
        .iter()
        .find(|w| w.repo == workspace.repo && w.branch == branch && w.name() != workspace.name())
}

/// Copies the parent's data volume `volume` of sidecar `name` into this
/// workspace's (made just now, empty): with the parent's sidecar paused
/// (frozen, so its files are consistent as after a power cut, which a
/// database recovers from), or stopped where the engine cannot pause it,
/// and resumed however the copy ends. The copy runs in a container of the
/// parent's own image (the branch's image is the branch's to choose: its
/// `cp` could hold the parent paused), as that image's user, with no
/// network, bounded by `COPY_TIMEOUT`. `None`: the parent has no such
/// volume.
#[allow(clippy::too_many_arguments)]
fn copy_data(
    engine: &Engine,
    parent: &Workspace,
    workspace: &Workspace,
    name: &str,
    sidecar: &Sidecar,
    user: &str,
    volume: &sidecars::Volume,
    progress: &dyn Fn(String),
) -> Result<Option<Copied>, StackError> {
    let source = volume_name(parent, name, &volume.name);
    let parent_labels = super::labels(parent, None);
    if !engine
        .volume_names(&parent_labels.filters())?
        .contains(&source)
    {
        return Ok(None);
    }
    let target = volume_name(workspace, name, &volume.name);
    let failed = |why: String| StackError::Copy {
        name: name.to_owned(),
        parent: parent.name(),
        why,
    };
    let parent_container = container_name(parent, name);
    let parent_now = engine.inspect(&[&parent_container])?.pop();
    // The parent's image and its user where the parent's sidecar exists;
    // else this one's (nothing of the parent's is paused then).
    let (image, user) = match &parent_now {
        Some(found) => {
            let image_user = engine.image_user(&found.image).ok().flatten();
            (
                found.image.clone(),
                image_user.unwrap_or_else(|| user.to_owned()),
            )
        }
        None => (sidecar.image.clone(), user.to_owned()),
    };
    if is_root(&user) {
        return Err(failed(format!("the image `{image}` would copy it as root")));
    }
    progress(format!(
        "sidecar `{name}`: copying `{}` from `{}`",
        volume.name,
        parent.name()
    ));
    let running = parent_now.as_ref().is_some_and(|c| c.running);
    let copier = format!("{target}.copy");
    engine.clear_one_off(&copier);
    let paused_at = Instant::now();
    let held = if running {
        Some(HeldParent::hold(engine, &parent_container)?)
    } else {
        None
    };
    let started = Instant::now();
    let mut spec = RunSpec::new(&copier, image.clone());
    spec.labels = labels_of(workspace, &format!("{name}.copy")).to_labels();
    spec.network = Network::None;
    spec.user_name = Some(user);
    spec.pull = Pull::Never;
    spec.readonly_volumes
        .push((source.clone(), PathBuf::from(FROM_MOUNT)));
    // Mounted where the sidecar keeps it: a new volume takes the ownership
    // of the image's directory there, so its user can write it.
    spec.volumes
        .push((target.clone(), PathBuf::from(&volume.target)));
    spec.entrypoint = Some("cp".into());
    spec.command = vec![
        "-a".into(),
        format!("{FROM_MOUNT}/."),
        format!("{}/", volume.target),
    ];
    // A copy cut short (its time, Ctrl-C) is removed before the parent
    // resumes.
    let copied = engine.run_one_off(OneOff {
        spec,
        timeout: COPY_TIMEOUT,
        interruptible: true,
    });
    let took = started.elapsed();
    let resumed = held.map(HeldParent::resume);
    let parent_paused = if running {
        paused_at.elapsed()
    } else {
        Duration::ZERO
    };
    if let Some(Err(error)) = resumed {
        progress(format!(
            "sidecar `{name}` of `{}` did not resume after the copy: {error}",
            parent.name()
        ));
    }
    let output = copied.map_err(|error| failed(error.to_string()))?;
    if !output.success() {
        return Err(failed(format!(
            "`cp` in `{image}` said: {}",
            shown(output.stderr.trim())
        )));
    }
    Ok(Some(Copied {
        volume: volume.name.clone(),
        parent: parent.name(),
        took,
        parent_paused,
    }))
}

/// A parent's sidecar held still for a copy: paused, or stopped where the
/// engine cannot pause (rootless podman on cgroups v1). Dropping it
/// resumes it, however the copy ended.
struct HeldParent<'e> {
    engine: &'e Engine,
    container: String,
    stopped: bool,
    resumed: bool,
}

impl<'e> HeldParent<'e> {
    fn hold(engine: &'e Engine, container: &str) -> Result<Self, EngineError> {
        let stopped = if engine.pause(container).is_ok() {
            false
        } else {
            engine.stop(container, STOP_GRACE)?;
            true
        };
        Ok(HeldParent {
            engine,
            container: container.to_owned(),
            stopped,
            resumed: false,
        })
    }

    fn resume(mut self) -> Result<(), EngineError> {
        self.resumed = true;
        if self.stopped {
            self.engine.start(&self.container)
        } else {
            self.engine.unpause(&self.container)
        }
    }
}

impl Drop for HeldParent<'_> {
    fn drop(&mut self) {
        if !self.resumed {
            let _ = if self.stopped {
                self.engine.start(&self.container)
            } else {
                self.engine.unpause(&self.container)
            };
        }
    }
}

/// Where the copy container sees the parent's volume.
const FROM_MOUNT: &str = "/dual-copy-from";
/// The longest a parent's sidecar is held for a copy (a 1 GiB database
/// copies in seconds; see research/sidecars.md).
const COPY_TIMEOUT: Duration = Duration::from_secs(600);

/// Restarts sidecar `name` of a running workspace and waits until it is
/// ready again.
pub fn restart(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    name: &str,
) -> Result<(), StackError> {
    let sidecar = config.sidecars.get(name).ok_or_else(|| {
        StackError::Config(format!("`{}` has no sidecar `{name}`", workspace.name()))
    })?;
    let host = engine.inspect_one(&workspace.container_name())?;
    let container = container_name(workspace, name);
    engine.restart(&container, STOP_GRACE)?;
    wait_ready(engine, workspace, name, sidecar, &container, &host)
}

/// Removes a workspace's sidecar containers (their data volumes stay):
/// before its own container, which podman does not remove while others
/// share its namespace.
pub fn remove_containers(engine: &Engine, workspace: &Workspace) -> Result<(), EngineError> {
    let mine = super::labels(workspace, None);
    let names: Vec<String> = existing_sidecars(engine, &mine)?
        .into_values()
        .map(|c| c.name)
        .collect();
    engine.remove(&names.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Stops a workspace's sidecars (after its container: its services close
/// their connections first).
pub fn stop(engine: &Engine, workspace: &Workspace) -> Result<(), EngineError> {
    let mine = super::labels(workspace, None);
    let running: Vec<String> = existing_sidecars(engine, &mine)?
        .into_values()
        .filter(|c| c.running)
        .map(|c| c.name)
        .collect();
    std::thread::scope(|scope| {
        let stops: Vec<_> = running
            .iter()
            .map(|name| scope.spawn(move || engine.stop(name, STOP_GRACE)))
            .collect();
        stops
            .into_iter()
            .map(|stop| stop.join().unwrap_or(Ok(())))
            .collect::<Result<Vec<()>, EngineError>>()
    })
    .map(drop)
}

/// A sidecar as `dual list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SidecarStatus {
    pub name: String,
    pub image: String,
    /// The engine's word for its container (`running`, `exited`, …), or
    /// `missing` when it has none (not launched yet).
    pub state: String,
    /// Where it listens on the workspace's localhost.
    pub ports: Vec<u16>,
}

/// The sidecars `config` declares for `workspace`, with what `containers`
/// (dual's sidecar containers, any workspace's) say of them.
pub fn statuses(
    workspace: &Workspace,
    config: &Config,
    containers: &[crate::engine::ContainerSummary],
) -> Vec<SidecarStatus> {
    let mine = super::labels(workspace, None);
    config
        .sidecars
        .iter()
        .map(|(name, sidecar)| {
            let found = containers.iter().find(|c| {
                SidecarLabels::from_labels(&c.labels)
                    .is_some_and(|l| &l.name == name && l.workspace.same_workspace(&mine))
            });
            SidecarStatus {
                name: name.clone(),
                image: sidecar.image.clone(),
                state: found.map_or("missing".into(), |c| c.state.as_str().to_owned()),
                ports: sidecar.ports.clone(),
            }
        })
        .collect()
}
