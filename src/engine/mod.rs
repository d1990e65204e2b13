//! The container engine, driven through its CLI: `docker` or `podman`.
//!
//! No SDK and no socket: the CLI already honours DOCKER_HOST, contexts and
//! podman connections exactly as the user configured them, and its JSON output
//! is parsed in [`model`]. Every call goes through [`crate::process::Cmd`].

pub mod bridge;
pub mod build;
pub mod diff;
pub mod endpoint;
pub mod error;
pub mod facts;
pub mod labels;
mod lifecycle;
pub mod model;
pub mod one_off;
pub mod spec;
pub mod volumes;

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

pub use error::EngineError;
pub use lifecycle::LogsQuery;
pub use model::{Container, ContainerSummary, Event, EventAction, Info, Labels, Stats, Version};
pub use spec::{ExecSpec, RunSpec};

use crate::process::{Cmd, CommandError, Output};

/// The fields of docker's `ps` that dual reads, as one JSON object a line.
const DOCKER_PS_FORMAT: &str = r#"{"ID":{{json .ID}},"Names":{{json .Names}},"Image":{{json .Image}},"State":{{json .State}},"Labels":{{json .Labels}}}"#;

/// How long a status call (`version`, `info`, `ps`) may take by default.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Starting a container may wait on storage; still bounded.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// A question a launch needs answered, on an engine slow under load.
const PATIENT_TIMEOUT: Duration = Duration::from_secs(30);
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Docker,
    Podman,
}

impl EngineKind {
    pub const ALL: [EngineKind; 2] = [EngineKind::Docker, EngineKind::Podman];

    /// `flag`'s engine, else every engine whose CLI is on PATH.
    pub fn chosen_or_installed(flag: Option<EngineKind>) -> Vec<EngineKind> {
        match flag {
            Some(kind) => vec![kind],
            None => EngineKind::ALL
                .into_iter()
                .filter(|kind| crate::process::find_on_path(kind.program()).is_some())
                .collect(),
        }
    }

    pub fn program(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }

