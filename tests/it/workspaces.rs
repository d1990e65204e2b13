//! Branch workspaces end to end: real git repos made in temp dirs, real
//! containers from `dual-test:latest`, on each engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::{
    EngineKind, assert_transcript, dual_path, each_engine, ensure_test_image, regex_escape,
    sandboxed_dual, signal, wait_until,
};

/// One isolated dual installation: its own DUAL_HOME, workspace root, HOME
/// and source repo. Drop removes every container and volume of its repo.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub repo: String,
    pub kind: Option<EngineKind>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestEnv {
    /// A source repo with `.dual.toml` holding `config`, registered as a
    /// repo with a name unique to this test.
    pub fn new(kind: Option<EngineKind>, config: &str) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // Fixed width, so that snapshots of aligned tables do not shift.
        let engine = kind.map_or("n", |k| &k.program()[..1]);
        let repo = format!(
            "t{:07}x{:03}{engine}",
            std::process::id() % 10_000_000,
            n % 1000
        );
        let env = TestEnv { dir, repo, kind };
        let source = env.source();
        std::fs::create_dir_all(&source).unwrap();
        crate::support::prepare_sandbox(env.dir.path());
        env.git(&source, &["init", "-q", "-b", "main"]);
        std::fs::write(source.join(".dual.toml"), config).unwrap();
        std::fs::write(source.join("README"), "source repo\n").unwrap();
        env.git(&source, &["add", "."]);
        env.git(&source, &["commit", "-qm", "init"]);
        env.ok(&["add", source.to_str().unwrap(), "--name", &env.repo.clone()]);
        env
    }

    pub fn source(&self) -> PathBuf {
        self.dir.path().join("source")
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn root(&self) -> PathBuf {
        self.dir
            .path()
            .join("root")
            .canonicalize()
            .unwrap_or_else(|_| self.dir.path().join("root"))
    }

    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        // In the sandbox too: the developer's ~/.gitconfig (signing, hooks,
        // a default branch) is not the test's.
        let output = crate::support::sandboxed("git", self.dir.path())
            .current_dir(dir)
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `dual ARGS` in this installation, run from `cwd` (default: the temp dir).
    pub fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = sandboxed_dual(self.dir.path());
        cmd.current_dir(self.dir.path());
        if let Some(kind) = self.kind {
            cmd.env("DUAL_ENGINE", kind.program());
        }
        cmd.args(args);
        cmd
    }

    /// `program` (a shell, tmux, `script`) with this installation's whole
    /// environment and nothing else, for running dual inside it.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = crate::support::sandboxed(program, self.dir.path());
        if let Some(kind) = self.kind {
            cmd.env("DUAL_ENGINE", kind.program());
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, &self.run(args))
    }

    /// Runs and requires failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "dual {args:?} should fail:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// `dual run ARGS` inside the clone of `branch` (its subdirectory `sub`).
    pub fn run_in(&self, branch: &str, sub: &str, args: &[&str]) -> Output {
        let dir = self.clone_path(branch).join(sub);
        let mut all = vec!["run", "--"];
        all.extend_from_slice(args);
        self.cmd(&all).current_dir(dir).output().unwrap()
    }

    pub fn name(&self, branch: &str) -> String {
        format!("{}-{}", self.repo, branch.replace('/', "-"))
    }

    pub fn clone_path(&self, branch: &str) -> PathBuf {
        self.root().join(&self.repo).join(branch.replace('/', "-"))
    }

    pub fn list(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["list", "--json"])).unwrap()
    }

    pub fn engine(&self, args: &[&str]) -> Output {
        Self::engine_of(self.kind.expect("an engine test"), args)
    }

    fn engine_of(kind: EngineKind, args: &[&str]) -> Output {
        Command::new(kind.program()).args(args).output().unwrap()
    }

    /// The label every container of this env carries, and Drop removes by.
    pub fn repo_label(&self) -> String {
        format!("dual.repo={}", self.repo)
    }

    /// The label dual puts on everything this installation owns, whatever
    /// its repo (tests may register more than one).
    pub fn owner_label(&self) -> String {
        let state = self.dir.path().join("data/state.json");
        format!(
            "dual.owner={}",
            dual::workspace::names::short_hash(&state.to_string_lossy())
        )
    }

    /// IDs or names the engine lists for this env: its repo's label (which
    /// bystanders carry too) or its installation's.
    fn listed(&self, list: &[&str]) -> Vec<String> {
        self.listed_on(self.kind.expect("an engine test"), list)
    }

    fn listed_on(&self, kind: EngineKind, list: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        for label in [self.repo_label(), self.owner_label()] {
            let filter = format!("label={label}");
            let mut args = list.to_vec();
            args.extend(["--filter", &filter]);
            let output = Self::engine_of(kind, &args);
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                if !found.iter().any(|seen| seen == line) {
                    found.push(line.to_owned());
                }
            }
        }
        found
    }

    pub fn containers(&self) -> Vec<String> {
        self.listed(&["ps", "-aq"])
    }

    /// Its workspaces' volumes: the repo's package caches
    /// (`workspace::caches`) outlive its workspaces by design.
    pub fn volumes(&self) -> Vec<String> {
        self.listed(&["volume", "ls", "-q"])
            .into_iter()
            .filter(|name| !name.starts_with("dual-cache.") && !name.starts_with("dual-cargo."))
            .collect()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.kind.is_none() || std::env::var("DUAL_KEEP_CONTAINERS").is_ok_and(|v| v == "1") {
            return;
        }
        // Every engine under test: a test may launch on the other one too.
        for &kind in crate::support::engines() {
            let containers = self.listed_on(kind, &["ps", "-aq"]);
            if !containers.is_empty() {
                let mut args = vec!["rm", "-f"];
                if kind == EngineKind::Podman {
                    args.extend(["-t", "0"]);
                }
                args.extend(containers.iter().map(String::as_str));
                Self::engine_of(kind, &args);
            }
            let volumes = self.listed_on(kind, &["volume", "ls", "-q"]);
            if !volumes.is_empty() {
                let mut args = vec!["volume", "rm", "-f"];
                args.extend(volumes.iter().map(String::as_str));
                Self::engine_of(kind, &args);
            }
        }
    }
}

