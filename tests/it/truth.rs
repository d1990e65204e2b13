//! Workspaces that never lie: each test here is a place where dual once said
//! everything was fine and was wrong (a second repo, a changed file, an image
//! that cannot be had, a concurrent command, a user the image does not know,
//! a lost state file).

use std::path::Path;
use std::process::Command;

use crate::support::{dual_path, each_engine, ensure_test_image};
use crate::workspaces::{TestEnv, config, text};

/// A second source repo beside the env's own, with its own README text.
fn second_source(env: &TestEnv, dir: &Path, dual_toml: &str, readme: &str) {
    std::fs::create_dir_all(dir).unwrap();
    env.git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join(".dual.toml"), dual_toml).unwrap();
    std::fs::write(dir.join("README"), readme).unwrap();
    env.git(dir, &["add", "."]);
    env.git(dir, &["commit", "-qm", "init"]);
}

fn names_of(env: &TestEnv) -> Vec<String> {
    env.list()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect()
}

fn run_at(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["run", "--"];
    all.extend_from_slice(args);
    let output = env.cmd(&all).current_dir(dir).output().unwrap();
    assert!(
        output.status.success(),
        "dual run {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    text(&output)
}

#[test]
fn workspaces_of_two_repos_never_share_a_name() {
    each_engine("cross_repo_names", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &config(image));
        // `{repo}` + `a-b` and `{repo}-a` + `b` both read `{repo}-a-b`.
        let other = format!("{}-a", env.repo);
        let source = env.dir.path().join("second");
        second_source(&env, &source, &config(image), "second repo\n");
        env.ok(&["add", source.to_str().unwrap(), "--name", &other]);
        env.ok(&["create", "a-b", "--repo", &env.repo]);
        env.ok(&["create", "b", "--repo", &other]);

        let listed = env.list();
        let names = names_of(&env);
        assert_eq!(names.len(), 2, "{listed:#?}");
        assert_ne!(names[0], names[1], "one name for two workspaces");
        let paths: Vec<&str> = listed.iter().map(|w| w["path"].as_str().unwrap()).collect();
        assert_ne!(paths[0], paths[1]);
        for name in &names {
            env.ok(&["launch", name]);
        }
        let containers = env.containers();
        assert_eq!(containers.len(), 2, "two containers: {containers:?}");
        // Each name reaches its own clone, its own hostname.
        for workspace in &listed {
            let dir = Path::new(workspace["path"].as_str().unwrap());
            let name = workspace["name"].as_str().unwrap();
            assert_eq!(run_at(&env, dir, &["hostname"]), name);
            let readme = run_at(&env, dir, &["cat", "README"]);
            let expected = if workspace["repo"] == other.as_str() {
                "second repo"
            } else {
                "source repo"
            };
            assert_eq!(readme, expected, "{name} reads another repo's clone");
        }
        let (first, second) = (&listed[0], &listed[1]);
        env.ok(&["destroy", first["name"].as_str().unwrap(), "--force"]);
        let left = names_of(&env);
        assert_eq!(left, [second["name"].as_str().unwrap()]);
        assert_eq!(env.containers().len(), 1, "the other container is kept");
        let dir = Path::new(second["path"].as_str().unwrap());
        assert_eq!(
            run_at(&env, dir, &["hostname"]),
            second["name"].as_str().unwrap()
        );
    });
}

#[test]
fn an_image_that_cannot_be_had_leaves_nothing_behind() {
    each_engine("missing_image", |kind| {
        let env = TestEnv::new(
            Some(kind),
            "ports = [3000]\nimage = \"dual-no-such-image:never\"\n",
        );
        env.ok(&["create", "feat/img"]);
        let before = env.list();
        let stderr = env.fails(&["launch", "feat/img"]);
        assert!(
            stderr.starts_with("error: the image `dual-no-such-image:never` "),
            "{stderr}"
        );
        assert!(
            stderr.contains(".dual.toml` line 2"),
            "names where it came from: {stderr}"
        );
        assert!(
            stderr.contains("caused by: ") && stderr.lines().all(|line| line.len() < 400),
            "the engine's reason in one line: {stderr}"
        );
        assert!(stderr.contains("hint: "), "{stderr}");
        assert!(env.containers().is_empty(), "{:?}", env.containers());
        assert!(env.volumes().is_empty(), "{:?}", env.volumes());
        assert_eq!(env.list(), before, "the workspace is as it was");
    });
}

#[test]
fn a_config_only_in_the_source_working_tree_is_named_at_launch() {
    each_engine("uncommitted_config", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &config(image));
        let source = env.source();
        env.git(&source, &["rm", "-q", "--cached", ".dual.toml"]);
        env.git(&source, &["commit", "-qm", "forget the config"]);
        assert!(source.join(".dual.toml").exists());
        env.ok(&["create", "feat/nocfg"]);
        let output = env.run(&["launch", "feat/nocfg"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("has a `.dual.toml` that is not committed"),
            "{stderr}"
        );
        assert!(
            stderr.contains("commit it") && stderr.contains("cp "),
            "{stderr}"
        );
    });
}

#[test]
fn lazy_workspaces_show_the_ports_the_source_declares() {
    let env = TestEnv::new(None, "ports = [5173, 8000]\n");
    env.ok(&["create", "feat/lazy"]);
    let listed = env.list();
    assert_eq!(listed[0]["state"], "lazy");
    let urls: Vec<&str> = listed[0]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let name = env.name("feat/lazy");
    assert_eq!(
        urls,
        [
            format!("http://{name}.localhost:5173"),
            format!("http://{name}.localhost:8000")
        ]
    );
    let printed = env.ok(&["urls", &name]);
    assert!(
        printed.contains(":5173") && !printed.contains(":3000"),
        "{printed}"
    );
}

