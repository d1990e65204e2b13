//! What a container wrote in its own filesystem, outside its mounts: the
//! files that go with it when it is removed (`docker diff` / `podman diff`),
//! and keeping them as an image (`commit`) before that happens.
//!
//! Both engines print one change a line, `A|C|D PATH`, and both list the
//! directories the runtime made for mount points (`A /var/log/dual`, and
//! every missing parent of one) as added: those are scaffolding, not data.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::model::{Labels, ParseError};
use super::{Engine, EngineError, EngineKind, RUN_TIMEOUT};

/// One line of `diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

/// `diff`'s output: `A /path`, `C /path`, `D /path`, one a line (the same
/// on docker and podman).
pub fn parse_diff(raw: &str) -> Result<Vec<Change>, ParseError> {
    let mut changes = Vec::new();
    for line in raw.lines().filter(|line| !line.trim().is_empty()) {
        let parsed = line.split_once(' ').and_then(|(kind, path)| {
            let kind = match kind {
                "A" => ChangeKind::Added,
                "C" => ChangeKind::Changed,
                "D" => ChangeKind::Deleted,
                _ => return None,
            };
            path.starts_with('/').then(|| Change {
                kind,
                path: path.to_owned(),
            })
        });
        match parsed {
            Some(change) => changes.push(change),
            None => {
                return Err(ParseError {
                    command: "diff",
                    reason: "a line is not `A|C|D /path`".into(),
                    snippet: line.chars().take(160).collect(),
                });
            }
        }
    }
    Ok(changes)
}

/// The paths of `changes` that hold something a new container would not
/// have, given the container's mount targets (`mounts`, whose contents
/// outlive it anyway): additions and changes, never under a mount, never a
/// directory made only to hold a mount point, never a directory whose
/// changes are listed themselves (`C /tmp` beside `A /tmp/keep`). A
/// deletion loses nothing: the image still has the file.
pub fn written_outside(changes: &[Change], mounts: &[String]) -> Vec<String> {
    let mounts: Vec<&str> = mounts
        .iter()
        .map(|m| m.trim_end_matches('/'))
        .filter(|m| !m.is_empty())
        .collect();
    let listed: BTreeSet<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    let has_listed_child = |path: &str| {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        listed
            .range(prefix.as_str()..)
            .next()
            .is_some_and(|next| next.starts_with(&prefix))
    };
    changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Deleted)
        .map(|c| c.path.as_str())
        .filter(|path| {
            !mounts
                .iter()
                .any(|m| is_within(path, m) || is_within(m, path))
        })
        .filter(|path| !has_listed_child(path))
        .map(str::to_owned)
        .collect()
}

