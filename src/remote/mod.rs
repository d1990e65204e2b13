//! An engine whose host is not this host: docker over SSH
//! (`DOCKER_HOST=ssh://…`, a docker context), podman remote (`CONTAINER_HOST`,
//! a connection). The engine's CLI already reaches it; what this module adds
//! is what assumed one host: the clone's files (a synced copy there, see
//! `sync`), the ports (reached through one multiplexed SSH connection per
//! engine host, see `ssh`).

pub mod mirror;
pub mod ssh;
pub mod sync;

pub use ssh::{Ssh, SshTarget};
