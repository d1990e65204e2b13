//! The labels dual puts on everything it creates: the one schema, and the one
//! codec between a workspace's labels and [`WorkspaceLabels`]. The engine's
//! labels are the truth about which containers are dual's: dual lists,
//! reconciles and removes only containers carrying [`MANAGED`], never anyone
//! else's, and a workspace's container only when every label agrees.

use super::model::Labels;

/// Present, with value `true`, on every container and image dual creates.
pub const MANAGED: &str = "dual.managed";
/// What the container is for: [`KIND_PROBE`], [`KIND_WORKSPACE`] or
/// [`KIND_ACCOUNTS`].
pub const KIND: &str = "dual.kind";
pub const KIND_PROBE: &str = "probe";
pub const KIND_WORKSPACE: &str = "workspace";
/// A workspace's sidecar (a database beside it, in its network namespace).
pub const KIND_SIDECAR: &str = "sidecar";
/// Which sidecar of its workspace a container (or a data volume) is.
pub const SIDECAR: &str = "dual.sidecar";
/// A sidecar's data volume: the name its config gives it.
pub const VOLUME: &str = "dual.volume";
/// Made (never started) to read an image's passwd and group, then removed.
pub const KIND_ACCOUNTS: &str = "accounts";
/// Runs `du` on a volume for `destroy` (named `{volume}.size`), then removed.
pub const KIND_MEASURE: &str = "measure";
/// One probe run: every container of a `dual verify` carries its run id.
pub const PROBE_RUN: &str = "dual.probe.run";
/// The pid of the dual process that created a probe container, so that a later
/// run can tell an abandoned one (its creator died) from one in use.
pub const OWNER_PID: &str = "dual.pid";
/// An image of what a workspace's (or sidecar's) container wrote outside
/// its mounts, kept when it was recreated; its value is the container.
pub const KEPT: &str = "dual.kept";
pub const KIND_KEPT: &str = "kept";

/// A volume of package managers' downloads shared by workspaces: a repo's
/// (labelled with it) or all of an installation's.
pub const KIND_CACHE: &str = "cache";

pub const MANAGED_FILTER: (&str, &str) = (MANAGED, "true");

/// Which dual installation (state file) owns it: several users, or several
/// DUAL_HOMEs, may share one engine, and prune must only touch its own.
const OWNER: &str = "dual.owner";
/// The workspace a container or volume belongs to: `{repo}-{label}`.
const WORKSPACE: &str = "dual.workspace";
const REPO: &str = "dual.repo";
const BRANCH: &str = "dual.branch";
/// The ports a workspace's dev servers listen on, space-separated (a comma
/// would break docker's flattened label list in `ps`): what the proxy opens
/// listeners for.
const PORTS: &str = "dual.ports";
/// A hash of the settings the container was made from: when `.dual.toml`
/// no longer gives the same hash, `launch` recreates the container.
const SETTINGS: &str = "dual.settings";
/// `uid:gid`, what commands run as in the container (its main process is
/// root): what `dual recover` records for `dual run`.
const USER: &str = "dual.user";

/// What the labels of a workspace's container (and of its volumes) say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceLabels {
    pub owner: String,
    pub workspace: String,
    pub repo: String,
    pub branch: String,
    pub ports: Vec<u16>,
    pub settings: String,
    pub user: Option<(u32, u32)>,
}

impl WorkspaceLabels {
    pub fn to_labels(&self) -> Labels {
        let ports = self
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let mut labels = Labels::from([
            (MANAGED.to_owned(), "true".to_owned()),
            (KIND.to_owned(), KIND_WORKSPACE.to_owned()),
            (OWNER.to_owned(), self.owner.clone()),
            (WORKSPACE.to_owned(), self.workspace.clone()),
            (REPO.to_owned(), self.repo.clone()),
            (BRANCH.to_owned(), self.branch.clone()),
            (PORTS.to_owned(), ports),
            (SETTINGS.to_owned(), self.settings.clone()),
        ]);
        if let Some((uid, gid)) = self.user {
            labels.insert(USER.to_owned(), format!("{uid}:{gid}"));
        }
        labels
    }