/// Whether `path` is `root` or below it.
fn is_within(path: &str, root: &str) -> bool {
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Files every engine bind-mounts (or writes) into each container without
/// listing them among its mounts: a change of their directory (`C /etc`,
/// which rootless podman reports alone) is the engine's.
pub const ENGINE_FILES: [&str; 5] = [
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/.dockerenv",
    "/run/.containerenv",
];

/// Files podman itself writes in a container's layer: it adds the
/// container's user and group to the image's passwd and group (creating
/// them where the image has none) unless told `--passwd=false`.
pub const PODMAN_WRITES: [&str; 2] = ["/etc/passwd", "/etc/group"];

#[derive(Deserialize)]
struct RawMounts {
    #[serde(default)]
    mounts: Option<Vec<RawMount>>,
    #[serde(default)]
    tmpfs: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawMount {
    #[serde(rename = "Destination")]
    destination: String,
}

/// Every mount target of a container, from its inspect (volumes, binds,
/// tmpfs).
pub fn parse_mount_targets(raw: &str) -> Result<Vec<String>, ParseError> {
    let parsed: RawMounts = serde_json::from_str(raw.trim()).map_err(|error| ParseError {
        command: "container inspect",
        reason: error.to_string(),
        snippet: raw.trim().chars().take(160).collect(),
    })?;
    let mut targets: Vec<String> = parsed
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.destination)
        .collect();
    targets.extend(parsed.tmpfs.unwrap_or_default().into_keys());
    Ok(targets)
}

impl Engine {
    /// What `container` changed in its own filesystem, as the engine says.
    /// Bounded like a `run`: the engine walks the container's layer.
    pub fn diff(&self, container: &str) -> Result<Vec<Change>, EngineError> {
        let output = self.run(&self.cmd(["diff", container]).timeout(RUN_TIMEOUT))?;
        self.parse(parse_diff(&output.stdout))
    }

    /// The targets of `container`'s mounts and tmpfs, as the engine made them.
    pub fn mount_targets(&self, container: &str) -> Result<Vec<String>, EngineError> {
        let format = r#"{"mounts":{{json .Mounts}},"tmpfs":{{json .HostConfig.Tmpfs}}}"#;
        let output =
            self.run(&self.cmd(["container", "inspect", "--format", format, container]))?;
        self.parse(parse_mount_targets(&output.stdout))
    }

    /// Makes an image `image` of `container`'s filesystem (its mounts left
    /// out, as the engine always does), carrying the container's labels
    /// and then `labels`, whose keys and values must be plain words: they
    /// pass through the engine's Dockerfile syntax (`LABEL k=v`).
    pub fn commit(&self, container: &str, image: &str, labels: &Labels) -> Result<(), EngineError> {
        let mut args: Vec<String> = vec!["commit".into()];
        if self.kind == EngineKind::Podman {
            // Else it prints each blob it copies on stderr.
            args.push("--quiet".into());
        }
        for (key, value) in labels {
            args.push("--change".into());
            args.push(format!("LABEL {key}={value}"));
        }
        args.extend([container.to_owned(), image.to_owned()]);
        let cmd = self.cmd(args).timeout(RUN_TIMEOUT).uncancellable();
        self.run(&cmd).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(raw: &str) -> Vec<Change> {
        parse_diff(raw).unwrap()
    }

    /// What a workspace container of dual's shows on docker after a user
    /// wrote `/tmp/keep` (its clone and home under /tmp, logs in
    /// /var/log/dual, a tmpfs at /run/dual).
    const DOCKER: &str = "C /tmp\nA /tmp/dx\nA /tmp/dx/home\nA /tmp/dx/root\nA /tmp/dx/root/dx\nA /tmp/dx/root/dx/b\nA /tmp/keep\nA /var\nA /var/log\nA /var/log/dual\nA /run\nA /run/dual\n";
    /// The same on podman, with dual's passwd and group mounted.
    const PODMAN: &str = "C /etc\nA /etc/group\nA /etc/passwd\nA /run/dual\nC /tmp\nA /tmp/dx\nA /tmp/dx/home\nA /tmp/dx/root\nA /tmp/dx/root/dx\nA /tmp/dx/root/dx/b\nA /tmp/keep\nA /var\nA /var/log\nA /var/log/dual\n";

    fn mounts() -> Vec<String> {
        [
            "/tmp/dx/home",
            "/tmp/dx/root/dx/b",
            "/tmp/dx/root/dx/b/.git",
            "/tmp/dx/root/dx/b/node_modules",
            "/var/log/dual",
            "/etc/passwd",
            "/etc/group",
            "/run/dual",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn only_what_the_user_wrote_outside_mounts_is_reported() {
        assert_eq!(written_outside(&changes(DOCKER), &mounts()), ["/tmp/keep"]);
        assert_eq!(written_outside(&changes(PODMAN), &mounts()), ["/tmp/keep"]);
    }

    #[test]
    fn the_engine_s_own_files_are_not_the_user_s() {
        let raw = "C /etc\nA /.dockerenv\n";
        let targets: Vec<String> = ENGINE_FILES.map(String::from).to_vec();
        assert!(written_outside(&changes(raw), &targets).is_empty());
        assert_eq!(written_outside(&changes(raw), &[]), ["/etc", "/.dockerenv"]);
    }

    #[test]
    fn a_fresh_container_reports_nothing() {
        let fresh = DOCKER.replace("C /tmp\n", "").replace("A /tmp/keep\n", "");
        assert!(written_outside(&changes(&fresh), &mounts()).is_empty());
    }

    #[test]
    fn changed_files_count_deletions_do_not_and_a_lone_changed_dir_does() {
        let raw = "C /etc\nC /etc/profile\nD /usr/share/doc\nC /opt\nD /opt/x\nC /srv\n";
        assert_eq!(
            written_outside(&changes(raw), &[]),
            ["/etc/profile", "/srv"],
            "C /opt only holds a deletion; C /srv changed itself"
        );
    }

    #[test]
    fn a_mount_s_name_prefix_is_not_the_mount() {
        let raw = "A /var/log/dualx\nA /var/log/dual/x\n";
        assert_eq!(
            written_outside(&changes(raw), &["/var/log/dual/".into()]),
            ["/var/log/dualx"]
        );
    }

    #[test]
    fn lines_that_are_not_changes_are_an_error() {
        assert!(parse_diff("").unwrap().is_empty());
        assert!(parse_diff("X /tmp").is_err());
        assert!(parse_diff("A tmp").is_err());
        assert_eq!(
            changes("A /a b")[0].path,
            "/a b",
            "a space belongs to the path"
        );
    }

    #[test]
    fn mount_targets_come_from_mounts_and_tmpfs() {
        let raw = r#"{"mounts":[{"Type":"bind","Destination":"/w"},{"Type":"volume","Name":"v","Destination":"/w/node_modules"}],"tmpfs":{"/run/dual":""}}"#;
        assert_eq!(
            parse_mount_targets(raw).unwrap(),
            ["/w", "/w/node_modules", "/run/dual"]
        );
        assert!(
            parse_mount_targets(r#"{"mounts":null,"tmpfs":null}"#)
                .unwrap()
                .is_empty()
        );
    }
}
