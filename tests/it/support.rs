//! Shared by the integration tests and the probes: the `dual` command with a
//! clean environment, engine gating, the test image, another user.
//!
//! Engine gating: the engines under test come from `DUAL_TEST_ENGINES`
//! (default `docker,podman`). One that does not answer is skipped with a loud
//! message, unless `DUAL_REQUIRE_ENGINE=1`, where that is a test failure.

#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

pub use dual::engine::EngineKind;

/// Variables of the engines' own CLIs that a test keeps: they choose the
/// daemon, socket or connection to talk to and say nothing about dual.
/// `XDG_RUNTIME_DIR` is among them because podman keeps its runtime there.
const ENGINE_VARIABLES: &[&str] = &[
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINER_SSHKEY",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_REGISTRIES_CONF",
    "XDG_RUNTIME_DIR",
];

/// The whole environment of a program a test starts that may run `dual`,
/// for an installation rooted at `root` (as jj's `TestEnvironment`): HOME,
/// the XDG dirs, DUAL_HOME and the workspace root all under `root`, so no
/// test reads or changes the user's own dual; PATH and the engines'
/// variables kept; nothing else of the developer's (no DUAL_* settings, no
/// colours), so what a test sees does not depend on who runs it.
pub fn sandbox_env(root: &Path) -> Vec<(OsString, OsString)> {
    let home = root.join("home");
    let mut vars: Vec<(OsString, OsString)> = vec![
        ("HOME".into(), home.clone().into()),
        ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
        ("XDG_DATA_HOME".into(), home.join(".local/share").into()),
        ("XDG_STATE_HOME".into(), home.join(".local/state").into()),
        ("XDG_CACHE_HOME".into(), home.join(".cache").into()),
        ("DUAL_HOME".into(), root.join("data").into()),
        ("DUAL_WORKSPACE_ROOT".into(), root.join("root").into()),
        // A test starts the proxy it wants itself, on ports of its own.
        ("DUAL_PROXY_AUTOSTART".into(), "0".into()),
        ("NO_COLOR".into(), "1".into()),
        ("LC_ALL".into(), "C".into()),
    ];
    for key in ["PATH", "USER", "LOGNAME", "TERM"]
        .iter()
        .chain(ENGINE_VARIABLES)
    {
        if let Some(value) = std::env::var_os(key) {
            vars.push((key.into(), value));
        }
    }
    // docker reads its current context from ~/.docker: keep the user's
    // (engine settings, not dual's) now that HOME is elsewhere.
    if std::env::var_os("DOCKER_CONFIG").is_none()
        && let Some(real_home) = std::env::var_os("HOME")
    {
        let docker_config = Path::new(&real_home).join(".docker");
        if docker_config.is_dir() {
            vars.push(("DOCKER_CONFIG".into(), docker_config.into()));
        }
    }
    vars
}

/// Makes the directories `sandbox_env(root)` names.
pub fn prepare_sandbox(root: &Path) {
    std::fs::create_dir_all(root.join("home")).unwrap();
}

/// `program` with the environment cleared to `sandbox_env(root)`: every
/// spawn of dual, or of a shell or tmux that runs dual, goes through here.
#[must_use]
pub fn sandboxed(program: impl AsRef<OsStr>, root: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().envs(sandbox_env(root));
    cmd
}

/// The `dual` binary in the installation rooted at `root`.
#[must_use]
pub fn sandboxed_dual(root: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(dual_path());
    cmd.env_clear().envs(sandbox_env(root));
    cmd
}

/// One test's own dual installation on the host (a temp dir removed on drop).
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        prepare_sandbox(dir.path());
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn dual(&self) -> assert_cmd::Command {
        sandboxed_dual(self.path())
    }

    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        sandboxed(program, self.path())
    }
}

/// `dual` in a sandbox of its own, for a test that needs no installation
/// beyond an empty one; the sandbox lives as long as the command.
#[must_use]
pub fn dual() -> SandboxedDual {
    let sandbox = Sandbox::new();
    SandboxedDual {
        cmd: sandbox.dual(),
        _sandbox: sandbox,
    }
}

pub struct SandboxedDual {
    cmd: assert_cmd::Command,
    _sandbox: Sandbox,
}

impl std::ops::Deref for SandboxedDual {
    type Target = assert_cmd::Command;
    fn deref(&self) -> &assert_cmd::Command {
        &self.cmd
    }
}