    /// `None` unless the labels are a dual workspace's: managed, of the
    /// workspace kind, with an owner and a workspace name.
    pub fn from_labels(labels: &Labels) -> Option<WorkspaceLabels> {
        let get = |key: &str| labels.get(key).cloned();
        if labels.get(MANAGED).map(String::as_str) != Some("true")
            || labels.get(KIND).map(String::as_str) != Some(KIND_WORKSPACE)
        {
            return None;
        }
        Some(WorkspaceLabels {
            owner: get(OWNER)?,
            workspace: get(WORKSPACE)?,
            repo: get(REPO).unwrap_or_default(),
            branch: get(BRANCH).unwrap_or_default(),
            ports: get(PORTS)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .filter(|p| *p > 0)
                .collect(),
            settings: get(SETTINGS).unwrap_or_default(),
            user: get(USER).and_then(|ids| {
                let (uid, gid) = ids.split_once(':')?;
                Some((uid.parse().ok()?, gid.parse().ok()?))
            }),
        })
    }

    /// Whether `other` is the same workspace of the same installation: what
    /// makes an existing container "ours" for this workspace.
    pub fn same_workspace(&self, other: &WorkspaceLabels) -> bool {
        self.owner == other.owner
            && self.workspace == other.workspace
            && self.repo == other.repo
            && self.branch == other.branch
    }
}

/// What the labels of a sidecar's container say: its workspace's labels
/// (kind `sidecar`), its name and the hash of what it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarLabels {
    pub workspace: WorkspaceLabels,
    pub name: String,
}

impl SidecarLabels {
    pub fn to_labels(&self) -> Labels {
        let mut labels = self.workspace.to_labels();
        labels.insert(KIND.to_owned(), KIND_SIDECAR.to_owned());
        labels.insert(SIDECAR.to_owned(), self.name.clone());
        labels.remove(PORTS);
        labels
    }

    /// `None` unless the labels are a dual sidecar's.
    pub fn from_labels(labels: &Labels) -> Option<SidecarLabels> {
        if labels.get(KIND).map(String::as_str) != Some(KIND_SIDECAR) {
            return None;
        }
        let mut as_workspace = labels.clone();
        as_workspace.insert(KIND.to_owned(), KIND_WORKSPACE.to_owned());
        Some(SidecarLabels {
            workspace: WorkspaceLabels::from_labels(&as_workspace)?,
            name: labels.get(SIDECAR)?.clone(),
        })
    }

    /// The labels of one of its data volumes: its workspace's (so that
    /// removing the workspace's volumes removes them), and which it is.
    pub fn volume_labels(&self, volume: &str) -> Labels {
        let mut labels = WorkspaceLabels {
            ports: Vec::new(),
            settings: String::new(),
            user: None,
            ..self.workspace.clone()
        }
        .to_labels();
        labels.insert(SIDECAR.to_owned(), self.name.clone());
        labels.insert(VOLUME.to_owned(), volume.to_owned());
        labels
    }
}

/// The engine filters for dual's workspaces: every installation's, or one's.
/// (`Engine::ps` and `volume_names` check every filter again on what the
/// engine sends, since podman 4.3 ORs label filters on `volume ls`.)
pub fn workspace_filters(owner: Option<&str>) -> Vec<(&str, &str)> {
    let mut filters = vec![MANAGED_FILTER, (KIND, KIND_WORKSPACE)];
    if let Some(owner) = owner {
        filters.push((OWNER, owner));
    }
    filters
}

/// The filters for everything one installation made: its workspaces'
/// containers and their sidecars.
pub fn owner_filters(owner: &str) -> Vec<(&str, &str)> {
    vec![MANAGED_FILTER, (OWNER, owner)]
}

impl WorkspaceLabels {
    /// The filters for this workspace's sidecars' containers.
    pub fn sidecar_filters(&self) -> Vec<(&str, &str)> {
        vec![
            MANAGED_FILTER,
            (KIND, KIND_SIDECAR),
            (OWNER, self.owner.as_str()),
            (WORKSPACE, self.workspace.as_str()),
            (REPO, self.repo.as_str()),
            (BRANCH, self.branch.as_str()),
        ]
    }

    /// The filters for this workspace's objects (its container, its volumes).
    pub fn filters(&self) -> Vec<(&str, &str)> {
        let mut filters = workspace_filters(Some(&self.owner));
        filters.extend([
            (WORKSPACE, self.workspace.as_str()),
            (REPO, self.repo.as_str()),
            (BRANCH, self.branch.as_str()),
        ]);
        filters
    }
}

