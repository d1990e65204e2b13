//! `dual verify` in a workspace's clone: its sidecars as `dual launch` makes
//! them (the image on the engine, a user other than root: the same rule,
//! `stack::user_of`) and as they run (their container's state, in the
//! workspace container's network namespace), then every line of its compose
//! file dual did not take (`Config::notes`), and the cache volume its
//! installs share (`workspace::caches`). Outside a workspace there is
//! nothing of this to say. A few engine calls per sidecar, one `inspect`
//! for all of them.

use std::collections::BTreeSet;

use super::{Check, error_chain};
use crate::engine::{Container, Engine, EngineKind};
use crate::error::Hint as _;
use crate::workspace::config::{Config, ConfigOrigin};
use crate::workspace::devcontainer;
use crate::workspace::sidecars::Sidecar;
use crate::workspace::stack::{self, StackError};
use crate::workspace::{self, Store, Workspace};

const FIX_NOTE: &str = "nothing, if the workspace works without it; else declare that sidecar under `[sidecars.NAME]` in .dual.toml (it wins over the compose service)";

/// The checks for the workspace around the current directory, if it is in
/// one.
pub fn checks(flag: Option<EngineKind>) -> Vec<Check> {
    let Ok(state) = Store::open_default().load() else {
        return Vec::new();
    };
    let Ok(workspace) = workspace::resolve(&state, None) else {
        return Vec::new();
    };
    of_workspace(flag, workspace)
}

fn of_workspace(flag: Option<EngineKind>, workspace: &Workspace) -> Vec<Check> {
    let config = match Config::load(&workspace.path) {
        Ok(config) => config,
        Err(error) => {
            return vec![Check::fail(
                "sidecars",
                format!("`{}`: {}", workspace.name(), error_chain(&error)),
                "fix .dual.toml or the compose file (`dual launch` refuses it too)",
            )];
        }
    };
    let mut checks = Vec::new();
    if !config.sidecars.is_empty() {
        match crate::ops::engine_for(flag, Some(workspace)) {
            Ok(engine) => checks.extend(sidecar_checks(&engine, workspace, &config)),
            Err(error) => checks.push(Check::from_error("sidecars", &error)),
        }
    }
    // Where its installs' downloads are kept, and who else writes there.
    if let Some(caches) = crate::workspace::caches::describe(workspace, &config) {
        checks.push(Check::pass("caches", caches));
    }
    // Each once, in the order the compose reader wrote them; the
    // devcontainer.json's own are the devcontainer check's.
    let devcontainer = match &config.origin {
        ConfigOrigin::Devcontainer(file)
        | ConfigOrigin::DualToml {
            devcontainer: Some(file),
        } => Some(file.as_str()),
        _ => None,
    };
    let mut seen = BTreeSet::new();
    for note in &config.notes {
        let own = devcontainer.is_some_and(|file| devcontainer::is_own_note(file, note));
        if !own && seen.insert(note) {
            checks.push(Check::warn("compose", note.clone(), FIX_NOTE));
        }
    }
    checks
}

fn sidecar_checks(engine: &Engine, workspace: &Workspace, config: &Config) -> Vec<Check> {
    let host_name = workspace.container_name();
    let names: Vec<String> = config
        .sidecars
        .keys()
        .map(|name| stack::container_name(workspace, name))
        .collect();
    let ids: Vec<&str> = std::iter::once(host_name.as_str())
        .chain(names.iter().map(String::as_str))
        .collect();
    let found = match engine.inspect(&ids) {
        Ok(found) => found,
        Err(error) => return vec![Check::from_error("sidecars", &error)],
    };
    let find = |name: &str| {
        found
            .iter()
            .find(|c| c.name.trim_start_matches('/') == name)
    };
    let host = find(&host_name);
    config
        .sidecars
        .iter()
        .zip(&names)
        .map(|((name, sidecar), container)| {
            let seen = Seen {
                engine,
                workspace,
                name,
                sidecar,
                own: find(container),
                host,
            };
            seen.check()
        })
        .collect()
}

/// One sidecar and what the engine has of it and of its workspace.
struct Seen<'a> {
    engine: &'a Engine,
    workspace: &'a Workspace,
    name: &'a str,
    sidecar: &'a Sidecar,
    own: Option<&'a Container>,
    host: Option<&'a Container>,
}

