//! Branch workspaces: one branch of one repo = one full clone = one container.
//!
//! This module holds what the commands share: finding a workspace from a name
//! or the current directory, the container a workspace runs in, and the
//! errors a user can act on. The operations on workspaces live in `ops/`.

pub mod caches;
pub mod compose;
pub mod config;
pub mod config_file;
pub mod detect;
pub mod devcontainer;
pub mod env;
pub mod focus;
pub mod git;
pub mod identity;
pub mod image_build;
pub mod layer;
pub mod lifecycle;
pub mod names;
pub mod revive;
pub mod services;
pub mod sidecars;
pub mod sources;
pub mod stack;
pub mod state;
pub mod trust;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::engine::labels::WorkspaceLabels;
use crate::engine::spec::{BindMount, Pull};
use crate::engine::{Engine, EngineKind, RunSpec};
use config::Config;
pub use state::{Repo, RepoSource, State, Store, Workspace};

/// Where `dual run` records the pid of the command it started, so that a
/// Ctrl-C reaches that process even without a TTY (`exec` does not pass
/// signals on). A tmpfs: nothing persists, nothing lands in the clone.
pub const RUN_DIR: &str = "/run/dual";

/// Commands routed into the container by the shell integration.
pub const DEFAULT_ROUTED: [&str; 14] = [
    "npm", "npx", "pnpm", "yarn", "node", "bun", "python", "python3", "pip", "pip3", "uv", "curl",
    "wget", "make",
];

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("no repo is registered")]
    NoRepos,
    #[error("no repo named `{0}` is registered")]
    UnknownRepo(String),
    #[error("which repo? {} are registered", .0.join(", "))]
    AmbiguousRepo(Vec<String>),
    #[error("the repo name `{name}` is already used for `{source_path}`")]
    RepoNameTaken { name: String, source_path: String },
    #[error("`{}` is not inside a git repository", .0.display())]
    NotARepo(PathBuf),
    #[error("repo `{name}` still has workspaces: {}", .workspaces.join(", "))]
    RepoInUse {
        name: String,
        workspaces: Vec<String>,
    },
    #[error("workspace `{0}` already exists")]
    Exists(String),
    #[error("no workspace `{0}`")]
    UnknownWorkspace(String),
    #[error("`{name}` matches several workspaces: {}", .matches.join(", "))]
    AmbiguousWorkspace { name: String, matches: Vec<String> },
    #[error("`{}` is not inside a workspace", .0.display())]
    NotInWorkspace(PathBuf),
    #[error("workspace `{name}` has work that is not pushed:\n{}", .work.iter().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n"))]
    Unsafe { name: String, work: Vec<String> },
    #[error("a container named `{name}` exists but it is not this workspace's{}", .holder.as_ref().map(|h| format!(": dual made it for {h}")).unwrap_or_default())]
    ForeignContainer {
        name: String,
        /// The workspace it belongs to, where dual made it.
        holder: Option<String>,
    },
    #[error("refusing to delete `{}`: it is not inside the workspace root `{}`", .0.display(), .1.display())]
    OutsideRoot(PathBuf, PathBuf),
}

impl crate::error::Hint for WorkspaceError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            WorkspaceError::NoRepos => {
                "register one first: `dual add` inside a git repository, or `dual add PATH|URL`"
                    .into()
            }
            WorkspaceError::UnknownRepo(_) | WorkspaceError::AmbiguousRepo(_) => {
                "name it with `--repo NAME`; `dual repo list` shows the repos".into()
            }
            WorkspaceError::RepoNameTaken { .. } => "choose another name with `--name NAME`".into(),
            WorkspaceError::NotARepo(_) => {
                "run `dual add` inside a clone, or give a path or URL: `dual add PATH|URL`".into()
            }
            WorkspaceError::RepoInUse { workspaces, .. } => format!(
                "destroy them first ({}); that removes their clones, never the repo's source",
                workspaces
                    .iter()
                    .map(|name| format!("`dual destroy {name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            WorkspaceError::Exists(name) => format!("start it with `dual launch {name}`"),
            WorkspaceError::UnknownWorkspace(_) | WorkspaceError::AmbiguousWorkspace { .. } => {
                "`dual list` shows every workspace and its name".into()
            }
            WorkspaceError::NotInWorkspace(_) => {
                "cd into a workspace's clone (`dual list --json` shows their paths), or name one: `dual list` shows their names".into()
            }
            WorkspaceError::Unsafe { name, .. } => format!(
                "push or stash it first, or throw it away with `dual destroy {name} --force`"
            ),
            WorkspaceError::ForeignContainer { name, holder: None } => {
                format!(
                    "rename or remove that container (`docker rm {name}`), dual will not touch it"
                )
            }
            WorkspaceError::ForeignContainer { holder: Some(_), .. } => {
                "another dual installation (another user or DUAL_HOME) on this engine holds the name; destroy one of the two, or give one repo another name with `dual add --name`".into()
            }
            WorkspaceError::OutsideRoot(..) => "remove it by hand if you really mean to".into(),
        })
    }
}

