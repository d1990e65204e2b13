//! Data is never lost silently: a recreated container's own files are kept
//! as an image, and `destroy` names (and sizes) every volume it deletes,
//! asks before a sidecar's data goes, and removes sidecars before the
//! container whose network they joined.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

use dual::engine::labels::{SidecarLabels, WorkspaceLabels};

use crate::support::{EngineKind, assert_transcript, each_engine, ensure_test_image};
use crate::workspaces::{TestEnv, text};

/// Removes the images a test's containers were kept as, even when the test
/// fails half-way (TestEnv removes containers and volumes, not images).
struct KeptImages {
    kind: EngineKind,
    container: String,
}

impl KeptImages {
    fn list(&self) -> Vec<String> {
        let output = Command::new(self.kind.program())
            .args([
                "image",
                "ls",
                "--filter",
                &format!("label=dual.kept={}", self.container),
                "--format",
                "{{.Repository}}:{{.Tag}}",
            ])
            .output()
            .unwrap();
        // Podman lists local images as `localhost/NAME`.
        text(&output)
            .lines()
            .map(|line| line.strip_prefix("localhost/").unwrap_or(line).to_owned())
            .collect()
    }
}

impl Drop for KeptImages {
    fn drop(&mut self) {
        for image in self.list() {
            let _ = Command::new(self.kind.program())
                .args(["image", "rm", "--force", &image])
                .output();
        }
    }
}

fn with_env(image: &str, stage: &str) -> String {
    format!("image = \"{image}\"\n[env]\nSTAGE = \"{stage}\"\n")
}

#[test]
fn a_recreated_container_s_own_files_are_kept_as_an_image() {
    each_engine("keep_on_recreate", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &with_env(image, "one"));
        env.ok(&["create", "feat/keep"]);
        env.ok(&["launch", "feat/keep"]);
        let container = format!("dual-{}", env.name("feat/keep"));
        let kept = KeptImages {
            kind,
            container: container.clone(),
        };
        // Through the engine, as root: the test image's /tmp is root's, and
        // who runs the tests must not matter.
        let wrote = env.engine(&[
            "exec",
            "-u",
            "0",
            &container,
            "sh",
            "-c",
            "echo precious > /tmp/keep",
        ]);
        assert!(wrote.status.success(), "{wrote:?}");

        let clone = env.clone_path("feat/keep");
        std::fs::write(clone.join(".dual.toml"), with_env(image, "two")).unwrap();
        let relaunched = env.run(&["launch", "feat/keep"]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&relaunched.stdout),
            String::from_utf8_lossy(&relaunched.stderr),
        );
        assert!(relaunched.status.success(), "{stdout}\n{stderr}");
        assert!(
            stderr.contains(&format!(
                "warning: `{container}` wrote 1 path outside its mounts, which removing it would lose:\n  /tmp/keep\n"
            )),
            "{stderr}"
        );
        assert!(
            stdout.contains("clone and volumes kept, its own files as an image"),
            "{stdout}"
        );
        let images = kept.list();
        assert_eq!(images.len(), 1, "{images:?}\n{stdout}");
        assert!(
            stdout.contains(&format!("kept them as image `{}`", images[0])),
            "{stdout}"
        );
        let read = env.engine(&[
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            &images[0],
            "/tmp/keep",
        ]);
        assert_eq!(text(&read), "precious", "{read:?}");
        // The new container is the new settings' and has no such file.
        let fresh = env.engine(&["exec", &container, "cat", "/tmp/keep"]);
        assert!(!fresh.status.success(), "{fresh:?}");

        // Nothing written since: a recreate keeps nothing and says nothing.
        let again = env.run(&["launch", "--recreate", "feat/keep"]);
        assert!(again.status.success(), "{again:?}");
        let again_err = String::from_utf8_lossy(&again.stderr);
        assert!(!again_err.contains("outside its mounts"), "{again_err}");
        assert!(
            text(&again).contains("(--recreate; clone and volumes kept)"),
            "{}",
            text(&again)
        );
        assert_eq!(kept.list().len(), 1);

        let destroyed = env.ok(&["destroy", "feat/keep", "--force"]);
        assert!(
            destroyed.contains(&format!("  deleted kept image `{}`\n", images[0])),
            "{destroyed}"
        );
        assert!(kept.list().is_empty(), "destroy removes the kept image");
    });
}

/// The labels dual gives sidecar `name` of the workspace of `branch`.
pub fn sidecar_labels(env: &TestEnv, branch: &str, name: &str) -> SidecarLabels {
    let owner = env.owner_label();
    SidecarLabels {
        workspace: WorkspaceLabels {
            owner: owner.trim_start_matches("dual.owner=").to_owned(),
            workspace: env.name(branch),
            repo: env.repo.clone(),
            branch: branch.to_owned(),
            ..WorkspaceLabels::default()
        },
        name: name.to_owned(),
    }
}

/// `(regex, replacement)` for sizes, which depend on the filesystem.
fn sizes() -> Vec<(String, &'static str)> {
    vec![(r"[0-9]+(\.[0-9])? [KMGT]?B\b".to_owned(), "[SIZE]")]
}

