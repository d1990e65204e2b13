//! dual's own files that say what the proxy's subscribers want to know and
//! no engine tells: the state file (a workspace created, launched, stopped)
//! and each service's state line (written by its supervisor in the
//! container, onto a host mount). Their modification times are compared on
//! a thread of their own, a few `stat`s a pass; a change is posted to the
//! control loop as an event, and the services still starting are kept for
//! the error pages (see `forward::Shared::is_starting`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::Posted;
use super::control::Event;
use super::forward::Starting;
use crate::workspace::services::{self, ServiceState};

/// How often the files are compared: a change shows within this.
const FILES_INTERVAL: Duration = Duration::from_millis(250);
/// A service that started this recently may not listen yet.
const STARTING_FOR: u64 = 5;
/// At most this many entries of a workspace's logs directory are looked at
/// each pass: the container writes it, and one filled with files cost the
/// host a core (100,000 files: an eighth).
const MAX_ENTRIES: usize = 1024;

type Stamp = Option<SystemTime>;

/// The modification time of `path` itself (a link is not followed).
fn stamp(path: &Path) -> Stamp {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
}

/// Each workspace's service state files, with their stamps.
fn service_stamps(logs: &Path) -> BTreeMap<String, Vec<(PathBuf, Stamp)>> {
    let mut found = BTreeMap::new();
    let Ok(workspaces) = std::fs::read_dir(logs) else {
        return found;
    };
    for workspace in workspaces.flatten() {
        let Some(name) = workspace.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(workspace.path()) else {
            continue;
        };
        let mut stamps: Vec<(PathBuf, Stamp)> = entries
            .flatten()
            .take(MAX_ENTRIES)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "state"))
            .map(|path| {
                let stamp = stamp(&path);
                (path, stamp)
            })
            .collect();
        stamps.sort();
        found.insert(name, stamps);
    }
    found
}

/// Until when (seconds since the epoch) a workspace counts as starting:
/// while a service of it restarts, waits for what it depends on or is not
/// ready yet, and for a few seconds after one started.
fn starting_until(states: &[(String, ServiceState)]) -> Option<u64> {
    states
        .iter()
        .filter_map(|(_, state)| match state {
            ServiceState::Restarting { .. }
            | ServiceState::Waiting { .. }
            | ServiceState::Starting { .. } => Some(u64::MAX),
            ServiceState::Running { since, .. } => Some(since.saturating_add(STARTING_FOR)),
            _ => None,
        })
        .max()
}

fn update_starting(starting: &Starting, workspaces: &[String]) {
    let Ok(state) = crate::workspace::Store::open_default().load() else {
        return;
    };
    let mut found = HashMap::new();
    for name in workspaces {
        let Some(workspace) = state.workspace(name) else {
            continue;
        };
        let config = crate::workspace::config_for_listing(&state, workspace);
        if let Some(until) = starting_until(&services::states(name, &config, true)) {
            found.insert(name.clone(), until);
        }
    }
    let mut shared = starting.write().unwrap_or_else(|e| e.into_inner());
    for name in workspaces {
        match found.remove(name) {
            Some(until) => shared.insert(name.clone(), until),
            None => shared.remove(name),
        };
    }
}

/// Compares the files every `FILES_INTERVAL` until the loop is gone.
pub(super) fn watch(starting: Starting, posted: mpsc::UnboundedSender<Posted>) {
    let state_file = crate::paths::state_file();
    let logs = crate::paths::data_dir().join("logs");
    std::thread::spawn(move || {
        let mut state_was = stamp(&state_file);
        let mut services_were = service_stamps(&logs);
        update_starting(
            &starting,
            &services_were.keys().cloned().collect::<Vec<_>>(),
        );
        while !posted.is_closed() {
            std::thread::sleep(FILES_INTERVAL);
            let state_now = stamp(&state_file);
            if state_now != state_was {
                state_was = state_now;
                let _ = posted.send(Posted::Changed(Event::State));
            }
            let services_now = service_stamps(&logs);
            if services_now == services_were {
                continue;
            }
            let changed: Vec<String> = services_now
                .keys()
                .chain(services_were.keys())
                .filter(|name| services_now.get(*name) != services_were.get(*name))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            services_were = services_now;
            update_starting(&starting, &changed);
            for workspace in changed {
                let _ = posted.send(Posted::Changed(Event::Services { workspace }));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_is_starting_while_a_service_restarts_or_just_started() {
        let running = |since| ServiceState::Running { restarts: 0, since };
        assert_eq!(starting_until(&[("web".into(), running(100))]), Some(105));
        let restarting = ServiceState::Restarting {
            restarts: 1,
            code: "1".into(),
        };
        assert_eq!(
            starting_until(&[("db".into(), running(100)), ("web".into(), restarting)]),
            Some(u64::MAX)
        );
        assert_eq!(
            starting_until(&[("web".into(), ServiceState::Stopped)]),
            None
        );
        assert_eq!(starting_until(&[]), None);
    }
}
