//! A one-off container of dual's: run to its end for one task (measuring a
//! volume for `destroy`, copying a sidecar's data for a new workspace) and
//! gone after, whatever happened.
//!
//! Such a container has a name of its own, so that one a killed dual left
//! is found and removed before the next takes the name; it carries the pid
//! of the dual that made it (`dual.pid`), so that `dual prune` can tell an
//! abandoned one from one in use; and it runs with `--rm`, which removes it
//! only once it ended: one cut short (its time ran out, Ctrl-C, the engine
//! failed) is removed by dual, uninterruptibly, since it may still hold a
//! volume that `volume rm` would then refuse, or keep a parent paused.

use std::ffi::OsString;
use std::time::Duration;

use super::labels::OWNER_PID;
use super::spec::{RunSpec, SpecError};
use super::{Engine, EngineError};
use crate::process::Output;

/// A one-off container to run: see the module's doc.
#[derive(Debug, Clone)]
pub struct OneOff {
    pub spec: RunSpec,
    /// How long it may run before it is cut short.
    pub timeout: Duration,
    /// Ctrl-C cuts it short; else it runs to its end or its timeout.
    pub interruptible: bool,
}

/// The argv of `run` for `spec` as a one-off container made by the dual of
/// `pid`: removed once it ends, its maker's pid on it, the name checked as
/// a container's name.
fn one_off_args(spec: &RunSpec, pid: u32) -> Result<Vec<OsString>, SpecError> {
    let named = spec.name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !named {
        return Err(SpecError::Refused {
            what: "a one-off container's name",
            value: spec.name.escape_debug().to_string(),
            why: "a container name is letters, digits, `_`, `.` and `-`, first a letter or digit",
        });
    }
    let mut spec = spec.clone();
    spec.labels.insert(OWNER_PID.to_owned(), pid.to_string());
    let mut args = spec.create_args()?;
    args[0] = "run".into();
    args.insert(1, "--rm".into());
    Ok(args)
}

impl Engine {
    /// Removes the one-off container `name` if there is one (a killed dual
    /// left it, and it would hold the name), even after Ctrl-C. Done before
    /// `run_one_off`, and before whatever must be brief around it (a
    /// parent's pause).
    pub fn clear_one_off(&self, name: &str) {
        // Removing is part of undoing it: Ctrl-C must not stop that.
        if let Err(error) = self.for_cleanup().remove(&[name]) {
            crate::log::debug(&format!("removing `{name}`: {error}"));
        }
    }

    /// Runs `one_off` (whose name `clear_one_off` freed) to its end and
    /// returns what it printed, whatever its status; one cut short is
    /// removed: see the module's doc.
    pub fn run_one_off(&self, one_off: OneOff) -> Result<Output, EngineError> {
        let args = super::without_host_proxy(
            self.kind(),
            one_off_args(&one_off.spec, std::process::id())?,
        );
        let mut cmd = self.cmd(args).timeout(one_off.timeout);
        if !one_off.interruptible {
            cmd = cmd.uncancellable();
        }
        let output = cmd.output().map_err(|error| self.classify(error));
        if !output.as_ref().is_ok_and(Output::success) {
            // `--rm` removes it once it ends; it may not have, or the
            // engine failed before removing it.
            self.clear_one_off(&one_off.spec.name);
        }
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Network;

    #[test]
    fn a_one_off_is_removed_once_it_ends_and_carries_its_maker_s_pid() {
        let mut spec = RunSpec::new("dual-shop-main.db-pgdata.size", "sha256:6af50bd9");
        spec.network = Network::None;
        spec.read_only = true;
        spec.command = vec!["-sk".into(), "/v".into()];
        let args: Vec<String> = one_off_args(&spec, 4242)
            .unwrap()
            .into_iter()
            .map(|arg| arg.into_string().unwrap())
            .collect();
        assert_eq!(
            &args[..3],
            ["run", "--rm", "--name=dual-shop-main.db-pgdata.size"]
        );
        assert!(
            args.contains(&"--label=dual.pid=4242".to_owned()),
            "{args:?}"
        );
        assert!(args.contains(&"--read-only".to_owned()), "{args:?}");
        assert!(!args.contains(&"--detach".to_owned()), "{args:?}");
        assert_eq!(
            &args[args.len() - 4..],
            ["--", "sha256:6af50bd9", "-sk", "/v"]
        );
    }

    #[test]
    fn a_name_that_is_not_a_container_s_is_refused() {
        for name in ["", "-x", "_v", "a b", "a/b", "v:/etc"] {
            let spec = RunSpec::new(name, "img");
            assert!(one_off_args(&spec, 1).is_err(), "{name:?}");
        }
    }
}
