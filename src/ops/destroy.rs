//! Removing a workspace: its sidecars' containers, then its own (a sidecar
//! joins its network namespace, and podman will not remove a container
//! others depend on), its volumes (the anonymous ones and its sidecars'
//! data), the images dual kept of what it wrote, its home, its logs, the
//! clone and the state entry.
//!
//! Refuses, unless forced, when the clone holds uncommitted or unpushed
//! work; names every volume it deletes with its size, and asks first (or,
//! with nobody to ask, refuses) when a sidecar's data would go. Never
//! deletes outside the workspace root.

use anyhow::Context;

use crate::engine::labels::{
    KEPT, KIND, KIND_WORKSPACE, MANAGED_FILTER, SIDECAR, SidecarLabels, VOLUME, WorkspaceLabels,
};
use crate::engine::model::Labels;
use crate::engine::volumes::{Measurer, Size};
use crate::engine::{Engine, EngineKind};
use crate::error::{Hint, HintExt as _, WithHint};
use crate::printer::Printer;
use crate::workspace::{self, Store, Workspace, WorkspaceError, git};

/// What `destroy` did: the workspace it removed, and each thing of it that
/// is gone, described (`db: pgdata (48.2 MB)`), in the order removed.
#[derive(Debug)]
pub struct Destroyed {
    pub workspace: String,
    pub removed: Vec<String>,
}

/// Whether a sidecar's data may go: the caller's answer, never read from
/// stdin here (the browser asks in its own way).
pub enum Consent<'a> {
    /// `--force`: delete without asking.
    Given,
    /// Ask this question (one line); `true` deletes.
    Ask(&'a dyn Fn(&str) -> bool),
    /// Nobody to ask: refuse when a sidecar's data would go.
    Nobody,
}

/// A sidecar's data would be deleted, and it was not agreed to.
#[derive(Debug, thiserror::Error)]
#[error("{}", match .asked {
    true => format!("`{}` not destroyed: its sidecars' data stays ({})", .workspace, .data.join(", ")),
    false => format!("`{}` has sidecar data that destroying it deletes: {}", .workspace, .data.join(", ")),
})]
pub struct DataKept {
    pub workspace: String,
    pub data: Vec<String>,
    pub asked: bool,
}

impl Hint for DataKept {
    fn hint(&self) -> Option<String> {
        (!self.asked).then(|| {
            format!(
                "run it on a terminal to be asked, or delete it with `dual destroy {} --force`",
                self.workspace
            )
        })
    }
}

/// `force` skips both checks: unpushed work, and `consent` for sidecar data.
pub fn destroy(
    flag: Option<EngineKind>,
    name: Option<&str>,
    force: bool,
    consent: Consent<'_>,
    printer: &Printer,
) -> anyhow::Result<Destroyed> {
    let store = Store::open_default();
    let state = store.load().hinted()?;
    let workspace = workspace::resolve(&state, name).hinted()?.clone();
    let cloned = workspace.path.exists();
    if cloned && !force {
        let mut work: Vec<String> = git::uncommitted(&workspace.path)?
            .into_iter()
            .map(|line| format!("uncommitted: {line}"))
            .collect();
        work.extend(
            git::unpushed(&workspace.path)?
                .into_iter()
                .map(|line| format!("unpushed: {line}")),
        );
        if !work.is_empty() {
            return Err(crate::error::hinted(WorkspaceError::Unsafe {
                name: workspace.name(),
                work,
            }));
        }
    }
    let root = crate::paths::workspace_root();
    let clone = if cloned {
        Some(workspace::check_inside_root(&workspace.path, &root).hinted()?)
    } else {
        None
    };

    let mut removed = Vec::new();
    if workspace.engine.is_some() || flag.is_some() {
        let engine = super::engine_for(flag, Some(&workspace)).hinted()?;
        let found = Found::look(&engine, &workspace, printer)?;
        let consent = if force { Consent::Given } else { consent };
        found.agree(&workspace.name(), &consent)?;
        removed = found.remove(&engine, printer)?;
        // Its mirror on another engine host, and the sync that kept it.
        if let Some(ssh) = engine.location().ok().and_then(|l| l.ssh()) {
            super::remote_host::forget(&ssh, &workspace).with_context(|| {
                format!(
                    "could not remove `{}`'s files on {}",
                    workspace.name(),
                    ssh.target()
                )
            })?;
            removed.push(format!("its files on {}", ssh.target()));
        }
    }
    if let Some(clone) = clone {
        printer.detail(format!("deleting {}", clone.display()));
        std::fs::remove_dir_all(&clone)
            .with_context(|| format!("could not delete `{}`", clone.display()))?;
    }
    let name = workspace.name();
    let _ = std::fs::remove_dir_all(crate::paths::workspace_home(&name));
    let _ = std::fs::remove_dir_all(crate::workspace::services::logs_dir(&name));
    let _ = super::setup::SetupRecord::clear(&name);
    super::lifecycle::forget(&name);
    crate::tmux::end_session(&name);
    store.update(|state| -> Result<(), WithHint> {
        state.workspaces.retain(|w| w.name() != name);
        Ok(())
    })?;
    Ok(Destroyed {
        workspace: name,
        removed,
    })
}