impl std::ops::DerefMut for SandboxedDual {
    fn deref_mut(&mut self) -> &mut assert_cmd::Command {
        &mut self.cmd
    }
}

/// The built binary. Run it through `sandboxed`/`sandboxed_dual`/`dual()`,
/// never bare: `every_spawn_of_dual_is_sandboxed` checks the test files.
pub fn dual_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dual"))
}

/// `DUAL_REQUIRE_ENGINE=1`: what would skip for want of a tool fails instead.
pub fn require_engine() -> bool {
    std::env::var("DUAL_REQUIRE_ENGINE").is_ok_and(|v| v == "1")
}

/// The engines to test against that answer here.
pub fn engines() -> &'static [EngineKind] {
    static ENGINES: OnceLock<Vec<EngineKind>> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let wanted = std::env::var("DUAL_TEST_ENGINES").unwrap_or_else(|_| "docker,podman".into());
        let mut found = Vec::new();
        for name in wanted.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind = match name {
                "docker" => EngineKind::Docker,
                "podman" => EngineKind::Podman,
                other => panic!("DUAL_TEST_ENGINES names `{other}`; use docker and/or podman"),
            };
            match dual::engine::Engine::new(kind).info() {
                Ok(_) => found.push(kind),
                Err(error) if require_engine() => panic!(
                    "DUAL_REQUIRE_ENGINE=1 but {kind} does not answer: {error}\n\
                     hint: start it (CI does this in .ci/run) or drop it from DUAL_TEST_ENGINES"
                ),
                Err(error) => eprintln!(
                    "\n!!!!! SKIPPED: {kind} does not answer ({error}); its engine tests do not run.\n\
                     !!!!! Set DUAL_REQUIRE_ENGINE=1 to make this a failure.\n"
                ),
            }
        }
        found
    })
}

/// Runs `test` once per engine under test; says so loudly when there is none.
pub fn each_engine(test_name: &str, test: impl Fn(EngineKind)) {
    let engines = engines();
    if engines.is_empty() {
        eprintln!("!!!!! SKIPPED {test_name}: no container engine answers");
        return;
    }
    for &kind in engines {
        eprintln!("--- {test_name} on {kind}");
        test(kind);
    }
}

/// Builds `dual-test:latest` on `kind` once per test process.
pub fn ensure_test_image(kind: EngineKind) -> &'static str {
    static BUILT: OnceLock<Mutex<HashSet<EngineKind>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashSet::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&kind) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/test-image");
        let output = Command::new(&script)
            .env("DUAL_ENGINE", kind.program())
            .env("DUAL_BIN", dual_path())
            .output()
            .expect("scripts/test-image runs");
        assert!(
            output.status.success(),
            "scripts/test-image failed on {kind}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        built.insert(kind);
    }
    "dual-test:latest"
}

/// The ordinary user with subordinate ids that rootless tests run as
/// (DUAL_TEST_ROOTLESS_USER; CI makes one), or `None` after saying loudly
/// that `test` is skipped.
pub fn rootless_user(test: &str) -> Option<String> {
    let user = std::env::var("DUAL_TEST_ROOTLESS_USER").ok();
    if user.is_none() {
        eprintln!(
            "!!!!! SKIPPED {test}: set DUAL_TEST_ROOTLESS_USER to a user with subordinate ids"
        );
    }
    user
}

/// The "remote" engine host of `scripts/remote-rig`: sshd, a dockerd and a
/// podman service in namespaces of their own, reached from this host only
/// over ssh, as a real remote host would be.
#[derive(Debug)]
pub struct Rig {
    /// Where its sshd listens (port 22).
    pub ip: String,
    /// `ssh://root@IP`: a `DOCKER_HOST` that reaches the rig's dockerd.
    pub docker_host: String,
    /// The podman connection the rig registered (never the default).
    pub podman_connection: String,
    /// `ssh://root@IP:22/run/podman/podman.sock`: a `CONTAINER_HOST`.
    pub podman_url: String,
    /// The private key root's ssh config names for the rig.
    pub identity: PathBuf,
}