pub use crate::engine::facts::host_ids;

/// How the host user maps into a workspace container on this engine.
pub struct HostMode {
    /// The uid and gid the container's processes run as, so that files they
    /// write in the clone belong to the user on the host.
    pub ids: (u32, u32),
    pub keep_host_uid: bool,
    /// The host cannot reach container IPs: publish the workspace's ports on
    /// 127.0.0.1 (ephemeral host ports) for the proxy to route to.
    pub publish_ports: bool,
}

pub fn host_mode(engine: &Engine) -> Result<HostMode, crate::engine::EngineError> {
    // On another host, the files a container writes are the mirror's there,
    // which the ssh user owns and syncs: its processes run as that user.
    let ids = match engine.location()?.ssh() {
        Some(ssh) => remote_ids(&ssh)?,
        None => host_ids(),
    };
    let facts = engine.host_facts()?;
    // Docker Desktop's VM, or a daemon reached over TCP, is another host
    // whose container addresses are not routed here. One reached over SSH
    // is too, but there the proxy forwards to the addresses as that host
    // sees them (see `remote`), which a rootful engine routes.
    let elsewhere = facts.desktop
        || (engine.endpoint().is_none()
            && std::env::var("DOCKER_HOST").is_ok_and(|h| h.starts_with("tcp://")));
    let publish_ports = facts.rootless || elsewhere;
    let (ids, keep_host_uid) = match (engine.kind(), facts.rootless) {
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

/// The uid and gid of the ssh user on another engine host.
fn remote_ids(ssh: &crate::remote::Ssh) -> Result<(u32, u32), crate::engine::EngineError> {
    let unreachable = |detail: String| {
        crate::engine::EngineError::Endpoint(Box::new(
            crate::engine::endpoint::EndpointError::Unreachable {
                target: ssh.target().to_string(),
                detail,
            },
        ))
    };
    let output = ssh
        .command("id -u; id -g")
        .timeout(std::time::Duration::from_secs(20))
        .run()
        .map_err(|error| unreachable(error.to_string()))?;
    let mut numbers = output.stdout.split_whitespace().map(str::parse::<u32>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(uid)), Some(Ok(gid))) => Ok((uid, gid)),
        _ => Err(unreachable(format!(
            "`id` printed {:?}",
            output.stdout.trim()
        ))),
    }
}

/// The current directory as the kernel sees it (symlinks resolved), which
/// is how workspace paths are stored.
pub fn current_dir() -> std::io::Result<PathBuf> {
    std::env::current_dir()?.canonicalize()
}

/// Finds a workspace by `{repo}-{label}`, `repo/branch`, or a branch name
/// unique across repos; without a name, the one around the current directory.
pub fn resolve<'s>(state: &'s State, name: Option<&str>) -> Result<&'s Workspace, WorkspaceError> {
    let Some(name) = name else {
        let here = current_dir().unwrap_or_default();
        return state
            .workspace_at(&here)
            .ok_or(WorkspaceError::NotInWorkspace(here));
    };
    if let Some(workspace) = state.workspace(name) {
        return Ok(workspace);
    }
    let matches: Vec<&Workspace> = state
        .workspaces
        .iter()
        .filter(|w| {
            w.branch == name || format!("{}/{}", w.repo, w.branch) == name || w.label == name
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(WorkspaceError::UnknownWorkspace(name.to_owned())),
        many => Err(WorkspaceError::AmbiguousWorkspace {
            name: name.to_owned(),
            matches: many.iter().map(|w| w.name()).collect(),
        }),
    }
}

