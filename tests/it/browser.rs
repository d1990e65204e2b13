//! `dual` as a person uses it: the browser in a real terminal (a tmux pane of
//! the test's own server), driven with `send-keys` and read with
//! `capture-pane`; Enter attaches the workspace's own tmux session.

use std::path::Path;

use crate::support::{Tmux, dual_path, each_engine, ensure_test_image};
use crate::workspaces::{TestEnv, env_of};

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
        // The browser runs in a pane as a person's shell would run it, then
        // says how it left the terminal. Every key below waits for the
        // screen it is meant for: on a busy machine the browser may not
        // have drawn (or read) the last one yet.
        let tmux = Tmux::new(env_of(&env)).expect("tmux, checked above");
        let script = format!(
            "export TMUX_TMPDIR={tmpdir}; unset TMUX; {dual}; echo BROWSER-EXITED; sleep 600",
            tmpdir = sh_quote(tmux.socket_dir()),
            dual = sh_quote(&dual_path()),
        );
        tmux.start("outer", (120, 30), &["sh", "-c", &script]);
        let table = |s: &str| s.contains("WORKSPACE");
        let row = |s: &str, branch: &str, state: &str| {
            s.lines().any(|l| {
                l.starts_with('│') && l.contains(&format!(" {branch} ")) && l.contains(state)
            })
        };

        // Enter: the workspace's session, in the clone, commands routed.
        tmux.keys_when(
            "outer",
            "the browser",
            |s| row(s, "tui", "running"),
            &["Enter"],
        );
        crate::support::wait_until(
            std::time::Duration::from_secs(30),
            &format!("a tmux session named {name}"),
            || tmux.has_session(&name),
        );
        let target = format!("={name}:");
        let prompt = |s: &str| {
            s.lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .is_some_and(|line| {
                    let line = line.trim_end();
                    line.ends_with('#') || line.ends_with('$')
                })
        };
        tmux.keys_when(
            &target,
            "the session's prompt",
            prompt,
            &["hostname; pwd", "Enter"],
        );
        let clone = env.clone_path("tui").display().to_string();
        tmux.wait_screen(&target, "hostname and pwd", |s| {
            s.lines().any(|l| l.trim() == name) && s.lines().any(|l| l.trim() == clone)
        });

        // Detach: the browser is back, and shows the workspace running.
        tmux.keys("outer", &["C-b", "d"]);
        tmux.wait_screen("outer", "the browser again", |s| {
            s.contains("back from") && row(s, "tui", "running")
        });

        // s: shown stopped (the row's state, not the message line).
        tmux.keys("outer", &["s"]);
        let took = tmux.wait_screen("outer", "the row stopped", |s| row(s, "tui", "stopped"));
        eprintln!("{kind}: shown stopped {took:?} after `s` (the stop itself included)");
        assert!(
            !tmux.has_session(&name),
            "stop ends the workspace's session"
        );

        // f: the focus, as `dual focus` sees it; l: its logs; Esc back.
        tmux.keys("outer", &["f"]);
        tmux.wait_screen("outer", "the focus", |s| {
            s.contains(&format!("focus: {name}"))
        });
        assert_eq!(env.ok(&["focus"]).trim(), name);
        tmux.keys("outer", &["l"]);
        tmux.keys_when(
            "outer",
            "the logs pane",
            |s| s.contains(&format!("logs of {name}")),
            &["Escape"],
        );

        // c: a new workspace, typed in; /: the filter.
        tmux.keys_when("outer", "the table", table, &["c"]);
        tmux.keys_when(
            "outer",
            "the prompt",
            |s| s.contains("for branch: ▏"),
            &["-l", "fresh"],
        );
        tmux.keys_when(
            "outer",
            "the branch typed",
            |s| s.contains("for branch: fresh▏"),
            &["Enter"],
        );
        let filter_open = |s: &str| s.contains("filter: ▏");
        tmux.keys_when("outer", "the new row", |s| row(s, "fresh", "lazy"), &["/"]);
        tmux.keys_when("outer", "the filter", filter_open, &["-l", "zzz"]);
        tmux.wait_screen("outer", "an empty filter", |s| {
            s.contains("filter: zzz▏") && s.contains("No workspace matches")
        });
        for _ in 0..3 {
            tmux.keys("outer", &["BSpace"]);
        }
        tmux.keys_when("outer", "the filter emptied", filter_open, &["Escape"]);

        // d on work that is not pushed: asks, then refuses as `dual destroy` does.
        env.git(
            &env.clone_path("tui"),
            &["commit", "-q", "--allow-empty", "-m", "unpushed"],
        );
        tmux.keys_when(
            "outer",
            "the filter closed",
            |s| !s.contains("filter: ") && row(s, "fresh", "lazy"),
            &["/"],
        );
        tmux.keys_when("outer", "the filter", filter_open, &["-l", "tui"]);
        tmux.keys_when(
            "outer",
            "only tui left",
            |s| s.contains("filter: tui▏") && !row(s, "fresh", "lazy"),
            &["Enter"],
        );
        tmux.keys_when(
            "outer",
            "the filter applied",
            |s| !s.contains("filter: tui▏") && row(s, "tui", "stopped"),
            &["d"],
        );
        tmux.keys_when(
            "outer",
            "the question",
            |s| s.contains("y to confirm"),
            &["y"],
        );
        // The error of the operation itself, with its hint (run in-process,
        // not scraped from a subprocess's stderr).
        tmux.wait_screen("outer", "the refusal and its hint", |s| {
            s.contains("not pushed: unpushed:") && s.contains("— hint: push or stash")
        });
        assert!(env.clone_path("tui").exists(), "the clone is kept");

        // q: the terminal as it was (no alternate screen, cursor shown).
        tmux.keys("outer", &["q"]);
        tmux.wait_screen("outer", "the browser to exit", |s| {
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
            tmux.start(session, (100, 20), &["sh", "-c", &script]);
            tmux.wait_screen(session, "the browser", table);
            if how.is_empty() {
                let shell = tmux.run(&["display-message", "-p", "-t", session, "#{pane_pid}"]);
                let shell = String::from_utf8_lossy(&shell.stdout).trim().to_owned();
                let children =
                    std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
                        .unwrap_or_default();
                let browser: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
                let browser = rustix::process::Pid::from_raw(browser).expect("a pid");
                rustix::process::kill_process(browser, rustix::process::Signal::TERM)
                    .expect("the browser this test started");
            } else {
                tmux.keys(session, &[how]);
            }
            tmux.wait_screen(session, "the browser to exit", |s| {
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

/// A browser whose terminal goes away (its tmux server killed, its window
/// closed) ends, rather than read end-of-file forever at a core's worth of
/// CPU, as it did left over from every run of these tests.
#[test]
fn the_browser_ends_when_its_terminal_hangs_up() {
    if dual::process::find_on_path("tmux").is_none() {
        eprintln!("!!!!! SKIPPED the_browser_ends…: no tmux on PATH");
        return;
    }
    let env = TestEnv::new(None, "");
    let tmux = Tmux::new(env_of(&env)).expect("tmux, checked above");
    let dual = dual_path();
    tmux.start("gone", (100, 20), &[dual.to_str().unwrap()]);
    tmux.wait_screen("gone", "the browser", |s| s.contains("No workspaces yet"));
    let pid = String::from_utf8_lossy(
        &tmux
            .run(&["display-message", "-p", "-t", "gone", "#{pane_pid}"])
            .stdout,
    )
    .trim()
    .to_owned();
    assert!(!pid.is_empty(), "no pane pid");
    let _ = tmux.run(&["kill-server"]);
    // Ended: gone, or a zombie no one reaps (its parent, tmux, is gone).
    let ended = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    };
    crate::support::wait_until(
        std::time::Duration::from_secs(10),
        "the browser to end after its terminal hung up",
        ended,
    );
}

/// A workspace's sidecar in the browser: its state beside the (absent)
/// services, its log in the logs pane, and `R` restarts it.
#[test]
fn the_browser_shows_a_sidecar_its_log_and_restarts_it() {
    if dual::process::find_on_path("tmux").is_none() {
        eprintln!("!!!!! SKIPPED the_browser_shows_a_sidecar…: no tmux on PATH");
        return;
    }
    each_engine("browser sidecar", |kind| {
        let image = ensure_test_image(kind);
        // busybox's httpd prints nothing: a line first, for the logs pane.
        let config = format!(
            "image = \"{image}\"\n[sidecars.db]\nimage = \"{image}\"\nuser = \"1000:1000\"\n\
             command = [\"sh\", \"-c\", \"echo db-sidecar-up; exec httpd -f -p 5999\"]\n\
             ready = 5999\n"
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "main"]);
        env.ok(&["launch", &env.name("main")]);
        let name = env.name("main");
        let container = format!("dual-{name}.db");
        let started_at = || {
            let output = env.engine(&["inspect", "--format", "{{.State.StartedAt}}", &container]);
            assert!(output.status.success(), "{output:?}");
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        };
        let first_start = started_at();
        // The same log as `dual logs` prints (one op for both).
        let logs = env.ok(&["logs", &name, "db", "--tail", "5"]);
        assert_eq!(logs.trim(), "db-sidecar-up", "{kind}");

        let tmux = Tmux::new(env_of(&env)).expect("tmux, checked above");
        let dual = dual_path();
        tmux.start("side", (120, 30), &[dual.to_str().unwrap()]);
        let sidecar_running = |s: &str| {
            s.lines().any(|l| {
                l.starts_with('│') && l.contains(" main ") && l.contains("db (sidecar) running")
            })
        };
        tmux.keys_when("side", "the sidecar running", sidecar_running, &["l"]);
        tmux.keys_when(
            "side",
            "the sidecar's log",
            |s| {
                s.contains(&format!("logs of {name}")) && s.contains("db (sidecar) | db-sidecar-up")
            },
            &["Escape"],
        );
        tmux.keys_when("side", "the table again", sidecar_running, &["R"]);
        tmux.wait_screen("side", "the sidecar restarted", |s| {
            s.contains(&format!("restarted db in {name}")) && sidecar_running(s)
        });
        assert_ne!(
            started_at(),
            first_start,
            "{kind}: R started the sidecar again"
        );
        tmux.keys("side", &["q"]);
    });
}
