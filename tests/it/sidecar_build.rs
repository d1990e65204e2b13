//! A compose service with `build:` end to end: its image is built once per
//! content of its context and shared by the repo's workspaces; a change to
//! its Dockerfile in one clone rebuilds for that workspace only and
//! recreates its sidecar.

use std::time::Duration;

use crate::support::{EngineKind, each_engine, ensure_test_image, eventually};
use crate::workspaces::TestEnv;

const COMPOSE: &str = "services:\n  echo:\n    build: ./echo\n    ports: [\"5999\"]\n";
const DOCKERFILE: &str =
    "FROM dual-test:latest\nUSER 1000:1000\nCMD [\"httpd\", \"-f\", \"-p\", \"5999\"]\n";

/// This env's built images (see `workspaces::built_images`).
fn built_tags(env: &TestEnv) -> Vec<String> {
    crate::workspaces::built_images(
        env,
        "sidecar-build",
        &format!("dual-build/{}-echo:", env.repo),
    )
}

/// Removes this env's built images when the test ends.
fn removed_at_end(env: &TestEnv) -> crate::workspaces::BuiltImages<'_> {
    crate::workspaces::BuiltImages {
        env,
        built: built_tags,
    }
}

/// The image the `echo` sidecar of `branch` runs, and its container's id.
fn sidecar_of(env: &TestEnv, branch: &str) -> (String, String) {
    let container = format!("dual-{}.echo", env.name(branch));
    crate::workspaces::image_and_id(env, &container)
}

/// Whether something listens on :5999 in the workspace of `branch`, as
/// its own processes see it.
fn listens(env: &TestEnv, branch: &str) -> bool {
    let check = "grep -qE ':176F [0-9A-F]+:0000 0A' /proc/net/tcp /proc/net/tcp6";
    env.run_in(branch, "", &["sh", "-c", check])
        .status
        .success()
}

fn launch(env: &TestEnv, branch: &str) -> String {
    let output = env.run(&["launch", &env.name(branch)]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "launch {branch}:\n{text}");
    text
}

#[test]
fn a_built_sidecar_is_built_once_per_context_and_shared() {
    each_engine("sidecar_build", |kind: EngineKind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &format!("image = \"{image}\"\n"));
        let _images = removed_at_end(&env);
        let source = env.source();
        std::fs::create_dir_all(source.join("echo")).unwrap();
        std::fs::write(source.join("compose.yaml"), COMPOSE).unwrap();
        std::fs::write(source.join("echo/Dockerfile"), DOCKERFILE).unwrap();
        env.git(&source, &["add", "."]);
        env.git(&source, &["commit", "-qm", "echo sidecar"]);
        for branch in ["main", "b"] {
            env.ok(&["create", branch]);
        }

        let first = launch(&env, "main");
        assert!(
            first.contains("sidecar `echo`: building `dual-build/"),
            "{first}"
        );
        assert!(first.contains("no network"), "{first}");
        assert!(first.contains("sidecar `echo`: created"), "{first}");
        let tags = built_tags(&env);
        assert_eq!(tags.len(), 1, "{tags:?}");

        let second = launch(&env, "b");
        assert!(
            second.contains("is built already (same context), reused"),
            "{second}"
        );
        assert!(!second.contains("building `"), "{second}");
        assert_eq!(built_tags(&env), tags, "built once for both");
        for branch in ["main", "b"] {
            assert_eq!(sidecar_of(&env, branch).0, tags[0]);
            assert!(
                eventually(Duration::from_secs(20), || listens(&env, branch)),
                "nothing listens on :5999 in {branch}"
            );
        }
        let (_, main_container) = sidecar_of(&env, "main");

        // A change to the Dockerfile in b's clone: b alone rebuilds and its
        // sidecar is made again from the new image.
        let dockerfile = env.clone_path("b").join("echo/Dockerfile");
        std::fs::write(&dockerfile, format!("{DOCKERFILE}ENV CHANGED=1\n")).unwrap();
        let changed = launch(&env, "b");
        assert!(changed.contains("building `dual-build/"), "{changed}");
        assert!(changed.contains("sidecar `echo`: recreated"), "{changed}");
        let now = built_tags(&env);
        assert_eq!(now.len(), 2, "{now:?}");
        let (b_image, _) = sidecar_of(&env, "b");
        assert_ne!(b_image, tags[0]);
        assert!(now.contains(&b_image), "{b_image} not in {now:?}");
        assert!(
            eventually(Duration::from_secs(20), || listens(&env, "b")),
            "nothing listens on :5999 in b after its rebuild"
        );

        // main's context did not change: its image and sidecar stay.
        let again = launch(&env, "main");
        assert!(again.contains("reused"), "{again}");
        assert!(again.contains("sidecar `echo`: already running"), "{again}");
        assert_eq!(sidecar_of(&env, "main"), (tags[0].clone(), main_container));
    });
}

#[test]
fn a_failed_build_names_its_step_and_shows_its_last_lines() {
    each_engine("sidecar_build_fails", |kind: EngineKind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &format!("image = \"{image}\"\n"));
        let _images = removed_at_end(&env);
        let source = env.source();
        std::fs::create_dir_all(source.join("echo")).unwrap();
        std::fs::write(source.join("compose.yaml"), COMPOSE).unwrap();
        std::fs::write(
            source.join("echo/Dockerfile"),
            "FROM dual-test:latest\nRUN echo about-to-fail && exit 3\n",
        )
        .unwrap();
        env.git(&source, &["add", "."]);
        env.git(&source, &["commit", "-qm", "echo sidecar"]);
        env.ok(&["create", "main"]);
        let stderr = env.fails(&["launch", &env.name("main")]);
        assert!(
            stderr.contains("sidecar `echo`: building `dual-build/"),
            "{stderr}"
        );
        assert!(stderr.contains("failed (exit status"), "{stderr}");
        // The second step (the labels dual adds may count as more).
        assert!(stderr.to_ascii_lowercase().contains("step 2/"), "{stderr}");
        assert!(stderr.contains("about-to-fail"), "{stderr}");
        assert!(stderr.contains("--network=none"), "{stderr}");
        assert!(built_tags(&env).is_empty());
    });
}