impl Rig {
    /// The variables that point `kind`'s CLI at the rig's engine: what a
    /// test adds to a sandbox's environment (`sandbox_env` keeps them).
    pub fn engine_env(&self, kind: EngineKind) -> Vec<(&'static str, OsString)> {
        match kind {
            EngineKind::Docker => vec![("DOCKER_HOST", self.docker_host.clone().into())],
            EngineKind::Podman => vec![
                ("CONTAINER_HOST", self.podman_url.clone().into()),
                ("CONTAINER_SSHKEY", self.identity.clone().into()),
            ],
        }
    }

    /// `kind`'s CLI, talking to the rig's engine.
    pub fn engine(&self, kind: EngineKind) -> Command {
        let mut cmd = Command::new(kind.program());
        match kind {
            EngineKind::Docker => cmd.env("DOCKER_HOST", &self.docker_host),
            EngineKind::Podman => cmd.args(["--connection", &self.podman_connection]),
        };
        cmd
    }

    /// The rig's host key, for `home`'s `.ssh/known_hosts`: podman's own ssh
    /// client reads the known hosts of `$HOME` only, and warns on every
    /// command where the rig is not among them.
    pub fn trust_in(&self, home: &Path) {
        let line = std::fs::read_to_string(rig_state().join("known_hosts")).unwrap();
        let ssh = home.join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("known_hosts"), line).unwrap();
    }

    /// Runs `scripts/remote-rig ARGS` (`restart-docker`, `drop-link`,
    /// `exec CMD…`: see the script), required to succeed; its stdout.
    pub fn control(&self, args: &[&str]) -> String {
        let output = Command::new(rig_script()).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "scripts/remote-rig {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// The rig's link between tests: one that cuts it (`drop-link`) holds it
/// exclusively, one that needs it up holds it shared, so that a cut never
/// lands in the middle of another test's sync or ssh.
static RIG_LINK: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Holds the rig's link up (see `RIG_LINK`) while the guard lives.
pub fn rig_link_up() -> std::sync::RwLockReadGuard<'static, ()> {
    RIG_LINK.read().unwrap_or_else(|e| e.into_inner())
}

/// The rig's link for this test alone, to cut (see `RIG_LINK`).
pub fn rig_link_alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    RIG_LINK.write().unwrap_or_else(|e| e.into_inner())
}

fn rig_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/remote-rig")
}

fn rig_state() -> PathBuf {
    std::env::var_os("DUAL_RIG_STATE")
        .map_or_else(|| "/var/lib/dual-remote-rig".into(), PathBuf::from)
}

/// The remote engine host, started (with the test image on both of its
/// engines) once per test process; test processes running at once share
/// it (the script serializes them with a lock). `None` after saying loudly
/// that `test` is skipped where this host cannot run it (not root, a tool
/// missing: `scripts/setup-engines` installs them), a failure instead under
/// `DUAL_REQUIRE_ENGINE=1`. The rig stays up after the tests;
/// `scripts/remote-rig stop` ends it.
pub fn remote_rig(test: &str) -> Option<&'static Rig> {
    static RIG: OnceLock<Result<Rig, String>> = OnceLock::new();
    match RIG.get_or_init(start_rig) {
        Ok(rig) => Some(rig),
        Err(why) if require_engine() => panic!(
            "DUAL_REQUIRE_ENGINE=1 but the remote rig cannot run: {why}\n\
             hint: scripts/setup-engines installs its tools; it needs root"
        ),
        Err(why) => {
            eprintln!(
                "!!!!! SKIPPED {test}: the remote rig cannot run here: {why}\n\
                 !!!!! Set DUAL_REQUIRE_ENGINE=1 to make this a failure."
            );
            None
        }
    }
}

/// Starts the rig and copies the test image to it; `Err` says why this
/// host cannot run it, and a broken rig fails the test.
fn start_rig() -> Result<Rig, String> {
    if !rustix::process::geteuid().is_root() {
        return Err("it needs root (namespaces, a veth pair, sshd)".into());
    }
    // It copies the test image from both engines of this host.
    for kind in [EngineKind::Docker, EngineKind::Podman] {
        if !engines().contains(&kind) {
            return Err(format!("{kind} does not answer on this host"));
        }
        ensure_test_image(kind);
    }
    let started = std::time::Instant::now();
    let output = Command::new(rig_script()).arg("start").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        // The script's "this machine cannot run the rig".
        Some(3) => return Err(stderr.trim().to_owned()),
        _ => panic!("scripts/remote-rig start failed:\n{stderr}"),
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("scripts/remote-rig start printed no {name}:\n{stdout}"))
            .to_owned()
    };
    let rig = Rig {
        ip: value("DUAL_RIG_IP"),
        docker_host: value("DUAL_RIG_DOCKER_HOST"),
        podman_connection: value("DUAL_RIG_PODMAN_CONNECTION"),
        podman_url: value("DUAL_RIG_PODMAN_URL"),
        identity: value("DUAL_RIG_IDENTITY").into(),
    };
    rig.control(&["images"]);
    eprintln!(
        "--- the remote rig answers at {} ({:.1} s to start it and copy the test image)",
        rig.ip,
        started.elapsed().as_secs_f64()
    );
    Ok(rig)
}