    pub fn debian_package(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker.io",
            EngineKind::Podman => "podman",
        }
    }

    pub fn service_name(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman.socket",
        }
    }

    pub fn parse(value: &str, source_name: &'static str) -> Result<Self, EngineError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "docker" => Ok(EngineKind::Docker),
            "podman" => Ok(EngineKind::Podman),
            _ => Err(EngineError::UnknownEngine {
                value: value.to_owned(),
                source_name,
            }),
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

/// One engine, ready to be called. Cheap to clone and shared across threads.
#[derive(Debug, Clone)]
pub struct Engine {
    kind: EngineKind,
    status_timeout: Duration,
    cancellable: bool,
    /// Where each call goes, when pinned (a workspace's recorded endpoint);
    /// else wherever the user's settings send the CLI.
    endpoint: Option<endpoint::Endpoint>,
}

impl Engine {
    pub fn new(kind: EngineKind) -> Self {
        let status_timeout = crate::settings::engine_timeout().unwrap_or(STATUS_TIMEOUT);
        Engine {
            kind,
            status_timeout,
            cancellable: true,
            endpoint: None,
        }
    }

    /// The same engine, every call pinned to `endpoint` (`None`: as the
    /// user's settings say).
    pub fn at(self, endpoint: Option<endpoint::Endpoint>) -> Engine {
        Engine { endpoint, ..self }
    }

    /// `user@host` of the other host its calls are pinned to, if any.
    fn remote_target(&self) -> Option<String> {
        let endpoint = self.endpoint.as_ref()?;
        match endpoint.location(self.kind).ok()? {
            endpoint::Location::Remote { ssh, .. } => Some(ssh.to_string()),
            endpoint::Location::Local => None,
        }
    }

    /// The endpoint its calls are pinned to, if any.
    pub fn endpoint(&self) -> Option<&endpoint::Endpoint> {
        self.endpoint.as_ref()
    }

    /// A command line of this engine's CLI, pinned to its endpoint.
    pub fn program_cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut cmd = Cmd::new(self.kind.program(), args);
        if let Some(endpoint) = &self.endpoint {
            let (set, cleared) = endpoint.pinned_env(self.kind);
            for name in cleared {
                cmd = cmd.env_remove(name);
            }
            for (name, value) in set {
                cmd = cmd.env(name, value);
            }
        }
        cmd
    }

    /// How long a status call (`inspect`, `ps`, `version`) may take before
    /// the engine counts as hung (DUAL_ENGINE_TIMEOUT).
    pub fn status_timeout(&self) -> Duration {
        self.status_timeout
    }

    /// The same engine for work that needs the engine's answers (a launch):
    /// its status calls (`ps`, `inspect`, `info`, image queries) wait as
    /// long as a question a launch asks may take, never less than the
    /// status timeout. A status call's timeout is for telling a hung docker
    /// daemon quickly, where the answer is only shown; on a busy machine
    /// (podman's `info` took over 5 s beside fifteen launches on 2 CPUs) it
    /// would fail work that only had to wait.
    pub fn patient(&self) -> Engine {
        Engine {
            status_timeout: PATIENT_TIMEOUT.max(self.status_timeout),
            ..self.clone()
        }
    }

    /// The same engine for cleanup work: its calls still run after Ctrl-C.
    pub fn for_cleanup(&self) -> Engine {
        Engine {
            cancellable: false,
            ..self.clone()
        }
    }

    /// `--engine`, else `DUAL_ENGINE`, else the first of docker and podman whose
    /// binary is on PATH and that answers (docker through its daemon, podman
    /// by itself).
    pub fn select(flag: Option<EngineKind>) -> Result<Engine, EngineError> {
        let engine = if let Some(kind) = flag {
            Engine::new(kind)
        } else if let Some(value) = crate::settings::engine() {
            Engine::new(EngineKind::parse(&value, crate::settings::ENGINE)?)
        } else {
            Engine::detect()?
        };
        // `--context` / `--connection`: every call of this run goes there.
        if endpoint::chosen_for(engine.kind) {
            let chosen = engine.configured_endpoint()?;
            return Ok(engine.at(chosen));
        }
        Ok(engine)
    }

    fn detect() -> Result<Engine, EngineError> {
        let mut first_error = None;
        for kind in EngineKind::ALL {
            if crate::process::find_on_path(kind.program()).is_none() {
                continue;
            }
            let engine = Engine::new(kind);
            match engine.version() {
                Ok(_) => return Ok(engine),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            None => Err(EngineError::NoEngine),
            Some(first) => Err(EngineError::NoneAnswers {
                first: Box::new(first),
            }),
        }
    }

    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    fn cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let cmd = self.program_cmd(args).timeout(self.status_timeout);
        if self.cancellable {
            cmd
        } else {
            cmd.uncancellable()
        }
    }

    /// Runs and requires success, naming the engine's failure precisely.
    fn run(&self, cmd: &Cmd) -> Result<Output, EngineError> {
        cmd.run().map_err(|error| self.classify(error))
    }

    /// Runs and accepts a failure whose stderr `harmless` recognises (an
    /// object already gone, one that already exists); returns the output
    /// either way, so the caller can tell the two apart by its status.
    fn run_tolerating(
        &self,
        cmd: &Cmd,
        harmless: impl Fn(&str) -> bool,
    ) -> Result<Output, EngineError> {
        let output = cmd.output().map_err(|error| self.classify(error))?;
        if output.success() || harmless(&output.stderr) {
            Ok(output)
        } else {
            Err(self.classify(cmd.failed(&output)))
        }
    }

    fn classify(&self, error: CommandError) -> EngineError {
        let kind = self.kind;
        if let Some(target) = self.remote_target()
            && (matches!(error, CommandError::TimedOut { .. })
                || matches!(&error, CommandError::Failed { stderr, .. } if daemon_is_down(stderr) || link_is_down(stderr)))
        {
            return EngineError::RemoteUnreachable {
                kind,
                target,
                source: Box::new(error),
            };
        }
        match error {
            CommandError::ProgramNotFound { program } => {
                EngineError::BinaryMissing { kind, program }
            }
            CommandError::TimedOut { timeout, .. } => EngineError::Hung {
                kind,
                timeout,
                source: error,
            },
            CommandError::Failed { ref stderr, .. } if daemon_is_down(stderr) => {
                EngineError::DaemonUnreachable {
                    kind,
                    source: error,
                }
            }
            source => EngineError::Command { kind, source },
        }
    }

    fn parse<T>(&self, parsed: Result<T, model::ParseError>) -> Result<T, EngineError> {
        parsed.map_err(|source| EngineError::Parse {
            kind: self.kind,
            source,
        })
    }

    fn json_format(&self) -> &'static str {
        match self.kind {
            EngineKind::Docker => "{{json .}}",
            EngineKind::Podman => "json",
        }
    }

    pub fn version(&self) -> Result<Version, EngineError> {
        let output = self.run(&self.cmd(["version", "--format", self.json_format()]))?;
        self.parse(model::parse_version(&output.stdout))
    }

    pub fn info(&self) -> Result<Info, EngineError> {
        let output = self.run(&self.cmd(["info", "--format", self.json_format()]))?;
        self.parse(model::parse_info(self.kind, &output.stdout))
    }

    /// `info` for work that needs its answer (a launch), not for a status:
    /// see [`Engine::patient`].
    pub fn info_patiently(&self) -> Result<Info, EngineError> {
        self.patient().info()
    }

    /// Every container (running or not) carrying all the given labels.
    pub fn ps(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, EngineError> {
        let mut args: Vec<String> = vec!["ps".into(), "--all".into(), "--no-trunc".into()];
        for (key, value) in labels {
            args.push("--filter".into());
            args.push(format!("label={key}={value}"));
        }
        args.push("--format".into());
        args.push(match self.kind {
            // Not `{{json .}}`: that includes `.Size`, which makes docker
            // measure every container's disk use: 1.2 s for 20 containers
            // against 15 ms for these fields.
            EngineKind::Docker => DOCKER_PS_FORMAT.into(),
            EngineKind::Podman => "json".into(),
        });
        let output = self.run(&self.cmd(args))?;
        let listed = self.parse(model::parse_ps(self.kind, &output.stdout))?;
        // The engine filtered already; checking again costs nothing and does
        // not depend on how each engine combines several filters.
        Ok(listed
            .into_iter()
            .filter(|c| has_labels(&c.labels, labels))
            .collect())
    }

    /// Inspects containers by id or name; ones that no longer exist are left
    /// out rather than failing the whole call (they may vanish at any time).
    pub fn inspect(&self, ids: &[&str]) -> Result<Vec<Container>, EngineError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = self.cmd(
            ["container", "inspect"]
                .into_iter()
                .chain(ids.iter().copied()),
        );
        let output = self.run_tolerating(&cmd, only_missing_objects)?;
        if output.stdout.trim().is_empty() {
            return Ok(Vec::new());
        }
        self.parse(model::parse_inspect(&output.stdout))
    }

    pub fn inspect_one(&self, id: &str) -> Result<Container, EngineError> {
        self.inspect(&[id])?
            .pop()
            .ok_or_else(|| EngineError::NotFound {
                what: "container",
                name: id.to_owned(),
            })
    }

    /// Creates and starts a container; returns its id.
    pub fn run_detached(&self, spec: &RunSpec) -> Result<String, EngineError> {
        self.make_container(spec.run_args()?)
    }

    /// Creates a container without starting it; returns its id.
    pub fn create(&self, spec: &RunSpec) -> Result<String, EngineError> {
        self.make_container(spec.create_args()?)
    }

    fn make_container(&self, args: Vec<OsString>) -> Result<String, EngineError> {
        // Not cancelled by Ctrl-C: a `run` killed half-way can leave a
        // container that appears only after cleanup has looked.
        let args = without_host_proxy(self.kind, args);
        let cmd = self.cmd(args).timeout(RUN_TIMEOUT).uncancellable();
        let output = self.run(&cmd)?;
        Ok(output
            .stdout
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned())
    }

    /// Runs a command in a running container and returns what it printed,
    /// whatever its exit status: the caller judges the command's own result.
    pub fn exec(&self, container: &str, argv: &[&str]) -> Result<Output, EngineError> {
        self.exec_spec(&ExecSpec {
            container: container.to_owned(),
            command: argv.iter().map(OsString::from).collect(),
            ..ExecSpec::default()
        })
    }

    /// `exec` with every option, output captured.
    pub fn exec_spec(&self, spec: &ExecSpec) -> Result<Output, EngineError> {
        self.cmd(spec.exec_args())
            .timeout(RUN_TIMEOUT)
            .output()
            .map_err(|error| self.classify(error))
    }

    /// The `Cmd` for an exec, for callers that attach it to the terminal.
    pub fn exec_cmd(&self, spec: &ExecSpec) -> Cmd {
        self.program_cmd(spec.exec_args())
    }

    /// The host interfaces (bridges) of podman networks, by network name.
    pub fn network_interfaces(&self, networks: &[&str]) -> Result<Vec<String>, EngineError> {
        let cmd = self.cmd(
            ["network", "inspect"]
                .into_iter()
                .chain(networks.iter().copied()),
        );
        let output = self.run(&cmd)?;
        self.parse(model::parse_network_interfaces(&output.stdout))
    }

    /// Runs dual's own `pin-bridge` in rootless podman's network namespace.
    pub fn pin_rootless_bridge(&self, interface: &str) -> Result<(), EngineError> {
        let dual = std::env::current_exe().unwrap_or_else(|_| "dual".into());
        let args: [OsString; 5] = [
            "unshare".into(),
            "--rootless-netns".into(),
            dual.into(),
            "pin-bridge".into(),
            interface.into(),
        ];
        self.run(&self.cmd(args)).map(drop)
    }

    /// A file or directory of a container (running or not) as a tar
    /// archive; `None` when the archive is larger than `limit`.
    pub fn copy_out(
        &self,
        container: &str,
        path: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let source = format!("{container}:{path}");
        self.cmd(["cp", source.as_str(), "-"])
            .timeout(RUN_TIMEOUT)
            .run_bytes_capped(limit)
            .map_err(|error| self.classify(error))
    }

    /// Extracts a tar archive at the container's root (running or not),
    /// each entry owned as the archive says (docker keeps the owners of an
    /// archive read from stdin; podman does with `--archive=false`). The
    /// engine resolves every path inside the container's own filesystem
    /// (its mounts included), never on the host.
    pub fn copy_in(&self, container: &str, archive: Vec<u8>) -> Result<(), EngineError> {
        let target = format!("{container}:/");
        let mut args = vec!["cp"];
        if self.kind == EngineKind::Podman {
            args.push("--archive=false");
        }
        args.extend(["-", target.as_str()]);
        self.run(
            &self
                .cmd(args)
                .stdin_bytes(archive)
                .timeout(RUN_TIMEOUT)
                .uncancellable(),
        )
        .map(drop)
    }

    /// Starts an existing container.
    pub fn start(&self, container: &str) -> Result<(), EngineError> {
        self.run(
            &self
                .cmd(["start", container])
                .timeout(RUN_TIMEOUT)
                .uncancellable(),
        )
        .map(drop)
    }

    /// Stops a container, giving its processes `grace` to exit on SIGTERM.
    pub fn stop(&self, container: &str, grace: Duration) -> Result<(), EngineError> {
        let seconds = grace.as_secs().to_string();
        let cmd = self
            .cmd(["stop", "--time", &seconds, container])
            .timeout(RUN_TIMEOUT + grace);
        self.run_tolerating(&cmd, only_missing_objects).map(drop)
    }

    /// Creates a labelled named volume; an existing one is kept as it is.
    pub fn volume_create(&self, name: &str, labels: &Labels) -> Result<(), EngineError> {
        let mut args: Vec<String> = vec!["volume".into(), "create".into()];
        for (key, value) in labels {
            args.push(format!("--label={key}={value}"));
        }
        args.push(name.into());
        // Docker answers an existing name with success, podman with an error.
        self.run_tolerating(&self.cmd(args), |stderr| stderr.contains("already exists"))
            .map(drop)
    }

    /// Names of the volumes carrying all the given labels. Podman 4.3 ORs
    /// several label filters on `volume ls`, so the engine filters on the
    /// first and dual checks all of them itself.
    pub fn volume_names(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, EngineError> {
        Ok(self.volumes(labels)?.into_iter().map(|v| v.name).collect())
    }

    pub fn volume_remove(&self, names: &[&str]) -> Result<(), EngineError> {
        if names.is_empty() {
            return Ok(());
        }
        let args = ["volume", "rm", "--force"]
            .into_iter()
            .chain(names.iter().copied());
        self.run_tolerating(&self.cmd(args).uncancellable(), |stderr| {
            stderr.to_ascii_lowercase().contains("no such volume")
        })
        .map(drop)
    }

    /// What a container's main process printed, stdout then stderr.
    pub fn logs(&self, container: &str) -> Result<String, EngineError> {
        let output = self.run(&self.cmd(["logs", container]))?;
        Ok(format!("{}{}", output.stdout, output.stderr))
    }

    /// Force-removes containers with their anonymous volumes. Idempotent, and
    /// not cancelled by Ctrl-C: it is what runs after one.
    pub fn remove(&self, ids: &[&str]) -> Result<(), EngineError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["rm", "--force", "--volumes"];
        if self.kind == EngineKind::Podman {
            // Podman's `rm -f` first waits out the stop timeout (10 s) for
            // processes that ignore SIGTERM, as busybox does as PID 1.
            args.extend(["--time", "0"]);
        }
        args.extend(ids.iter().copied());
        let cmd = self.cmd(args).timeout(RUN_TIMEOUT).uncancellable();
        self.run_tolerating(&cmd, only_missing_objects).map(drop)
    }

    /// Pulls an image; on a terminal its progress shows as the engine prints it.
    /// The error keeps the engine's own reason.
    pub fn pull(&self, image: &str, on_terminal: bool) -> Result<(), EngineError> {
        let cmd = self
            .program_cmd(["pull", "--", image])
            .timeout(BUILD_TIMEOUT);
        if !on_terminal {
            return self.run(&cmd).map(drop);
        }
        let status = cmd
            .run_attached(false, |_| {})
            .map_err(|error| self.classify(error))?;
        if status.success() {
            Ok(())
        } else {
            // What the engine said is on the terminal; ask once more, quietly, for the error.
            self.run(&cmd).map(drop)
        }
    }

    pub fn image_exists(&self, image: &str) -> Result<bool, EngineError> {
        Ok(self.image_id(image)?.is_some())
    }

    /// The image's id (its content's digest), or `None` where the engine
    /// has no such image.
    pub fn image_id(&self, image: &str) -> Result<Option<String>, EngineError> {
        let cmd = self.cmd(["image", "inspect", "--format", "{{.Id}}", "--", image]);
        let output = self.run_tolerating(&cmd, only_missing_objects)?;
        Ok(output
            .success()
            .then(|| output.stdout.trim().to_owned())
            .filter(|id| !id.is_empty()))
    }

    /// Builds `tag` from a directory holding a Dockerfile.
    pub fn build(&self, tag: &str, context: &Path, labels: &Labels) -> Result<(), EngineError> {
        let mut args: Vec<OsString> =
            vec!["build".into(), "--quiet".into(), "--tag".into(), tag.into()];
        // No network: nothing is fetched, and rootless podman's RUN steps
        // otherwise need slirp4netns ("failed to read from slirp4netns sync pipe").
        args.push("--network=none".into());
        for (key, value) in labels {
            args.push(format!("--label={key}={value}").into());
        }
        args.push(context.into());
        let mut cmd = self.cmd(args).timeout(BUILD_TIMEOUT);
        if self.kind == EngineKind::Docker && !self.has_buildx() {
            // Without buildx the CLI warns that BuildKit is missing; the legacy
            // builder handles FROM scratch + COPY + RUN fine.
            cmd = cmd.env("DOCKER_BUILDKIT", "0");
        }
        self.run(&cmd).map(drop)
    }

    fn has_buildx(&self) -> bool {
        self.cmd(["buildx", "version"])
            .output()
            .is_ok_and(|output| output.success())
    }

    /// Memory use of running containers, one engine call for all of them.
    pub fn stats(&self, ids: &[&str]) -> Result<Vec<Stats>, EngineError> {
        let mut args = vec!["stats", "--no-stream", "--format", self.json_format()];
        if self.kind == EngineKind::Docker {
            args.push("--no-trunc");
        }
        args.extend(ids.iter().copied());
        let output = self.run(&self.cmd(args).timeout(RUN_TIMEOUT))?;
        self.parse(model::parse_stats(self.kind, &output.stdout))
    }

    /// The argv of the container `events` stream for containers carrying `labels`.
    pub fn events_cmd(&self, labels: &[(&str, &str)]) -> Cmd {
        let mut args: Vec<String> = vec![
            "events".into(),
            "--format".into(),
            self.json_format().into(),
        ];
        args.push("--filter".into());
        args.push("type=container".into());
        for (key, value) in labels {
            args.push("--filter".into());
            args.push(format!("label={key}={value}"));
        }
        self.cmd(args)
    }

    /// A blocking reader of container events; the engine process ends when the
    /// stream is dropped.
    pub fn events(&self, labels: &[(&str, &str)]) -> Result<EventStream, EngineError> {
        let cmd = self.events_cmd(labels);
        let reader = cmd.stream().map_err(|error| self.classify(error))?;
        Ok(EventStream {
            engine: self.clone(),
            cmd,
            lines: BufReader::new(reader),
            ended: false,
        })
    }
}