/// This installation's id: a hash of its state file's path.
pub fn owner_id() -> String {
    names::short_hash(&crate::paths::state_file().to_string_lossy())
}

/// The labels on everything that belongs to a workspace; with its config,
/// also what its container is made from (ports and the settings hash).
pub fn labels(workspace: &Workspace, config: Option<&Config>) -> WorkspaceLabels {
    WorkspaceLabels {
        owner: owner_id(),
        workspace: workspace.name(),
        repo: workspace.repo.clone(),
        branch: workspace.branch.clone(),
        ports: config.map(|c| c.ports.clone()).unwrap_or_default(),
        settings: config.map(Config::container_hash).unwrap_or_default(),
        user: None,
    }
}

/// The named volume that holds `dir` (one of the config's anonymous
/// volumes): named by the directory, so reordering or adding volumes in
/// `.dual.toml` never mounts one directory's data on another.
pub fn volume_name(workspace: &Workspace, dir: &str) -> String {
    format!("{}-v{}", workspace.container_name(), names::short_hash(dir))
}

/// The named volume a config's `mounts` entry `name` is (devcontainer.json
/// `mounts`): the workspace's own.
pub fn mount_volume_name(workspace: &Workspace, name: &str) -> String {
    format!("{}-m-{name}", workspace.container_name())
}

/// The container a workspace runs in. The clone is mounted at its own host
/// path, and the user's home path holds a per-workspace home, so paths in
/// errors and stack traces read the same inside and out. The clone's `.git`
/// is mounted again, read-only: host git reads its config and hooks, so
/// nothing in the container may write them. Every process in it runs as
/// `ids` (recorded as `Workspace::user`), the main one included, and the
/// `accounts` files (see `identity`) name them, mounted read-only.
pub fn container_spec(
    workspace: &Workspace,
    config: &Config,
    ids: (u32, u32),
    user: Option<&identity::HostUser>,
    accounts: Option<&identity::Accounts>,
    home: &Path,
    home_source: &Path,
) -> RunSpec {
    let mut spec = RunSpec::new(workspace.container_name(), config.image.clone());
    spec.labels = WorkspaceLabels {
        user: Some(ids),
        ..labels(workspace, Some(config))
    }
    .to_labels();
    spec.hostname = Some(workspace.name());
    spec.workdir = Some(workspace.path.clone());
    // Both ids: the engine then adds no group of the image's to them.
    spec.user = Some(ids);
    // `launch` pulls a missing image itself, visibly, before this runs.
    spec.pull = Pull::Never;
    spec.env.push(("HOME".into(), home.display().to_string()));
    if let Some(user) = user {
        spec.env.push(("USER".into(), user.name.clone()));
    }
    // `${HOME}` and `${USER}` in `[env]` are the container's, set above.
    let expanded = env::expanded(workspace, config, &spec.env);
    spec.env.extend(expanded);
    spec.bind_mounts.push(BindMount::new(home_source, home));
    spec.bind_mounts
        .push(BindMount::new(&workspace.path, &workspace.path));
    let git_dir = workspace.path.join(".git");
    spec.bind_mounts
        .push(BindMount::new(&git_dir, &git_dir).readonly());
    spec.bind_mounts.push(BindMount::new(
        services::logs_dir(&workspace.name()),
        services::LOG_MOUNT,
    ));
    if let Some(accounts) = accounts {
        spec.bind_mounts
            .push(BindMount::new(&accounts.passwd, "/etc/passwd").readonly());
        spec.bind_mounts
            .push(BindMount::new(&accounts.group, "/etc/group").readonly());
    }
    for dir in &config.anonymous_volumes {
        spec.volumes
            .push((volume_name(workspace, dir), workspace.path.join(dir)));
    }
    for mount in &config.mounts {
        spec.volumes.push((
            mount_volume_name(workspace, &mount.name),
            mount.target.clone().into(),
        ));
    }
    spec.tmpfs.push(RUN_DIR.into());
    caches::apply(&mut spec, workspace, config);
    trust::apply(&mut spec);
    // `db:5432`, as the compose file's app reaches its database, is this
    // workspace's own sidecar too: it listens on the shared localhost.
    spec.hosts = config
        .sidecars
        .keys()
        .map(|name| (name.clone(), std::net::Ipv4Addr::LOCALHOST.into()))
        .collect();
    spec.command = identity::entry_command(&env::path_prefix(workspace, config));
    spec
}

