//! Resources: the workspace list (`dual://workspaces`, JSON) and each
//! workspace's recent service log (`dual://workspaces/{name}/log`), with
//! change notifications both ways the protocol has them: the legacy
//! `resources/subscribe`, and the 2026-07-28 `subscriptions/listen`. One
//! watcher looks every second, started by the first client that asks for
//! resources, and only while the server runs. A subscription is answered
//! only once the watcher has its first look: what changes after the answer
//! is news, not part of what it first saw.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    ListResourcesResult, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    SubscriptionFilter,
};
use rmcp::service::SubscriptionContext;
use rmcp::{ErrorData, Peer, RoleServer};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::engine::EngineKind;
use crate::error::HintExt as _;
use crate::printer::Printer;
use crate::workspace::{Store, services};

pub const LIST_URI: &str = "dual://workspaces";
const LOG_PREFIX: &str = "dual://workspaces/";
const LOG_SUFFIX: &str = "/log";
/// Lines of each service a log resource shows.
const LOG_LINES: usize = 200;
const EVERY: Duration = Duration::from_secs(1);

fn log_uri(workspace: &str) -> String {
    format!("{LOG_PREFIX}{workspace}{LOG_SUFFIX}")
}

/// The workspace a log resource's URI names.
fn log_of(uri: &str) -> Option<&str> {
    uri.strip_prefix(LOG_PREFIX)?
        .strip_suffix(LOG_SUFFIX)
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(
            format!("{LOG_PREFIX}{{workspace}}{LOG_SUFFIX}"),
            "workspace log",
        )
        .with_description("The last lines of each of the workspace's services")
        .with_mime_type("text/plain"),
    ]
}

/// What a listening client gets: the list's changes, and updates of the
/// resources of ours it named.
pub fn accepted(requested: &SubscriptionFilter) -> SubscriptionFilter {
    let mut accepted = SubscriptionFilter::new();
    accepted.resources_list_changed = requested.resources_list_changed;
    accepted.resource_subscriptions = requested.resource_subscriptions.as_ref().map(|uris| {
        uris.iter()
            .filter(|uri| uri.as_str() == LIST_URI || log_of(uri).is_some())
            .cloned()
            .collect()
    });
    accepted
}

/// Legacy subscriptions: the URIs, and whom to tell.
type Legacy = Mutex<(BTreeSet<String>, Option<Peer<RoleServer>>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    ListChanged,
    Updated(String),
}

pub struct Watch {
    flag: Option<EngineKind>,
    changes: broadcast::Sender<Change>,
    legacy: Arc<Legacy>,
    started: std::sync::Once,
    /// Whether the watcher has had its first look (what it compares with).
    first_look: watch::Sender<bool>,
}

impl Watch {
    pub fn new(flag: Option<EngineKind>) -> Watch {
        Watch {
            flag,
            changes: broadcast::channel(256).0,
            legacy: Arc::default(),
            started: std::sync::Once::new(),
            first_look: watch::channel(false).0,
        }
    }

    /// Starts the watcher and waits for its first look.
    pub async fn looking(&self) {
        self.start();
        let mut first_look = self.first_look.subscribe();
        // Only an error when the sender is gone, with the server.
        let _ = first_look.wait_for(|looked| *looked).await;
    }

    pub async fn list(&self) -> Result<ListResourcesResult, ErrorData> {
        self.start();
        let names = tokio::task::spawn_blocking(workspace_names)
            .await
            .map_err(internal)?
            .map_err(|error| internal(error.to_string()))?;
        let mut resources = vec![
            Resource::new(LIST_URI, "workspaces")
                .with_description("Every dual workspace, as list_workspaces gives it")
                .with_mime_type("application/json"),
        ];
        resources.extend(names.into_iter().map(|name| {
            Resource::new(log_uri(&name), format!("{name} log"))
                .with_description(format!("The last lines of each of {name}'s services"))
                .with_mime_type("text/plain")
        }));
        Ok(ListResourcesResult::with_all_items(resources))
    }

