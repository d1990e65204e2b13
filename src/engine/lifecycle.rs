//! The engine calls a workspace's sidecars need besides the basics: their
//! image's user, a pause for a consistent copy of their data, a restart,
//! the tail of their log, and a container run to its end.

use std::ffi::OsString;
use std::time::Duration;

use super::spec::RunSpec;
use super::{Engine, EngineError, RUN_TIMEOUT, only_missing_objects};
use crate::process::{Cmd, Output};

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
        Cmd::new(self.kind.program(), logs_args(container, follow, tail))
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

impl Engine {
    /// Runs a container to its end, removing it after (`run --rm`), with
    /// what it printed; `timeout` bounds it, and Ctrl-C ends it where the
    /// engine is cancellable (the caller removes a container cut short).
    pub fn run_to_end(&self, spec: &RunSpec, timeout: Duration) -> Result<Output, EngineError> {
        let mut args = spec.create_args()?;
        args[0] = "run".into();
        args.insert(1, "--rm".into());
        let cmd = self.cmd(args).timeout(timeout);
        cmd.output().map_err(|error| self.classify(error))
    }
}
