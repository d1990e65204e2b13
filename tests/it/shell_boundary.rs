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
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::support::{
    EngineKind, Tmux, dual_path, each_engine, ensure_test_image, eventually, wait_until,
};
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
    env.command("bash")
        .env("PATH", routed_path(env))
        .current_dir(dir)
        .args(["-c", script])
        .output()
        .unwrap()
}

fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
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

/// A routed name the container takes out of its `.dual.toml` between two
/// calls, and a workspace root reached through a link: the shim refuses,
/// and never runs the host's program in the clone (both ran the branch's
/// files on the host before; found by an attacker's review).
#[test]
fn a_shim_in_a_workspace_never_falls_back_to_the_host() {
    each_engine("shell_boundary_fail_closed", |kind| {
        let env = TestEnv::new(
            Some(kind),
            &image_config(kind, "extra_commands = [\"hostname\"]\n"),
        );
        env.ok(&["create", "a"]);
        env.ok(&["launch", "a"]);
        let (a, clone) = (env.name("a"), env.clone_path("a"));
        let before = bash_in(&env, &clone, "hostname");
        assert_eq!(out(&before).trim(), a, "routed: {}", both(&before));
        let image = ensure_test_image(kind);
        let rewrite = env.run_in(
            "a",
            "",
            &[
                "sh",
                "-c",
                &format!("printf 'image = \"{image}\"\\n' > .dual.toml"),
            ],
        );
        assert!(rewrite.status.success(), "{}", both(&rewrite));
        // Routing is what was checked at launch, not what the clone says now.
        let after = bash_in(&env, &clone, "hostname");
        assert_eq!(out(&after).trim(), a, "still routed: {}", both(&after));
        // The next launch takes the change, and says what is now the host's.
        let relaunch = env.run(&["launch", &a]);
        assert!(relaunch.status.success(), "{}", both(&relaunch));
        assert!(
            err(&relaunch).contains("`hostname` no longer routed"),
            "{}",
            both(&relaunch)
        );
        // A shim left from before (another shell's) refuses rather than run
        // the host's program in the clone.
        let stale_shim = env
            .command(shims(&env).join("hostname"))
            .current_dir(&clone)
            .output()
            .unwrap();
        assert!(!stale_shim.status.success(), "{}", both(&stale_shim));
        assert!(
            err(&stale_shim).contains("routed for other workspaces"),
            "{}",
            both(&stale_shim)
        );
        assert!(
            !out(&stale_shim).contains(&host_name()),
            "ran on the host: {}",
            both(&stale_shim)
        );

        // A workspace made under a root named through a link (as `~` is on
        // Fedora Silverblue): dual records the linked path, the shell sees
        // the real one.
        let real_root = env.dir.path().join("real-root");
        std::fs::create_dir_all(&real_root).unwrap();
        let linked = env.dir.path().join("linked-root");
        std::os::unix::fs::symlink(&real_root, &linked).unwrap();
        let in_linked = |args: &[&str]| {
            let output = env
                .cmd(args)
                .env("DUAL_WORKSPACE_ROOT", &linked)
                .output()
                .unwrap();
            assert!(output.status.success(), "{args:?}: {}", both(&output));
        };
        in_linked(&["create", "l"]);
        in_linked(&["launch", "l"]);
        let output = env
            .command("bash")
            .env("DUAL_WORKSPACE_ROOT", &linked)
            .env("PATH", routed_path(&env))
            .current_dir(linked.join(&env.repo).join("l"))
            .args(["-c", "npm x"])
            .output()
            .unwrap();
        assert_eq!(
            out(&output).trim(),
            format!("npm in {}: x", env.name("l")),
            "{}",
            both(&output)
        );
    });
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Item 5: `make e2e BASE=http://other.localhost:3000` in a workspace must
/// not run the repo's Makefile on the host (nor npm, nor an
/// `extra_commands` one, nor curl or wget).
#[test]
fn a_routed_command_naming_another_workspace_refuses_rather_than_run_on_the_host() {
    each_engine("shell_boundary_foreign_url", |kind| {
        let env = TestEnv::new(
            Some(kind),
            &image_config(kind, "extra_commands = [\"hostname\"]\n"),
        );
        // The hostile branch's Makefile: run on the host, it leaves
        // `ran-e2e` in the clone (its `hostname` is routed, so the text
        // is no witness; the file is).
        let source = env.source();
        std::fs::write(
            source.join("Makefile"),
            "e2e:\n\t@echo \"make ran in $$(hostname)\" > ran-e2e\n\t@cat ran-e2e\n",
        )
        .unwrap();
        env.git(&source, &["add", "Makefile"]);
        env.git(&source, &["commit", "-qm", "e2e target"]);
        env.ok(&["create", "a"]);
        env.ok(&["launch", "a"]);
        let (a, clone) = (env.name("a"), env.clone_path("a"));
        let other = format!("http://{}.localhost:3000/", env.name("b"));

        for command in [
            format!("make e2e BASE={other}"),
            format!("npm test --base={other}"),
            format!("hostname {other}"),
        ] {
            let output = bash_in(&env, &clone, &command);
            let name = command.split(' ').next().unwrap();
            assert!(!output.status.success(), "{command}: {}", both(&output));
            let stderr = err(&output);
            assert!(
                stderr.contains("every *.localhost name is the container's own loopback")
                    && stderr.contains("on the host")
                    && stderr.contains("hint:"),
                "{command}: the refusal says why and what to do: {}",
                both(&output)
            );
            assert!(
                !out(&output).contains("HOST") && !out(&output).contains("make ran in"),
                "{command} ran: {}",
                both(&output)
            );
            assert!(
                !clone.join("ran-e2e").exists()
                    && !clone.join(format!("ran-on-host-{name}")).exists(),
                "{command} left a mark on the host"
            );
        }

        // Its own URL is no reason to refuse: in the container as usual.
        let own = bash_in(
            &env,
            &clone,
            &format!("npm test --base=http://{a}.localhost:3000/"),
        );
        assert_eq!(
            out(&own).trim(),
            format!("npm in {a}: test --base=http://{a}.localhost:3000/"),
            "{}",
            both(&own)
        );

        // curl and wget too: on the host, in the clone, they would read
        // and write through links the container planted (`-d @body.json`,
        // `-O`); from outside the workspace they are the host's own.
        std::os::unix::fs::symlink("/etc/hostname", clone.join("body.json")).unwrap();
        for name in ["curl", "wget"] {
            let output = bash_in(&env, &clone, &format!("{name} -d @body.json {other}"));
            assert!(!output.status.success(), "{name}: {}", both(&output));
            assert!(err(&output).contains("own loopback"), "{}", both(&output));
            assert!(!out(&output).contains("HOST"), "{name}: {}", both(&output));
            let outside = bash_in(&env, env.dir.path(), &format!("{name} -s {other}"));
            assert_eq!(
                out(&outside).trim(),
                format!("HOST {name} -s {other}"),
                "{name} outside the workspace: {}",
                both(&outside)
            );
        }

        // `dual run` refuses such a URL, curl too, as before.
        let output = env.run_in("a", "", &["curl", &other]);
        assert!(!output.status.success(), "{}", both(&output));
        assert!(err(&output).contains("own loopback"), "{}", both(&output));
    });
}

/// Writes `.dual.toml` into the clone of `branch` and commits it there, as
/// a pull of the branch's new commits would.
fn hostile_config(env: &TestEnv, branch: &str, config: &str) {
    let clone = env.clone_path(branch);
    std::fs::write(clone.join(".dual.toml"), config).unwrap();
    env.git(&clone, &["commit", "-qam", "route more"]);
}

/// Item 6: a repo that lists `sudo` (or `.`) in `extra_commands`: its
/// launch says which name, why and what to do; `shell-init` warns once and
/// keeps working for every other workspace; the user's own config may route
/// what the repo may not.
#[test]
fn a_repo_cannot_route_secret_handling_commands_or_shell_builtins() {
    each_engine("shell_boundary_extra_commands", |kind| {
        let env = TestEnv::new(
            Some(kind),
            &image_config(kind, "extra_commands = [\"hostname\"]\n"),
        );
        for branch in ["good", "evil"] {
            env.ok(&["create", branch]);
            env.ok(&["launch", branch]);
        }
        let (good, evil) = (env.name("good"), env.name("evil"));
        hostile_config(
            &env,
            "evil",
            &image_config(kind, "extra_commands = [\"sudo\", \".\"]\n"),
        );

        let stderr = env.fails(&["launch", "evil"]);
        assert!(
            stderr.contains("`sudo`")
                && stderr.contains("extra_commands")
                && stderr.contains("config.toml"),
            "launch names the command, why and what to do: {stderr}"
        );

        // shell-init: works, warns once naming the workspace, writes no
        // shim for either name.
        let output = env.run(&["shell-init", "bash"]);
        assert!(output.status.success(), "{}", both(&output));
        let warnings = err(&output);
        assert_eq!(
            warnings.matches("warning").count(),
            1,
            "one warning: {warnings}"
        );
        assert!(
            warnings.contains(&evil) && warnings.contains("`sudo`"),
            "{warnings}"
        );
        assert!(!shims(&env).join("sudo").exists());
        assert!(shims(&env).join("hostname").is_file() && shims(&env).join("npm").is_file());

        // The other workspace keeps working, its extra command too.
        let output = bash_in(&env, &env.clone_path("good"), "npm x; hostname");
        assert_eq!(
            out(&output),
            format!("npm in {good}: x\n{good}\n"),
            "{}",
            both(&output)
        );
        // In the hostile clone, a shim for a name its config cannot route
        // refuses (the config is broken) rather than run anything anywhere.
        let output = env
            .command(dual_path())
            .env("PATH", routed_path(&env))
            .current_dir(env.clone_path("evil"))
            .args(["shim", "sudo", "-v"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{}", both(&output));
        assert!(!out(&output).contains("HOST"), "{}", both(&output));
        assert!(err(&output).contains(".dual.toml"), "{}", both(&output));

        // The user's own config routes what a repo may not (their call),
        // under the same name rules.
        let user_config = env.dir.path().join("data/config.toml");
        std::fs::write(&user_config, "extra_commands = [\"uname\", \"ssh\"]\n").unwrap();
        hostile_config(
            &env,
            "evil",
            &image_config(kind, "extra_commands = [\"hostname\"]\n"),
        );
        let output = env.run(&["shell-init", "bash"]);
        assert!(
            output.status.success() && err(&output).is_empty(),
            "{}",
            both(&output)
        );
        assert!(shims(&env).join("ssh").is_file() && shims(&env).join("uname").is_file());
        let output = bash_in(&env, &env.clone_path("good"), "uname -n");
        assert_eq!(out(&output).trim(), good, "{}", both(&output));
        std::fs::write(&user_config, "extra_commands = [\"uname\", \"cd\"]\n").unwrap();
        let output = env.run(&["shell-init", "bash"]);
        assert!(output.status.success(), "{}", both(&output));
        assert!(
            err(&output).contains("`cd`") && err(&output).contains("config.toml"),
            "{}",
            both(&output)
        );
        assert!(!shims(&env).join("cd").exists());
    });
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
            env.command(shims(&env).join("npm"))
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

/// A bash rc file that prepends `$HOME/hostbin` (where the fake `npm` is),
/// as `pyenv init`, nvm, asdf, mise, rbenv and conda do.
const PREPEND: &str = "export PATH=\"$HOME/hostbin:$PATH\"\n";

/// Item 11, `eval "$(dual shell-init)"` after the rc file's prepend (the
/// shims already somewhere on PATH): the shims move to the front.
#[test]
fn shell_init_moves_the_shims_ahead_of_what_the_rc_file_prepended() {
    each_engine("shell_boundary_shell_init_first", |kind| {
        let env = TestEnv::new(Some(kind), &image_config(kind, ""));
        env.ok(&["create", "rc"]);
        env.ok(&["launch", "rc"]);
        let (name, clone) = (env.name("rc"), env.clone_path("rc"));
        host_bin(&env);
        let dual = sh_quote(&dual_path());
        std::fs::write(
            env.home().join(".bashrc"),
            format!("{PREPEND}eval \"$({dual} shell-init bash)\"\n"),
        )
        .unwrap();
        let output = env
            .command("bash")
            .env("PATH", routed_path(&env))
            .current_dir(&clone)
            .args(["-ic", "npm x"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out(&output),
            format!("npm in {name}: x\n"),
            "{}",
            both(&output)
        );
    });
}

/// Item 11, the prompt hook: something that runs after `eval "$(dual
/// shell-init)"` in the rc file, or prepends in its own prompt hook (as
/// mise and direnv do), is undone before the next command, in bash, zsh
/// and fish.
#[test]
fn a_prompt_hook_puts_the_shims_back_in_front() {
    each_engine("shell_boundary_prompt_hook", |kind| {
        let env = TestEnv::new(Some(kind), &image_config(kind, ""));
        env.ok(&["create", "hook"]);
        env.ok(&["launch", "hook"]);
        let (name, clone) = (env.name("hook"), env.clone_path("hook"));
        host_bin(&env);
        let dual = sh_quote(&dual_path());
        let home = env.home();
        let shells: [(&str, PathBuf, String, Vec<&str>); 3] = [
            (
                "bash",
                home.join(".bashrc"),
                format!(
                    "eval \"$({dual} shell-init bash)\"\n{PREPEND}\
                     hook() {{ PATH=\"$HOME/hostbin:$PATH\"; }}\n\
                     PROMPT_COMMAND=\"hook${{PROMPT_COMMAND:+;$PROMPT_COMMAND}}\"\n"
                ),
                vec!["-i"],
            ),
            (
                "zsh",
                home.join(".zshrc"),
                format!(
                    "eval \"$({dual} shell-init zsh)\"\n{PREPEND}\
                     hook() {{ PATH=\"$HOME/hostbin:$PATH\"; }}\n\
                     precmd_functions=(hook $precmd_functions)\n"
                ),
                vec!["-i"],
            ),
            (
                "fish",
                home.join(".config/fish/config.fish"),
                format!(
                    "{dual} shell-init fish | source\n\
                     set -gx PATH $HOME/hostbin $PATH\n"
                ),
                vec!["-i"],
            ),
        ];
        for (shell, rc, text, args) in shells {
            if dual::process::find_on_path(shell).is_none() {
                eprintln!("!!!!! SKIPPED the {shell} part of the prompt hook test: no {shell}");
                continue;
            }
            std::fs::create_dir_all(rc.parent().unwrap()).unwrap();
            std::fs::write(&rc, text).unwrap();
            env.ok(&["shell-init", "bash"]);
            let mut child = env
                .command(shell)
                .env("PATH", routed_path(&env))
                .env("SHELL", format!("/bin/{shell}"))
                .current_dir(&clone)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().unwrap();
                // npm's own stdin is not the shell's: `exec -i` would
                // take the lines after it.
                stdin.write_all(b"npm x </dev/null\nexit\n").unwrap();
            }
            let output = wait_bounded(child, Duration::from_secs(30));
            assert!(
                out(&output).contains(&format!("npm in {name}: x"))
                    && !out(&output).contains("HOST"),
                "{shell}: {}",
                both(&output)
            );
        }
    });
}

/// The child's output once it ended, or after `limit` once killed (a
/// shell that hangs must fail the test, not hold it).
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Output {
    if !eventually(limit, || child.try_wait().unwrap().is_some()) {
        let _ = child.kill();
    }
    child.wait_with_output().unwrap()
}

/// Item 11 in the workspace's tmux session: the user's `~/.bashrc`
/// prepends a directory with a fake `npm`; `npm x` still runs in the
/// container, also after the user prepends again at the prompt.
#[test]
fn the_tmux_session_keeps_the_shims_first_whatever_bashrc_prepends() {
    if dual::process::find_on_path("tmux").is_none() {
        eprintln!("!!!!! SKIPPED the tmux session test: no tmux on PATH");
        return;
    }
    each_engine("shell_boundary_tmux", |kind| {
        let env = TestEnv::new(Some(kind), &image_config(kind, ""));
        env.ok(&["create", "tmux"]);
        env.ok(&["launch", "tmux"]);
        let name = env.name("tmux");
        host_bin(&env);
        // An rc line that runs a program and keeps what it prints (as
        // `eval "$(pip completion --bash)"` does): the host's program, not
        // the image's, since no shim is on PATH while the user's rc runs.
        std::fs::write(
            env.home().join(".bashrc"),
            format!("{PREPEND}RC_SAW=\"$(npm rc)\"\n"),
        )
        .unwrap();
        let mut vars = env_of(&env);
        vars.push(("SHELL".into(), "/bin/bash".into()));
        vars.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
        // `dual attach` in a pane of the test's server, as a person runs it.
        let attach = format!(
            "unset TMUX; {} attach {name}; sleep 600",
            sh_quote(&dual_path())
        );
        let tmux = Tmux::new(vars).expect("tmux, checked above");
        tmux.start("outer", (150, 30), &["sh", "-c", &attach]);
        wait_until(
            Duration::from_secs(30),
            &format!("a session {name}"),
            || tmux.has_session(&name),
        );
        let target = format!("={name}:");
        let send = |line: &str| {
            assert!(
                tmux.run(&["send-keys", "-t", &target, "-l", line])
                    .status
                    .success()
            );
            assert!(
                tmux.run(&["send-keys", "-t", &target, "Enter"])
                    .status
                    .success()
            );
        };
        // A prompt: the last line that is not blank ends as one does.
        let prompt_back = |s: &str| {
            s.lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .is_some_and(|line| {
                    line.trim_end().ends_with('#') || line.trim_end().ends_with('$')
                })
        };
        // Typed once the session's shell is at its prompt (its rc ran).
        tmux.wait_screen(&target, "the session's prompt", prompt_back);
        send("npm x");
        tmux.wait_screen(&target, "npm's answer", |s| {
            s.contains(&format!("npm in {name}: x")) || s.contains("HOST npm x")
        });
        assert!(
            !tmux.screen(&target).contains("HOST npm x"),
            "npm ran on the host: {}",
            tmux.screen(&target)
        );
        // `npm x` ran with the terminal as its stdin: type on only once
        // the prompt is back, or what is typed becomes npm's input.
        tmux.wait_screen(&target, "the prompt", prompt_back);
        send("echo \"rc=$RC_SAW\"");
        tmux.wait_screen(&target, "what the rc saw", |s| {
            s.contains("rc=HOST npm rc") || s.contains("rc=npm in")
        });
        assert!(
            tmux.screen(&target).contains("rc=HOST npm rc"),
            "the rc ran the image's npm: {}",
            tmux.screen(&target)
        );
        // Its output captured at the prompt, stdin the terminal: it must not
        // be stopped for reading the terminal from the background.
        send("echo \"got=$(npm v)\"");
        tmux.wait_screen(&target, "a captured routed command", |s| {
            s.contains(&format!("got=npm in {name}: v"))
        });
        tmux.wait_screen(&target, "the prompt", prompt_back);
        // Prepended again at the prompt (a `pyenv shell`, a `conda
        // activate`): the prompt hook puts the shims back before the next.
        send(PREPEND.trim());
        send("npm y");
        tmux.wait_screen(&target, "npm's second answer", |s| {
            s.contains(&format!("npm in {name}: y")) || s.contains("HOST npm y")
        });
        assert!(
            !tmux.screen(&target).contains("HOST npm y"),
            "npm ran on the host after a prepend: {}",
            tmux.screen(&target)
        );
        // A new window of the session starts the same way.
        let clone = env.clone_path("tmux").display().to_string();
        let opened = tmux.run(&[
            "new-window",
            "-t",
            &format!("={name}:"),
            "-n",
            "second",
            "-c",
            &clone,
        ]);
        assert!(opened.status.success(), "{}", both(&opened));
        let second = format!("={name}:second");
        tmux.wait_screen(&second, "a prompt", |s| s.contains('#') || s.contains('$'));
        assert!(
            tmux.run(&["send-keys", "-t", &second, "-l", "npm z"])
                .status
                .success()
        );
        assert!(
            tmux.run(&["send-keys", "-t", &second, "Enter"])
                .status
                .success()
        );
        tmux.wait_screen(&second, "npm's answer in a new window", |s| {
            s.contains(&format!("npm in {name}: z")) || s.contains("HOST npm")
        });
        assert!(
            !tmux.screen(&second).contains("HOST npm"),
            "npm ran on the host in a new window: {}",
            tmux.screen(&second)
        );
    });
}

/// Item 11 in the browser's subshell (Enter where there is no tmux): the
/// same rc file after the user's `~/.bashrc`, so `npm x` runs in the
/// container. tmux is kept off the browser's PATH by giving it a PATH of
/// only what it needs.
#[test]
fn the_browser_s_subshell_keeps_the_shims_first_whatever_bashrc_prepends() {
    if dual::process::find_on_path("tmux").is_none() {
        eprintln!("!!!!! SKIPPED the browser subshell test: no tmux on PATH to run the browser in");
        return;
    }
    each_engine("shell_boundary_subshell", |kind| {
        let env = TestEnv::new(Some(kind), &image_config(kind, ""));
        env.ok(&["create", "sub"]);
        env.ok(&["launch", "sub"]);
        let name = env.name("sub");
        host_bin(&env);
        std::fs::write(env.home().join(".bashrc"), PREPEND).unwrap();
        // The engines' CLIs and a shell, and no tmux (setpriv: the browser's
        // event stream ends with it, not left behind when the test ends).
        let bin = env.dir.path().join("no-tmux");
        std::fs::create_dir_all(&bin).unwrap();
        for program in [
            "docker", "podman", "git", "sh", "bash", "cat", "hostname", "setpriv",
        ] {
            if let Some(found) = dual::process::find_on_path(program) {
                std::os::unix::fs::symlink(found, bin.join(program)).unwrap();
            }
        }
        let mut vars = env_of(&env);
        vars.push(("SHELL".into(), "/bin/bash".into()));
        vars.push(("PATH".into(), bin.display().to_string()));
        let script = format!(
            "unset TMUX; {}; echo BROWSER-EXITED; sleep 600",
            sh_quote(&dual_path())
        );
        let tmux = Tmux::new(vars).expect("tmux, checked above");
        tmux.start("outer", (150, 30), &["/bin/sh", "-c", &script]);
        tmux.wait_screen("outer", "the browser", |s| {
            s.contains("  sub") && s.contains("running")
        });
        assert!(
            tmux.run(&["send-keys", "-t", "outer", "Enter"])
                .status
                .success()
        );
        tmux.wait_screen("outer", "the subshell", |s| {
            s.contains("exit returns to the browser")
        });
        // Typed at the subshell's prompt (its rc ran), not before.
        tmux.wait_screen("outer", "the subshell's prompt", |s| {
            s.lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .is_some_and(|line| line.trim_end().ends_with(['#', '$']))
        });
        tmux.keys("outer", &["-l", "npm x"]);
        tmux.keys("outer", &["Enter"]);
        tmux.wait_screen("outer", "npm's answer", |s| {
            s.contains(&format!("npm in {name}: x")) || s.contains("HOST npm")
        });
        assert!(
            !tmux.screen("outer").contains("HOST npm"),
            "npm ran on the host: {}",
            tmux.screen("outer")
        );
    });
}

/// dual runs some programs of its own on the host by name (`ldd` for
/// `dual verify`'s probe image, `ip` for the bridge, `xdg-open` for `open`).
/// Run in a clone with the shims first on PATH (a workspace's tmux session),
/// a repo that routed one answered dual from its container: its `ldd` named
/// a host file, which `verify` copied onto itself (emptied it).
#[test]
fn a_repo_cannot_route_a_program_dual_runs_itself() {
    each_engine("shell_boundary_own_programs", |kind| {
        let base = ensure_test_image(kind);
        let context = tempfile::tempdir().unwrap();
        std::fs::write(
            context.path().join("ldd"),
            "#!/bin/sh\ncat \"$PWD/.ldd-answer\"\n",
        )
        .unwrap();
        std::fs::set_permissions(
            context.path().join("ldd"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(
            context.path().join("Dockerfile"),
            format!("FROM {base}\nCOPY ldd /usr/local/bin/ldd\n"),
        )
        .unwrap();
        let image = "dual-test-ldd:latest";
        let built = std::process::Command::new(kind.program())
            .args(["build", "-q", "-t", image])
            .arg(context.path())
            .output()
            .unwrap();
        assert!(built.status.success(), "{}", both(&built));
        let env = TestEnv::new(
            Some(kind),
            &format!("image = \"{image}\"\nextra_commands = [\"ldd\"]\n"),
        );
        env.ok(&["create", "a"]);
        let launched = env.run(&["launch", "a"]);
        let victim = env.home().join("victim");
        std::fs::write(&victim, "THE USER'S FILE\n").unwrap();
        let verify = launched.status.success().then(|| {
            let clone = env.clone_path("a");
            std::fs::write(
                clone.join(".ldd-answer"),
                format!("{}{}\n", "/..".repeat(40), victim.display()),
            )
            .unwrap();
            // A dual of its own path: its probe image is built afresh.
            let copy = context.path().join("dual");
            std::fs::copy(dual_path(), &copy).unwrap();
            bash_in(&env, &clone, &format!("{} verify", sh_quote(&copy)))
        });
        // The probe image that dual built, and the hostile one.
        let probe = verify.as_ref().and_then(|verify| {
            out(verify)
                .split_whitespace()
                .find(|word| word.starts_with("dual-probe:"))
                .map(str::to_owned)
        });
        let _ = std::process::Command::new(kind.program())
            .args(["image", "rm", "-f", image])
            .args(probe)
            .output();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "THE USER'S FILE\n",
            "{}",
            verify.as_ref().map_or_else(String::new, both)
        );
        assert!(!launched.status.success(), "{}", both(&launched));
        assert!(err(&launched).contains("`ldd`"), "{}", both(&launched));
    });
}

/// The programs dual runs by name are the host's, even from a shell whose
/// PATH has the shims first: a shim there would run a program of the
/// workspace's container and hand its answer to dual.
#[test]
fn dual_never_runs_a_program_of_its_own_shims_directory() {
    let env = TestEnv::new(None, "");
    let shims = shims(&env);
    std::fs::create_dir_all(&shims).unwrap();
    let marker = env.home().join("a-shim-ran");
    for name in ["git", "docker", "podman"] {
        let path = shims.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\ntouch {}\nexit 1\n", sh_quote(&marker)),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let created = env
        .cmd(&["create", "feat/own-programs"])
        .env("PATH", routed_path(&env))
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", both(&created));
    assert!(
        !marker.exists(),
        "dual ran a program from its shims directory: {}",
        both(&created)
    );
}
