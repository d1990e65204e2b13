//! Which services of a compose file dual takes, when a devcontainer.json
//! names one of them as the workspace (`service`) and which others run
//! (`runServices`): the workspace's service is read apart (its image or
//! build and its environment become the workspace's), and only the listed
//! services, and what they and the workspace's depend on, become sidecars.

use std::collections::BTreeSet;

use super::yaml::Node;

/// A choice among a compose file's services (none: every one a sidecar).
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection<'s> {
    /// The service that is the workspace itself: never a sidecar, read
    /// into `Stack::app`.
    pub app: Option<&'s str>,
    /// Only these (and what they and `app` depend on) become sidecars;
    /// `None`: all.
    pub only: Option<&'s [String]>,
}

/// What of the workspace's service is taken: the rest is the workspace
/// container's own business (dual mounts the clone, runs its own first
/// process, routes its ports).
pub(super) const APP_KEYS: [&str; 5] = ["image", "build", "environment", "env_file", "ports"];

impl Selection<'_> {
    /// The services that may become sidecars, where only some may: the
    /// listed ones and everything they and the app depend on.
    pub(super) fn wanted(&self, services: &[(String, Node)]) -> Option<BTreeSet<String>> {
        let only = self.only?;
        let mut wanted: BTreeSet<String> = only.iter().cloned().collect();
        let mut queue: Vec<String> = only
            .iter()
            .cloned()
            .chain(self.app.map(str::to_owned))
            .collect();
        // Each service is queued at most once: the walk ends.
        let mut seen: BTreeSet<String> = queue.iter().cloned().collect();
        while let Some(name) = queue.pop() {
            let Some((_, node)) = services.iter().find(|(service, _)| *service == name) else {
                continue;
            };
            for dependency in dependencies(node) {
                wanted.insert(dependency.clone());
                if seen.insert(dependency.clone()) {
                    queue.push(dependency);
                }
            }
        }
        Some(wanted)
    }

    /// The workspace's service with only the keys dual takes, and the
    /// others' names.
    pub(super) fn app_node(node: &Node) -> (Node, Vec<String>) {
        let Node::Map(entries) = node else {
            return (node.clone(), Vec::new());
        };
        let (kept, dropped): (Vec<_>, Vec<_>) = entries
            .iter()
            .cloned()
            .partition(|(key, _)| APP_KEYS.contains(&key.as_str()) || key.starts_with("x-"));
        (
            Node::Map(kept),
            dropped.into_iter().map(|(key, _)| key).collect(),
        )
    }
}

/// The names a service's `depends_on` lists (either form).
fn dependencies(node: &Node) -> Vec<String> {
    match node.get("depends_on") {
        Some(Node::Seq(items)) => items.iter().filter_map(Node::as_text).collect(),
        Some(Node::Map(entries)) => entries.iter().map(|(name, _)| name.clone()).collect(),
        _ => Vec::new(),
    }
}
