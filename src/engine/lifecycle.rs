//! The engine calls a workspace's sidecars need besides the basics: their
//! image's user, a pause for a consistent copy of their data, a restart,
//! their log.

use std::ffi::OsString;
use std::time::Duration;

use super::{Engine, EngineError, RUN_TIMEOUT, only_missing_objects};
use crate::process::{Cmd, Kept};

impl Engine {
    /// The user an image's processes run as (`.Config.User`), `None` when
    /// it sets none (root).
    pub fn image_user(&self, image: &str) -> Result<Option<String>, EngineError> {
        let cmd = self.cmd([
            "image",
            "inspect",
            "--format",
            "{{.Config.User}}",
            "--",
            image,
        ]);
        let output = self.run(&cmd)?;
        let user = output.stdout.trim();
        Ok((!user.is_empty()).then(|| user.to_owned()))
    }

    /// The environment an image gives its containers (`.Config.Env`), as
    /// (name, value) pairs; an entry without `=` is skipped.
    pub fn image_env(&self, image: &str) -> Result<Vec<(String, String)>, EngineError> {
        let cmd = self.cmd([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Env}}",
            "--",
            image,
        ]);
        let output = self.run(&cmd)?;
        let entries = self.parse(super::model::parse_image_env(&output.stdout))?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| {
                let (name, value) = entry.split_once('=')?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect())
    }

    /// Freezes every process of a container (their memory and files stay
    /// as they are) until `unpause`.
    pub fn pause(&self, container: &str) -> Result<(), EngineError> {
        self.run(&self.cmd(["pause", container]).uncancellable())
            .map(drop)
    }

    pub fn unpause(&self, container: &str) -> Result<(), EngineError> {
        self.run(&self.cmd(["unpause", container]).uncancellable())
            .map(drop)
    }

    /// Stops (with `grace`) and starts a container again.
    pub fn restart(&self, container: &str, grace: Duration) -> Result<(), EngineError> {
        let seconds = grace.as_secs().to_string();
        let cmd = self
            .cmd(["restart", "--time", &seconds, container])
            .timeout(RUN_TIMEOUT + grace)
            .uncancellable();
        self.run(&cmd).map(drop)
    }

    /// The last `lines` lines (else all) a container's main process
    /// printed: its stdout, then its stderr (the engine keeps them apart).
    pub fn logs_tail(&self, container: &str, lines: Option<usize>) -> Result<String, EngineError> {
        let cmd = self.cmd(logs_args(container, &LogsQuery::tail(lines)));
        let output = self.run_tolerating(&cmd, only_missing_objects)?;
        Ok(format!("{}{}", output.stdout, output.stderr))
    }

    /// A container's log as `query` asks, each stream cut to its last `cap`
    /// bytes. A container that is gone has no log: its stderr says so.
    pub fn logs_kept(
        &self,
        container: &str,
        query: &LogsQuery,
        cap: usize,
    ) -> Result<Kept, EngineError> {
        let cmd = self.cmd(logs_args(container, query));
        let kept = cmd
            .output_keeping_last(cap)
            .map_err(|error| self.classify(error))?;
        let stderr = String::from_utf8_lossy(&kept.stderr);
        if kept.status.success() || only_missing_objects(&stderr) {
            Ok(kept)
        } else {
            Err(self.classify(cmd.exited(kept.status, &stderr)))
        }
    }

    /// `logs` of a container as a command to stream (`--follow`, `--tail
    /// N`) to the terminal.
    pub fn logs_cmd(&self, container: &str, query: &LogsQuery) -> Cmd {
        self.program_cmd(logs_args(container, query))
    }
}

/// Which part of a container's log `logs` prints, and how.
#[derive(Debug, Clone, Default)]
pub struct LogsQuery {
    /// Keep printing what it writes (`--follow`).
    pub follow: bool,
    /// Only its last this many lines, both streams counted together (`--tail`).
    pub tail: Option<usize>,
    /// Only what was written after this time (`--since`): a unix time,
    /// `SECONDS.NANOSECONDS` (both engines take it, the fraction too).
    pub since: Option<String>,
    /// Each line starts with the engine's time of it, RFC 3339 with
    /// nanoseconds, and a space (`--timestamps`).
    pub timestamps: bool,
}

impl LogsQuery {
    pub fn tail(lines: Option<usize>) -> LogsQuery {
        LogsQuery {
            tail: lines,
            ..LogsQuery::default()
        }
    }
}

fn logs_args(container: &str, query: &LogsQuery) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["logs".into()];
    if query.follow {
        args.push("--follow".into());
    }
    if let Some(tail) = query.tail {
        args.push(format!("--tail={tail}").into());
    }
    if let Some(since) = &query.since {
        args.push(format!("--since={since}").into());
    }
    if query.timestamps {
        args.push("--timestamps".into());
    }
    args.push("--".into());
    args.push(container.into());
    args
}
