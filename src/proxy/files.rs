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
/// At most this many entries of a workspace's logs directory are read when
/// it changes, and at most `MAX_STATE_FILES` of them are looked at each
/// pass: the container writes it, and one filled with files cost the host a
/// core (100,000 files: an eighth).
const MAX_ENTRIES: usize = 1024;
const MAX_STATE_FILES: usize = 64;
/// A directory changed longer ago than this is taken to hold still.
const SETTLED_AFTER: Duration = Duration::from_secs(1);

type Stamp = Option<SystemTime>;

/// The modification time of `path` itself (a link is not followed).
fn stamp(path: &Path) -> Stamp {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
}

/// The service state files of one workspace's logs directory, listed again
/// only when the directory itself changes (a state file is replaced whole,
/// which changes it), so a pass over a directory that holds still costs a
/// `stat` for it and one per state file, whatever else it holds.
#[derive(Default)]
struct Listing {
    directory: Stamp,
    state_files: Vec<PathBuf>,
}

impl Listing {
    fn refresh(&mut self, directory: &Path) {
        let now = stamp(directory);
        // A file made in the same tick of the file system's clock as the
        // last listing leaves the stamp as it was: a directory changed in
        // the last second is listed again.
        let settled = now.is_some_and(|changed| {
            SystemTime::now()
                .duration_since(changed)
                .is_ok_and(|age| age > SETTLED_AFTER)
        });
        if settled && now == self.directory {
            return;
        }
        self.directory = now;
        self.state_files = std::fs::read_dir(directory)
            .map(|entries| {
                entries
                    .flatten()
                    .take(MAX_ENTRIES)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "state"))
                    .take(MAX_STATE_FILES)
                    .collect()
            })
            .unwrap_or_default();
        self.state_files.sort();
    }
}

/// Each workspace's service state files, with their stamps; `listings`
/// keeps what each directory held between passes.
fn service_stamps(
    logs: &Path,
    listings: &mut HashMap<String, Listing>,
) -> BTreeMap<String, Vec<(PathBuf, Stamp)>> {
    let mut found = BTreeMap::new();
    let Ok(workspaces) = std::fs::read_dir(logs) else {
        listings.clear();
        return found;
    };
    for workspace in workspaces.flatten() {
        let Some(name) = workspace.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let listing = listings.entry(name.clone()).or_default();
        listing.refresh(&workspace.path());
        let stamps = listing
            .state_files
            .iter()
            .map(|path| (path.clone(), stamp(path)))
            .collect();
        found.insert(name, stamps);
    }
    listings.retain(|name, _| found.contains_key(name));
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
        let mut listings = HashMap::new();
        let mut services_were = service_stamps(&logs, &mut listings);
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
            let services_now = service_stamps(&logs, &mut listings);
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
    fn a_logs_directory_is_listed_again_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut listing = Listing::default();
        listing.refresh(dir.path());
        assert!(listing.state_files.is_empty());
        std::fs::write(dir.path().join("web.state"), "").unwrap();
        listing.refresh(dir.path());
        assert_eq!(listing.state_files, vec![dir.path().join("web.state")]);
        for n in 0..200 {
            std::fs::write(dir.path().join(format!("{n}.state")), "").unwrap();
        }
        listing.refresh(dir.path());
        assert_eq!(listing.state_files.len(), MAX_STATE_FILES);
        // A directory that holds still is not read again.
        let settled = SystemTime::now() - Duration::from_secs(10);
        std::fs::File::open(dir.path())
            .unwrap()
            .set_modified(settled)
            .unwrap();
        listing.refresh(dir.path());
        listing.state_files.clear();
        listing.refresh(dir.path());
        assert!(
            listing.state_files.is_empty(),
            "listed a settled directory again"
        );
    }

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