    pub async fn read(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        self.start();
        let flag = self.flag;
        let owned = uri.to_owned();
        let text = tokio::task::spawn_blocking(move || read(flag, &owned))
            .await
            .map_err(internal)??;
        let mime = if uri == LIST_URI {
            "application/json"
        } else {
            "text/plain"
        };
        Ok(ReadResourceResult::new(vec![
            ResourceContents::TextResourceContents {
                uri: uri.to_owned(),
                mime_type: Some(mime.to_owned()),
                text,
                meta: None,
            },
        ]))
    }

    pub async fn subscribe(&self, uri: String, peer: Peer<RoleServer>) -> Result<(), ErrorData> {
        if uri != LIST_URI && log_of(&uri).is_none() {
            return Err(ErrorData::resource_not_found(
                format!(
                    "no resource `{uri}`: dual has {LIST_URI} and {LOG_PREFIX}{{workspace}}{LOG_SUFFIX}"
                ),
                None,
            ));
        }
        {
            let mut legacy = self.legacy.lock().unwrap_or_else(|p| p.into_inner());
            legacy.0.insert(uri);
            legacy.1 = Some(peer);
        }
        // Else a change made right after the answer could be taken for how
        // things were.
        self.looking().await;
        Ok(())
    }

    pub async fn unsubscribe(&self, uri: &str) {
        let mut legacy = self.legacy.lock().unwrap_or_else(|p| p.into_inner());
        legacy.0.remove(uri);
    }

    /// A 2026-07-28 subscription: its changes until the client cancels it.
    pub async fn listen(&self, context: SubscriptionContext) {
        let mut changes = self.changes.subscribe();
        self.looking().await;
        loop {
            tokio::select! {
                () = context.cancelled() => return,
                change = changes.recv() => {
                    let sent = match change {
                        Ok(Change::ListChanged) => context.sink().notify_resource_list_changed().await,
                        Ok(Change::Updated(uri)) => context.sink().notify_resource_updated(uri).await,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if sent.is_err() {
                        // Not accepted for this subscription, or it is gone.
                        continue;
                    }
                }
            }
        }
    }

    /// Starts the watcher, once.
    fn start(&self) {
        self.started.call_once(|| {
            let changes = self.changes.clone();
            let legacy = Arc::clone(&self.legacy);
            let flag = self.flag;
            let first_look = self.first_look.clone();
            tokio::spawn(async move {
                let mut last: Option<Seen> = None;
                loop {
                    let seen = tokio::task::spawn_blocking(move || Seen::now(flag)).await;
                    if let Ok(seen) = seen {
                        if let Some(last) = &last {
                            for change in last.changes_to(&seen) {
                                tell(&legacy, &change).await;
                                let _ = changes.send(change);
                            }
                        }
                        last = Some(seen);
                    }
                    first_look.send_replace(true);
                    tokio::time::sleep(EVERY).await;
                }
            });
        });
    }
}

/// Tells a legacy subscriber of `change`, where it subscribed to it.
async fn tell(legacy: &Legacy, change: &Change) {
    let peer = {
        let legacy = legacy.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = match change {
            Change::ListChanged => !legacy.0.is_empty(),
            Change::Updated(uri) => legacy.0.contains(uri),
        };
        legacy.1.clone().filter(|_| wanted)
    };
    let Some(peer) = peer else { return };
    let _ = match change {
        Change::ListChanged => peer.notify_resource_list_changed().await,
        Change::Updated(uri) => {
            let param = rmcp::model::ResourceUpdatedNotificationParam::new(uri.clone());
            peer.notify_resource_updated(param).await
        }
    };
}

/// What the watcher saw: the workspace list as JSON, and each workspace's
/// log files (name, size, inode).
struct Seen {
    list: String,
    names: BTreeSet<String>,
    logs: BTreeMap<String, Vec<(String, u64, u64)>>,
}

impl Seen {
    fn now(flag: Option<EngineKind>) -> Seen {
        let state = Store::open_default().load().unwrap_or_default();
        let listed = crate::ops::status::status(flag, &state, &Printer::silent());
        let names: BTreeSet<String> = listed.iter().map(|w| w.name.clone()).collect();
        let logs = names
            .iter()
            .map(|name| (name.clone(), log_files(name)))
            .collect();
        Seen {
            list: serde_json::to_string(&listed).unwrap_or_default(),
            names,
            logs,
        }
    }

