//! Shared by the integration tests and the probes: the `dual` command with a
//! clean environment, engine gating, the test image, another user.
//!
//! Engine gating: the engines under test come from `DUAL_TEST_ENGINES`
//! (default `docker,podman`). One that does not answer is skipped with a loud
//! message, unless `DUAL_REQUIRE_ENGINE=1`, where that is a test failure.

#![allow(dead_code)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

pub use dual::engine::EngineKind;

/// The built `dual` binary with DUAL_* variables cleared, so a developer's
/// own settings cannot change what a test sees.
pub fn dual() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(dual_path());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DUAL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

pub fn dual_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dual"))
}

fn require_engine() -> bool {
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

/// Whether `check` becomes true before `deadline` runs out (asked every
/// 50 ms, and once more at the end).
pub fn eventually(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
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
cd "$T/src" && git init -q -b main && printf 'image = "dual-test:latest"\n' > .dual.toml
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
    let output = Command::new("su")
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
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}
