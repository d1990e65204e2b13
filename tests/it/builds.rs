//! A workspace image built from the repo's Dockerfile (`build = { … }` in
//! `.dual.toml`), end to end on each engine: one image for every workspace
//! of the repo, built once; rebuilt only when the Dockerfile or a file it
//! copies changes, which recreates the container with its clone and
//! volumes kept; a failed build names its step and changes nothing; and
//! what a hostile repo writes there is refused before anything is built.

use std::process::{Output, Stdio};

use crate::support::{EngineKind, dual_path, each_engine, ensure_test_image};
use crate::workspaces::TestEnv;

const CONFIG: &str = "build = { dockerfile = \"Dockerfile\" }\nanonymous_volumes = [\"data\"]\n";

/// Copies one file and writes a marker: that file's text, a value no other
/// build writes (so a second build shows), and whether its `RUN` step had a
/// network interface besides loopback (no traffic is sent).
const DOCKERFILE: &str = "FROM dual-test:latest
COPY one.txt /opt/one.txt
RUN { cat /opt/one.txt; cat /proc/sys/kernel/random/uuid; \
if grep -q eth0 /proc/net/dev; then echo network; else echo offline; fi; } > /opt/marker
";

/// This env's built images (see `workspaces::built_images`).
fn built_tags(env: &TestEnv) -> Vec<String> {
    crate::workspaces::built_images(
        env,
        "workspace-build",
        &format!("dual-workspace/{}:", env.repo),
    )
}

/// Removes this env's built images when the test ends.
fn removed_at_end(env: &TestEnv) -> crate::workspaces::BuiltImages<'_> {
    crate::workspaces::BuiltImages {
        env,
        built: built_tags,
    }
}

