//! What `launch` needs to know of an engine's host (rootless? a VM such as
//! Docker Desktop?), cached on disk: `podman info` alone costs ~290 ms, paid
//! on every container creation before this cache.
//!
//! The cache is keyed by everything that can change the answer: the engine
//! binary (path, inode, mtime), the variables and config files that choose
//! the engine's connection, and the uid. It also expires after an hour, and
//! a corrupt or unreadable cache is simply asked again.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError, EngineKind};

const MAX_AGE: Duration = Duration::from_secs(3600);

/// Variables that point an engine's CLI at another daemon or connection.
const CONNECTION_VARS: [&str; 5] = [
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub rootless: bool,
    /// Docker Desktop: containers live in a VM the host cannot route to.
    pub desktop: bool,
    /// The networks a container on the engine's default network joins, once
    /// one was seen (none with rootless podman's slirp4netns or pasta).
    #[serde(default)]
    pub default_networks: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    key: String,
    saved: u64,
    facts: HostFacts,
}

impl Engine {
    /// A pinned endpoint is another host: facts of its own.
    fn facts_cache_path(&self) -> PathBuf {
        match self.endpoint() {
            None => cache_path(self.kind),
            Some(endpoint) => cache_path(self.kind).with_file_name(format!(
                "{}-{}-host.json",
                self.kind.program(),
                short_hash(&endpoint.url)
            )),
        }
    }

    fn facts_cache_key(&self) -> String {
        let mut key = cache_key(self.kind);
        if let Some(endpoint) = self.endpoint() {
            key.push_str(&format!(" endpoint={}", endpoint.url));
        }
        key
    }

    /// The host facts, from the cache when it is still valid.
    pub fn host_facts(&self) -> Result<HostFacts, EngineError> {
        let path = self.facts_cache_path();
        let key = self.facts_cache_key();
        if let Some(facts) = read(&path, &key) {
            return Ok(facts);
        }
        let info = self.info_patiently()?;
        let facts = HostFacts {
            rootless: info.rootless,
            desktop: info.operating_system.contains("Docker Desktop"),
            default_networks: None,
        };
        write(&path, &key, &facts);
        Ok(facts)
    }

    /// Records the networks a container made on the default network joined,
    /// so later launches need not inspect theirs. Kept only as long as the
    /// rest of the cache (same key, same age limit).
    pub fn remember_default_networks(&self, networks: &[String]) {
        let path = self.facts_cache_path();
        let key = self.facts_cache_key();
        if let Some(mut facts) = read(&path, &key) {
            facts.default_networks = Some(networks.to_vec());
            write(&path, &key, &facts);
        }
    }
}

/// The uid and gid the host user runs as: the container's processes use them
/// too, so files written in the clone belong to the user.
pub fn host_ids() -> (u32, u32) {
    (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    )
}

fn short_hash(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn cache_path(kind: EngineKind) -> PathBuf {
    crate::paths::data_dir()
        .join("cache")
        .join(format!("{}-host.json", kind.program()))
}

fn cache_key(kind: EngineKind) -> String {
    let mut parts = vec![format!("uid={}", host_ids().0)];
    let binary = crate::process::find_on_path(kind.program());
    parts.push(file_stamp(binary.as_deref()));
    for var in CONNECTION_VARS {
        parts.push(format!("{var}={}", std::env::var(var).unwrap_or_default()));
    }
    let home = crate::paths::user_home();
    let config =
        std::env::var_os("XDG_CONFIG_HOME").map_or_else(|| home.join(".config"), PathBuf::from);
    for file in [
        home.join(".docker/config.json"),
        config.join("containers/containers.conf"),
        PathBuf::from("/etc/containers/containers.conf"),
    ] {
        parts.push(file_stamp(Some(&file)));
    }
    parts.join("\n")
}

/// A file's path, inode and mtime; "-" where it does not exist.
fn file_stamp(path: Option<&Path>) -> String {
    use std::os::unix::fs::MetadataExt;
    match path.map(|p| (p, std::fs::metadata(p))) {
        Some((path, Ok(meta))) => format!(
            "{} {} {}.{}",
            path.display(),
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec()
        ),
        Some((path, Err(_))) => format!("{} -", path.display()),
        None => "-".into(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read(path: &Path, key: &str) -> Option<HostFacts> {
    let cached: Cached = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let fresh = now().saturating_sub(cached.saved) < MAX_AGE.as_secs();
    (cached.key == key && fresh).then_some(cached.facts)
}

/// Best effort: a cache that cannot be written only costs the next call.
fn write(path: &Path, key: &str, facts: &HostFacts) {
    let Some(dir) = path.parent() else { return };
    let cached = Cached {
        key: key.to_owned(),
        saved: now(),
        facts: facts.clone(),
    };
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        crate::files::write_atomic(path, &serde_json::to_vec(&cached).unwrap_or_default())
    });
    if let Err(error) = written {
        crate::log::debug(&format!(
            "could not cache host facts in {}: {error}",
            path.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_answers_only_for_its_own_key_while_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker-host.json");
        let facts = HostFacts {
            rootless: true,
            desktop: false,
            default_networks: Some(vec!["podman".into()]),
        };
        assert_eq!(read(&path, "k"), None, "nothing cached yet");
        write(&path, "k", &facts);
        assert_eq!(read(&path, "k"), Some(facts.clone()));
        assert_eq!(read(&path, "another key"), None);
        let stale = Cached {
            key: "k".into(),
            saved: now() - MAX_AGE.as_secs() - 1,
            facts: facts.clone(),
        };
        std::fs::write(&path, serde_json::to_vec(&stale).unwrap()).unwrap();
        assert_eq!(read(&path, "k"), None, "expired");
        std::fs::write(&path, "{ corrupt").unwrap();
        assert_eq!(read(&path, "k"), None);
    }

    #[test]
    fn the_key_follows_the_connection_variables() {
        let key = cache_key(EngineKind::Docker);
        assert!(key.contains("DOCKER_HOST="), "{key}");
        assert!(key.contains("uid="), "{key}");
    }
}