/// Whether `check` becomes true before `deadline` runs out (asked every
/// 50 ms, and once more at the end).
pub fn eventually(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    poll(deadline, || check().then_some(())).is_some()
}

/// Waits until `check` holds and returns how long that took; past
/// `deadline`, fails the test saying `what` never happened.
pub fn wait_until(deadline: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    wait_for(deadline, what, || if check() { Ok(()) } else { Err("no") });
    start.elapsed()
}

/// Waits until `attempt` gives a value and returns it; past `deadline`,
/// fails the test naming `what` and the last error `attempt` gave.
pub fn wait_for<T, E: std::fmt::Debug>(
    deadline: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> T {
    let mut last = None;
    let found = poll(deadline, || match attempt() {
        Ok(value) => Some(value),
        Err(error) => {
            last = Some(error);
            None
        }
    });
    found.unwrap_or_else(|| panic!("{what}: not within {deadline:?}; last seen: {last:#?}"))
}

/// The one poll loop of the tests: `attempt` every 50 ms until it gives a
/// value or `deadline` runs out (then once more, so a slow last attempt
/// still counts).
fn poll<T>(deadline: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if let Some(value) = attempt() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    attempt()
}

/// Sends `signal` to a child this test started.
pub fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, signal).expect("the child is ours to signal");
}

/// A tmux server of a test's own (its socket in a temp dir); its sessions
/// get `env` and nothing else of the test's environment.
pub struct Tmux {
    dir: tempfile::TempDir,
    env: Vec<(OsString, OsString)>,
    program: PathBuf,
}

impl Tmux {
    /// `None` when there is no tmux on the test's PATH.
    pub fn new<K: Into<OsString>, V: Into<OsString>>(
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Option<Tmux> {
        // Found on the test's own PATH: the sessions' may lack it.
        let program = dual::process::find_on_path("tmux")?;
        Some(Tmux {
            dir: tempfile::tempdir().unwrap(),
            env: env.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            program,
        })
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.program)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("TMUX_TMPDIR", self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }

    /// The server's socket directory, for a program inside that runs tmux.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A detached session `name` of `width`x`height` running `argv`.
    pub fn start(&self, name: &str, (width, height): (u16, u16), argv: &[&str]) {
        let (width, height) = (width.to_string(), height.to_string());
        let mut args = vec!["new-session", "-d", "-s", name, "-x", &width, "-y", &height];
        args.extend(argv);
        let started = self.run(&args);
        assert!(
            started.status.success(),
            "tmux new-session {name}: {}",
            String::from_utf8_lossy(&started.stderr)
        );
    }

    pub fn has_session(&self, name: &str) -> bool {
        self.run(&["has-session", "-t", &format!("={name}")])
            .status
            .success()
    }

    /// What `target` shows, wrapped lines joined.
    pub fn screen(&self, target: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-J", "-t", target]).stdout)
            .into_owned()
    }

    /// Waits until `target`'s screen satisfies `shown` (30 s, for a busy
    /// machine); returns how long; fails the test with the last screen.
    pub fn wait_screen(&self, target: &str, what: &str, shown: impl Fn(&str) -> bool) -> Duration {
        let start = std::time::Instant::now();
        wait_for(Duration::from_secs(30), what, || {
            let screen = self.screen(target);
            if shown(&screen) {
                Ok(())
            } else {
                Err(Screen(screen))
            }
        });
        start.elapsed()
    }

    /// Sends `keys` to `target`, now: use it only where the screen was
    /// waited for (a key sent before a program reads it may be lost).
    pub fn keys(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend(keys);
        let sent = self.run(&args);
        assert!(sent.status.success(), "send-keys {keys:?}: {sent:?}");
    }

    /// Waits for `target` to show what `ready` expects, then sends `keys`.
    pub fn keys_when(&self, target: &str, what: &str, ready: impl Fn(&str) -> bool, keys: &[&str]) {
        self.wait_screen(target, what, ready);
        self.keys(target, keys);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// A screen in a failure message, as it looked (not as one escaped line).
pub struct Screen(pub String);

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the screen:\n{}", self.0)
    }
}

/// Heavy engine work (many containers, host port checks) runs one test at a
/// time, so tests neither race for host ports nor skew each other's figures.
pub fn heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A copy of the dual binary and scripts/test-image that another user can run
/// (the checkout may sit in a directory only root can enter).
pub fn copies_for_another_user() -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dual = dir.path().join("dual");
    std::fs::copy(dual_path(), &dual).unwrap();
    let script = dir.path().join("test-image");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/test-image"),
        &script,
    )
    .unwrap();
    for path in [&dual, &script] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (dir, dual, script)
}

