//! Where a workspace's `setup` stands, for `dual list`: running now (by which
//! launch), or failed (with its status) until a later launch's setup
//! succeeds. One small file per workspace under dual's data dir, written by
//! the launch operation with an atomic rename, so a reader never sees half a
//! record; no file means nothing to report (never run, or succeeded).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "setup")]
pub enum SetupRecord {
    /// Running in the launch with this process id.
    Running { pid: u32 },
    /// Ended with `status` (`exit status 1`).
    Failed { status: String },
}

fn records_dir() -> PathBuf {
    crate::paths::data_dir().join("setup")
}

fn path_in(dir: &Path, workspace: &str) -> PathBuf {
    dir.join(format!("{workspace}.json"))
}

impl SetupRecord {
    /// The record of `workspace`; a `Running` one whose launch is gone (it
    /// was killed) reads as none, since its setup ran no further.
    pub fn read(workspace: &str) -> Option<SetupRecord> {
        SetupRecord::read_in(&records_dir(), workspace)
    }

    pub fn write(&self, workspace: &str) -> std::io::Result<()> {
        self.write_in(&records_dir(), workspace)
    }

    /// Setup succeeded (or the workspace is gone): nothing to report.
    pub fn clear(workspace: &str) -> std::io::Result<()> {
        SetupRecord::clear_in(&records_dir(), workspace)
    }

    fn read_in(dir: &Path, workspace: &str) -> Option<SetupRecord> {
        let text = std::fs::read(path_in(dir, workspace)).ok()?;
        let record: SetupRecord = serde_json::from_slice(&text).ok()?;
        match record {
            SetupRecord::Running { pid } if !process_alive(pid) => None,
            other => Some(other),
        }
    }

    fn write_in(&self, dir: &Path, workspace: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        file.as_file().sync_all()?;
        file.persist(path_in(dir, workspace))
            .map_err(|error| error.error)?;
        Ok(())
    }

    fn clear_in(dir: &Path, workspace: &str) -> std::io::Result<()> {
        match std::fs::remove_file(path_in(dir, workspace)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // Signal 0 only asks whether it exists; EPERM: it does, as another user.
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(error) => error == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_dead_launch_reads_as_none() {
        let home = tempfile::tempdir().unwrap();
        let dir = &home.path().join("setup");
        assert_eq!(SetupRecord::read_in(dir, "shop-a"), None);
        SetupRecord::Failed {
            status: "exit status 3".into(),
        }
        .write_in(dir, "shop-a")
        .unwrap();
        assert_eq!(
            SetupRecord::read_in(dir, "shop-a"),
            Some(SetupRecord::Failed {
                status: "exit status 3".into()
            })
        );
        SetupRecord::Running {
            pid: std::process::id(),
        }
        .write_in(dir, "shop-a")
        .unwrap();
        assert!(matches!(
            SetupRecord::read_in(dir, "shop-a"),
            Some(SetupRecord::Running { .. })
        ));
        // No process has pid 0x7fff_fff0 (above pid_max).
        SetupRecord::Running { pid: 0x7fff_fff0 }
            .write_in(dir, "shop-a")
            .unwrap();
        assert_eq!(SetupRecord::read_in(dir, "shop-a"), None);
        SetupRecord::clear_in(dir, "shop-a").unwrap();
        SetupRecord::clear_in(dir, "shop-a").unwrap();
        assert!(!path_in(dir, "shop-a").exists());
    }
}