    fn changes_to(&self, now: &Seen) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.names != now.names {
            changes.push(Change::ListChanged);
        }
        if self.list != now.list {
            changes.push(Change::Updated(LIST_URI.to_owned()));
        }
        for (name, files) in &now.logs {
            if self.logs.get(name) != Some(files) {
                changes.push(Change::Updated(log_uri(name)));
            }
        }
        changes
    }
}

/// A workspace's log files: never followed (the directory is the
/// container's to write), only looked at.
fn log_files(workspace: &str) -> Vec<(String, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(services::logs_dir(workspace)) else {
        return Vec::new();
    };
    let mut files: Vec<(String, u64, u64)> = entries
        .flatten()
        .take(256)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.contains(".log") {
                return None;
            }
            let meta = std::fs::symlink_metadata(entry.path()).ok()?;
            Some((name, meta.len(), meta.ino()))
        })
        .collect();
    files.sort();
    files
}

fn workspace_names() -> anyhow::Result<Vec<String>> {
    let state = Store::open_default().load().hinted()?;
    Ok(state.workspaces.iter().map(|w| w.name()).collect())
}

fn read(flag: Option<EngineKind>, uri: &str) -> Result<String, ErrorData> {
    let state = Store::open_default()
        .load()
        .hinted()
        .map_err(|error| internal(error.to_string()))?;
    if uri == LIST_URI {
        let listed = crate::ops::status::status(flag, &state, &Printer::silent());
        return serde_json::to_string_pretty(&json!({"workspaces": listed})).map_err(internal);
    }
    let Some(name) = log_of(uri) else {
        return Err(ErrorData::resource_not_found(
            format!(
                "no resource `{uri}`: dual has {LIST_URI} and {LOG_PREFIX}{{workspace}}{LOG_SUFFIX}"
            ),
            None,
        ));
    };
    let read = crate::ops::logs::read(flag, &state, Some(name), None, Some(LOG_LINES), None)
        .map_err(|error| ErrorData::resource_not_found(error.to_string(), None))?;
    let mut text = String::new();
    let share = super::tools::log_share(read.logs.len());
    for log in &read.logs {
        let (newest, left_out) = super::tools::newest(&log.text, share);
        if left_out > 0 {
            text.push_str(&format!(
                "{} | [dual: {left_out} older bytes left out]\n",
                log.service
            ));
        }
        for line in newest.lines() {
            text.push_str(&format!("{} | {line}\n", log.service));
        }
    }
    Ok(text)
}

fn internal(error: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(error.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_uris_name_one_workspace() {
        assert_eq!(log_of(&log_uri("shop-a")), Some("shop-a"));
        assert_eq!(log_of("dual://workspaces//log"), None);
        assert_eq!(log_of("dual://workspaces/a/b/log"), None);
        assert_eq!(log_of("dual://workspaces"), None);
    }

    #[test]
    fn a_listener_gets_only_our_resources() {
        let mut requested = SubscriptionFilter::new();
        requested.resources_list_changed = Some(true);
        requested.resource_subscriptions = Some(vec![
            LIST_URI.into(),
            log_uri("shop-a"),
            "file:///etc/passwd".into(),
        ]);
        let accepted = accepted(&requested);
        assert_eq!(accepted.resources_list_changed, Some(true));
        assert_eq!(
            accepted.resource_subscriptions,
            Some(vec![LIST_URI.to_owned(), log_uri("shop-a")])
        );
    }
}
