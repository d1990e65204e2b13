//! `build` of an image from a context dual prepared (a workspace's or a
//! sidecar's, see `workspace::image_build`): every option in its
//! `--name=value` form and the context after `--`, so no value a repo wrote
//! is read as an option; `--network=none` unless the build is meant to
//! reach the network (which is the engine's default one then); the engine's
//! output read line by line, so that a failed build can name its last step
//! and show its last lines.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Component, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::spec::SpecError;
use super::{Engine, EngineError, EngineKind, Labels};
use crate::process::{CommandError, StatusText};

/// How long one build may run before it is killed.
pub const BUILD_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Lines of the engine's output a failed build shows.
pub const TAIL_LINES: usize = 20;

/// What to build: the context is a directory dual made and owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    pub tag: String,
    /// Absolute.
    pub context: PathBuf,
    /// Relative to the context, inside it (default `Dockerfile`).
    pub dockerfile: Option<PathBuf>,
    pub target: Option<String>,
    pub args: BTreeMap<String, String>,
    pub labels: Labels,
    /// Whether its `RUN` steps reach the network (the engine's default
    /// network), else `--network=none`.
    pub network: bool,
}

/// A build that ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the build failed ({status})")]
    Failed {
        status: StatusText,
        /// The last `Step N/M` (docker) or `STEP N/M` (podman) line.
        step: Option<String>,
        /// The last `TAIL_LINES` lines it printed (stdout, then stderr).
        tail: Vec<String>,
    },
}

impl BuildSpec {
    /// The argv after the program; `buildkit`: docker builds with BuildKit
    /// (buildx is installed), whose output is plain text only when asked.
    pub fn argv(&self, buildkit: bool) -> Result<Vec<OsString>, SpecError> {
        let refused = |what, value: &str, why| SpecError::Refused {
            what,
            value: value.escape_debug().to_string(),
            why,
        };
        if self.tag.is_empty() || self.tag.starts_with('-') || self.tag.contains(char::is_control) {
            return Err(refused("an image tag", &self.tag, "not a tag"));
        }
        if !self.context.is_absolute() {
            return Err(refused(
                "a build context",
                &self.context.display().to_string(),
                "a context dual made is an absolute path",
            ));
        }
        let dockerfile = self
            .dockerfile
            .clone()
            .unwrap_or_else(|| PathBuf::from("Dockerfile"));
        let inside = !dockerfile.as_os_str().is_empty()
            && dockerfile
                .components()
                .all(|part| matches!(part, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(refused(
                "a Dockerfile",
                &dockerfile.display().to_string(),
                "it must be a relative path inside the context, without `..`",
            ));
        }
        let mut argv: Vec<OsString> = vec!["build".into()];
        // `--file` is read relative to the working directory, not the
        // context: given whole, it means the same to both engines.
        let mut file = OsString::from("--file=");
        file.push(self.context.join(&dockerfile));
        argv.push(file);
        argv.push(format!("--tag={}", self.tag).into());
        if !self.network {
            // Nothing a repo's Dockerfile says is fetched behind the user's
            // back, and rootless podman's RUN steps otherwise need
            // slirp4netns.
            argv.push("--network=none".into());
        }
        // A failed step's container goes too (docker's legacy builder keeps
        // it otherwise, one per failed build).
        argv.push("--force-rm".into());
        if buildkit {
            argv.push("--progress=plain".into());
        }
        if let Some(target) = &self.target {
            let plain = !target.is_empty()
                && !target.starts_with('-')
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !plain {
                return Err(refused("a build target", target, "not a stage name"));
            }
            argv.push(format!("--target={target}").into());
        }
        for (name, value) in &self.args {
            let name_ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok {
                return Err(refused(
                    "a build argument",
                    name,
                    "a name is letters, digits and `_`, not starting with a digit",
                ));
            }
            if value.contains('\0') {
                return Err(refused("a build argument", name, "its value holds a NUL"));
            }
            argv.push(format!("--build-arg={name}={value}").into());
        }
        for (key, value) in &self.labels {
            if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                return Err(refused("a label", key, "not a label"));
            }
            argv.push(format!("--label={key}={value}").into());
        }
        argv.push("--".into());
        argv.push(self.context.clone().into());
        Ok(argv)
    }
}