/// `command` as a command to exec in the workspace's container, waiting
/// first (briefly) for the container's start-up work, which makes the user
/// known inside. Containers made by an older dual (no recorded user) have
/// none to wait for.
pub fn after_start_up(workspace: &Workspace, command: &[OsString]) -> Vec<OsString> {
    let ready = if workspace.user.is_some() {
        identity::READY_FILE
    } else {
        ""
    };
    let mut argv: Vec<OsString> = vec![
        "sh".into(),
        "-c".into(),
        identity::AFTER_START_UP.into(),
        "sh".into(),
        ready.into(),
    ];
    argv.extend(command.iter().cloned());
    argv
}

/// `command` to exec in the workspace's container, in its clone, as the
/// user its commands run as, after the container's start-up work.
pub fn exec_spec(
    workspace: &Workspace,
    command: &[OsString],
    tty: bool,
) -> crate::engine::ExecSpec {
    crate::engine::ExecSpec {
        container: workspace.container_name(),
        workdir: Some(workspace.path.clone()),
        user: workspace.user,
        env: Vec::new(),
        interactive: false,
        tty,
        command: after_start_up(workspace, command),
    }
}

/// The ports a workspace declares, for showing URLs: from its clone's
/// `.dual.toml`; before the first launch, from the source repo's (a local
/// one), which is what the clone will get. The defaults where neither has a
/// config that parses (its error shows on `launch`).
pub fn declared_ports(state: &State, workspace: &Workspace) -> Vec<u16> {
    config_for_listing(state, workspace).known_ports()
}

/// A workspace's config for showing it: from its clone; before the first
/// launch, from the source repo's (a local one), which the clone will get.
/// The defaults where neither parses (its error shows on `launch`).
pub fn config_for_listing(state: &State, workspace: &Workspace) -> Config {
    let dir = if workspace.path.exists() {
        Some(workspace.path.clone())
    } else {
        state
            .repos
            .get(&workspace.repo)
            .and_then(|repo| repo.source.local_path().map(Path::to_owned))
    };
    dir.and_then(|dir| Config::load(&dir).ok())
        .unwrap_or_default()
}

/// Where a workspace answers through the proxy. Kept as host and port, so
/// that nothing parses a port back out of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceUrl {
    /// `{repo}-{label}.localhost`
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for WorkspaceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

/// As text, the way `dual list --json` and `dual urls --json` always gave it.
impl serde::Serialize for WorkspaceUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `http://{repo}-{label}.localhost:{port}` for each port.
pub fn urls(workspace: &Workspace, ports: &[u16]) -> Vec<WorkspaceUrl> {
    let host = format!("{}.localhost", workspace.name());
    ports
        .iter()
        .map(|&port| WorkspaceUrl {
            host: host.clone(),
            port,
        })
        .collect()
}