pub struct EventStream {
    engine: Engine,
    cmd: Cmd,
    lines: BufReader<duct::ReaderHandle>,
    /// The stream ended (or failed): it yields nothing more. Without this a
    /// stream whose engine went away yielded its error again on every call,
    /// and a reader looping over it logged it at full speed.
    ended: bool,
}

impl EventStream {
    /// At end of stream: the engine's own error if it exited unsuccessfully.
    fn exit_error(&self) -> Option<EngineError> {
        let output = self.lines.get_ref().try_wait().ok().flatten()?;
        if output.status.success() {
            return None;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Some(
            self.engine
                .classify(self.cmd.exited(output.status, &stderr)),
        )
    }
}

impl Iterator for EventStream {
    type Item = Result<Event, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let mut line = String::new();
        loop {
            line.clear();
            match self.lines.read_line(&mut line) {
                Ok(0) => {
                    self.ended = true;
                    return self.exit_error().map(Err);
                }
                Ok(_) if line.trim().is_empty() => continue,
                Ok(_) => {
                    return Some(
                        self.engine
                            .parse(model::parse_event(self.engine.kind, &line)),
                    );
                }
                Err(source) => {
                    self.ended = true;
                    return Some(Err(EngineError::Command {
                        kind: self.engine.kind,
                        source: CommandError::Spawn {
                            argv: self.cmd.display(),
                            source,
                        },
                    }));
                }
            }
        }
    }
}

