//! Settings from a source other than `.dual.toml` (a devcontainer.json,
//! or what detection found in the repo's files): each `None` leaves the
//! setting to the next source. `.dual.toml` wins over a layer key by key;
//! `env`, `services` and `sidecars` merge entry by entry (`.dual.toml`'s
//! entry wins). A layer's values are checked as `.dual.toml`'s are, by
//! whoever makes it: they come from the repo too.

use std::collections::{BTreeMap, BTreeSet};

use super::compose::ComposeFile;
use super::config::{Config, Service};
use super::lifecycle::HostCommand;
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

impl ConfigLayer {
    /// Gives `config` each setting of this layer that `.dual.toml` did not
    /// set (`set`: the keys it did); `env`, `services` and `sidecars` entry
    /// by entry.
    pub fn fill(self, config: &mut Config, set: &BTreeSet<&'static str>) {
        let (layer, this) = (self, config);
        let unset = |key: &str| !set.contains(key);
        // The image and its build are one choice: `.dual.toml`'s either
        // one wins over both of the layer's.
        let image_unset = unset("image") && unset("build");
        if let Some(image) = layer.image.filter(|_| image_unset) {
            this.image = image;
        }
        if let Some(build) = layer.build.filter(|_| image_unset) {
            this.build = Some(build);
        }
        if let Some(compose) = layer.compose_file.filter(|_| unset("compose_file")) {
            this.compose_file = compose;
        }
        this.initialize_command = layer.initialize_command;
        if let Some(ports) = layer.ports.filter(|_| unset("ports")) {
            this.ports = ports;
        }
        if let Some(setup) = layer.setup.filter(|_| unset("setup")) {
            this.setup = Some(setup);
        }
        if let Some(hook) = layer.after_start.filter(|_| unset("after_start")) {
            this.after_start = Some(hook);
        }
        if let Some(volumes) = layer
            .anonymous_volumes
            .filter(|_| unset("anonymous_volumes"))
        {
            this.anonymous_volumes = volumes;
        }
        if let Some(path) = layer.path.filter(|_| unset("path")) {
            this.path = path;
        }
        if let Some(seed) = layer.seed.filter(|_| unset("seed")) {
            this.seed = seed;
        }
        for (name, value) in layer.env {
            this.env.entry(name).or_insert(value);
        }
        for (name, service) in layer.services {
            if !this.sidecars.contains_key(&name) {
                this.services.entry(name).or_insert(service);
            }
        }
        for (name, sidecar) in layer.sidecars {
            if !this.services.contains_key(&name) {
                this.sidecars.entry(name).or_insert(sidecar);
            }
        }
        this.lifecycle = layer.lifecycle;
        this.mounts = layer.mounts;
        for (port, label) in layer.port_labels {
            this.port_labels.entry(port).or_insert(label);
        }
        this.notes.extend(layer.notes);
    }
}
