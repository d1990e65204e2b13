//! The container is a boundary (issue 16, items 5, 6, 7 and 11), tested with
//! hostile repos on each engine: a routed command runs in the workspace's
//! container or refuses, never on the host; a repo cannot route commands
//! that handle secrets or shadow shell builtins; shims pass every argument
//! through; and the shims stay first on PATH whatever the user's rc files
//! prepend (pyenv, nvm, mise, … stand-ins: a directory holding a fake `npm`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{EngineKind, each_engine, ensure_test_image};
use crate::workspaces::{TestEnv, env_of};

/// `$HOME/hostbin`: the host's own programs as a version manager would put
/// them ahead on PATH. Each prints `HOST NAME ARGS` and leaves a marker file
/// in the directory it ran in, so a test sees the host ran it.
fn host_bin(env: &TestEnv) -> PathBuf {
    let dir = env.home().join("hostbin");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["npm", "curl", "wget", "sudo"] {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"HOST {name} $*\"\ntouch ./ran-on-host-{name} 2>/dev/null\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn shims(env: &TestEnv) -> PathBuf {
    env.dir.path().join("data/shims")
}

/// PATH as `eval "$(dual shell-init)"` leaves it: the shims, then the
/// host's fake programs, then the system's.
fn routed_path(env: &TestEnv) -> String {
    format!(
        "{}:{}:{}",
        shims(env).display(),
        host_bin(env).display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `bash -c SCRIPT` in `dir` with this installation's environment and the
/// shims first on PATH (after `dual shell-init` wrote them).
fn bash_in(env: &TestEnv, dir: &Path, script: &str) -> Output {
    env.ok(&["shell-init", "bash"]);
    Command::new("bash")
        .envs(env_of(env))
        .env("PATH", routed_path(env))
        .current_dir(dir)
        .args(["-c", script])
        .output()
        .unwrap()
}

fn out(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn err(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn both(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        out(output),
        err(output)
    )
}

fn image_config(kind: EngineKind, extra: &str) -> String {
    format!("image = \"{}\"\n{extra}", ensure_test_image(kind))
}

/// Item 7: dual's own options are never read from a routed command's
/// arguments, in a workspace or outside one.
#[test]
fn shims_pass_every_argument_through_untouched() {
    each_engine("shell_boundary_arguments", |kind| {
        let env = TestEnv::new(Some(kind), &image_config(kind, ""));
        env.ok(&["create", "args"]);
        env.ok(&["launch", "args"]);
        let (name, clone) = (env.name("args"), env.clone_path("args"));
        let other_engine = match kind {
            EngineKind::Docker => "podman",
            EngineKind::Podman => "docker",
        };
        for args in [
            format!("--engine {other_engine} -v x"),
            "-v".to_owned(),
            "--verbose".to_owned(),
            "--help".to_owned(),
            "-h".to_owned(),
            "--version".to_owned(),
            "-V".to_owned(),
            "-- a".to_owned(),
            "shim npm".to_owned(),
        ] {
            let output = bash_in(&env, &clone, &format!("npm {args}"));
            assert_eq!(
                out(&output),
                format!("npm in {name}: {args}\n"),
                "in the workspace: {}",
                both(&output)
            );
            // Outside a workspace: the host's own program, same arguments.
            let output = bash_in(&env, env.dir.path(), &format!("curl {args}"));
            assert_eq!(
                out(&output),
                format!("HOST curl {args}\n"),
                "on the host: {}",
                both(&output)
            );
        }

        // An argument that is not UTF-8 reaches the host's program byte for
        // byte, and the container's without dual failing on it.
        let odd = OsStr::from_bytes(b"caf\xe9");
        let run = |dir: &Path| {
            env.ok(&["shell-init", "bash"]);
            Command::new(shims(&env).join("npm"))
                .envs(env_of(&env))
                .env("PATH", routed_path(&env))
                .current_dir(dir)
                .arg(odd)
                .output()
                .unwrap()
        };
        let host = run(env.dir.path());
        assert_eq!(host.stdout, b"HOST npm caf\xe9\n", "{}", both(&host));
        let inside = run(&clone);
        assert!(inside.status.success(), "{}", both(&inside));
        let inside_out = out(&inside);
        eprintln!("{kind}: a non-UTF-8 argument inside arrives as {inside_out:?}");
        assert!(
            inside_out.starts_with(&format!("npm in {name}: caf")),
            "{}",
            both(&inside)
        );
    });
}