/// What the labels of a cache volume say: whose it is, and the repo whose
/// workspaces share it (`None`: all of the installation's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLabels {
    pub owner: String,
    pub repo: Option<String>,
}

impl CacheLabels {
    pub fn to_labels(&self) -> Labels {
        let mut labels = Labels::from([
            (MANAGED.to_owned(), "true".to_owned()),
            (KIND.to_owned(), KIND_CACHE.to_owned()),
            (OWNER.to_owned(), self.owner.clone()),
        ]);
        if let Some(repo) = &self.repo {
            labels.insert(REPO.to_owned(), repo.clone());
        }
        labels
    }

    /// `None` unless the labels are a dual cache volume's.
    pub fn from_labels(labels: &Labels) -> Option<CacheLabels> {
        if labels.get(MANAGED).map(String::as_str) != Some("true")
            || labels.get(KIND).map(String::as_str) != Some(KIND_CACHE)
        {
            return None;
        }
        Some(CacheLabels {
            owner: labels.get(OWNER)?.clone(),
            repo: labels.get(REPO).cloned(),
        })
    }

    /// The filters for one installation's cache volumes.
    pub fn filters(owner: &str) -> Vec<(&str, &str)> {
        vec![MANAGED_FILTER, (KIND, KIND_CACHE), (OWNER, owner)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> WorkspaceLabels {
        WorkspaceLabels {
            owner: "a1b2c3".into(),
            workspace: "shop-feat-auth".into(),
            repo: "shop".into(),
            branch: "feat/auth".into(),
            ports: vec![3000, 5173],
            settings: "0123456789abcdef".into(),
            user: Some((1000, 1001)),
        }
    }

    #[test]
    fn labels_round_trip() {
        let written = labels().to_labels();
        assert_eq!(written[PORTS], "3000 5173");
        assert_eq!(written[USER], "1000:1001");
        assert_eq!(
            WorkspaceLabels::from_labels(&written),
            Some(labels()),
            "{written:?}"
        );
    }

    #[test]
    fn only_a_managed_workspace_s_labels_decode() {
        let mut written = labels().to_labels();
        written.insert(KIND.into(), KIND_PROBE.into());
        assert_eq!(WorkspaceLabels::from_labels(&written), None);
        let mut foreign = labels().to_labels();
        foreign.remove(MANAGED);
        assert_eq!(WorkspaceLabels::from_labels(&foreign), None);
        let mut ownerless = labels().to_labels();
        ownerless.remove(OWNER);
        assert_eq!(WorkspaceLabels::from_labels(&ownerless), None);
    }

    #[test]
    fn junk_ports_are_skipped() {
        let mut written = labels().to_labels();
        written.insert(PORTS.into(), "3000 junk 0 8080".into());
        let read = WorkspaceLabels::from_labels(&written).unwrap();
        assert_eq!(read.ports, [3000, 8080]);
        written.insert(USER.into(), "1000".into());
        let read = WorkspaceLabels::from_labels(&written).unwrap();
        assert_eq!(read.user, None, "a user label without a gid is no user");
    }

    #[test]
    fn cache_labels_round_trip_and_are_never_a_workspace_s() {
        let cache = CacheLabels {
            owner: "a1b2c3".into(),
            repo: Some("shop".into()),
        };
        let written = cache.to_labels();
        assert_eq!(CacheLabels::from_labels(&written), Some(cache));
        assert_eq!(WorkspaceLabels::from_labels(&written), None);
        let user = CacheLabels {
            owner: "a1b2c3".into(),
            repo: None,
        };
        assert_eq!(CacheLabels::from_labels(&user.to_labels()), Some(user));
        assert_eq!(CacheLabels::from_labels(&labels().to_labels()), None);
    }

    #[test]
    fn a_workspace_is_the_same_only_when_every_part_agrees() {
        let mine = labels();
        let mut other_repo = labels();
        other_repo.repo = "shop-feat".into();
        other_repo.branch = "auth".into();
        assert!(!mine.same_workspace(&other_repo));
        let mut other_owner = labels();
        other_owner.owner = "ffffff".into();
        assert!(!mine.same_workspace(&other_owner));
        let mut new_settings = labels();
        new_settings.settings = "changed".into();
        assert!(mine.same_workspace(&new_settings));
    }
}