/// The JSON a `--json` command printed; on anything else, a panic that shows
/// both of its streams.
pub fn json_report(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Containers carrying a label, straight from the engine's CLI.
pub fn containers_with_label(kind: EngineKind, label: &str) -> Vec<String> {
    let output = Command::new(kind.program())
        .args([
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label={label}"),
        ])
        .output()
        .expect("engine ps runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs `body` (sh) as `user` on `engine`, after a prelude that sets up a
/// dual installation of that user's in a fresh temp dir: `$T` the dir, `$DUAL`
/// a copy of dual the user can run, DUAL_HOME, DUAL_WORKSPACE_ROOT and HOME
/// under `$T`, the test image built, and a committed repo at `$T/src` (the
/// current directory) whose `.dual.toml` names it. Returns the output and
/// the temp dir (`$T`).
pub fn as_user(
    user: &str,
    engine: EngineKind,
    body: &str,
) -> (std::process::Output, tempfile::TempDir) {
    const PRELUDE: &str = r#"set -e
T=$1; DUAL=$2; IMAGE_SCRIPT=$3
export DUAL_HOME=$T/data DUAL_WORKSPACE_ROOT=$T/root DUAL_ENGINE=$4 DUAL_PROXY_AUTOSTART=0 HOME=$T/home
mkdir -p "$T/src" "$HOME"
DUAL_BIN=$DUAL "$IMAGE_SCRIPT" >/dev/null
cd "$T/src" && git init -q -b main && printf 'image = "dual-test:latest"\nanonymous_volumes = ["node_modules"]\n' > .dual.toml
git add . && git -c user.email=t@t -c user.name=t commit -qm init
"#;
    let dir = tempfile::tempdir().unwrap();
    let chown = Command::new("chown")
        .args([user, dir.path().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(chown.success());
    let (_copies, dual, image_script) = copies_for_another_user();
    let script = format!("{PRELUDE}{body}");
    // Nothing of the test's environment but PATH: the prelude sets the rest.
    let output = Command::new("su")
        .env_clear()
        .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
        .current_dir(dir.path())
        .args([user, "-s", "/bin/sh", "-c", &script, "sh"])
        .arg(dir.path())
        .arg(&dual)
        .arg(&image_script)
        .arg(engine.program())
        .output()
        .unwrap();
    (output, dir)
}

/// Whether `user` was refused by docker's daemon (not in the docker group):
/// then `test` is skipped loudly, or fails where an engine is required.
pub fn docker_refused(kind: EngineKind, test: &str, user: &str, stderr: &str) -> bool {
    if kind != EngineKind::Docker || !stderr.contains("permission denied") {
        return false;
    }
    assert!(
        !require_engine(),
        "{user} cannot use docker (scripts/setup-engines adds it to the docker group): {stderr}"
    );
    eprintln!("!!!!! SKIPPED {test} on docker: {user} is not in the docker group");
    true
}

/// CPU time (user + system) a process and the children it waited for have
/// used (the engine CLI calls it makes), from /proc.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11..15]
        .iter()
        .map(|field| field.parse::<u64>().unwrap())
        .sum();
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_millis(ticks * 1000 / per_second)
}

/// A command's whole transcript, for one snapshot: its exit status, then
/// everything it printed on each stream (so a changed, added or lost line
/// anywhere shows in the diff).
#[must_use]
pub fn transcript(output: &std::process::Output) -> String {
    let status = match output.status.code() {
        Some(code) => code.to_string(),
        None => format!("{}", output.status),
    };
    format!(
        "exit status: {status}\n----- stdout -----\n{}----- stderr -----\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What varies from run to run in a transcript, replaced by a name:
/// the sandbox at `root` (and its canonical path), any other temp dir, the
/// binary's path, timestamps, test repo names, container IDs and commit
/// hashes, IPs, pids and durations.
pub fn transcript_filters(root: &Path) -> Vec<(String, String)> {
    let mut filters = Vec::new();
    let mut roots = vec![root.to_path_buf()];
    if let Ok(canonical) = root.canonicalize()
        && canonical != root
    {
        roots.insert(0, canonical);
    }
    for root in roots {
        filters.push((
            regex_escape(&root.to_string_lossy()),
            "[SANDBOX]".to_owned(),
        ));
    }
    filters.extend(
        [
            (regex_escape(&dual_path().to_string_lossy()), "[DUAL]"),
            (r"/tmp/\.tmp[A-Za-z0-9]+".to_owned(), "[TEMP]"),
            (
                r"\b[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z?"
                    .to_owned(),
                "[TIME]",
            ),
            // TestEnv's repo names: t, pid, x, counter, engine letter.
            (r"\bt[0-9]{7}x[0-9]{3}[dpn]\b".to_owned(), "[REPO]"),
            (r"\b[0-9a-f]{64}\b".to_owned(), "[ID]"),
            (r"\b[0-9a-f]{7,12}\b".to_owned(), "[HASH]"),
            (r"\b[0-9]{1,3}(\.[0-9]{1,3}){3}\b".to_owned(), "[IP]"),
            (r"\bpid [0-9]+".to_owned(), "pid [PID]"),
            (r"\b[0-9]+(\.[0-9]+)?(ms|µs|s)\b".to_owned(), "[DURATION]"),
        ]
        .map(|(pattern, name)| (pattern, name.to_owned())),
    );
    filters
}

/// `text` as a regex matching itself.
pub fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Snapshots `output`'s whole transcript (`transcript`) as `name`, with
/// `transcript_filters(root)` and then any `(regex, replacement)` pairs
/// given after it (a test's own ports, say). A macro, so that the snapshot
/// is named after the calling test's module.
#[allow(unused_macros)]
macro_rules! assert_transcript {
    ($name:expr, $output:expr, $root:expr $(, $extra:expr)* $(,)?) => {{
        #[allow(unused_mut)]
        let mut filters = $crate::support::transcript_filters($root);
        $( filters.extend($extra.into_iter().map(|(a, b): (String, &str)| (a, b.to_owned()))); )*
        let filters: Vec<(&str, &str)> =
            filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        insta::with_settings!({ filters => filters, prepend_module_to_snapshot => true }, {
            insta::assert_snapshot!($name, $crate::support::transcript(&$output));
        });
    }};
}
#[allow(unused_imports)]
pub(crate) use assert_transcript;

/// A `GET path` on plain loopback `port` with `Host: host`, through the
/// proxy: the status code and the body, or why there is none.
pub fn http_get(port: u16, host: &str, path: &str) -> Result<(u16, String), String> {
    http_get_at(([127, 0, 0, 1], port).into(), host, path)
}

/// `GET path` at `address` with the Host header `host` (a container's own
/// address, as the proxy would reach it): the status code and the body.
pub fn http_get_at(
    address: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {response:?}"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_owned()))
}

/// Whether `images` (built from Debian's packages by
/// `scripts/sidecar-images`) are on `kind`; a loud skip (a failure where
/// CI requires engines) when they are not.
pub fn have_debian_images(kind: EngineKind, test: &str, images: &[&str]) -> bool {
    let missing: Vec<&str> = images
        .iter()
        .copied()
        .filter(|image| {
            !std::process::Command::new(kind.program())
                .args(["image", "inspect", image])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{test}: {} missing on {kind}: run `DUAL_ENGINE={kind} scripts/sidecar-images`",
        missing.join(", ")
    );
    if std::env::var("DUAL_REQUIRE_ENGINE").is_ok_and(|v| v == "1") {
        panic!("{why}");
    }
    eprintln!("SKIPPED (loudly): {why}");
    false
}

/// The uid of the host user `user`, as `id -u` gives it.
pub fn uid_of(user: &str) -> String {
    String::from_utf8_lossy(
        &Command::new("id")
            .args(["-u", user])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_owned()
}