/// The step a line of the engine's output starts, if it starts one:
/// docker's legacy builder says `Step 2/3 : RUN …`, podman `STEP 2/3: RUN
/// …`, BuildKit's plain output `#6 [2/3] RUN …`.
pub fn step_of(line: &str) -> Option<&str> {
    let line = line.trim_end();
    let counted = |rest: &str| {
        let (done, rest) = rest.split_once('/')?;
        let total: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!done.is_empty() && done.chars().all(|c| c.is_ascii_digit()) && !total.is_empty())
            .then_some(())
    };
    if let Some(rest) = line
        .strip_prefix("Step ")
        .or_else(|| line.strip_prefix("STEP "))
    {
        return counted(rest).map(|()| line);
    }
    let rest = line.strip_prefix('#')?;
    let (number, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix('[')?;
    let (inside, _) = rest.split_once(']')?;
    let count = inside.rsplit(' ').next()?;
    (number.chars().all(|c| c.is_ascii_digit()) && counted(count).is_some()).then_some(line)
}

/// What stays of the engine's stderr: docker's legacy builder opens it with
/// a paragraph saying it is deprecated, which is no reason for a failure.
fn meaningful_stderr(stderr: &str) -> Vec<String> {
    let mut lines: Vec<&str> = stderr.lines().collect();
    if lines
        .first()
        .is_some_and(|line| line.starts_with("DEPRECATED:"))
    {
        let end = lines
            .iter()
            .position(|line| line.trim().is_empty())
            .map_or(lines.len(), |i| i + 1);
        lines.drain(..end);
    }
    lines
        .into_iter()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// What `image_has_onbuild`'s inspect printed says.
fn has_onbuild(kind: EngineKind, printed: &str) -> bool {
    match kind {
        EngineKind::Docker => !matches!(printed.trim(), "" | "null" | "[]"),
        EngineKind::Podman => printed
            .lines()
            .any(|line| line.split_whitespace().any(|word| word == "ONBUILD")),
    }
}

const RUNNING: u8 = 0;
const TIMED_OUT: u8 = 1;
const INTERRUPTED: u8 = 2;

impl Engine {
    /// Whether `image` has `ONBUILD` triggers (which run in a build `FROM`
    /// it); `None` where the engine has no such image. Docker keeps them in
    /// the image's config; podman's inspect does not show them (its OCI
    /// images hold none, and docker-format ones are shown in OCI form), so
    /// there an `ONBUILD` in the image's history counts, which may be a
    /// trigger an earlier build already consumed: a `true` too many, never
    /// one too few.
    pub fn image_has_onbuild(&self, image: &str) -> Result<Option<bool>, EngineError> {
        let format = match self.kind {
            EngineKind::Docker => "{{json .Config.OnBuild}}",
            EngineKind::Podman => "{{range .History}}{{.CreatedBy}}\n{{end}}",
        };
        let cmd = self.cmd(["image", "inspect", "--format", format, "--", image]);
        let output = self.run_tolerating(&cmd, super::only_missing_objects)?;
        if !output.success() {
            return Ok(None);
        }
        Ok(Some(has_onbuild(self.kind, &output.stdout)))
    }

    /// Builds `spec`; with `echo`, each line the engine prints on stdout
    /// is handed to it as it comes (the engine's own progress on a
    /// terminal). Bounded by `BUILD_LIMIT`; Ctrl-C ends it.
    pub fn build_image(
        &self,
        spec: &BuildSpec,
        echo: Option<&dyn Fn(&str)>,
    ) -> Result<(), BuildError> {
        let buildkit = self.kind == EngineKind::Docker && self.has_buildx();
        let argv = spec.argv(buildkit).map_err(EngineError::from)?;
        let mut cmd = self.cmd(super::without_host_proxy(self.kind, argv));
        if self.kind == EngineKind::Docker && !buildkit {
            // Without buildx the CLI warns that BuildKit is missing; the
            // legacy builder builds a Dockerfile as well.
            cmd = cmd.env("DOCKER_BUILDKIT", "0");
        }
        let reader = cmd.stream().map_err(|error| self.classify(error))?;
        let ended = AtomicU8::new(RUNNING);
        let done = std::sync::atomic::AtomicBool::new(false);
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut step: Option<String> = None;
        std::thread::scope(|scope| {
            // The reader blocks on the engine's output: a watchdog ends a
            // build that runs too long or that the user interrupted.
            scope.spawn(|| {
                let started = Instant::now();
                while !done.load(Ordering::SeqCst) {
                    let why = if crate::interrupt::requested() {
                        INTERRUPTED
                    } else if started.elapsed() > BUILD_LIMIT {
                        TIMED_OUT
                    } else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    ended.store(why, Ordering::SeqCst);
                    let _ = reader.kill();
                    return;
                }
            });
            let mut lines = BufReader::new(&reader);
            let mut bytes = Vec::new();
            loop {
                bytes.clear();
                match lines.read_until(b'\n', &mut bytes) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&bytes);
                let line = line.trim_end_matches(['\n', '\r']);
                if let Some(echo) = echo {
                    echo(line);
                }
                if let Some(started) = step_of(line) {
                    step = Some(started.to_owned());
                }
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.to_owned());
            }
            done.store(true, Ordering::SeqCst);
        });
        let argv = cmd.display();
        let kind = self.kind;
        match ended.load(Ordering::SeqCst) {
            // Not `classify`: a build past its limit is not an engine that
            // stopped answering.
            TIMED_OUT => {
                let source = CommandError::TimedOut {
                    argv,
                    timeout: BUILD_LIMIT,
                };
                return Err(EngineError::Command { kind, source }.into());
            }
            INTERRUPTED => {
                let source = CommandError::Interrupted { argv };
                return Err(EngineError::Command { kind, source }.into());
            }
            _ => {}
        }
        let output = match reader.try_wait() {
            Ok(Some(output)) => output.clone(),
            Ok(None) => {
                let _ = reader.kill();
                return Err(self
                    .classify(CommandError::Spawn {
                        argv,
                        source: std::io::Error::other("its output ended before it did"),
                    })
                    .into());
            }
            Err(source) => return Err(self.classify(CommandError::Spawn { argv, source }).into()),
        };
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if super::daemon_is_down(&stderr) {
            return Err(self.classify(cmd.exited(output.status, &stderr)).into());
        }
        let errors = meaningful_stderr(&stderr);
        if step.is_none() {
            // BuildKit prints its steps on stderr.
            step = errors
                .iter()
                .rev()
                .find_map(|line| step_of(line))
                .map(str::to_owned);
        }
        let mut all: Vec<String> = tail.into_iter().chain(errors).collect();
        let keep_from = all.len().saturating_sub(TAIL_LINES);
        all.drain(..keep_from);
        Err(BuildError::Failed {
            status: StatusText(output.status),
            step,
            tail: all,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BuildSpec {
        BuildSpec {
            tag: "dual-build/shop-echo:0123456789abcdef".into(),
            context: "/data/build/ctx".into(),
            dockerfile: Some("docker/Dockerfile.dev".into()),
            target: Some("dev".into()),
            args: BTreeMap::from([
                ("B".to_owned(), "--privileged".to_owned()),
                ("A".to_owned(), "x=y z".to_owned()),
            ]),
            labels: Labels::from([("dual.managed".to_owned(), "true".to_owned())]),
            network: false,
        }
    }

    fn words(argv: Vec<OsString>) -> Vec<String> {
        argv.into_iter()
            .map(|word| word.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_value_is_in_its_option_and_the_context_comes_after_a_double_dash() {
        let argv = words(spec().argv(false).unwrap());
        assert_eq!(
            argv,
            [
                "build",
                "--file=/data/build/ctx/docker/Dockerfile.dev",
                "--tag=dual-build/shop-echo:0123456789abcdef",
                "--network=none",
                "--force-rm",
                "--target=dev",
                "--build-arg=A=x=y z",
                "--build-arg=B=--privileged",
                "--label=dual.managed=true",
                "--",
                "/data/build/ctx",
            ]
        );
        let online = BuildSpec {
            network: true,
            ..spec()
        };
        let online = words(online.argv(false).unwrap());
        assert!(
            !online.iter().any(|word| word.starts_with("--network")),
            "the engine's default network: {online:?}"
        );
        let with_buildkit = words(spec().argv(true).unwrap());
        assert!(with_buildkit.contains(&"--progress=plain".to_owned()));
        let plain = BuildSpec {
            dockerfile: None,
            target: None,
            args: BTreeMap::new(),
            ..spec()
        };
        assert_eq!(
            words(plain.argv(false).unwrap())[1],
            "--file=/data/build/ctx/Dockerfile"
        );
    }

    #[test]
    fn values_that_would_change_the_build_are_refused() {
        let refused = [
            BuildSpec {
                dockerfile: Some("../../etc/passwd".into()),
                ..spec()
            },
            BuildSpec {
                dockerfile: Some("/etc/passwd".into()),
                ..spec()
            },
            BuildSpec {
                target: Some("--privileged".into()),
                ..spec()
            },
            BuildSpec {
                args: BTreeMap::from([("A=B".to_owned(), "x".to_owned())]),
                ..spec()
            },
            BuildSpec {
                args: BTreeMap::from([("A".to_owned(), "x\0y".to_owned())]),
                ..spec()
            },
            BuildSpec {
                tag: "--output=/".into(),
                ..spec()
            },
            BuildSpec {
                context: "relative".into(),
                ..spec()
            },
        ];
        for spec in refused {
            assert!(spec.argv(false).is_err(), "accepted: {spec:?}");
        }
    }

    #[test]
    fn onbuild_triggers_are_read_from_each_engine_s_inspect() {
        assert!(!has_onbuild(EngineKind::Docker, "null\n"));
        assert!(!has_onbuild(EngineKind::Docker, "[]\n"));
        assert!(has_onbuild(EngineKind::Docker, "[\"COPY . /app\"]\n"));
        assert!(has_onbuild(
            EngineKind::Podman,
            "/bin/sh -c #(nop) ADD file:1 in /\n/bin/sh -c #(nop) ONBUILD COPY . /app\n"
        ));
        assert!(!has_onbuild(
            EngineKind::Podman,
            "/bin/sh -c #(nop) ADD file:1 in /\n/bin/sh -c echo ONBUILDING\n"
        ));
    }

    #[test]
    fn steps_are_found_in_each_engine_s_words() {
        assert_eq!(
            step_of("Step 3/3 : RUN exit 3"),
            Some("Step 3/3 : RUN exit 3")
        );
        assert_eq!(
            step_of("STEP 2/3: RUN echo hi"),
            Some("STEP 2/3: RUN echo hi")
        );
        assert_eq!(
            step_of("#6 [stage-1 2/3] RUN make"),
            Some("#6 [stage-1 2/3] RUN make")
        );
        assert_eq!(step_of("#6 [2/3] RUN make"), Some("#6 [2/3] RUN make"));
        for other in ["hello", "Step by step", "#6 DONE 0.1s", "STEP x/y"] {
            assert_eq!(step_of(other), None, "{other}");
        }
    }

    #[test]
    fn docker_s_deprecation_paragraph_is_not_the_reason() {
        let stderr = "DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n            BuildKit is currently disabled; enable it by removing the DOCKER_BUILDKIT=0\n            environment-variable.\n\nThe command '/bin/sh -c exit 3' returned a non-zero code: 3";
        assert_eq!(
            meaningful_stderr(stderr),
            ["The command '/bin/sh -c exit 3' returned a non-zero code: 3"]
        );
        assert_eq!(
            meaningful_stderr("Error: building at STEP \"RUN exit 3\""),
            ["Error: building at STEP \"RUN exit 3\""]
        );
    }
}