#[test]
fn ten_concurrent_launches_run_setup_once() {
    each_engine("concurrent_setup", |kind| {
        let _heavy = crate::support::heavy();
        let image = ensure_test_image(kind);
        let config = format!("image = \"{image}\"\nsetup = \"echo ran >> setup-count\"\n");
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "feat/once"]);
        let name = env.name("feat/once");
        let launch = format!("{} launch {name}", dual_path().display());
        crate::workspaces::all_succeed_at_once(&env, &vec![launch; 10]);
        let count = std::fs::read_to_string(env.clone_path("feat/once").join("setup-count"))
            .unwrap()
            .lines()
            .count();
        assert_eq!(count, 1, "{kind}: setup ran {count} times");
    });
}

#[test]
fn prune_sees_a_branch_merged_by_fast_forward() {
    let env = TestEnv::new(None, "");
    let source = env.source();
    env.git(&source, &["branch", "feat/new"]);
    env.git(&source, &["checkout", "-q", "-b", "feat/ff"]);
    std::fs::write(source.join("ff.txt"), "ff").unwrap();
    env.git(&source, &["add", "ff.txt"]);
    env.git(&source, &["commit", "-qm", "ff"]);
    env.git(&source, &["checkout", "-q", "main"]);
    for branch in ["feat/ff", "feat/new"] {
        env.ok(&["create", branch]);
        let clone = env.clone_path(branch);
        std::fs::create_dir_all(clone.parent().unwrap()).unwrap();
        env.git(
            env.dir.path(),
            &[
                "clone",
                "-q",
                "--local",
                source.to_str().unwrap(),
                clone.to_str().unwrap(),
            ],
        );
        env.git(&clone, &["checkout", "-q", branch]);
    }
    env.git(&source, &["merge", "-q", "--ff-only", "feat/ff"]);
    let pruned = env.ok(&["prune", "--yes"]);
    assert!(
        pruned.contains(&format!(
            "workspace {}: its branch is merged",
            env.name("feat/ff")
        )),
        "{pruned}"
    );
    assert_eq!(
        names_of(&env),
        [env.name("feat/new")],
        "a branch made at the default branch's tip, with no commit yet, is not merged"
    );
}

#[test]
fn a_lost_state_file_is_rebuilt_from_the_engine_and_the_clones() {
    each_engine("recover", |kind| {
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        for branch in ["feat/one", "feat/two", "feat/lazy"] {
            env.ok(&["create", branch]);
        }
        env.ok(&["launch", "feat/one"]);
        env.ok(&["launch", "feat/two"]);
        env.ok(&["stop", "feat/two"]);
        let before = env.list();
        let state = env.dir.path().join("data/state.json");
        std::fs::write(&state, "{ half a fi").unwrap();

        let refused = env.fails(&["list"]);
        assert!(refused.contains("dual recover"), "{refused}");
        let report = env.ok(&["recover"]);
        assert!(
            report.contains("recovered 2 workspace(s) of 1 repo(s)"),
            "{report}"
        );
        assert!(
            report.contains("state.json.broken"),
            "says where the old file went: {report}"
        );
        assert!(
            report.contains("workspaces that were never launched"),
            "says what it could not know: {report}"
        );
        let after = env.list();
        let launched: Vec<&serde_json::Value> =
            before.iter().filter(|w| w["state"] != "lazy").collect();
        assert_eq!(after.iter().collect::<Vec<_>>(), launched);
        // The repo is back with its source: new workspaces work.
        env.ok(&["create", "feat/three"]);
        env.ok(&["launch", "feat/two"]);
        assert_eq!(
            text(&env.run_in("feat/two", "", &["hostname"])),
            env.name("feat/two")
        );
    });
}

/// As an ordinary host user, on docker (rootful daemon, the user in its
/// group) and rootless podman: the user inside has the host's name.
#[test]
fn the_user_inside_has_the_host_user_s_name() {
    let Some(user) = crate::support::rootless_user("user_inside") else {
        return;
    };
    each_engine("user_inside", |kind| {
        let script = r#""$DUAL" add --name who >/dev/null && "$DUAL" create b >/dev/null && "$DUAL" launch b >/dev/null
cd "$T/root/who/b"
echo "whoami=$("$DUAL" run whoami)"
echo "idn=$("$DUAL" run id -un):$("$DUAL" run id -gn)"
"$DUAL" run sh -c 'echo "env=$USER $HOME"'
"$DUAL" run sh -c 'echo "passwd=$(grep "^$(id -un):" /etc/passwd | cut -d: -f3,6)"'
"$DUAL" run touch node_modules/written && echo volume=writable
cd / && "$DUAL" destroy who-b --force >/dev/null && echo destroyed
"#;
        let (output, dir) = crate::support::as_user(&user, kind, script);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if crate::support::docker_refused(kind, "user_inside", &user, &stderr) {
            return;
        }
        assert!(output.status.success(), "{stdout}\n{stderr}");
        let id = |flag: &str| {
            let out = Command::new("id")
                .args([flag, user.as_str()])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let home = dir.path().join("home");
        let home = home.display();
        assert!(stdout.contains(&format!("whoami={user}\n")), "{stdout}");
        assert!(
            stdout.contains(&format!("idn={user}:{}\n", id("-gn"))),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("env={user} {home}\n")), "{stdout}");
        assert!(
            stdout.contains(&format!("passwd={}:{home}\n", id("-u"))),
            "{stdout}"
        );
        assert!(
            stdout.contains("volume=writable\n"),
            "the node_modules volume is the user's: {stdout}"
        );
        assert!(stdout.contains("destroyed"), "{stdout}");
    });
}
