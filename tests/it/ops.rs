//! The layering of dual's source: the operations (`src/ops/`) and everything
//! below them never reach up into the command line, and the browser runs
//! operations in-process, never `dual` as a subprocess.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|x| x == "rs") {
            found.push(path);
        }
    }
}

/// `file:line: text` for each line of the files under `src/` (relative
/// paths) that `keep` takes, whose code (not comment) holds one of `needles`.
fn offending_lines(keep: impl Fn(&str) -> bool, needles: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut offences = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !keep(&relative) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if needles.iter().any(|needle| code.contains(needle)) {
                offences.push(format!("{relative}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    offences
}

fn is_command_layer(relative: &str) -> bool {
    relative == "src/main.rs" || relative == "src/cli.rs" || relative.starts_with("src/commands/")
}

#[test]
fn nothing_below_the_commands_imports_the_command_line() {
    // Any path through them (`crate::cli`, `super::commands::…`), and the
    // grouped form `use crate::{cli, …}`.
    let mut offences = offending_lines(|file| !is_command_layer(file), &["cli::", "commands::"]);
    offences.extend(
        offending_lines(|file| !is_command_layer(file), &["use "])
            .into_iter()
            .filter(|line| {
                line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|word| word == "cli" || word == "commands")
            }),
    );
    assert!(
        offences.is_empty(),
        "only src/main.rs, src/cli.rs and src/commands/ may use the command layer; \
         move what these need into src/ops/ (or below):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_checker_sees_an_import_where_there_is_one() {
    // The check above passes as much by finding nothing as by reading
    // nothing: it must find the command layer's own imports.
    let found = offending_lines(is_command_layer, &["crate::cli"]);
    assert!(
        found.iter().any(|line| line.starts_with("src/commands/")),
        "{found:?}"
    );
}

#[test]
fn the_browser_runs_operations_in_process_not_dual() {
    // `current_exe` is how it ran `dual …` and scraped its stderr.
    let offences = offending_lines(
        |file| file.starts_with("src/tui/"),
        &["current_exe", "Cmd::new(\"dual\"", "Command::new(\"dual\""],
    );
    assert!(
        offences.is_empty(),
        "the browser calls `crate::ops` on a thread with a channel printer:\n{}",
        offences.join("\n")
    );
}

#[test]
fn operations_and_the_browser_print_through_a_printer() {
    let below = |file: &str| {
        [
            "src/ops/",
            "src/tui/",
            "src/tmux.rs",
            "src/error.rs",
            "src/printer.rs",
        ]
        .iter()
        .any(|prefix| file.starts_with(prefix))
    };
    let offences = offending_lines(below, &["println!", "eprint!(", "print!("]);
    assert!(
        offences.is_empty(),
        "report through the `Printer` you are given (`progress`, `warn`, `out`):\n{}",
        offences.join("\n")
    );
}

// ------------------------------------------------------------ on the engines

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{dual_path, each_engine, ensure_test_image, eventually};
use crate::workspaces::TestEnv;

/// `dual ARGS` of `env` as a child to signal or wait for.
fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    let mut cmd = env.command(dual_path());
    cmd.env("DUAL_PROXY_AUTOSTART", "0")
        .current_dir(env.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .args(args);
    cmd.spawn().unwrap()
}

/// Waits for `child` up to `limit`; its exit status, or `None` (then it is
/// killed) when it did not end.
fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut ended = None;
    if eventually(limit, || {
        ended = child.try_wait().unwrap();
        ended.is_some()
    }) {
        return ended;
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn state_of(env: &TestEnv) -> serde_json::Value {
    env.list()[0]["state"].clone()
}

#[test]
fn list_says_setting_up_then_setup_failed_until_a_launch_succeeds() {
    each_engine("setup_states", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &format!("image = \"{image}\"\n"));
        env.ok(&["create", "feat/setup"]);
        let clone = env.clone_path("feat/setup");
        let go = clone.join("go");
        // Setup waits for the test's word, then fails with status 3.
        let config = format!(
            "image = \"{image}\"\nsetup = \"while [ ! -e {} ]; do sleep 0.1; done; exit 3\"\n",
            go.display()
        );
        std::fs::write(env.source().join(".dual.toml"), &config).unwrap();
        env.git(&env.source(), &["commit", "-qam", "a setup that waits"]);
        let mut launch = spawn(&env, &["launch", "feat/setup"]);
        assert!(
            eventually(Duration::from_secs(120), || state_of(&env) == "setting-up"),
            "never `setting-up` while setup ran: {:?}",
            env.list()
        );
        assert!(env.ok(&["list"]).contains("setting up"));
        std::fs::write(&go, "").unwrap();
        let status = wait_for(&mut launch, Duration::from_secs(60)).expect("launch ends");
        assert!(!status.success(), "a failed setup fails the launch");
        assert_eq!(state_of(&env), "setup-failed");
        assert_eq!(env.list()[0]["setup_failure"], "exit status 3");
        let table = env.ok(&["list"]);
        assert!(table.contains("setup failed (exit status 3)"), "{table}");

        let relaunch_with = |setup: &str| {
            let setup = if setup.is_empty() {
                String::new()
            } else {
                format!("setup = \"{setup}\"\n")
            };
            std::fs::write(
                clone.join(".dual.toml"),
                format!("image = \"{image}\"\n{setup}"),
            )
            .unwrap();
            env.run(&["launch", "feat/setup"])
        };
        // No setup any more: nothing failed to report.
        assert!(relaunch_with("").status.success());
        assert_eq!(state_of(&env), "running");
        // Failing again, with another status; then fixed.
        assert!(!relaunch_with("exit 4").status.success());
        assert_eq!(env.list()[0]["setup_failure"], "exit status 4");
        assert!(relaunch_with("true").status.success());
        assert_eq!(state_of(&env), "running");
        assert!(env.list()[0].get("setup_failure").is_none());
    });
}

#[test]
fn logs_follow_ends_on_the_first_sigint_and_on_sigterm() {
    each_engine("logs_follow_signals", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(
            Some(kind),
            &format!(
                "image = \"{image}\"\n[services.talker]\ncommand = \"while true; do echo tick; sleep 0.2; done\"\n"
            ),
        );
        env.ok(&["create", "feat/logs"]);
        env.ok(&["launch", "feat/logs"]);
        let name = env.name("feat/logs");
        for signal in ["INT", "TERM"] {
            let mut follow = spawn(&env, &["logs", "-f", &name, "talker"]);
            // It follows: still running after a while of output.
            assert!(
                wait_for_running(&mut follow, Duration::from_millis(800)),
                "`dual logs -f` ended by itself"
            );
            let sent = Command::new("kill")
                .args([format!("-{signal}"), follow.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            let status = wait_for(&mut follow, Duration::from_secs(5));
            assert!(
                status.is_some(),
                "`dual logs -f` still ran 5 s after one SIG{signal}"
            );
            let mut out = String::new();
            std::io::Read::read_to_string(follow.stdout.as_mut().unwrap(), &mut out).unwrap();
            assert!(
                out.contains("tick"),
                "it printed the service's output: {out}"
            );
        }
    });
}

/// True when `child` is still running after `period`.
fn wait_for_running(child: &mut Child, period: Duration) -> bool {
    // Running for this long is the thing checked, not a wait for an event.
    std::thread::sleep(period);
    child.try_wait().unwrap().is_none()
}

#[test]
fn a_repo_is_removed_only_without_workspaces_and_its_source_stays() {
    let env = TestEnv::new(None, "");
    env.ok(&["create", "feat/keep"]);
    let repos = env.ok(&["repo", "list"]);
    assert_eq!(
        repos,
        format!(
            "{}  {}  (default branch `main`, 1 workspace(s))\n",
            env.repo,
            env.source().canonicalize().unwrap().display()
        )
    );
    let refused = env.fails(&["repo", "remove", &env.repo]);
    let name = env.name("feat/keep");
    assert!(
        refused.contains(&format!("repo `{}` still has workspaces: {name}", env.repo)),
        "{refused}"
    );
    assert!(
        refused.contains(&format!("hint: destroy them first (`dual destroy {name}`)")),
        "{refused}"
    );
    env.ok(&["destroy", &name]);
    let removed = env.ok(&["repo", "remove", &env.repo]);
    assert!(removed.contains("is untouched"), "{removed}");
    assert!(
        env.source().join(".git").is_dir(),
        "the user's checkout stays"
    );
    assert!(env.source().join("README").is_file());
    let again = env.fails(&["repo", "remove", &env.repo]);
    assert!(again.contains("no repo named"), "{again}");
    assert!(
        again.contains("`dual repo list` shows the repos"),
        "a hint that names a command showing repos: {again}"
    );
    assert!(env.ok(&["repo", "list"]).starts_with("no repos yet"));
    let listed = env.fails(&["create", "feat/other"]);
    assert!(listed.contains("no repo is registered"), "{listed}");
}

#[test]
fn create_says_a_new_branch_starts_from_the_default_branch() {
    let env = TestEnv::new(None, "");
    let new = env.ok(&["create", "feat/brand-new"]);
    assert!(
        new.contains("note: `feat/brand-new` is not a branch of")
            && new.contains("launching creates it from the default branch `main`"),
        "{new}"
    );
    env.git(&env.source(), &["branch", "feat/there"]);
    let existing = env.ok(&["create", "feat/there"]);
    assert!(!existing.contains("note:"), "{existing}");
}

#[test]
fn the_hint_for_a_path_outside_workspaces_names_a_command_that_shows_paths() {
    let env = TestEnv::new(None, "");
    env.ok(&["create", "feat/where"]);
    let stderr = env.fails(&["run", "true"]);
    assert!(stderr.contains("is not inside a workspace"), "{stderr}");
    assert!(
        stderr.contains("`dual list --json` shows their paths"),
        "{stderr}"
    );
    let json = env.ok(&["list", "--json"]);
    assert!(json.contains("\"path\""), "and it does: {json}");
}