/// A repo whose source holds `.dual.toml` = `config` and `files`, committed.
fn repo(kind: EngineKind, config: &str, files: &[(&str, &str)]) -> TestEnv {
    ensure_test_image(kind);
    let env = TestEnv::new(Some(kind), config);
    let source = env.source();
    for (path, text) in files {
        let path = source.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    if !files.is_empty() {
        env.git(&source, &["add", "."]);
        env.git(&source, &["commit", "-qm", "files"]);
    }
    env
}

fn transcript(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn launch(env: &TestEnv, branch: &str) -> String {
    let output = env.run(&["launch", &env.name(branch)]);
    let text = transcript(&output);
    assert!(output.status.success(), "launch {branch}:\n{text}");
    text
}

/// The image the container of `branch` runs, and its id.
fn container_of(env: &TestEnv, branch: &str) -> (String, String) {
    let container = format!("dual-{}", env.name(branch));
    crate::workspaces::image_and_id(env, &container)
}

/// What `sh -c SCRIPT` prints in the workspace of `branch`.
fn inside(env: &TestEnv, branch: &str, script: &str) -> String {
    let output = env.run_in(branch, "", &["sh", "-c", script]);
    assert!(output.status.success(), "{script}: {}", transcript(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn one_image_serves_every_workspace_and_is_rebuilt_only_when_what_it_uses_changes() {
    each_engine("builds_shared", |kind: EngineKind| {
        let env = repo(
            kind,
            CONFIG,
            &[
                ("Dockerfile", DOCKERFILE),
                ("one.txt", "one v1\n"),
                ("other.txt", "not copied\n"),
            ],
        );
        let _images = removed_at_end(&env);
        let branches = ["main", "b", "c"];
        for branch in branches {
            env.ok(&["create", branch]);
        }

        // Three launches at once: one builds, the others wait and reuse.
        let children: Vec<_> = branches
            .iter()
            .map(|branch| {
                env.command(dual_path())
                    .current_dir(env.dir.path())
                    .args(["launch", &env.name(branch)])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<String> = children
            .into_iter()
            .map(|child| {
                let output = child.wait_with_output().unwrap();
                let text = transcript(&output);
                assert!(output.status.success(), "{text}");
                text
            })
            .collect();
        let building = outputs
            .iter()
            .filter(|text| text.contains("workspace image: building `dual-workspace/"))
            .count();
        assert_eq!(building, 1, "built once:\n{}", outputs.join("\n---\n"));
        let builder = outputs
            .iter()
            .find(|text| text.contains("workspace image: building `"))
            .unwrap();
        assert!(builder.contains("what its Dockerfile uses"), "{builder}");
        assert!(
            builder.contains("(1 file") || builder.contains("(2 files"),
            "{builder}"
        );
        for text in &outputs {
            assert!(
                text.contains("workspace image: building `") || text.contains("is built already"),
                "{text}"
            );
        }
        let tags = built_tags(&env);
        assert_eq!(tags.len(), 1, "{tags:?}");
        let marker = inside(&env, "main", "cat /opt/marker");
        assert!(marker.starts_with("one v1\n"), "{marker}");
        assert!(
            marker.ends_with("network\n"),
            "a workspace build has the network: {marker}"
        );
        for branch in branches {
            assert_eq!(container_of(&env, branch).0, tags[0], "{branch}");
            assert_eq!(inside(&env, branch, "cat /opt/marker"), marker, "{branch}");
        }

        // State the recreation must keep: a file in a volume, one in the clone.
        inside(&env, "main", "echo kept > data/in-volume");
        std::fs::write(env.clone_path("main").join("in-clone"), "kept\n").unwrap();
        let (_, main_id) = container_of(&env, "main");

        // A file the Dockerfile does not copy: nothing is built or made again.
        std::fs::write(env.clone_path("main").join("other.txt"), "changed\n").unwrap();
        std::fs::write(env.clone_path("main").join("new-file"), "new\n").unwrap();
        let again = launch(&env, "main");
        assert!(again.contains("is built already"), "{again}");
        assert!(!again.contains("building `"), "{again}");
        assert!(again.contains("already running"), "{again}");
        assert_eq!(container_of(&env, "main"), (tags[0].clone(), main_id));
        assert_eq!(built_tags(&env), tags);

        // The Dockerfile changes: rebuilt, and the container made again
        // from the new image, with its clone and volumes.
        let dockerfile = env.clone_path("main").join("Dockerfile");
        // (Before the `RUN`, so that the engine's cache does not keep its
        // marker.)
        let changed = DOCKERFILE.replacen('\n', "\nENV CHANGED=1\n", 1);
        std::fs::write(&dockerfile, changed).unwrap();
        let changed = launch(&env, "main");
        assert!(changed.contains("building `dual-workspace/"), "{changed}");
        assert!(changed.contains("recreated"), "{changed}");
        let now = built_tags(&env);
        assert_eq!(now.len(), 2, "{now:?}");
        let (main_image, _) = container_of(&env, "main");
        assert_ne!(main_image, tags[0]);
        assert!(now.contains(&main_image), "{main_image} not in {now:?}");
        assert_ne!(
            inside(&env, "main", "cat /opt/marker"),
            marker,
            "a new build"
        );
        assert_eq!(inside(&env, "main", "cat data/in-volume"), "kept\n");
        assert_eq!(inside(&env, "main", "echo $CHANGED"), "1\n");
        assert_eq!(
            std::fs::read_to_string(env.clone_path("main").join("in-clone")).unwrap(),
            "kept\n"
        );

        // b's Dockerfile did not change: its image and container stay.
        let (b_image, b_id) = container_of(&env, "b");
        let b = launch(&env, "b");
        assert!(b.contains("already running"), "{b}");
        assert_eq!(container_of(&env, "b"), (b_image, b_id));
    });
}

#[test]
fn a_failed_build_names_its_step_and_leaves_the_workspace_as_it_was() {
    each_engine("builds_fail", |kind: EngineKind| {
        let failing = "FROM dual-test:latest\nRUN echo about-to-fail && exit 3\n";
        let env = repo(kind, CONFIG, &[("Dockerfile", failing), ("one.txt", "x\n")]);
        let _images = removed_at_end(&env);
        env.ok(&["create", "main"]);

        // A first launch: nothing is left behind, the workspace stays lazy.
        let stderr = env.fails(&["launch", &env.name("main")]);
        assert!(stderr.contains("workspace image: building `"), "{stderr}");
        assert!(stderr.contains("failed (exit status 3)"), "{stderr}");
        assert!(stderr.to_ascii_lowercase().contains("step 2/"), "{stderr}");
        assert!(stderr.contains("RUN echo about-to-fail"), "{stderr}");
        assert!(stderr.contains("| about-to-fail"), "its output: {stderr}");
        assert!(stderr.contains("hint: fix the Dockerfile"), "{stderr}");
        assert!(built_tags(&env).is_empty());
        assert!(env.containers().is_empty(), "{:?}", env.containers());
        assert!(!env.clone_path("main").exists(), "the failed clone stays");

        // Fixed in the source: it launches.
        std::fs::write(env.source().join("Dockerfile"), DOCKERFILE).unwrap();
        env.git(&env.source(), &["commit", "-qam", "fixed"]);
        launch(&env, "main");
        let before = container_of(&env, "main");

        // Broken in the clone: the running container is not touched.
        std::fs::write(env.clone_path("main").join("Dockerfile"), failing).unwrap();
        let stderr = env.fails(&["launch", &env.name("main")]);
        assert!(stderr.contains("failed (exit status 3)"), "{stderr}");
        assert_eq!(container_of(&env, "main"), before);
        assert_eq!(built_tags(&env).len(), 1);
        assert!(inside(&env, "main", "cat /opt/marker").starts_with("x\n"));
    });
}

#[test]
fn a_base_image_with_onbuild_triggers_makes_the_whole_context_count() {
    each_engine("builds_onbuild", |kind: EngineKind| {
        ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), CONFIG);
        let _images = removed_at_end(&env);
        // A base of the test's own, labelled with its repo (so its Drop
        // removes it with the rest), with a trigger that copies everything.
        let base = format!("dual-workspace/{}:onbuild-base", env.repo);
        let context = tempfile::tempdir().unwrap();
        std::fs::write(
            context.path().join("Dockerfile"),
            "FROM dual-test:latest\nLABEL dual.kind=workspace-build\nONBUILD COPY . /all\n",
        )
        .unwrap();
        let mut build = env.command(kind.program());
        build.env("DOCKER_BUILDKIT", "0");
        build.args(["build", "-q", "-t", &base]);
        if kind == EngineKind::Podman {
            build.args(["--format", "docker"]);
        }
        let output = build.arg(context.path()).output().unwrap();
        assert!(output.status.success(), "{}", transcript(&output));

        let dockerfile = format!("FROM {base}\nCOPY one.txt /opt/one.txt\n");
        let source = env.source();
        std::fs::write(source.join("Dockerfile"), dockerfile).unwrap();
        std::fs::write(source.join("one.txt"), "one\n").unwrap();
        std::fs::write(source.join("other.txt"), "other\n").unwrap();
        env.git(&source, &["add", "."]);
        env.git(&source, &["commit", "-qm", "files"]);
        env.ok(&["create", "main"]);
        let first = launch(&env, "main");
        assert!(
            first.contains("the whole context, as its base image") && first.contains("ONBUILD"),
            "{first}"
        );
        assert_eq!(inside(&env, "main", "cat /all/other.txt"), "other\n");
    });
}

/// A repo's hostile `build` is refused before anything is built, naming
/// what is wrong; nothing is left behind.
#[test]
fn a_hostile_build_is_refused_before_anything_is_built() {
    each_engine("builds_hostile", |kind: EngineKind| {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                CONFIG,
                "FROM dual-test:latest\nCOPY ../../etc/passwd /p\n",
                &[
                    "line 2 of `Dockerfile`",
                    "`../../etc/passwd` leaves the build context",
                ],
            ),
            (
                CONFIG,
                "FROM dual-test:latest\nCOPY linked/passwd /p\n",
                &["`linked/passwd` is (or passes through) a symbolic link"],
            ),
            (
                "build = { dockerfile = \"Dockerfile\", args = { \"--x\" = \"1\" } }\n",
                "FROM dual-test:latest\n",
                &["build.args", "--x"],
            ),
            (
                "build = { dockerfile = \"Dockerfile\", target = \"-x\" }\n",
                "FROM dual-test:latest\n",
                &["build.target", "-x", "not a build stage name"],
            ),
            (
                "build = { dockerfile = \"--file=/etc/passwd\" }\n",
                "FROM dual-test:latest\n",
                &["build.dockerfile"],
            ),
            (
                "build = { context = \"..\" }\n",
                "FROM dual-test:latest\n",
                &["build.context"],
            ),
        ];
        for (config, dockerfile, said) in cases {
            let env = repo(kind, config, &[("Dockerfile", dockerfile)]);
            std::os::unix::fs::symlink("/etc", env.source().join("linked")).unwrap();
            env.git(&env.source(), &["add", "linked"]);
            env.git(&env.source(), &["commit", "-qm", "a link"]);
            env.ok(&["create", "main"]);
            let stderr = env.fails(&["launch", &env.name("main")]);
            for words in *said {
                assert!(stderr.contains(words), "{config}{dockerfile}: {stderr}");
            }
            assert!(!stderr.contains("building `"), "{stderr}");
            // `.dual.toml`'s own errors name the file, key and line instead.
            assert!(
                stderr.contains("hint: ") || stderr.contains(".dual.toml`: `build."),
                "{stderr}"
            );
            assert!(env.containers().is_empty());
            assert!(built_tags(&env).is_empty());
        }

        // A Dockerfile that is a link is not read.
        let env = repo(kind, CONFIG, &[]);
        std::os::unix::fs::symlink("/etc/passwd", env.source().join("Dockerfile")).unwrap();
        env.git(&env.source(), &["add", "Dockerfile"]);
        env.git(&env.source(), &["commit", "-qm", "a linked Dockerfile"]);
        env.ok(&["create", "main"]);
        let stderr = env.fails(&["launch", &env.name("main")]);
        assert!(
            stderr.contains("Dockerfile") && stderr.contains("symbolic link"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("root:x:0"),
            "the host's file was read: {stderr}"
        );
        assert!(env.containers().is_empty());
    });
}

/// A build's `RUN` steps get none of the host's environment: not its
/// secrets, not a proxy URL with the user's credentials in it (which
/// podman passes on by itself unless told not to).
#[test]
fn a_build_step_sees_none_of_the_host_s_environment() {
    each_engine("build env", |kind| {
        let dockerfile = "FROM dual-test:latest\nRUN env > /build-env\n";
        let env = repo(
            kind,
            "build = { dockerfile = \"Dockerfile\" }\nports = []\n",
            &[("Dockerfile", dockerfile)],
        );
        let _images = removed_at_end(&env);
        env.ok(&["create", "main"]);
        let launched = env
            .cmd(&["launch", &env.name("main")])
            .env("AWS_SECRET_ACCESS_KEY", "hunter2")
            .env("HTTPS_PROXY", "http://me:hunter2@proxy.invalid:3128")
            .env("http_proxy", "http://me:hunter2@proxy.invalid:3128")
            .output()
            .unwrap();
        assert!(launched.status.success(), "{}", transcript(&launched));
        let seen = inside(&env, "main", "cat /build-env; echo; env");
        assert!(seen.contains("PATH="), "{seen}");
        assert!(!seen.contains("hunter2"), "{seen}");
    });
}

/// On a terminal the engine's build output is shown as it comes, and what
/// the repo's `RUN` steps print in it reaches the terminal escaped: an
/// escape sequence there would retitle the window or rewrite what dual
/// printed.
#[test]
fn a_build_step_s_escape_sequences_reach_the_terminal_escaped() {
    if dual::process::find_on_path("script").is_none() {
        eprintln!("!!!!! SKIPPED build output on a terminal: no `script` (util-linux) on PATH");
        return;
    }
    each_engine("build on a terminal", |kind| {
        let dockerfile = "FROM dual-test:latest\nRUN printf 'step says \\033]0;pwned\\007 and \\033[2J done\\n'\n";
        let env = repo(
            kind,
            "build = { dockerfile = \"Dockerfile\" }\nports = []\n",
            &[("Dockerfile", dockerfile)],
        );
        let _images = removed_at_end(&env);
        env.ok(&["create", "main"]);
        let line = format!("{} launch {}", dual_path().display(), env.name("main"));
        let output = env
            .command("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{shown}");
        assert!(shown.contains("step says"), "the build is shown: {shown}");
        assert!(!shown.contains("\u{1b}]0;pwned"), "{shown:?}");
        assert!(!shown.contains("\u{1b}[2J"), "{shown:?}");
        assert!(shown.contains("\\u{1b}]0;pwned"), "{shown:?}");
    });
}
