//! Probe containers never outlive the run that made them: each run labels its
//! containers with a run id and removes them all at the end, also after Ctrl-C
//! (the interrupt flag stops the work, then this runs with uncancellable calls).
//! A run killed outright cannot clean up; the next run sweeps what it left.

use std::time::Duration;

use crate::engine::labels::{KIND, KIND_PROBE, MANAGED_FILTER, OWNER_PID, PROBE_RUN};
use crate::engine::{Engine, Labels};

pub struct ProbeRun {
    engine: Engine,
    id: String,
    cleaned: std::sync::atomic::AtomicBool,
}

impl ProbeRun {
    pub fn new(engine: Engine) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        ProbeRun {
            engine: engine.for_cleanup(),
            id: format!("{:x}{:05x}", std::process::id(), nanos & 0xfffff),
            cleaned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn labels(&self) -> Labels {
        Labels::from([
            (MANAGED_FILTER.0.to_owned(), MANAGED_FILTER.1.to_owned()),
            (KIND.to_owned(), KIND_PROBE.to_owned()),
            (PROBE_RUN.to_owned(), self.id.clone()),
            (OWNER_PID.to_owned(), std::process::id().to_string()),
        ])
    }

    pub fn container_name(&self, suffix: &str) -> String {
        format!("dual-probe-{}-{suffix}", self.id)
    }

    /// Removes every container of this run; returns how many there were.
    pub fn cleanup(&self) -> usize {
        self.cleaned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let filter = [MANAGED_FILTER, (PROBE_RUN, self.id.as_str())];
        let mut seen = std::collections::HashSet::new();
        let mut remaining = 0;
        // A `run` killed by Ctrl-C may still be completed by the daemon a
        // moment later, so look again until a listing comes back empty.
        for _ in 0..5 {
            let Ok(found) = self.engine.ps(&filter) else {
                break;
            };
            remaining = found.len();
            if found.is_empty() {
                break;
            }
            let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
            seen.extend(ids.iter().map(|id| (*id).to_owned()));
            if let Err(error) = self.engine.remove(&ids) {
                crate::log::debug(&format!("cleanup: {error}"));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        seen.len() - remaining
    }
}

impl Drop for ProbeRun {
    fn drop(&mut self) {
        if !self.cleaned.load(std::sync::atomic::Ordering::SeqCst) {
            self.cleanup();
        }
    }
}

/// A probe container whose creating dual process is gone (or unknown).
pub fn is_abandoned(labels: &Labels) -> bool {
    labels
        .get(OWNER_PID)
        .and_then(|pid| pid.parse::<i32>().ok())
        .is_none_or(|pid| !process_alive(pid))
}

/// Removes probe containers whose creating dual process is gone.
pub fn sweep_abandoned(engine: &Engine) -> Result<usize, crate::engine::EngineError> {
    let engine = engine.for_cleanup();
    let probes = engine.ps(&[MANAGED_FILTER, (KIND, KIND_PROBE)])?;
    let abandoned: Vec<&str> = probes
        .iter()
        .filter(|container| is_abandoned(&container.labels))
        .map(|container| container.id.as_str())
        .collect();
    engine.remove(&abandoned)?;
    Ok(abandoned.len())
}

fn process_alive(pid: i32) -> bool {
    // Signal 0 only checks that the process exists; EPERM means it does,
    // under another user.
    // Zero or below would name a process group, not a process.
    let Some(pid) = (pid > 0)
        .then(|| rustix::process::Pid::from_raw(pid))
        .flatten()
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(error) => error == rustix::io::Errno::PERM,
    }
}