/// What of a workspace the engine holds, all of it this workspace's by
/// every label (another installation, or in an older state another repo's
/// workspace, may use the same names).
struct Found {
    /// (sidecar, container).
    sidecars: Vec<(String, String)>,
    container: Option<String>,
    volumes: Vec<FoundVolume>,
    /// Image references.
    kept: Vec<String>,
}

struct FoundVolume {
    name: String,
    /// `db: pgdata`, `node_modules`, or the engine's name.
    description: String,
    /// Its sidecar's, where it is a sidecar's data.
    sidecar: Option<String>,
    size: Size,
}

impl FoundVolume {
    fn describe(&self) -> String {
        format!("{} ({})", self.description, self.size)
    }
}

impl Found {
    fn look(engine: &Engine, workspace: &Workspace, printer: &Printer) -> anyhow::Result<Found> {
        let mine = workspace::labels(workspace, None);
        let container = workspace.container_name();
        let container = engine
            .inspect(&[&container])
            .hinted()?
            .pop()
            .filter(|found| {
                WorkspaceLabels::from_labels(&found.labels).is_some_and(|l| l.same_workspace(&mine))
            })
            .map(|_| container);
        let sidecars: Vec<(String, String)> = engine
            .ps(&mine.sidecar_filters())
            .hinted()?
            .into_iter()
            .filter_map(|c| {
                let labels = SidecarLabels::from_labels(&c.labels)?;
                labels
                    .workspace
                    .same_workspace(&mine)
                    .then_some((labels.name, c.name))
            })
            .collect();
        let anonymous: Vec<(String, String)> =
            crate::workspace::config::Config::load(&workspace.path)
                .map(|config| {
                    config
                        .anonymous_volumes
                        .iter()
                        .map(|dir| (workspace::volume_name(workspace, dir), dir.clone()))
                        .collect()
                })
                .unwrap_or_default();
        let volumes = engine.volumes(&mine.filters()).hinted()?;
        if !volumes.is_empty() {
            printer.progress(format!("measuring the volumes of `{}`", workspace.name()));
        }
        // Measured with the image and user of the container that writes
        // each (see `engine::volumes`); the workspace's as a fallback.
        let workspace_measurer = container.as_deref().and_then(|c| engine.measurer(c));
        let sidecar_measurers: Vec<(String, Option<Measurer>)> = sidecars
            .iter()
            .map(|(sidecar, c)| (sidecar.clone(), engine.measurer(c)))
            .collect();
        let measure_timeout =
            crate::settings::measure_timeout().unwrap_or(crate::engine::volumes::MEASURE_TIMEOUT);
        let volumes = crate::parallel::map(&volumes, 4, |volume| {
            let sidecar = volume.labels.get(SIDECAR).cloned();
            let mut measurers: Vec<Measurer> = sidecar_measurers
                .iter()
                .filter(|(name, _)| Some(name) == sidecar.as_ref())
                .filter_map(|(_, measurer)| measurer.clone())
                .collect();
            measurers.extend(workspace_measurer.clone());
            let description = match (&sidecar, volume.labels.get(VOLUME)) {
                (Some(sidecar), Some(data)) => format!("{sidecar}: {data}"),
                (Some(sidecar), None) => format!("{sidecar}: {}", volume.name),
                _ => anonymous
                    .iter()
                    .find(|(name, _)| *name == volume.name)
                    .map_or_else(|| volume.name.clone(), |(_, dir)| dir.clone()),
            };
            FoundVolume {
                size: engine.volume_size(&volume.name, &measurers, measure_timeout),
                name: volume.name.clone(),
                description,
                sidecar,
            }
        });
        // Sidecars' data first, then by name: the same order on both engines.
        let mut volumes = volumes;
        volumes.sort_by(|a, b| {
            (a.sidecar.is_none(), &a.description).cmp(&(b.sidecar.is_none(), &b.description))
        });
        // Not worth failing a destroy over: they are named, and prune-able.
        let kept = engine
            .images_labelled(KEPT, &[MANAGED_FILTER])
            .unwrap_or_else(|error| {
                printer.warn(format!(
                    "could not list the images kept of `{}`: {error}",
                    workspace.name()
                ));
                Vec::new()
            })
            .into_iter()
            .filter(|image| is_workspace_s(&image.labels, &mine))
            // Podman names local images `localhost/…`; dual said `dual-kept/…`.
            .map(|image| {
                let reference = image.reference();
                reference
                    .strip_prefix("localhost/")
                    .unwrap_or(reference)
                    .to_owned()
            })
            .collect();
        Ok(Found {
            sidecars,
            container,
            volumes,
            kept,
        })
    }