fn has_labels(found: &Labels, wanted: &[(&str, &str)]) -> bool {
    wanted
        .iter()
        .all(|(key, value)| found.get(*key).map(String::as_str) == Some(*value))
}

/// The engine's words for "could not reach the daemon" (docker) or the service
/// a remote connection names (podman, which otherwise runs no daemon).
/// Signs that ssh itself failed to reach the engine's host.
fn link_is_down(stderr: &str) -> bool {
    const SIGNS: [&str; 5] = [
        "ssh: connect to host",
        "Connection timed out",
        "No route to host",
        "Connection closed by",
        "Could not resolve hostname",
    ];
    SIGNS.iter().any(|sign| stderr.contains(sign))
}

fn daemon_is_down(stderr: &str) -> bool {
    const SIGNS: [&str; 6] = [
        "Cannot connect to the Docker daemon",
        "Is the docker daemon running",
        "error during connect",
        "Cannot connect to Podman",
        "unable to connect to Podman",
        "connect: connection refused",
    ];
    SIGNS.iter().any(|sign| stderr.contains(sign))
}

/// True when every error line says an object does not exist.
fn only_missing_objects(stderr: &str) -> bool {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    !lines.is_empty()
        && lines.iter().all(|line| {
            let line = line.to_ascii_lowercase();
            line.contains("no such container")
                || line.contains("no such object")
                || line.contains("no such image")
                || line.contains("image not known")
                || line.contains("no container with name or id")
        })
}