#[test]
fn destroy_names_sidecar_data_refuses_without_a_yes_and_removes_sidecars_first() {
    each_engine("destroy_sidecar_data", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &format!("image = \"{image}\"\n"));
        env.ok(&["create", "feat/data"]);
        env.ok(&["launch", "feat/data"]);
        let container = format!("dual-{}", env.name("feat/data"));
        let labels = sidecar_labels(&env, "feat/data", "db");

        // A data volume of sidecar `db`, holding 300 KB.
        let volume = format!("{container}.db-pgdata");
        dual::engine::Engine::new(kind)
            .volume_create(&volume, &labels.volume_labels("pgdata"))
            .unwrap();
        let filled = env.engine(&[
            "run",
            "--rm",
            "-v",
            &format!("{volume}:/d"),
            image,
            "sh",
            "-c",
            "head -c 300000 /dev/zero > /d/data",
        ]);
        assert!(filled.status.success(), "{filled:?}");
        // A sidecar left running in the workspace's network namespace.
        let sidecar = format!("{container}.db");
        let mut create = vec![
            "run".to_owned(),
            "-d".into(),
            "--name".into(),
            sidecar.clone(),
        ];
        for (key, value) in labels.to_labels() {
            create.extend(["--label".into(), format!("{key}={value}")]);
        }
        create.extend([
            format!("--network=container:{container}"),
            image.to_owned(),
            "sleep".into(),
            "300".into(),
        ]);
        let created = env.engine(&create.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(created.status.success(), "{created:?}");

        // Not a terminal, not forced: refused, naming the data, and nothing removed.
        let refused = env.run(&["destroy", "feat/data"]);
        assert_transcript!(
            "destroy-sidecar-data-refused",
            refused,
            env.dir.path(),
            sizes()
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        let size = stderr
            .split("db: pgdata (")
            .nth(1)
            .and_then(|rest| rest.split(" KB)").next())
            .and_then(|kb| kb.parse::<f64>().ok());
        assert!(
            size.is_some_and(|kb| (300.0..400.0).contains(&kb)),
            "the size is measured: {stderr}"
        );
        assert!(env.volumes().contains(&volume), "the data stays");
        assert_eq!(env.containers().len(), 2, "both containers stay");
        assert!(env.clone_path("feat/data").exists());

        let forced = env.run(&["destroy", "feat/data", "--force"]);
        assert_transcript!(
            "destroy-sidecar-data-forced",
            forced,
            env.dir.path(),
            sizes()
        );
        assert!(forced.status.success());
        assert!(env.volumes().is_empty(), "{:?}", env.volumes());
        assert!(env.containers().is_empty(), "{:?}", env.containers());
        assert!(env.list().is_empty());
    });
}

/// Builds `dual-test-hung-du:latest`: the test image whose `du` never ends
/// (as a hostile sidecar image's may not).
fn hung_du_image(kind: EngineKind) -> &'static str {
    let base = ensure_test_image(kind);
    let context = tempfile::tempdir().unwrap();
    let du = context.path().join("du");
    std::fs::write(&du, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::set_permissions(&du, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {base}\nCOPY du /usr/local/bin/du\n"),
    )
    .unwrap();
    let image = "dual-test-hung-du:latest";
    let built = Command::new(kind.program())
        .args(["build", "-q", "-t", image])
        .arg(context.path())
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    image
}

/// Removes a measuring container the test may leave when it fails.
struct Measuring {
    kind: EngineKind,
    name: String,
}

impl Measuring {
    fn exists(&self) -> bool {
        let output = Command::new(self.kind.program())
            .args(["container", "inspect", &self.name])
            .output()
            .unwrap();
        output.status.success()
    }
}

impl Drop for Measuring {
    fn drop(&mut self) {
        let _ = Command::new(self.kind.program())
            .args(["rm", "-f", &self.name])
            .output();
    }
}

#[test]
fn destroy_completes_when_measuring_hangs_and_leaves_no_container() {
    each_engine("destroy_hung_du", |kind| {
        // The workspace's image is the only one its volumes are measured
        // with (no sidecar container runs), and its `du` hangs.
        let image = hung_du_image(kind);
        let env = TestEnv::new(Some(kind), &format!("image = \"{image}\"\n"));
        env.ok(&["create", "feat/hung"]);
        env.ok(&["launch", "feat/hung"]);
        let volume = format!("dual-{}.db.pgdata", env.name("feat/hung"));
        dual::engine::Engine::new(kind)
            .volume_create(
                &volume,
                &sidecar_labels(&env, "feat/hung", "db").volume_labels("pgdata"),
            )
            .unwrap();
        let measuring = Measuring {
            kind,
            name: format!("{volume}.size"),
        };

        let started = Instant::now();
        let destroyed = env
            .cmd(&["destroy", "feat/hung", "--force"])
            .env("DUAL_MEASURE_TIMEOUT", "2")
            .output()
            .unwrap();
        let took = started.elapsed();
        let (stdout, stderr) = (text(&destroyed), String::from_utf8_lossy(&destroyed.stderr));
        assert!(destroyed.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("db: pgdata (size unknown)"),
            "{stdout}\n{stderr}"
        );
        assert!(took < Duration::from_secs(40), "{took:?}");
        assert!(!measuring.exists(), "the measuring container is removed");
        assert!(env.volumes().is_empty(), "{:?}", env.volumes());
        assert!(env.containers().is_empty(), "{:?}", env.containers());
    });
}

/// A compose file nesting `${…}` 5000 deep once overflowed dual's stack
/// wherever a workspace's config is read: now it is an error value, which
/// `list` and `destroy` pass over.
#[test]
fn a_hostile_compose_file_does_not_crash_list_or_destroy() {
    let env = TestEnv::new(None, "");
    let source = env.source();
    let value = format!("{}x{}", "${A:-".repeat(5000), "}".repeat(5000));
    std::fs::write(
        source.join("compose.yaml"),
        format!("services:\n  db:\n    image: pg\n    environment:\n      X: '{value}'\n"),
    )
    .unwrap();
    env.git(&source, &["add", "."]);
    env.git(&source, &["commit", "-qm", "nested"]);
    env.ok(&["create", "feat/nested"]);
    let listed = env.list();
    assert_eq!(listed.len(), 1, "{listed:?}");
    env.ok(&["destroy", "feat/nested", "--force"]);
    assert!(env.list().is_empty());
}
