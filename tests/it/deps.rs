//! Dependencies already there: the package managers' cache volume a repo's
//! workspaces share (and its lifetime: it outlives `destroy`, `prune`
//! removes it with its repo), and seeding, where a new workspace starts
//! with a copy of its parent's dependency directories, its own and
//! pointing into its own clone. Timings are measured by scripts/bench-deps,
//! never asserted here.

use std::path::Path;
use std::time::Duration;

use crate::support::{EngineKind, each_engine, ensure_test_image, have_debian_images};
use crate::workspaces::TestEnv;

const PYTHON: &str = "python:3.11-bookworm";

/// Writes `files` (path, text) into the env's source repo and commits them.
fn commit(env: &TestEnv, files: &[(&str, &str)]) {
    let source = env.source();
    for (path, text) in files {
        let path = source.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    env.git(&source, &["add", "."]);
    env.git(&source, &["commit", "-qm", "files"]);
}

/// The names of the volumes on `kind` carrying `label`.
fn volumes_labelled(kind: EngineKind, label: &str) -> Vec<String> {
    let output = std::process::Command::new(kind.program())
        .args(["volume", "ls", "-q", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn run_in(env: &TestEnv, branch: &str, script: &str) -> String {
    env.ok(&["run", "-w", &env.name(branch), "sh", "-c", script])
}

#[test]
fn a_repo_s_workspaces_share_one_cache_that_outlives_them_until_the_repo_goes() {
    each_engine("shared caches", |kind| {
        let config = format!(
            "image = \"{}\"\nsetup = 'mkdir -p \"$PIP_CACHE_DIR\" && hostname >> \"$PIP_CACHE_DIR/seen\"'\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        for branch in ["main", "feat"] {
            env.ok(&["create", branch]);
            env.ok(&["launch", &env.name(branch)]);
        }
        // feat's setup ran as the user and wrote where main's had.
        let seen = run_in(&env, "feat", "cat /var/cache/dual/pip/seen");
        assert_eq!(
            seen.lines().collect::<Vec<_>>(),
            [env.name("main"), env.name("feat")],
            "one cache, written by both"
        );
        let variables = run_in(
            &env,
            "main",
            "echo $npm_config_cache $PIP_CACHE_DIR $UV_CACHE_DIR $GOMODCACHE $CARGO_HOME",
        );
        assert_eq!(
            variables.trim(),
            "/var/cache/dual/npm /var/cache/dual/pip /var/cache/dual/uv /var/cache/dual/go/mod /var/cache/dual/cargo"
        );
        let caches = volumes_labelled(kind, "dual.kind=cache");
        let ours: Vec<&String> = caches.iter().filter(|v| v.ends_with(&env.repo)).collect();
        assert_eq!(ours.len(), 1, "one volume for the repo: {caches:?}");
        let volume = ours[0].clone();
        // `dual verify` in a clone names it, and who shares it.
        let verified = env
            .cmd(&["verify", "--json"])
            .current_dir(env.clone_path("feat"))
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&verified.stdout);
        assert!(
            report.contains(&format!("`{volume}` at /var/cache/dual"))
                && report.contains(&format!("the workspaces of `{}`", env.repo)),
            "{report}"
        );

        // Destroying workspaces, the last one included, keeps it: the next
        // workspace is what it is for.
        for branch in ["feat", "main"] {
            env.ok(&["destroy", &env.name(branch), "--force"]);
        }
        assert!(volumes_labelled(kind, "dual.kind=cache").contains(&volume));
        let nothing = env.ok(&["prune", "--yes"]);
        assert!(!nothing.contains(&volume), "{nothing}");
        env.ok(&["create", "again"]);
        env.ok(&["launch", &env.name("again")]);
        let seen = run_in(&env, "again", "cat /var/cache/dual/pip/seen");
        assert_eq!(seen.lines().count(), 3, "the new workspace met it: {seen}");

        // Once the repo is gone, prune names it and removes it.
        env.ok(&["destroy", &env.name("again"), "--force"]);
        env.ok(&["repo", "remove", &env.repo]);
        let pruned = env.ok(&["prune", "--yes"]);
        assert!(
            pruned.contains(&volume) && pruned.contains("no longer registered"),
            "{pruned}"
        );
        assert!(!volumes_labelled(kind, "dual.kind=cache").contains(&volume));
    });
}

#[test]
fn caches_off_mounts_none() {
    each_engine("caches off", |kind| {
        let config = format!("image = \"{}\"\ncaches = false\n", ensure_test_image(kind));
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "main"]);
        env.ok(&["launch", &env.name("main")]);
        let seen = run_in(
            &env,
            "main",
            "echo ${PIP_CACHE_DIR:-none}; ls /var/cache/dual 2>&1 || true",
        );
        assert!(seen.starts_with("none\n"), "{seen}");
        assert!(!seen.contains("pip"), "{seen}");
        assert!(
            !volumes_labelled(kind, &env.owner_label())
                .iter()
                .any(|v| v.starts_with("dual-cache")),
            "no cache volume made"
        );
    });
}

/// A stand-in for an install (busybox has no Python): a venv-like
/// directory in the clone whose scripts, config and `.pth` name the clone,
/// a link into it, a binary file naming it, and a `node_modules` volume;
/// each "download" is said on stdout.
const FAKE_SETUP: &str = r#"set -e
if [ ! -e .venv/installed ]; then
  echo "downloading venv packages"
  mkdir -p .venv/bin .venv/lib
  printf '#!%s/.venv/bin/python\necho pip\n' "$PWD" > .venv/bin/pip
  chmod 755 .venv/bin/pip
  printf 'home = /usr/bin\ncommand = python -m venv %s/.venv\n' "$PWD" > .venv/pyvenv.cfg
  echo "$PWD/src" > .venv/lib/editable.pth
  echo "$PWD-2/src" > .venv/lib/other.pth
  ln -s "$PWD/.venv/bin/pip" .venv/bin/pip-link
  printf 'bin\000%s\n' "$PWD" > .venv/lib/compiled.so.1
  touch .venv/installed
fi
if [ ! -e node_modules/installed ]; then
  echo "downloading node packages"
  echo "$PWD" > node_modules/installed
fi
"#;

#[test]
fn a_new_workspace_starts_with_its_own_copy_of_its_parent_s_dependencies() {
    each_engine("seeding", |kind| {
        let config = format!(
            "image = \"{}\"\nanonymous_volumes = [\"node_modules\"]\nseed = [\".venv\", \"node_modules\"]\nsetup = \"sh setup.sh\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        commit(&env, &[("setup.sh", FAKE_SETUP)]);
        env.ok(&["create", "main"]);
        let first = env.ok(&["launch", &env.name("main")]);
        assert!(first.contains("downloading venv packages"), "{first}");

        env.ok(&["create", "feat", "--from", &env.name("main")]);
        let second = env.ok(&["launch", &env.name("feat")]);
        assert!(
            second.contains(&format!("seeded `.venv` from `{}`", env.name("main")))
                && second.contains("seeded `node_modules`"),
            "{second}"
        );
        assert!(
            !second.contains("downloading"),
            "setup found them: {second}"
        );

        let (main, feat) = (env.clone_path("main"), env.clone_path("feat"));
        let (main_s, feat_s) = (main.display().to_string(), feat.display().to_string());
        let venv = feat.join(".venv");
        let read = |path: &str| std::fs::read_to_string(venv.join(path)).unwrap();
        assert_eq!(
            read("bin/pip"),
            format!("#!{feat_s}/.venv/bin/python\necho pip\n")
        );
        assert!(
            is_executable(&venv.join("bin/pip")),
            "the rewrite kept its mode"
        );
        assert!(read("pyvenv.cfg").contains(&format!("venv {feat_s}/.venv")));
        assert_eq!(read("lib/editable.pth"), format!("{feat_s}/src\n"));
        assert_eq!(
            read("lib/other.pth"),
            format!("{main_s}-2/src\n"),
            "another path that starts alike is not the clone's"
        );
        assert_eq!(
            std::fs::read_link(venv.join("bin/pip-link")).unwrap(),
            feat.join(".venv/bin/pip")
        );
        assert_eq!(
            std::fs::read(venv.join("lib/compiled.so.1")).unwrap(),
            format!("bin\0{main_s}\n").into_bytes(),
            "a binary file is left as it was"
        );
        // The volume came from main's volume (rewritten there too), and is
        // feat's own.
        assert_eq!(
            run_in(&env, "feat", "cat node_modules/installed").trim(),
            feat_s
        );
        run_in(&env, "feat", "touch node_modules/feat-only .venv/feat-only");
        assert_eq!(
            run_in(&env, "main", "ls node_modules .venv")
                .matches("feat-only")
                .count(),
            0,
            "installing in the child leaves the parent as it was"
        );
        assert!(!main.join(".venv/feat-only").exists());
        assert!(feat.join(".venv/feat-only").exists());
    });
}

#[test]
fn seeding_follows_no_link_of_the_parent_s_and_keeps_what_the_branch_has() {
    each_engine("seeding links", |kind| {
        let config = format!(
            "image = \"{}\"\nseed = [\".venv\", \"vendor/bundle\"]\nsetup = \"mkdir -p .venv && touch .venv/own\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "main"]);
        env.ok(&["launch", &env.name("main")]);
        // The parent's container made its `.venv` a link to a host
        // directory (the user's secrets, say) and `vendor/bundle` a link
        // to the user's home.
        let secrets = env.dir.path().join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("key"), "secret").unwrap();
        let main = env.clone_path("main");
        std::fs::remove_dir_all(main.join(".venv")).unwrap();
        std::os::unix::fs::symlink(&secrets, main.join(".venv")).unwrap();
        std::fs::create_dir_all(main.join("vendor")).unwrap();
        std::os::unix::fs::symlink(env.home(), main.join("vendor/bundle")).unwrap();

        env.ok(&["create", "feat"]);
        let launched = env.ok(&["launch", &env.name("feat"), "-v"]);
        assert!(!launched.contains("seeded `"), "{launched}");
        let feat = env.clone_path("feat");
        assert!(!feat.join(".venv/key").exists(), "nothing of the link's");
        assert!(feat.join(".venv/own").exists(), "setup made its own");
        assert!(!feat.join("vendor/bundle").exists());

        // A branch that has the directory already (here, a link it
        // committed) keeps it: a seed never writes over it.
        let source = env.source();
        std::os::unix::fs::symlink("/nonexistent", source.join(".venv")).unwrap();
        env.git(&source, &["checkout", "-qb", "linked"]);
        env.git(&source, &["add", ".venv"]);
        env.git(&source, &["commit", "-qm", "a link"]);
        std::fs::remove_file(main.join(".venv")).unwrap();
        std::fs::create_dir_all(main.join(".venv")).unwrap();
        std::fs::write(main.join(".venv/from-main"), "").unwrap();
        env.ok(&["create", "linked"]);
        let launched = env.run(&["launch", &env.name("linked")]);
        let linked = env.clone_path("linked");
        assert_eq!(
            std::fs::read_link(linked.join(".venv")).unwrap(),
            Path::new("/nonexistent"),
            "{launched:?}"
        );
    });
}

#[test]
fn a_branch_seeds_only_what_its_parent_s_config_offers() {
    each_engine("seeding offers", |kind| {
        let config = format!(
            "image = \"{}\"\nseed = [\".venv\"]\nsetup = \"mkdir -p .venv && touch .venv/own\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "main"]);
        env.ok(&["launch", &env.name("main")]);
        // The user's secret in main's clone (put there by `dual sync`, say).
        let main = env.clone_path("main");
        std::fs::create_dir_all(main.join("secrets")).unwrap();
        std::fs::write(main.join("secrets/key"), "secret").unwrap();

        // A pull request's branch asks for it.
        let source = env.source();
        env.git(&source, &["checkout", "-qb", "pr"]);
        std::fs::write(
            source.join(".dual.toml"),
            config.replace("seed = [\".venv\"]", "seed = [\".venv\", \"secrets\"]"),
        )
        .unwrap();
        env.git(&source, &["commit", "-qam", "seed main's secrets"]);
        env.ok(&["create", "pr"]);
        let output = env.run(&["launch", &env.name("pr"), "-v"]);
        assert!(output.status.success(), "{output:?}");
        let launched = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let pr = env.clone_path("pr");
        assert!(!pr.join("secrets/key").exists(), "{launched}");
        assert!(
            launched.contains("`secrets` not seeded: the `seed` of"),
            "{launched}"
        );
        // What main offers is still copied.
        assert!(launched.contains("seeded `.venv` from"), "{launched}");
    });
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Serves three tiny wheels (one with a console script) and a fourth, with
/// Python's `http.server`, which logs each request: the packages a test's
/// workspaces install, from a container the test started.
const WHEELHOUSE: &str = r#"
import os, zipfile
os.makedirs("/wheels", exist_ok=True)
for name in ["pkga", "pkgb", "pkgc", "extra"]:
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": "def main():\n    import sys\n    print(sys.prefix)\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\n{name}-where = {name}:main\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(f"/wheels/{name}-1.0-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
os.chdir("/wheels")
import http.server
http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port=8000, bind="0.0.0.0")
"#;

/// The wheelhouse's requests so far (its log), once it answers.
fn wheelhouse_log(kind: EngineKind, container: &str) -> String {
    let output = std::process::Command::new(kind.program())
        .args(["logs", container])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_seeded_venv_downloads_nothing_again_and_is_the_child_s() {
    each_engine("seeded venv", |kind| {
        if !have_debian_images(kind, "seeded venv", &[PYTHON]) {
            return;
        }
        let _heavy = crate::support::heavy();
        let env = TestEnv::new(Some(kind), "");
        let server = format!("{}-wheelhouse", env.repo);
        let started = env.engine(&[
            "run",
            "-d",
            "--name",
            &server,
            "--label",
            &env.repo_label(),
            PYTHON,
            "python3",
            "-u",
            "-c",
            WHEELHOUSE,
        ]);
        assert!(started.status.success(), "{started:?}");
        let address = crate::support::wait_for(Duration::from_secs(30), "the wheelhouse", || {
            let inspected = env.engine(&[
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                &server,
            ]);
            let address = String::from_utf8_lossy(&inspected.stdout).trim().to_owned();
            let log = wheelhouse_log(kind, &server);
            if !address.is_empty() && log.contains("Serving HTTP") {
                Ok(address)
            } else {
                Err(log)
            }
        });
        let links =
            format!("--no-index --find-links http://{address}:8000/ --trusted-host {address}");
        let config = format!(
            "image = \"{PYTHON}\"\nseed = [\".venv\"]\nsetup = \"python3 -m venv .venv && echo $PWD/src > .venv/lib/python3.11/site-packages/mysrc.pth && .venv/bin/pip install {links} -r requirements.txt\"\n"
        );
        commit(
            &env,
            &[
                (".dual.toml", &config),
                ("requirements.txt", "pkga==1.0\npkgb==1.0\npkgc==1.0\n"),
                (
                    "src/mysrc.py",
                    "import os\nWHERE = os.path.dirname(__file__)\n",
                ),
            ],
        );
        env.ok(&["create", "main"]);
        let first = env.ok(&["launch", &env.name("main")]);
        let wheels = |log: &str| log.lines().filter(|l| l.contains(".whl")).count();
        let downloaded = wheels(&wheelhouse_log(kind, &server));
        assert_eq!(downloaded, 3, "{first}");

        env.ok(&["create", "feat"]);
        let before = wheelhouse_log(kind, &server).lines().count();
        let second = env.ok(&["launch", &env.name("feat")]);
        assert!(second.contains("seeded `.venv`"), "{second}");
        assert_eq!(
            second.matches("Requirement already satisfied").count(),
            3,
            "pip found every package installed: {second}"
        );
        let log = wheelhouse_log(kind, &server);
        assert_eq!(
            log.lines().count(),
            before,
            "no request at all reached the wheelhouse: {log}"
        );

        let feat = env.clone_path("feat").display().to_string();
        let main = env.clone_path("main").display().to_string();
        let script =
            std::fs::read_to_string(env.clone_path("feat").join(".venv/bin/pkga-where")).unwrap();
        assert!(
            script.starts_with(&format!("#!{feat}/.venv/bin/python")),
            "{script}"
        );
        let pip = std::fs::read_to_string(env.clone_path("feat").join(".venv/bin/pip")).unwrap();
        assert!(
            pip.starts_with(&format!("#!{feat}/.venv/bin/python")),
            "{pip}"
        );
        let name = env.name("feat");
        let prefix = env.ok(&["run", "-w", &name, ".venv/bin/pkga-where"]);
        assert_eq!(prefix.trim(), format!("{feat}/.venv"));
        let source = env.ok(&[
            "run",
            "-w",
            &name,
            ".venv/bin/python",
            "-c",
            "import mysrc; print(mysrc.WHERE)",
        ]);
        assert_eq!(
            source.trim(),
            format!("{feat}/src"),
            "the .pth is the child's"
        );

        // A package installed in the child is the child's alone.
        let extra = format!(".venv/bin/pip install {links} extra==1.0");
        env.ok(&["run", "-w", &name, "sh", "-c", &extra]);
        let site = "lib/python3.11/site-packages/extra";
        assert!(Path::new(&feat).join(".venv").join(site).exists());
        assert!(!Path::new(&main).join(".venv").join(site).exists());
    });
}

/// As an ordinary user (rootful docker, rootless podman): the cache volume
/// is the user's to write, and a seed copies as the user, who owns the copy.
#[test]
fn an_ordinary_user_writes_the_cache_and_owns_the_seeded_copy() {
    let Some(user) = crate::support::rootless_user("deps as a user") else {
        return;
    };
    let script = r#"printf 'image = "dual-test:latest"\nseed = [".venv"]\nsetup = "mkdir -p .venv/bin && echo $PWD > .venv/bin/where"\n' > .dual.toml
git -c user.email=t@t -c user.name=t commit -qam deps
"$DUAL" add --name dp >/dev/null && "$DUAL" create main >/dev/null && "$DUAL" launch dp-main >/dev/null
cd "$T/root/dp/main"
"$DUAL" run sh -c 'mkdir -p "$PIP_CACHE_DIR" && touch "$PIP_CACHE_DIR/written" && echo cache=writable'
cd / && "$DUAL" create feat >/dev/null && "$DUAL" launch dp-feat
cd "$T/root/dp/feat"
echo "where=$(cat .venv/bin/where)"
echo "owner=$(stat -c %u .venv/bin/where)"
"$DUAL" run sh -c 'ls "$PIP_CACHE_DIR"'
cd / && "$DUAL" destroy dp-feat --force >/dev/null && "$DUAL" destroy dp-main --force >/dev/null
"$DUAL" repo remove dp >/dev/null && "$DUAL" prune --yes >/dev/null && echo pruned
"#;
    let uid = crate::support::uid_of(&user);
    for kind in crate::support::engines().iter().copied() {
        eprintln!("--- deps as {user} on {kind}");
        let (output, dir) = crate::support::as_user(&user, kind, script);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if crate::support::docker_refused(kind, "deps as a user", &user, &stderr) {
            continue;
        }
        assert!(output.status.success(), "{stdout}\n{stderr}");
        let feat = dir.path().join("root/dp/feat");
        for expected in [
            "cache=writable\n".to_owned(),
            "seeded `.venv` from `dp-main`".to_owned(),
            format!("where={}\n", feat.display()),
            format!("owner={uid}\n"),
            "written\n".to_owned(),
            "pruned\n".to_owned(),
        ] {
            assert!(
                stdout.contains(&expected),
                "no `{expected}` in:\n{stdout}\n{stderr}"
            );
        }
    }
}