/// `args` of a `run`, `create` or `build`, so that the engine hands the
/// container none of the host's proxy variables. Podman passes the host's
/// `http_proxy`, `HTTPS_PROXY`, … to every container and every build step
/// unless told not to (`--http-proxy`, on by default); docker does not. A
/// proxy's URL may hold the user's credentials, and the container (a
/// build's `RUN` step too) is the repo's: nothing of the host's environment
/// reaches it unless dual passes it on purpose.
pub(crate) fn without_host_proxy(kind: EngineKind, mut args: Vec<OsString>) -> Vec<OsString> {
    if kind == EngineKind::Podman && !args.is_empty() {
        args.insert(1, "--http-proxy=false".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_object_messages_from_both_engines() {
        assert!(only_missing_objects(
            "Error response from daemon: No such container: nosuch"
        ));
        assert!(only_missing_objects(
            "Error: inspecting object: no such container nosuch"
        ));
        assert!(only_missing_objects(
            "Error: inspecting object: nosuch: image not known"
        ));
        assert!(!only_missing_objects(""));
        assert!(!only_missing_objects(
            "Error: no such container a\nCannot connect to the Docker daemon"
        ));
    }

    #[test]
    fn a_patient_engine_waits_longer_for_status_calls_never_less() {
        let engine = Engine::new(EngineKind::Podman);
        assert!(engine.patient().status_timeout() >= PATIENT_TIMEOUT);
        let slow = Engine {
            status_timeout: Duration::from_secs(90),
            ..engine
        };
        assert_eq!(slow.patient().status_timeout(), Duration::from_secs(90));
    }

    #[test]
    fn daemon_down_is_recognised() {
        assert!(daemon_is_down(
            "Cannot connect to the Docker daemon at unix:///nonexistent. Is the docker daemon running?"
        ));
        assert!(!daemon_is_down("Error: No such container: x"));
    }

    #[test]
    fn engine_names_parse_case_insensitively() {
        assert_eq!(
            EngineKind::parse("Podman", "DUAL_ENGINE").unwrap(),
            EngineKind::Podman
        );
        let error = EngineKind::parse("nosuch", "DUAL_ENGINE").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`nosuch` is not a container engine dual knows (from DUAL_ENGINE)"
        );
    }

    #[test]
    fn podman_hands_a_container_none_of_the_host_s_proxy_variables() {
        let args = |kind| {
            without_host_proxy(kind, vec!["run".into(), "--detach".into()])
                .into_iter()
                .map(|arg| arg.into_string().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            args(EngineKind::Podman),
            ["run", "--http-proxy=false", "--detach"]
        );
        assert_eq!(args(EngineKind::Docker), ["run", "--detach"]);
    }
}