/// Refuses to delete anything that is not strictly inside the workspace root.
pub fn check_inside_root(path: &Path, root: &Path) -> Result<PathBuf, WorkspaceError> {
    let outside = || WorkspaceError::OutsideRoot(path.to_owned(), root.to_owned());
    let real_root = root.canonicalize().map_err(|_| outside())?;
    let real_path = path.canonicalize().map_err(|_| outside())?;
    if real_path.starts_with(&real_root) && real_path != real_root {
        Ok(real_path)
    } else {
        Err(outside())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> Workspace {
        Workspace::for_test("shop", "feat/auth", "/home/u/dual/shop/feat-auth")
    }

    #[test]
    fn the_container_mirrors_the_host() {
        let mut config = Config {
            image: "dual-test:latest".into(),
            ..Config::default()
        };
        config.env.insert("NODE_ENV".into(), "development".into());
        let spec = container_spec(
            &workspace(),
            &config,
            (1000, 1001),
            Some(&identity::HostUser {
                name: "u".into(),
                uid: 1000,
                gid: 1001,
                group: "staff".into(),
            }),
            Some(&identity::Accounts {
                passwd: "/data/accounts/k/passwd".into(),
                group: "/data/accounts/k/group".into(),
            }),
            Path::new("/home/u"),
            Path::new("/data/homes/shop-feat-auth"),
        );
        assert_eq!(spec.name, "dual-shop-feat-auth");
        assert_eq!(spec.hostname.as_deref(), Some("shop-feat-auth"));
        assert_eq!(spec.user, Some((1000, 1001)), "every process as the user");
        assert!(
            spec.bind_mounts
                .contains(&BindMount::new("/data/accounts/k/passwd", "/etc/passwd").readonly())
        );
        assert_eq!(spec.command, identity::entry_command(""));
        assert_eq!(
            spec.workdir.as_deref(),
            Some(Path::new("/home/u/dual/shop/feat-auth"))
        );
        assert!(spec.bind_mounts.contains(&BindMount::new(
            "/home/u/dual/shop/feat-auth",
            "/home/u/dual/shop/feat-auth"
        )));
        assert!(
            spec.bind_mounts.contains(
                &BindMount::new(
                    "/home/u/dual/shop/feat-auth/.git",
                    "/home/u/dual/shop/feat-auth/.git"
                )
                .readonly()
            ),
            "the container cannot write what host git runs"
        );
        assert!(spec.env.contains(&("HOME".into(), "/home/u".into())));
        assert!(spec.env.contains(&("USER".into(), "u".into())));
        assert!(
            spec.env
                .contains(&("NODE_ENV".into(), "development".into()))
        );
        assert_eq!(
            spec.volumes,
            [
                (
                    format!("dual-shop-feat-auth-v{}", names::short_hash("node_modules")),
                    "/home/u/dual/shop/feat-auth/node_modules".into()
                ),
                (
                    caches::volume_name(&workspace(), config.caches).unwrap(),
                    caches::CACHE_DIR.into()
                )
            ]
        );
        let labels = WorkspaceLabels::from_labels(&spec.labels).unwrap();
        assert_eq!(labels.workspace, "shop-feat-auth");
        assert_eq!(labels.branch, "feat/auth");
        assert_eq!(labels.settings, config.container_hash());
        assert!(
            !spec.env.iter().any(|(key, _)| key.starts_with("DUAL")),
            "no dual-specific variable inside"
        );
    }

    #[test]
    fn urls_use_the_workspace_name() {
        assert_eq!(
            urls(&workspace(), &[3000, 5173])
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "http://shop-feat-auth.localhost:3000",
                "http://shop-feat-auth.localhost:5173"
            ]
        );
    }

    #[test]
    fn resolve_by_name_branch_or_repo_and_branch() {
        let mut state = State::default();
        state.workspaces.push(workspace());
        let mut other = workspace();
        other.repo = "api".into();
        state.workspaces.push(other);
        assert_eq!(
            resolve(&state, Some("shop-feat-auth")).unwrap().repo,
            "shop"
        );
        assert_eq!(resolve(&state, Some("api/feat/auth")).unwrap().repo, "api");
        assert!(matches!(
            resolve(&state, Some("feat/auth")),
            Err(WorkspaceError::AmbiguousWorkspace { .. })
        ));
        assert!(matches!(
            resolve(&state, Some("nope")),
            Err(WorkspaceError::UnknownWorkspace(_))
        ));
    }

    #[test]
    fn deletion_stays_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let inside = root.path().join("shop/feat");
        std::fs::create_dir_all(&inside).unwrap();
        assert!(check_inside_root(&inside, root.path()).is_ok());
        assert!(
            check_inside_root(root.path(), root.path()).is_err(),
            "never the root itself"
        );
        assert!(check_inside_root(&root.path().join("shop/feat/../../.."), root.path()).is_err());
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join("link")).unwrap();
        assert!(
            check_inside_root(&root.path().join("link"), root.path()).is_err(),
            "a symlink out is refused"
        );
    }
}