/// Starts a plain container (not dual's) with `label`, so that its TestEnv
/// removes it on drop.
pub fn start_bystander(program: &str, label: &str, image: &str) -> String {
    let output = Command::new(program)
        .args(["run", "-d", "--label", label, image, "sleep", "120"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    text(&output)
}

pub fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub fn config(image: &str) -> String {
    format!("image = \"{image}\"\nports = [3000]\nextra_commands = [\"hostname\"]\n")
}

/// Serves the workspace's hostname on :3000 from inside its container.
const SERVE: &str =
    "mkdir -p /tmp/www && hostname > /tmp/www/index.html && httpd -p 3000 -h /tmp/www";

#[test]
fn fifteen_workspaces_each_serve_their_own_port_3000() {
    each_engine("fifteen_workspaces", |kind| {
        let _heavy = crate::support::heavy();
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        let branches: Vec<String> = (0..15).map(|i| format!("feat/w{i:02}")).collect();
        for branch in &branches {
            env.ok(&["create", branch]);
        }
        dual::parallel::map(&branches, 4, |branch| {
            env.ok(&["launch", &env.name(branch)])
        });
        for branch in &branches {
            let served = env.run_in(branch, "", &["sh", "-c", SERVE]);
            assert!(
                served.status.success(),
                "{}",
                String::from_utf8_lossy(&served.stderr)
            );
        }
        // All fifteen servers are up at once; each localhost is its own.
        let answers = dual::parallel::map(&branches, 4, |branch| {
            text(&env.run_in(branch, "", &["wget", "-qO-", "http://localhost:3000/"]))
        });
        for (branch, answer) in branches.iter().zip(&answers) {
            assert_eq!(
                answer,
                &env.name(branch),
                "{kind}: localhost:3000 in {branch}"
            );
        }
        let listed = env.list();
        assert_eq!(listed.len(), 15);
        assert!(
            listed.iter().all(|w| w["state"] == "running"),
            "{listed:#?}"
        );
    });
}

#[test]
fn run_behaves_as_the_command_would_on_the_host() {
    each_engine("run_fidelity", |kind| {
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        env.ok(&["create", "feat/run"]);
        env.ok(&["launch", "feat/run"]);
        let clone = env.clone_path("feat/run");
        std::fs::create_dir_all(clone.join("src/deep")).unwrap();

        // Exit status and stdin.
        assert_eq!(
            env.run_in("feat/run", "", &["sh", "-c", "exit 7"])
                .status
                .code(),
            Some(7)
        );
        let mut piped = env.cmd(&["run", "--", "sh", "-c", "tr a-z A-Z"]);
        piped.current_dir(&clone).write_stdin("piped through\n");
        assert_eq!(text(&piped.output().unwrap()), "PIPED THROUGH");

        // Same path, same user, own hostname, no dual variables.
        assert_eq!(
            text(&env.run_in("feat/run", "src/deep", &["pwd"])),
            clone.join("src/deep").to_str().unwrap()
        );
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(
            text(&env.run_in("feat/run", "", &["id", "-u"])),
            uid.to_string()
        );
        assert!(
            env.run_in("feat/run", "", &["touch", "made-inside"])
                .status
                .success()
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(clone.join("made-inside")).unwrap().uid(),
            uid
        );
        assert_eq!(
            text(&env.run_in("feat/run", "", &["hostname"])),
            env.name("feat/run")
        );
        let inside_env = text(&env.run_in("feat/run", "", &["env"]));
        assert!(
            !inside_env.to_ascii_lowercase().contains("dual_"),
            "{inside_env}"
        );
        let home = env.home();
        assert!(
            inside_env.contains(&format!("HOME={}", home.display())),
            "{inside_env}"
        );
        assert!(
            env.run_in("feat/run", "", &["sh", "-c", "touch \"$HOME/.written\""])
                .status
                .success(),
            "HOME is writable"
        );
        let not_found = env.run_in("feat/run", "", &["no-such-tool"]);
        assert_eq!(not_found.status.code(), Some(127));
        assert_eq!(
            String::from_utf8_lossy(&not_found.stderr).trim(),
            "no-such-tool: command not found"
        );

        // With a terminal, the command gets a TTY (util-linux `script` makes one).
        if dual::process::find_on_path("script").is_some() {
            let line = format!(
                "{} run sh -c 'test -t 0 && test -t 1 && echo both-tty; exit 3'",
                dual_path().display()
            );
            let output = env
                .command("script")
                .current_dir(&clone)
                .args(["-qec", &line, "/dev/null"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                String::from_utf8_lossy(&output.stdout).contains("both-tty"),
                "{output:?}"
            );
            assert_eq!(output.status.code(), Some(3));
        } else {
            eprintln!(
                "!!!!! SKIPPED the TTY part of run_fidelity: no `script` (util-linux) on PATH"
            );
        }
        let no_tty = env.run_in(
            "feat/run",
            "",
            &["sh", "-c", "test -t 0 || echo stdin-is-a-pipe"],
        );
        assert_eq!(text(&no_tty), "stdin-is-a-pipe");

        // Output streams: the first line arrives while the command still
        // runs (its sleep is what keeps it running, not a wait).
        let mut streaming = env
            .command(dual_path())
            .current_dir(&clone)
            .args(["run", "--", "sh", "-c", "echo first; sleep 30; echo second"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = std::io::BufReader::new(streaming.stdout.take().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
        assert_eq!(first, "first\n");
        assert!(
            streaming.try_wait().unwrap().is_none(),
            "the first line came only when the command ended"
        );
        signal(&streaming, rustix::process::Signal::INT);
        assert_eq!(streaming.wait().unwrap().code(), Some(130));

        // Ctrl-C stops the process inside and leaves nothing running.
        let mut sleeper = env
            .command(dual_path())
            .current_dir(&clone)
            .args(["run", "--", "sleep", "100"])
            .spawn()
            .unwrap();
        let container = format!("dual-{}", env.name("feat/run"));
        let ps = || text(&env.engine(&["exec", &container, "ps"]));
        wait_until(Duration::from_secs(30), "sleep 100 to start", || {
            ps().contains("sleep 100")
        });
        signal(&sleeper, rustix::process::Signal::INT);
        let status = sleeper.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(130),
            "{kind}: the status of a SIGINT'd command"
        );
        // The engine may reap the process a moment after `dual run` returned.
        wait_until(
            Duration::from_secs(10),
            &format!("{kind}: sleep 100 to end after Ctrl-C"),
            || !ps().contains("sleep 100"),
        );
    });
}

/// Runs each shell script at the same time in `env`'s installation, and
/// requires every one to succeed.
pub fn all_succeed_at_once(env: &TestEnv, scripts: &[String]) {
    let children: Vec<std::process::Child> = scripts
        .iter()
        .map(|script| {
            env.command("sh")
                .current_dir(env.dir.path())
                .args(["-c", script])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The environment of `env`'s installation (see `support::sandbox_env`),
/// for a spawn that cannot clear its own (prefer `TestEnv::command`).
/// The stdout of `dual ARGS`, which must have succeeded.
pub fn succeeded(args: &[&str], output: &Output) -> String {
    assert!(
        output.status.success(),
        "dual {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn env_of(env: &TestEnv) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = crate::support::sandbox_env(env.dir.path())
        .into_iter()
        .map(|(key, value)| {
            (
                key.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect();
    if let Some(kind) = env.kind {
        vars.push(("DUAL_ENGINE".to_owned(), kind.program().to_owned()));
    }
    vars
}

#[test]
fn shims_route_commands_in_a_non_interactive_shell() {
    each_engine("shims", |kind| {
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        env.ok(&["create", "feat/shim"]);
        env.ok(&["launch", "feat/shim"]);
        let init = env.ok(&["shell-init", "bash"]);
        let shims = env.dir.path().join("data/shims");
        assert!(init.contains(shims.to_str().unwrap()), "{init}");
        assert!(shims.join("npm").is_file() && shims.join("hostname").is_file());
        let clone = env.clone_path("feat/shim");
        // What an agent does: a fresh `bash -c`, no rc file, PATH inherited.
        let script = format!(
            "eval \"$1\"; cd {} && hostname && wget --help 2>&1 | head -1; npm run dev; cd / && hostname",
            clone.display()
        );
        let output = env
            .command("bash")
            .args(["-c", &script, "bash", &init])
            .output()
            .unwrap();
        let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        let host = String::from_utf8_lossy(&Command::new("hostname").output().unwrap().stdout)
            .trim()
            .to_owned();
        assert_eq!(
            lines.first(),
            Some(&env.name("feat/shim")),
            "inside: the container's hostname: {lines:?}"
        );
        assert!(
            lines.get(1).is_some_and(|l| l.starts_with("BusyBox")),
            "inside: the container's wget: {lines:?}"
        );
        assert_eq!(
            lines.get(2),
            Some(&format!("npm in {}: run dev", env.name("feat/shim"))),
            "inside: npm runs in the container: {lines:?}"
        );
        assert_eq!(
            lines.get(3),
            Some(&host),
            "outside: the host's own hostname: {lines:?}"
        );
    });
}

#[test]
fn ten_parallel_creates_and_launches_lose_nothing() {
    each_engine("parallel_launch", |kind| {
        let _heavy = crate::support::heavy();
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        let branches: Vec<String> = (0..10).map(|i| format!("par/b{i}")).collect();
        let scripts: Vec<String> = branches
            .iter()
            .map(|branch| {
                format!(
                    "{0} create {1} && {0} launch {1}",
                    dual_path().display(),
                    branch
                )
            })
            .collect();
        all_succeed_at_once(&env, &scripts);
        let listed = env.list();
        assert_eq!(listed.len(), 10, "{listed:#?}");
        assert!(
            listed.iter().all(|w| w["state"] == "running"),
            "{listed:#?}"
        );
    });
}

#[test]
fn destroy_refuses_unpushed_work_then_removes_everything() {
    each_engine("destroy", |kind| {
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        env.ok(&["create", "feat/gone"]);
        env.ok(&["launch", "feat/gone"]);
        let clone = env.clone_path("feat/gone");
        std::fs::write(clone.join("new.txt"), "work").unwrap();
        env.git(&clone, &["add", "new.txt"]);
        env.git(&clone, &["commit", "-qm", "unpushed work"]);
        let refused = env.fails(&["destroy", "feat/gone"]);
        assert!(
            refused.contains(&format!(
                "error: workspace `{}` has work that is not pushed",
                env.name("feat/gone")
            )),
            "{refused}"
        );
        assert!(
            refused.contains("unpushed: ") && refused.contains("unpushed work"),
            "{refused}"
        );
        assert!(refused.contains("--force"), "{refused}");
        assert!(clone.exists(), "refusing keeps the clone");

        env.ok(&["destroy", "feat/gone", "--force"]);
        assert!(!clone.exists(), "the clone is gone");
        assert!(env.containers().is_empty(), "the container is gone");
        assert!(env.volumes().is_empty(), "its volumes are gone");
        assert!(env.list().is_empty(), "the state entry is gone");
        assert!(
            env.source().join("README").exists(),
            "the source repo is untouched"
        );
    });
}

#[test]
fn a_container_removed_behind_dual_s_back_is_recreated() {
    each_engine("removed_behind_back", |kind| {
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        env.ok(&["create", "feat/back"]);
        env.ok(&["launch", "feat/back"]);
        let container = format!("dual-{}", env.name("feat/back"));
        assert!(env.engine(&["rm", "-f", &container]).status.success());
        // Not stopped by dual: `down`, which `dual list` explains.
        assert_eq!(env.list()[0]["state"], "down");
        assert!(
            env.ok(&["list"])
                .contains("down: not stopped with `dual stop`")
        );
        let output = env.run_in("feat/back", "", &["true"]);
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("hint: start it with `dual launch"),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        env.ok(&["create", "feat/later"]);
        env.ok(&["launch", "feat/back"]);
        let repo = regex_escape(&env.repo);
        // The ENGINE column is the engine under test.
        let filters = vec![
            (repo.as_str(), "[REPO]"),
            (r"\b(docker|podman)\b", "[ENGINE]"),
        ];
        insta::with_settings!({ filters => filters }, {
            insta::assert_snapshot!("list-running-table", env.ok(&["list"]));
        });
        assert_eq!(env.list()[0]["state"], "running");
        env.ok(&["stop", "feat/back"]);
        assert_eq!(env.list()[0]["state"], "stopped");
        let relaunched = env.ok(&["launch", "feat/back"]);
        assert!(relaunched.contains("started `"), "{relaunched}");
        assert_eq!(
            text(&env.run_in("feat/back", "", &["hostname"])),
            env.name("feat/back")
        );
    });
}

#[test]
fn setup_runs_once_and_its_output_streams() {
    each_engine("setup", |kind| {
        let image = ensure_test_image(kind);
        let config =
            format!("image = \"{image}\"\nsetup = \"echo setting-up; echo done > setup.txt\"\n");
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "feat/setup"]);
        let first = env.ok(&["launch", "feat/setup"]);
        assert!(first.contains("setting-up"), "{first}");
        assert!(env.clone_path("feat/setup").join("setup.txt").exists());
        let second = env.ok(&["launch", "feat/setup"]);
        assert!(!second.contains("setting-up"), "setup ran twice: {second}");
    });
}

#[test]
fn prune_removes_containers_of_workspaces_that_no_longer_exist() {
    each_engine("prune", |kind| {
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        env.ok(&["create", "feat/orphan"]);
        env.ok(&["launch", "feat/orphan"]);
        // The state forgets the workspace (as after a lost state file).
        let state_path = env.dir.path().join("data/state.json");
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
        state["workspaces"] = serde_json::json!([]);
        std::fs::write(&state_path, state.to_string()).unwrap();

        let asked = env.run(&["prune"]);
        assert!(
            !asked.status.success(),
            "without a terminal, prune wants --yes"
        );
        assert!(String::from_utf8_lossy(&asked.stderr).contains("dual prune --yes"));
        assert_eq!(env.containers().len(), 1, "nothing removed without a yes");

        let pruned = env.ok(&["prune", "--yes"]);
        assert!(pruned.contains("no longer exists"), "{pruned}");
        assert!(env.containers().is_empty(), "{pruned}");
        assert!(env.volumes().is_empty(), "{pruned}");
    });
}

// ------------------------------------------------- no engine needed below

#[test]
fn bad_branch_names_are_refused_with_the_reason() {
    let env = TestEnv::new(None, "");
    let cases = [
        (
            "feat;rm -rf ~",
            "error: invalid branch name `feat;rm -rf ~`: `;` is not allowed; use letters, digits and . _ / + -",
        ),
        (
            "a..b",
            "error: invalid branch name `a..b`: git forbids `..` in branch names",
        ),
        (
            "-x",
            "error: invalid branch name `-x`: it starts with `-`, which commands would read as an option",
        ),
        ("", "error: invalid branch name ``: it is empty"),
        (
            "$(id)",
            "error: invalid branch name `$(id)`: `$` is not allowed; use letters, digits and . _ / + -",
        ),
    ];
    for (name, expected) in cases {
        let stderr = env.fails(&["create", "--", name]);
        assert_eq!(stderr.trim(), expected, "{name:?}");
    }
    assert!(env.list().is_empty(), "nothing was recorded");
}

#[test]
fn colliding_branch_names_get_distinct_labels() {
    let env = TestEnv::new(None, "");
    env.ok(&["create", "feat/auth"]);
    env.ok(&["create", "feat-auth"]);
    env.ok(&["create", "Feat/Auth"]);
    let names: Vec<String> = env
        .list()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect();
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), 3, "{names:?}");
    assert!(
        names.contains(&env.name("feat/auth")),
        "the first keeps the plain label: {names:?}"
    );
    let again = env.fails(&["create", "feat/auth"]);
    assert!(
        again.starts_with(&format!(
            "error: workspace `{}` already exists",
            env.name("feat/auth")
        )),
        "{again}"
    );
}

#[test]
fn corrupt_and_newer_state_files_are_refused_and_kept() {
    let env = TestEnv::new(None, "");
    let state_path = env.dir.path().join("data/state.json");
    std::fs::write(&state_path, "{ half a file").unwrap();
    let output = env.run(&["create", "feat/x"]);
    assert_transcript!("state-corrupt", output, env.dir.path());
    assert_eq!(
        std::fs::read_to_string(&state_path).unwrap(),
        "{ half a file"
    );
    std::fs::write(
        &state_path,
        r#"{"version": 7, "repos": {}, "workspaces": []}"#,
    )
    .unwrap();
    let output = env.run(&["list"]);
    assert_transcript!("state-newer", output, env.dir.path());
}

/// (A broken `.dual.toml` at launch: `transcript_launch_with_a_broken_dual_toml`.)
#[test]
fn unknown_names_and_places_say_what_to_do() {
    let env = TestEnv::new(None, "");
    let root = env.dir.path();
    assert_transcript!("run-outside", env.run(&["run", "--", "true"]), root);
    let output = env.run(&["create", "x", "--repo", "other"]);
    assert_transcript!("create-unknown-repo", output, root);
    let output = env.run(&["add", "/", "--name", "x"]);
    assert_transcript!("add-root", output, root);
    let output = env.run(&["add", env.source().to_str().unwrap(), "--name", "Bad_Name"]);
    assert_transcript!("add-bad-name", output, root);
}

#[test]
fn list_shows_lazy_workspaces_without_asking_an_engine() {
    let env = TestEnv::new(None, "");
    env.ok(&["create", "feat/one"]);
    env.ok(&["create", "fix/two"]);
    let table = env.ok(&["list"]);
    let json = env.ok(&["list", "--json"]);
    let (repo, temp) = (
        regex_escape(&env.repo),
        regex_escape(env.dir.path().to_str().unwrap()),
    );
    let filters = vec![(repo.as_str(), "[REPO]"), (temp.as_str(), "[TEMP]")];
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!("list-lazy-table", table);
        insta::assert_snapshot!("list-lazy-json", json);
    });
}

#[test]
fn sync_copies_shared_files_from_the_source_repo() {
    let env = TestEnv::new(
        None,
        "shared_files = [\".env.local\", \"config/dev.json\"]\n",
    );
    std::fs::write(env.source().join(".env.local"), "SECRET=1\n").unwrap();
    env.ok(&["create", "feat/sync"]);
    // Clone without a container: sync needs only the clone.
    let clone = env.clone_path("feat/sync");
    std::fs::create_dir_all(clone.parent().unwrap()).unwrap();
    env.git(
        env.dir.path(),
        &[
            "clone",
            "-q",
            env.source().to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let out = env.ok(&["sync", "feat/sync"]);
    assert_eq!(
        std::fs::read_to_string(clone.join(".env.local")).unwrap(),
        "SECRET=1\n"
    );
    assert!(out.contains("`config/dev.json` is not in"), "{out}");
    assert!(out.contains("synced 1 file(s)"), "{out}");
}

#[test]
fn prune_removes_workspaces_whose_branch_was_merged_upstream() {
    each_engine("prune_merged", |kind| {
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        let source = env.source();
        env.git(&source, &["checkout", "-q", "-b", "feat/done"]);
        std::fs::write(source.join("done.txt"), "done").unwrap();
        env.git(&source, &["add", "done.txt"]);
        env.git(&source, &["commit", "-qm", "done"]);
        env.git(&source, &["checkout", "-q", "main"]);
        env.ok(&["create", "feat/done"]);
        env.ok(&["create", "feat/fresh"]);
        env.ok(&["launch", "feat/done"]);
        env.ok(&["launch", "feat/fresh"]);
        assert_eq!(
            env.ok(&["prune", "--yes"]).trim(),
            "nothing to prune",
            "nothing is finished yet"
        );
        env.git(
            &source,
            &["merge", "-q", "--no-ff", "-m", "merge", "feat/done"],
        );
        let pruned = env.ok(&["prune", "--yes"]);
        assert!(
            pruned.contains(&format!(
                "workspace {}: its branch is merged",
                env.name("feat/done")
            )),
            "{pruned}"
        );
        let left: Vec<String> = env
            .list()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            left,
            [env.name("feat/fresh")],
            "a new, never pushed branch is kept"
        );
        assert!(!env.clone_path("feat/done").exists());
    });
}

/// A workspace as an ordinary user on rootless podman: the user's uid inside
/// (`--userns=keep-id`), files in the clone owned by the user, a writable HOME.
/// Runs when DUAL_TEST_ROOTLESS_USER names such a user (CI makes one).
#[test]
fn rootless_podman_workspace_keeps_the_user_s_identity() {
    let Some(user) = crate::support::rootless_user("rootless_podman_workspace") else {
        return;
    };
    let script = r#""$DUAL" add --name rl >/dev/null && "$DUAL" create b >/dev/null && "$DUAL" launch b >/dev/null
cd "$T/root/rl/b"
echo "uid=$("$DUAL" run id -u)"
"$DUAL" run touch made-inside
echo "owner=$(stat -c %u made-inside)"
"$DUAL" run sh -c 'touch "$HOME/.written" && echo home=ok'
cd / && "$DUAL" destroy rl-b --force >/dev/null && echo destroyed
"#;
    let (output, _dir) = crate::support::as_user(&user, EngineKind::Podman, script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let uid = crate::support::uid_of(&user);
    assert!(stdout.contains(&format!("uid={uid}\n")), "{stdout}");
    assert!(stdout.contains(&format!("owner={uid}\n")), "{stdout}");
    assert!(
        stdout.contains("home=ok") && stdout.contains("destroyed"),
        "{stdout}"
    );
}

// Whole transcripts (exit status, stdout, stderr) of what a user sees, so
// that a changed line anywhere shows; see `support::transcript_filters` for
// what is masked.

/// Two lazy workspaces (no engine asked) declaring a port nothing else on
/// the host holds (dual warns, rightly, of a port another program holds, and
/// tests run side by side), and the filter that names that port.
fn two_lazy_workspaces() -> (TestEnv, [(String, &'static str); 1]) {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let env = TestEnv::new(None, &format!("ports = [{port}]\n"));
    env.ok(&["create", "feat/one"]);
    env.ok(&["create", "fix/two"]);
    (env, [(format!(r"\b{port}\b"), "[PORT]")])
}

#[test]
fn transcript_list_table() {
    let (env, port) = two_lazy_workspaces();
    assert_transcript!("list-table", env.run(&["list"]), env.dir.path(), port);
}

#[test]
fn transcript_list_json() {
    let (env, port) = two_lazy_workspaces();
    let output = env.run(&["list", "--json"]);
    assert_transcript!("list-json", output, env.dir.path(), port);
}

#[test]
fn transcript_urls() {
    let (env, port) = two_lazy_workspaces();
    let all = env.run(&["urls"]);
    assert_transcript!("urls-all", all, env.dir.path(), port.clone());
    let one = env.run(&["urls", &env.name("feat/one")]);
    assert_transcript!("urls-one", one, env.dir.path(), port);
}

#[test]
fn transcript_create_colliding_names() {
    let env = TestEnv::new(None, "");
    env.ok(&["create", "feat/auth"]);
    assert_transcript!(
        "create-colliding-label",
        env.run(&["create", "feat-auth"]),
        env.dir.path()
    );
    assert_transcript!(
        "create-existing",
        env.run(&["create", "feat/auth"]),
        env.dir.path()
    );
}

#[test]
fn transcript_create_invalid_name() {
    let env = TestEnv::new(None, "");
    assert_transcript!(
        "create-invalid",
        env.run(&["create", "--", "feat;rm -rf ~"]),
        env.dir.path()
    );
}

#[test]
fn transcript_add_of_a_directory_that_is_no_repo() {
    let env = TestEnv::new(None, "");
    let plain = env.dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    assert_transcript!(
        "add-not-a-repo",
        env.run(&["add", plain.to_str().unwrap(), "--name", "plain"]),
        env.dir.path()
    );
}

#[test]
fn transcript_launch_of_an_unknown_workspace() {
    let env = TestEnv::new(None, "");
    assert_transcript!(
        "launch-unknown",
        env.run(&["launch", "nope"]),
        env.dir.path()
    );
}

#[test]
fn transcript_launch_with_a_broken_dual_toml() {
    let env = TestEnv::new(None, "image = \"x\"\nprots = [3000]\n");
    env.ok(&["create", "feat/conf"]);
    // The config is read right after the clone, before any engine call.
    assert_transcript!(
        "launch-broken-config",
        env.run(&["--engine", "docker", "launch", "feat/conf"]),
        env.dir.path()
    );
}

#[test]
fn transcript_launch_of_a_missing_image() {
    each_engine("transcript_missing_image", |kind| {
        let env = TestEnv::new(Some(kind), "image = \"dual-test-missing:nope\"\n");
        env.ok(&["create", "noimage"]);
        // Why the pull failed is the engine's and the network's to say.
        let pull_error = [(
            r"(?m)^  caused by: .*$".to_owned(),
            "  caused by: [PULL ERROR]",
        )];
        assert_transcript!(
            format!("launch-missing-image-{kind}"),
            env.run(&["launch", "noimage"]),
            env.dir.path(),
            pull_error
        );
    });
}

#[test]
fn transcript_destroy_of_unpushed_work() {
    each_engine("transcript_destroy", |kind| {
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        env.ok(&["create", "feat/gone"]);
        env.ok(&["launch", "feat/gone"]);
        let clone = env.clone_path("feat/gone");
        env.git(
            &clone,
            &["commit", "-q", "--allow-empty", "-m", "unpushed work"],
        );
        assert_transcript!(
            "destroy-unpushed",
            env.run(&["destroy", "feat/gone"]),
            env.dir.path()
        );
        assert!(clone.exists(), "refusing keeps the clone");
    });
}

#[test]
fn transcript_proxy_status_with_none_running() {
    let env = TestEnv::new(None, "");
    assert_transcript!(
        "proxy-status-none",
        env.run(&["proxy", "status"]),
        env.dir.path()
    );
}

/// The images `env`'s repo built (`dual.kind` = `kind`), by tag, those
/// whose name starts with `prefix` (`dual-workspace/REPO:`), sorted.
pub fn built_images(env: &TestEnv, kind: &str, prefix: &str) -> Vec<String> {
    let output = env.engine(&[
        "image",
        "ls",
        "--filter",
        &format!("label=dual.kind={kind}"),
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert!(output.status.success(), "{output:?}");
    let mut tags: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().trim_start_matches("localhost/").to_owned())
        .filter(|line| line.starts_with(prefix))
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// Removes the images `built` lists when the test ends, passed or not
/// (declared after the env, so dropped before its containers go: forced).
pub struct BuiltImages<'a> {
    pub env: &'a TestEnv,
    pub built: fn(&TestEnv) -> Vec<String>,
}

impl Drop for BuiltImages<'_> {
    fn drop(&mut self) {
        for tag in (self.built)(self.env) {
            let _ = self.env.engine(&["image", "rm", "--force", &tag]);
        }
    }
}

/// The image container `name` runs (without podman's `localhost/`) and its id.
pub fn image_and_id(env: &TestEnv, container: &str) -> (String, String) {
    let output = env.engine(&[
        "container",
        "inspect",
        "--format",
        "{{.Config.Image}} {{.Id}}",
        container,
    ]);
    assert!(output.status.success(), "{container}: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let (image, id) = text.trim().split_once(' ').unwrap();
    (
        image.trim_start_matches("localhost/").to_owned(),
        id.to_owned(),
    )
}