    /// Whether the sidecars' data, if any, may go.
    fn agree(&self, workspace: &str, consent: &Consent<'_>) -> Result<(), WithHint> {
        let data: Vec<String> = self
            .volumes
            .iter()
            .filter(|v| v.sidecar.is_some())
            .map(FoundVolume::describe)
            .collect();
        if data.is_empty() {
            return Ok(());
        }
        let refused = |asked| DataKept {
            workspace: workspace.to_owned(),
            data: data.clone(),
            asked,
        };
        match consent {
            Consent::Given => Ok(()),
            Consent::Nobody => Err(refused(false).into()),
            Consent::Ask(ask) => {
                let question = format!(
                    "delete `{workspace}` with its sidecars' data: {}?",
                    data.join(", ")
                );
                if ask(&question) {
                    Ok(())
                } else {
                    Err(refused(true).into())
                }
            }
        }
    }

    /// Sidecars first, then the workspace's container, its volumes and
    /// kept images; returns what went, described.
    fn remove(self, engine: &Engine, printer: &Printer) -> anyhow::Result<Vec<String>> {
        let mut removed = Vec::new();
        if !self.sidecars.is_empty() {
            let names: Vec<&str> = self.sidecars.iter().map(|(_, c)| c.as_str()).collect();
            printer.detail(format!("removing {}", names.join(", ")));
            engine.remove(&names).hinted()?;
            removed.extend(
                self.sidecars
                    .iter()
                    .map(|(sidecar, c)| format!("sidecar {sidecar} (`{c}`)")),
            );
        }
        if let Some(container) = &self.container {
            printer.detail(format!("removing `{container}`"));
            engine.remove(&[container]).hinted()?;
            removed.push(format!("container `{container}`"));
        }
        let names: Vec<&str> = self.volumes.iter().map(|v| v.name.as_str()).collect();
        engine.volume_remove(&names).hinted()?;
        removed.extend(
            self.volumes
                .iter()
                .map(|v| format!("volume {}", v.describe())),
        );
        for image in &self.kept {
            match engine.image_remove(image) {
                Ok(()) => removed.push(format!("kept image `{image}`")),
                Err(error) => printer.warn(format!("kept image `{image}` stays: {error}")),
            }
        }
        Ok(removed)
    }
}

/// Whether an image's (or any object's) labels name this workspace of this
/// installation, whatever its kind.
fn is_workspace_s(labels: &Labels, mine: &WorkspaceLabels) -> bool {
    let mut as_workspace = labels.clone();
    as_workspace.insert(KIND.to_owned(), KIND_WORKSPACE.to_owned());
    WorkspaceLabels::from_labels(&as_workspace).is_some_and(|l| l.same_workspace(mine))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn found(sidecar: Option<&str>) -> Found {
        Found {
            sidecars: Vec::new(),
            container: None,
            volumes: vec![FoundVolume {
                name: "v".into(),
                description: "db: pgdata".into(),
                sidecar: sidecar.map(String::from),
                size: Size::Bytes(48_200_000),
            }],
            kept: Vec::new(),
        }
    }

    #[test]
    fn sidecar_data_is_asked_for_or_refused_and_the_rest_is_not() {
        let asked = RefCell::new(Vec::new());
        let no = |question: &str| {
            asked.borrow_mut().push(question.to_owned());
            false
        };
        let refused = found(Some("db"))
            .agree("shop-main", &Consent::Ask(&no))
            .unwrap_err();
        assert_eq!(
            asked.borrow().as_slice(),
            ["delete `shop-main` with its sidecars' data: db: pgdata (48.2 MB)?"]
        );
        assert_eq!(
            refused.to_string(),
            "`shop-main` not destroyed: its sidecars' data stays (db: pgdata (48.2 MB))"
        );
        assert!(
            refused.hint().is_none(),
            "the user said no: nothing to hint"
        );
        let nobody = found(Some("db"))
            .agree("shop-main", &Consent::Nobody)
            .unwrap_err();
        assert!(nobody.hint().unwrap().contains("--force"));
        assert!(
            found(Some("db"))
                .agree("shop-main", &Consent::Given)
                .is_ok()
        );
        let yes = |_: &str| true;
        assert!(
            found(Some("db"))
                .agree("shop-main", &Consent::Ask(&yes))
                .is_ok()
        );
        // An anonymous volume (node_modules) is named, never asked about.
        assert!(found(None).agree("shop-main", &Consent::Nobody).is_ok());
    }
}
