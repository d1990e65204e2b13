//! `dual remote-sync …` (hidden): the supervisor that keeps a workspace's
//! clone in sync with its copy on a remote engine's host, and the handles a
//! test or a person troubleshooting drives it with.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use super::print;
use crate::cli::RemoteSyncAction;
use crate::remote::sync::{self, SyncPair};
use crate::remote::{Ssh, SshTarget};

/// What `start --spec FILE` reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// `ssh://[user@]host[:port]`
    ssh: String,
    #[serde(default)]
    identity: Option<PathBuf>,
    pairs: Vec<SyncPair>,
}

pub fn run(action: RemoteSyncAction) -> anyhow::Result<ExitCode> {
    match action {
        RemoteSyncAction::Run { workspace } => sync::run_supervisor(&workspace),
        RemoteSyncAction::Start { workspace, spec } => {
            let text = std::fs::read(&spec)
                .with_context(|| format!("could not read `{}`", spec.display()))?;
            let spec: Spec = serde_json::from_slice(&text)
                .with_context(|| format!("`{}` is not a sync spec", spec.display()))?;
            let target = SshTarget::parse(&spec.ssh)?;
            let pid = sync::start(&workspace, &Ssh::new(target, spec.identity), &spec.pairs)?;
            print(&format!(
                "sync of {workspace} running (pid {pid}); log: {}\n",
                sync::log_path(&workspace).display()
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        RemoteSyncAction::Wait { workspace, timeout } => {
            sync::wait_initial(&workspace, Duration::from_secs(timeout))?;
            print(&format!("{workspace}: first copy done\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        RemoteSyncAction::Stop { workspace } => {
            let was = sync::stop(&workspace)?;
            print(if was { "stopped\n" } else { "not running\n" })?;
            Ok(ExitCode::SUCCESS)
        }
        RemoteSyncAction::Status { workspace } => match sync::running_pid(&workspace) {
            Some(pid) => {
                print(&format!(
                    "sync of {workspace} running (pid {pid}); log: {}\n",
                    sync::log_path(&workspace).display()
                ))?;
                Ok(ExitCode::SUCCESS)
            }
            None => {
                print(&format!("sync of {workspace} not running\n"))?;
                Ok(ExitCode::from(3))
            }
        },
    }
}
