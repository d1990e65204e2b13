//! Workspaces come back by themselves: one that was running when its engine
//! went away (a daemon restart, a reboot) and was not stopped with `dual
//! stop` is started again, with its services, by the proxy when it finds the
//! engine back (or starts). Engines differ here (docker's restart policies
//! need the daemon, rootless podman has none), so dual does it the same way
//! on both.

use super::config::{Config, ConfigError};
use super::services::{self, Control};
use super::{State, Workspace};
use crate::engine::labels::WorkspaceLabels;
use crate::engine::{Container, Engine, EngineError};

/// What became of one workspace that was down.
pub struct Revived {
    pub workspace: String,
    pub result: Result<(), ReviveError>,
}

/// Why a workspace did not come back.
#[derive(Debug, thiserror::Error)]
pub enum ReviveError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("its sidecars did not start: {0}")]
    Sidecars(#[from] super::stack::StackError),
    #[error("its services did not start: {0}")]
    Services(#[source] EngineError),
    #[error("panicked while starting it")]
    Panicked,
}

/// Starts the workspaces of `state` that are down on `engine`: their
/// container exists (in `containers`, dual's labelled ones) but does not
/// run, and `dual stop` did not stop them. Their services start too.
pub fn revive_down(engine: &Engine, state: &State, containers: &[Container]) -> Vec<Revived> {
    let down: Vec<&Workspace> = state
        .workspaces
        .iter()
        .filter(|w| w.engine == Some(engine.kind()) && !w.stopped && w.path.exists())
        .filter(|w| {
            containers.iter().any(|c| {
                !c.running
                    && WorkspaceLabels::from_labels(&c.labels)
                        .is_some_and(|l| l.same_workspace(&super::labels(w, None)))
            })
        })
        .collect();
    std::thread::scope(|scope| {
        let started: Vec<_> = down
            .iter()
            .map(|workspace| scope.spawn(|| revive(engine, state, workspace)))
            .collect();
        started
            .into_iter()
            .zip(&down)
            .map(|(handle, workspace)| Revived {
                workspace: workspace.name(),
                result: handle.join().unwrap_or(Err(ReviveError::Panicked)),
            })
            .collect()
    })
}

fn revive(engine: &Engine, state: &State, workspace: &Workspace) -> Result<(), ReviveError> {
    engine.start(&workspace.container_name())?;
    let config = Config::load(&workspace.path)?;
    // Its sidecars join the namespace the container has now.
    let hooks = super::stack::Hooks {
        progress: &|_| {},
        before_recreate: None,
        terminal: false,
    };
    super::stack::ensure(engine, workspace, &config, state, true, &hooks)?;
    ensure_services(engine, workspace)
}

/// Starts a running workspace's services that are not running (after its
/// container was started by something other than `dual launch`).
pub fn ensure_services(engine: &Engine, workspace: &Workspace) -> Result<(), ReviveError> {
    let config = Config::load(&workspace.path)?;
    if config.services.is_empty() {
        return Ok(());
    }
    services::control(engine, workspace, &config, Control::Ensure).map_err(ReviveError::Services)
}
