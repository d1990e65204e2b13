//! The labels dual puts on everything it creates. The engine's labels are the
//! truth about which containers are dual's: dual lists, reconciles and removes
//! only containers carrying [`MANAGED`], never anyone else's.

/// Present, with value `true`, on every container and image dual creates.
pub const MANAGED: &str = "dual.managed";
/// What the container is for: [`KIND_PROBE`] or a workspace.
pub const KIND: &str = "dual.kind";
pub const KIND_PROBE: &str = "probe";
/// One probe run: every container of a `dual verify` carries its run id.
pub const PROBE_RUN: &str = "dual.probe.run";
/// The pid of the dual process that created a probe container, so that a later
/// run can tell an abandoned one (its creator died) from one in use.
pub const OWNER_PID: &str = "dual.pid";

pub const MANAGED_FILTER: (&str, &str) = (MANAGED, "true");
