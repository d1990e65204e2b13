//! Settings from a source other than `.dual.toml` (a devcontainer.json,
//! or what detection found in the repo's files): each `None` leaves the
//! setting to the next source. `.dual.toml` wins over a layer key by key;
//! `env`, `services` and `sidecars` merge entry by entry (`.dual.toml`'s
//! entry wins). A layer's values are checked as `.dual.toml`'s are, by
//! whoever makes it: they come from the repo too.

use std::collections::BTreeMap;

use super::compose::ComposeFile;
use super::config::Service;
use super::devcontainer::HostCommand;
use super::lifecycle::Lifecycle;
use super::sidecars::{Build, Sidecar, Volume};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigLayer {
    pub image: Option<String>,
    pub build: Option<Build>,
    pub ports: Option<Vec<u16>>,
    pub setup: Option<String>,
    pub env: BTreeMap<String, String>,
    pub services: BTreeMap<String, Service>,
    pub sidecars: BTreeMap<String, Sidecar>,
    pub after_start: Option<String>,
    pub anonymous_volumes: Option<Vec<String>>,
    pub path: Option<Vec<String>>,
    pub seed: Option<Vec<String>>,
    pub lifecycle: Lifecycle,
    /// Named volumes the config mounts (devcontainer.json's `mounts`).
    pub mounts: Vec<Volume>,
    /// Port labels (devcontainer.json's `portsAttributes`).
    pub port_labels: BTreeMap<u16, String>,
    /// What could not be honoured, one line each.
    pub notes: Vec<String>,
    /// Where sidecars come from besides the layer's own (`Off`: the layer
    /// read the compose file it names itself).
    pub compose_file: Option<ComposeFile>,
    /// A command the config asks to run on the host (devcontainer.json's
    /// `initializeCommand`), which `launch` refuses.
    pub initialize_command: Option<HostCommand>,
}
