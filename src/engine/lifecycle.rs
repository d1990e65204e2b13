//! The engine calls a workspace's sidecars need besides the basics: their
//! image's user, a pause for a consistent copy of their data, a restart,
//! the tail of their log.

use std::ffi::OsString;
use std::time::Duration;

use super::{Engine, EngineError, RUN_TIMEOUT, only_missing_objects};
use crate::process::Cmd;

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
        let cmd = self.cmd(logs_args(container, false, lines));
        let output = self.run_tolerating(&cmd, only_missing_objects)?;
        Ok(format!("{}{}", output.stdout, output.stderr))
    }

    /// `logs` of a container as a command to stream (`--follow`, `--tail
    /// N`) to the terminal.
    pub fn logs_cmd(&self, container: &str, follow: bool, tail: Option<usize>) -> Cmd {
        self.program_cmd(logs_args(container, follow, tail))
    }
}

fn logs_args(container: &str, follow: bool, tail: Option<usize>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["logs".into()];
    if follow {
        args.push("--follow".into());
    }
    if let Some(tail) = tail {
        args.push(format!("--tail={tail}").into());
    }
    args.push("--".into());
    args.push(container.into());
    args
}
