//! `dual` as a person uses it: the browser in a real terminal (a tmux pane of
//! the test's own server), driven with `send-keys` and read with
//! `capture-pane`; Enter attaches the workspace's own tmux session.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{dual_path, each_engine, ensure_test_image};
use crate::workspaces::{TestEnv, env_of};

/// A tmux server of the test's own (its socket under `dir`).
struct Tmux {
    dir: std::path::PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .env("TMUX_TMPDIR", &self.dir)
            .env_remove("TMUX")
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self, target: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", target]).stdout)
            .into_owned()
    }

    /// Waits until `target`'s screen satisfies `done`; returns how long.
    fn until(&self, target: &str, what: &str, done: impl Fn(&str) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let screen = self.screen(target);
            if done(&screen) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "never {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn keys(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend(keys);
        assert!(self.run(&args).status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn the_browser_attaches_a_workspace_session_and_comes_back() {
    if dual::process::find_on_path("tmux").is_none() {
        eprintln!("!!!!! SKIPPED the_browser_attaches…: no tmux on PATH");
        return;
    }
    each_engine("browser", |kind| {
        let config = format!(
            "image = \"{}\"\nextra_commands = [\"hostname\"]\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "tui"]);
        env.ok(&["launch", "tui"]);
        let name = env.name("tui");
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            dir: dir.path().to_owned(),
        };
        // The browser runs in a pane as a person's shell would run it, then
        // says how it left the terminal.
        let mut exports = String::new();
        for (key, value) in env_of(&env) {
            exports.push_str(&format!("export {key}={}; ", sh_quote(Path::new(&value))));
        }
        let script = format!(
            "{exports}export TMUX_TMPDIR={tmpdir}; unset TMUX; {dual}; echo BROWSER-EXITED; sleep 600",
            tmpdir = sh_quote(dir.path()),
            dual = sh_quote(&dual_path()),
        );
        assert!(
            tmux.run(&[
                "new-session",
                "-d",
                "-s",
                "outer",
                "-x",
                "120",
                "-y",
                "30",
                "sh",
                "-c",
                &script
            ])
            .status
            .success()
        );
        tmux.until("outer", "the browser", |s| {
            s.contains("  tui") && s.contains("running")
        });

        // Enter: the workspace's session, in the clone, commands routed.
        tmux.keys("outer", &["Enter"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tmux
            .run(&["has-session", "-t", &format!("={name}")])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "no tmux session named {name}");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        tmux.keys(&name, &["hostname; pwd", "Enter"]);
        let clone = env.clone_path("tui").display().to_string();
        tmux.until(&name, "hostname and pwd", |s| {
            s.lines().any(|l| l.trim() == name) && s.lines().any(|l| l.trim() == clone)
        });

        // Detach: the browser is back, and shows the workspace running.
        tmux.keys("outer", &["C-b", "d"]);
        tmux.until("outer", "the browser again", |s| {
            s.contains("back from") && s.contains("running")
        });

        // s: shown stopped.
        tmux.keys("outer", &["s"]);
        // The row's state, not the message line.
        let took = tmux.until("outer", "the row stopped", |s| {
            s.lines()
                .any(|l| l.starts_with('│') && l.contains(" tui ") && l.contains("stopped"))
        });
        eprintln!("{kind}: shown stopped {took:?} after `s` (the stop itself included)");
        assert!(
            !tmux
                .run(&["has-session", "-t", &format!("={name}")])
                .status
                .success(),
            "stop ends the workspace's session"
        );

        // f: the focus, as `dual focus` sees it; l: its logs; Esc back.
        tmux.keys("outer", &["f"]);
        tmux.until("outer", "the focus", |s| {
            s.contains(&format!("focus: {name}"))
        });
        assert_eq!(env.ok(&["focus"]).trim(), name);
        tmux.keys("outer", &["l"]);
        tmux.until("outer", "the logs pane", |s| {
            s.contains(&format!("logs of {name}"))
        });
        tmux.keys("outer", &["Escape"]);
        tmux.until("outer", "the table", |s| s.contains("WORKSPACE"));

        // c: a new workspace, typed in; /: the filter.
        tmux.keys("outer", &["c"]);
        tmux.until("outer", "the prompt", |s| s.contains("for branch:"));
        tmux.keys("outer", &["-l", "fresh"]);
        tmux.keys("outer", &["Enter"]);
        tmux.until("outer", "the new row", |s| {
            s.lines()
                .any(|l| l.contains(" fresh ") && l.contains("lazy"))
        });
        tmux.keys("outer", &["/"]);
        tmux.keys("outer", &["-l", "zzz"]);
        tmux.until("outer", "an empty filter", |s| {
            s.contains("No workspace matches")
        });
        for _ in 0..3 {
            tmux.keys("outer", &["BSpace"]);
        }
        tmux.keys("outer", &["Escape"]);

        // d on work that is not pushed: asks, then refuses as `dual destroy` does.
        env.git(
            &env.clone_path("tui"),
            &["commit", "-q", "--allow-empty", "-m", "unpushed"],
        );
        tmux.keys("outer", &["/"]);
        tmux.keys("outer", &["-l", "tui"]);
        tmux.keys("outer", &["Enter"]);
        tmux.keys("outer", &["d"]);
        tmux.until("outer", "the question", |s| s.contains("y to confirm"));
        tmux.keys("outer", &["y"]);
        // The error of the operation itself, with its hint (run in-process,
        // not scraped from a subprocess's stderr).
        tmux.until("outer", "the refusal and its hint", |s| {
            s.contains("not pushed — hint: unpushed:")
        });
        assert!(env.clone_path("tui").exists(), "the clone is kept");

        // q: the terminal as it was (no alternate screen, cursor shown).
        tmux.keys("outer", &["q"]);
        tmux.until("outer", "the browser to exit", |s| {
            s.contains("BROWSER-EXITED")
        });
        let modes = tmux.run(&[
            "display-message",
            "-p",
            "-t",
            "outer",
            "#{alternate_on} #{cursor_flag}",
        ]);
        assert_eq!(String::from_utf8_lossy(&modes.stdout).trim(), "0 1");

        // Ctrl-C and SIGTERM leave the terminal as it was too.
        for (session, how) in [("ctrl-c", "C-c"), ("sigterm", "")] {
            assert!(
                tmux.run(&[
                    "new-session",
                    "-d",
                    "-s",
                    session,
                    "-x",
                    "100",
                    "-y",
                    "20",
                    "sh",
                    "-c",
                    &script
                ])
                .status
                .success()
            );
            tmux.until(session, "the browser", |s| s.contains("WORKSPACE"));
            if how.is_empty() {
                let shell = tmux.run(&["display-message", "-p", "-t", session, "#{pane_pid}"]);
                let shell = String::from_utf8_lossy(&shell.stdout).trim().to_owned();
                let children =
                    std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
                        .unwrap_or_default();
                let browser: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
                // SAFETY: signalling the browser this test started.
                unsafe { libc::kill(browser, libc::SIGTERM) };
            } else {
                tmux.keys(session, &[how]);
            }
            tmux.until(session, "the browser to exit", |s| {
                s.contains("BROWSER-EXITED")
            });
            let modes = tmux.run(&[
                "display-message",
                "-p",
                "-t",
                session,
                "#{alternate_on} #{cursor_flag}",
            ]);
            assert_eq!(
                String::from_utf8_lossy(&modes.stdout).trim(),
                "0 1",
                "after {session}"
            );
        }
    });
}

#[test]
fn without_a_terminal_dual_prints_the_list() {
    let env = TestEnv::new(None, "");
    env.ok(&["create", "piped"]);
    let output = env.cmd(&[]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("WORKSPACE"), "{stdout}");
    assert!(stdout.contains(&env.name("piped")), "{stdout}");
}