impl Seen<'_> {
    /// One check: what was found, up to the first thing that is wrong
    /// (with its fix).
    fn check(&self) -> Check {
        let name = format!("sidecar-{}", self.name);
        let mut found = Vec::new();
        match self.facts(&mut found) {
            Ok(()) => Check::pass(&name, found.join("; ")),
            Err((why, fix)) => {
                found.push(why);
                Check::fail(&name, found.join("; "), fix)
            }
        }
    }

    fn facts(&self, found: &mut Vec<String>) -> Result<(), (String, String)> {
        let (engine, sidecar, name) = (self.engine, self.sidecar, self.name);
        let ws = self.workspace.name();
        let stack_error = |error: StackError| {
            let fix = error
                .hint()
                .unwrap_or_else(|| "run with -v to see the engine commands".into());
            (error_chain(&error), fix)
        };
        let engine_error = |error| stack_error(StackError::Engine(error));
        let present = engine.image_id(&sidecar.image).map_err(engine_error)?;
        let built = present.is_some();
        match (present, &sidecar.build) {
            (Some(_), _) => found.push(format!("image `{}` on {}", sidecar.image, engine.kind())),
            (None, Some(build)) => found.push(format!(
                "image `{}` not built yet (`dual launch` builds it from `{}`)",
                sidecar.image, build.context
            )),
            (None, None) => {
                return Err(stack_error(StackError::ImageMissing {
                    name: name.to_owned(),
                    origin: sidecar.origin.to_string(),
                    image: sidecar.image.clone(),
                    kind: engine.kind(),
                }));
            }
        }
        // An image not built yet has no user to read yet.
        if built || sidecar.user.is_some() {
            let user = stack::user_of(engine, name, sidecar).map_err(stack_error)?;
            let whose = if sidecar.user.is_some() {
                ""
            } else {
                " (its image's user)"
            };
            found.push(format!("runs as `{user}`{whose}"));
        }
        let host_running = self.host.is_some_and(|host| host.running);
        let launch = format!("`dual launch {ws}` starts it");
        let Some(own) = self.own else {
            if host_running {
                return Err((format!("no container, though `{ws}` runs"), launch));
            }
            found.push("not started yet".into());
            return Ok(());
        };
        if !own.running {
            if host_running {
                return Err((
                    format!(
                        "{} (exit status {}) while `{ws}` runs",
                        own.status, own.exit_code
                    ),
                    format!(
                        "`dual logs {ws} {name}` says why; `dual restart {ws} {name}` starts it again"
                    ),
                ));
            }
            found.push(format!("{}, as its workspace is", own.status));
            return Ok(());
        }
        found.push("running".into());
        let Some(host) = self.host.filter(|host| host.running) else {
            return Err((
                format!(
                    "its workspace container `{}` is not running",
                    self.workspace.container_name()
                ),
                launch,
            ));
        };
        match same_namespace(engine, own, host) {
            Some(true) => found.push("in the workspace's network namespace".into()),
            Some(false) => {
                return Err((
                    "in another network namespace than its workspace's (which started again without it): it is not on the workspace's localhost".into(),
                    format!("`dual launch {ws}` starts it again in the workspace's"),
                ));
            }
            None => found.push("its network namespace could not be read here".into()),
        }
        Ok(())
    }
}

/// Whether two running containers share a network namespace: their
/// `/proc/PID/ns/net` links here, else (another user's processes, under
/// rootless podman) each one's own as it reads it. The link names the
/// namespace's inode, the same wherever it is read.
fn same_namespace(engine: &Engine, a: &Container, b: &Container) -> Option<bool> {
    let here = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    if let (Some(x), Some(y)) = (here(a.pid), here(b.pid)) {
        return Some(x == y);
    }
    let inside = |container: &Container| {
        engine
            .exec(&container.id, &["readlink", "/proc/self/ns/net"])
            .ok()
            .filter(|output| output.success())
            .map(|output| output.stdout.trim().to_owned())
            .filter(|link| link.starts_with("net:["))
    };
    Some(inside(a)? == inside(b)?)
}
