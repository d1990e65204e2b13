//! A workspace's clone kept in sync with its copy on a remote engine's host
//! (`dual remote-sync`, src/remote/sync), against the remote rig: edits
//! reach the other side within the bounds (with an inotify event
//! there, for hot reload), deletes and renames propagate, a conflict keeps
//! both sides, anonymous volumes never sync, `.git` changes only here,
//! links stay links, the sync comes back after the link does, and `stop`
//! leaves nothing running on either host.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::support::{Rig, Sandbox, remote_rig, rig_link_alone, rig_link_up, wait_for};

/// The bounds: an edit here is there within 1 s, one there is
/// here within 2 s.
const TO_THERE: Duration = Duration::from_secs(1);
const TO_HERE: Duration = Duration::from_secs(2);

/// ssh to the rig on a connection of the test's own (not the sync's; no
/// master left behind, which would hold the test's output open).
fn ssh(rig: &Rig, script: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args([
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "--",
        &format!("root@{}", rig.ip),
        script,
    ])
    .stdin(Stdio::null());
    cmd
}

/// Runs `script` on the rig; its stdout, required to succeed.
fn there(rig: &Rig, script: &str) -> String {
    let output = ssh(rig, script).output().unwrap();
    assert!(
        output.status.success(),
        "on the rig: {script}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A file's content on the rig, `None` when it is not there.
fn read_there(rig: &Rig, path: &str) -> Option<String> {
    let output = ssh(rig, &format!("cat -- '{path}'")).output().unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn exists_there(rig: &Rig, path: &str) -> bool {
    ssh(rig, &format!("test -e '{path}' || test -L '{path}'"))
        .status()
        .unwrap()
        .success()
}

/// A workspace's three pairs syncing with the rig: the clone (both ways,
/// without `.git` and `node_modules`), its `.git` (one way there), its
/// logs (one way back). Stopped, and its copy there removed, on drop.
struct Synced {
    rig: &'static Rig,
    sandbox: Sandbox,
    workspace: String,
    clone: PathBuf,
    logs: PathBuf,
    /// Its directory on the rig.
    remote: String,
    started: Duration,
}

impl Synced {
    fn start(rig: &'static Rig, name: &str) -> Synced {
        let sandbox = Sandbox::new();
        let workspace = format!("{name}-{}", std::process::id());
        let clone = sandbox.path().join("clone");
        let logs = sandbox.path().join("logs");
        for dir in ["src", ".git/refs/heads", "node_modules/left-pad"] {
            std::fs::create_dir_all(clone.join(dir)).unwrap();
        }
        std::fs::write(clone.join("src/app.js"), "console.log(1)\n").unwrap();
        std::fs::write(clone.join("README.md"), "# shop\n").unwrap();
        std::fs::write(clone.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(clone.join(".git/refs/heads/main"), "1111\n").unwrap();
        std::fs::write(clone.join("node_modules/left-pad/index.js"), "host\n").unwrap();
        let remote = format!("/tmp/dual-sync-it/{workspace}");
        there(rig, &format!("rm -rf '{remote}'"));
        let synced = Synced {
            rig,
            sandbox,
            workspace,
            clone,
            logs,
            remote,
            started: Duration::ZERO,
        };
        synced.start_sync()
    }

    fn start_sync(mut self) -> Synced {
        let spec = serde_json::json!({
            "ssh": format!("ssh://root@{}", self.rig.ip),
            "pairs": [
                {"local": self.clone, "remote": self.remote_clone(), "direction": "Both",
                 "ignore": [".git", "node_modules"]},
                {"local": self.clone.join(".git"), "remote": format!("{}/.git", self.remote_clone()),
                 "direction": "ToRemote", "ignore": []},
                {"local": self.logs, "remote": self.remote_logs(), "direction": "FromRemote",
                 "ignore": []},
            ],
        });
        let spec_file = self.sandbox.path().join("spec.json");
        std::fs::write(&spec_file, spec.to_string()).unwrap();
        let began = Instant::now();
        self.dual(&[
            "start",
            &self.workspace,
            "--spec",
            &spec_file.to_string_lossy(),
        ]);
        self.dual(&["wait", &self.workspace, "--timeout", "120"]);
        self.started = began.elapsed();
        self
    }

    fn remote_clone(&self) -> String {
        format!("{}/clone", self.remote)
    }

    fn remote_logs(&self) -> String {
        format!("{}/logs", self.remote)
    }

    /// `dual remote-sync ARGS` (with the sandbox's own ssh control
    /// directory, to end its connection after), required to succeed.
    fn dual(&self, args: &[&str]) -> Output {
        let output = self
            .command()
            .arg("remote-sync")
            .args(args)
            .timeout(Duration::from_secs(180))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "dual remote-sync {}: {}\n{}\nits log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        output
    }

    fn command(&self) -> assert_cmd::Command {
        let run = self.sandbox.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let mut cmd = self.sandbox.dual();
        cmd.env("XDG_RUNTIME_DIR", run);
        cmd
    }

    fn state(&self) -> PathBuf {
        self.sandbox
            .path()
            .join("data/remote-sync")
            .join(&self.workspace)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state().join("log")).unwrap_or_default()
    }

    fn stop(&self) {
        self.dual(&["stop", &self.workspace]);
    }
}

impl Drop for Synced {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args(["remote-sync", "stop", &self.workspace])
            .timeout(Duration::from_secs(60))
            .output();
        // The sandbox's shared ssh connection (dual keeps it for others).
        let master = format!("ssh: {}/run/", self.sandbox.path().display());
        for pid in processes_whose(|_, cmdline| cmdline.starts_with(&master)) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        let _ = ssh(
            self.rig,
            &format!(
                "rm -rf '{}' \"$HOME\"/.cache/dual-sync/*-'{}'",
                self.remote, self.workspace
            ),
        )
        .output();
    }
}

/// `inotifywait` on the rig: the paths created, written or moved into
/// place there, as the container's hot reload would see them.
struct EventsThere {
    child: Child,
    /// Its end ends the watcher there (it reads its stdin).
    _stdin: std::process::ChildStdin,
    lines: Receiver<(Instant, String)>,
}

impl EventsThere {
    fn watch(rig: &Rig, dir: &str) -> EventsThere {
        let mut child = ssh(
            rig,
            &format!(
                "inotifywait -m -r -e close_write,moved_to,create --format '%w%f' '{dir}' 2>&1 </dev/null & \
                 cat >/dev/null; kill $!"
            ),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        let events = EventsThere {
            child,
            _stdin: stdin,
            lines,
        };
        events.next_matching(Duration::from_secs(30), |line| {
            line.contains("Watches established")
        });
        events
    }

    /// When the first line `matches` came, `None` if none within `wait`.
    fn next_matching(&self, wait: Duration, matches: impl Fn(&str) -> bool) -> Option<Instant> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if matches(&line) => return Some(at),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

impl Drop for EventsThere {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pids of this host's processes whose environment and command line
/// (NULs as spaces) `matches`.
fn processes_whose(matches: impl Fn(&[u8], &str) -> bool) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            matches(&environ, &cmdline).then_some(pid)
        })
        .collect()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(times: &[Duration]) -> Vec<u128> {
    times.iter().map(Duration::as_millis).collect()
}

#[test]
fn an_edit_reaches_the_other_side_within_the_bounds_with_an_inotify_event_there() {
    let Some(rig) = remote_rig("an_edit_reaches_the_other_side_within_the_bounds") else {
        return;
    };
    let _link = rig_link_up();
    let synced = Synced::start(rig, "latency");
    eprintln!("first copy in {:?}", synced.started);
    let remote_app = format!("{}/src/app.js", synced.remote_clone());
    assert_eq!(
        read_there(rig, &remote_app).as_deref(),
        Some("console.log(1)\n")
    );

    // Here to there: each save is seen by inotify there, with its content.
    let events = EventsThere::watch(rig, &synced.remote_clone());
    let mut to_there = Vec::new();
    for edit in 0..8 {
        let body = format!("console.log({edit})\n");
        let saved = Instant::now();
        std::fs::write(synced.clone.join("src/app.js"), &body).unwrap();
        let seen = events
            .next_matching(Duration::from_secs(10), |path| path == remote_app)
            .unwrap_or_else(|| {
                panic!(
                    "edit {edit} made no inotify event at {remote_app}; log:\n{}",
                    synced.log()
                )
            });
        to_there.push(seen.duration_since(saved));
        assert_eq!(read_there(rig, &remote_app).as_deref(), Some(body.as_str()));
        std::thread::sleep(Duration::from_millis(150));
    }

    // There to here: a lockfile the container writes.
    let mut to_here = Vec::new();
    let lock_here = synced.clone.join("package-lock.json");
    for edit in 0..8 {
        let body = format!("{{\"lockfileVersion\": {edit}}}\n");
        let written = Instant::now();
        there(
            rig,
            &format!(
                "printf '%s' '{body}' > '{}/package-lock.json'",
                synced.remote_clone()
            ),
        );
        wait_for(
            Duration::from_secs(10),
            "the lockfile here",
            || match std::fs::read_to_string(&lock_here) {
                Ok(text) if text == body => Ok(()),
                other => Err(other.map_err(|e| e.to_string())),
            },
        );
        to_here.push(written.elapsed());
        std::thread::sleep(Duration::from_millis(150));
    }
    eprintln!(
        "here -> there (ms): {:?}\nthere -> here (ms, from the ssh that wrote it): {:?}",
        ms(&to_there),
        ms(&to_here)
    );
    let (worst_there, worst_here) = (
        *to_there.iter().max().unwrap(),
        *to_here.iter().max().unwrap(),
    );
    assert!(
        median(&mut to_there) <= TO_THERE && worst_there <= 2 * TO_THERE,
        "edits here took {:?} ms to reach the rig",
        ms(&to_there)
    );
    assert!(
        median(&mut to_here) <= TO_HERE && worst_here <= 2 * TO_HERE,
        "files written there took {:?} ms to come back",
        ms(&to_here)
    );
}

#[test]
fn renames_and_deletes_propagate_both_ways() {
    let Some(rig) = remote_rig("renames_and_deletes_propagate_both_ways") else {
        return;
    };
    let _link = rig_link_up();
    let synced = Synced::start(rig, "renames");
    let remote = synced.remote_clone();
    let bound = Duration::from_secs(5);

    // Here: a file renamed, a directory renamed, a file deleted.
    std::fs::write(synced.clone.join("old-name.txt"), "moving\n").unwrap();
    std::fs::create_dir_all(synced.clone.join("lib/deep")).unwrap();
    std::fs::write(synced.clone.join("lib/deep/x.js"), "x\n").unwrap();
    wait_for(bound, "the new files there", || {
        if exists_there(rig, &format!("{remote}/old-name.txt"))
            && exists_there(rig, &format!("{remote}/lib/deep/x.js"))
        {
            Ok(())
        } else {
            Err(synced.log())
        }
    });
    std::fs::rename(
        synced.clone.join("old-name.txt"),
        synced.clone.join("new-name.txt"),
    )
    .unwrap();
    std::fs::rename(synced.clone.join("lib"), synced.clone.join("library")).unwrap();
    std::fs::remove_file(synced.clone.join("README.md")).unwrap();
    wait_for(bound, "the renames and the delete there", || {
        let listing = there(rig, &format!("cd '{remote}' && find . | sort"));
        let done = listing.contains("./new-name.txt")
            && !listing.contains("./old-name.txt")
            && listing.contains("./library/deep/x.js")
            && !listing.contains("./lib/")
            && !listing.contains("./README.md");
        if done { Ok(()) } else { Err(listing) }
    });
    assert_eq!(
        read_there(rig, &format!("{remote}/new-name.txt")).as_deref(),
        Some("moving\n")
    );

    // There: a generated directory renamed and a file deleted.
    there(
        rig,
        &format!("mkdir -p '{remote}/gen' && echo g > '{remote}/gen/types.d.ts'"),
    );
    wait_for(bound, "the generated file here", || {
        std::fs::read_to_string(synced.clone.join("gen/types.d.ts"))
    });
    there(
        rig,
        &format!("mv '{remote}/gen' '{remote}/generated' && rm '{remote}/new-name.txt'"),
    );
    wait_for(bound, "the rename and the delete here", || {
        let moved = synced.clone.join("generated/types.d.ts").exists()
            && !synced.clone.join("gen").exists()
            && !synced.clone.join("new-name.txt").exists();
        if moved { Ok(()) } else { Err(synced.log()) }
    });
}

#[test]
fn a_conflicting_edit_keeps_both_sides_and_says_so() {
    let Some(rig) = remote_rig("a_conflicting_edit_keeps_both_sides_and_says_so") else {
        return;
    };
    let _link = rig_link_up();
    let synced = Synced::start(rig, "conflict");
    let remote = synced.remote_clone();
    // Both sides edit while the sync is down (a dropped link, a stopped
    // sync): the next sync finds two versions.
    synced.stop();
    std::fs::write(synced.clone.join("src/app.js"), "edited here\n").unwrap();
    // The newer wins the name: the one there, a second later.
    std::thread::sleep(Duration::from_millis(1100));
    there(rig, &format!("echo 'edited there' > '{remote}/src/app.js'"));
    let synced = synced.start_sync();

    let versions_here = || -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = std::fs::read_dir(synced.clone.join("src"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("app"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        found.sort();
        found
    };
    let here = wait_for(Duration::from_secs(10), "both versions here", || {
        let found = versions_here();
        if found.len() == 2 {
            Ok(found)
        } else {
            Err(found)
        }
    });
    let app = here.iter().find(|(name, _)| name == "app.js").unwrap();
    assert_eq!(app.1, "edited there\n", "{here:?}");
    let (copy, copied) = here.iter().find(|(name, _)| name != "app.js").unwrap();
    assert!(copy.contains("conflict"), "{here:?}");
    assert_eq!(copied, "edited here\n");
    // The same two there.
    wait_for(Duration::from_secs(10), "both versions there", || {
        let copy_there = read_there(rig, &format!("{remote}/src/{copy}"));
        let app_there = read_there(rig, &format!("{remote}/src/app.js"));
        if copy_there.as_deref() == Some("edited here\n")
            && app_there.as_deref() == Some("edited there\n")
        {
            Ok(())
        } else {
            Err((copy_there, app_there))
        }
    });
    // Said in the log and the conflicts file.
    assert!(
        synced.log().contains("conflict: `src/app.js`"),
        "{}",
        synced.log()
    );
    let conflicts = std::fs::read_to_string(synced.state().join("conflicts")).unwrap();
    assert!(conflicts.contains("src/app.js"), "{conflicts}");
}

#[test]
fn anonymous_volumes_never_sync_and_git_changes_only_here() {
    let Some(rig) = remote_rig("anonymous_volumes_never_sync_and_git_changes_only_here") else {
        return;
    };
    let _link = rig_link_up();
    let synced = Synced::start(rig, "ignored");
    let remote = synced.remote_clone();
    // The first copy left node_modules here and brought .git.
    assert!(!exists_there(rig, &format!("{remote}/node_modules")));
    assert_eq!(
        read_there(rig, &format!("{remote}/.git/refs/heads/main")).as_deref(),
        Some("1111\n")
    );

    // A commit here reaches .git there.
    std::fs::write(synced.clone.join(".git/refs/heads/main"), "2222\n").unwrap();
    wait_for(
        Duration::from_secs(5),
        "the new ref there",
        || match read_there(rig, &format!("{remote}/.git/refs/heads/main")) {
            Some(text) if text == "2222\n" => Ok(()),
            other => Err(other),
        },
    );
    // What the container's npm writes in its node_modules (a volume on a
    // real host: a directory of the copy here) and what anything there
    // writes into .git stay there; node_modules here stays here.
    there(
        rig,
        &format!(
            "mkdir -p '{remote}/node_modules/react' && echo there > '{remote}/node_modules/react/index.js' && \
             echo 'evil' > '{remote}/.git/hooks-post-checkout' && echo 9999 > '{remote}/.git/refs/heads/main'"
        ),
    );
    std::fs::write(
        synced.clone.join("node_modules/left-pad/index.js"),
        "host 2\n",
    )
    .unwrap();
    // A change in the synced tree after them, as a witness that the sync
    // ran past them.
    std::thread::sleep(Duration::from_millis(500));
    there(rig, &format!("echo witness > '{remote}/witness.txt'"));
    wait_for(Duration::from_secs(5), "the witness here", || {
        std::fs::read_to_string(synced.clone.join("witness.txt"))
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!synced.clone.join("node_modules/react").exists());
    assert!(!synced.clone.join(".git/hooks-post-checkout").exists());
    assert_eq!(
        std::fs::read_to_string(synced.clone.join(".git/refs/heads/main")).unwrap(),
        "2222\n"
    );
    assert!(!exists_there(
        rig,
        &format!("{remote}/node_modules/left-pad")
    ));
    // The next change here to .git overwrites what was changed there.
    std::fs::write(synced.clone.join(".git/refs/heads/main"), "3333\n").unwrap();
    wait_for(
        Duration::from_secs(5),
        "the ref there overwritten",
        || match read_there(rig, &format!("{remote}/.git/refs/heads/main")) {
            Some(text) if text == "3333\n" => Ok(()),
            other => Err(other),
        },
    );
}

#[test]
fn a_symlink_stays_a_link_on_both_sides() {
    let Some(rig) = remote_rig("a_symlink_stays_a_link_on_both_sides") else {
        return;
    };
    let _link = rig_link_up();
    let synced = Synced::start(rig, "links");
    let remote = synced.remote_clone();
    // Links here, one out of the clone to a directory with a file.
    let outside = synced.sandbox.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host only\n").unwrap();
    std::os::unix::fs::symlink(&outside, synced.clone.join("out")).unwrap();
    std::os::unix::fs::symlink("src", synced.clone.join("source")).unwrap();
    wait_for(Duration::from_secs(5), "the links there", || {
        let out = there(
            rig,
            &format!("readlink '{remote}/out' '{remote}/source' || true"),
        );
        let expected = format!("{}\nsrc\n", outside.display());
        if out == expected { Ok(()) } else { Err(out) }
    });
    // Never followed: nothing of what the link points at went there.
    assert!(!exists_there(rig, &format!("{remote}/out/secret")));

    // A link made there comes back as a link, pointing where it did, and
    // what it points at here is left alone.
    there(
        rig,
        &format!(
            "ln -s /etc/passwd '{remote}/passwd-link' && ln -s '{}' '{remote}/into-host'",
            outside.display()
        ),
    );
    wait_for(Duration::from_secs(5), "the links here", || {
        let passwd = std::fs::read_link(synced.clone.join("passwd-link"));
        let into = std::fs::read_link(synced.clone.join("into-host"));
        match (passwd, into) {
            (Ok(p), Ok(i)) if p == Path::new("/etc/passwd") && i == outside => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // A file the container writes "through" its link lands on the engine's
    // host (where the link points there), never here.
    there(
        rig,
        &format!(
            "mkdir -p '{0}' && echo there > '{remote}/into-host/planted'",
            outside.display()
        ),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!outside.join("planted").exists());
    assert_eq!(
        std::fs::read_to_string(outside.join("secret")).unwrap(),
        "host only\n"
    );
    assert!(
        std::fs::symlink_metadata(synced.clone.join("into-host"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    there(rig, &format!("rm -rf '{}'", outside.display()));
}

#[test]
fn logs_come_back_one_way() {
    let Some(rig) = remote_rig("logs_come_back_one_way") else {
        return;
    };
    let _link = rig_link_up();
    let synced = Synced::start(rig, "logs");
    let remote_log = format!("{}/web.log", synced.remote_logs());
    there(rig, &format!("echo 'listening on 3000' >> '{remote_log}'"));
    wait_for(
        Duration::from_secs(3),
        "the service's log here",
        || match std::fs::read_to_string(synced.logs.join("web.log")) {
            Ok(text) if text == "listening on 3000\n" => Ok(()),
            other => Err(other.map_err(|e| e.to_string())),
        },
    );
    there(rig, &format!("echo 'GET /' >> '{remote_log}'"));
    wait_for(
        Duration::from_secs(3),
        "the appended line here",
        || match std::fs::read_to_string(synced.logs.join("web.log")) {
            Ok(text) if text.ends_with("GET /\n") => Ok(()),
            other => Err(other.map_err(|e| e.to_string())),
        },
    );
    // Written here, nothing goes there.
    std::fs::write(synced.logs.join("here.log"), "x\n").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!exists_there(
        rig,
        &format!("{}/here.log", synced.remote_logs())
    ));
}

#[test]
fn stop_leaves_no_process_here_or_there() {
    let Some(rig) = remote_rig("stop_leaves_no_process_here_or_there") else {
        return;
    };
    let _link = rig_link_up();
    let synced = Synced::start(rig, "stop");
    // `DUAL_SYNC=/TAG/WORKSPACE/PAIR/` (the workspace's name holds this
    // test process's pid: no other sync has it).
    let marker = format!("/{}/", synced.workspace);
    let count_there = || {
        there(
            rig,
            &format!(
                "grep -l -s -a -E -e 'DUAL_SYNC=/[0-9a-f]+{marker}' /proc/[0-9]*/environ | wc -l"
            ),
        )
        .trim()
        .parse::<u32>()
        .unwrap()
    };
    // (Never the shared connection's master, which dual keeps.)
    let count_here = || {
        processes_whose(|environ, cmdline| {
            !cmdline.ends_with("[mux] ")
                && environ.split(|&b| b == 0).any(|var| {
                    var.starts_with(b"DUAL_SYNC=") && String::from_utf8_lossy(var).contains(&marker)
                })
        })
        .len()
    };
    assert!(count_there() > 0, "no watcher runs there");
    assert!(count_here() > 0, "no watcher runs here");
    synced.stop();
    assert!(
        !synced.state().join("ready").exists(),
        "a stopped sync still says it is ready"
    );
    wait_for(
        Duration::from_secs(5),
        "no sync process there",
        || match count_there() {
            0 => Ok(()),
            n => Err(n),
        },
    );
    assert_eq!(count_here(), 0);
    let status = synced
        .command()
        .args(["remote-sync", "status", &synced.workspace])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(3));
}

/// The sync alone (no proxy dialling the shared connection again) is back
/// within 10 s of a dropped link, with the edit made meanwhile.
#[test]
fn the_sync_is_back_within_ten_seconds_of_the_link() {
    let Some(rig) = remote_rig("the_sync_is_back_within_ten_seconds_of_the_link") else {
        return;
    };
    // No other test's ssh may run while the link is cut.
    let _link = rig_link_alone();
    let synced = Synced::start(rig, "link");
    let remote_app = format!("{}/src/app.js", synced.remote_clone());
    rig.control(&["drop-link"]);
    let restore = RestoreLink(rig);
    // Past ssh's keep-alives (about 6 s): the connection is given up.
    std::fs::write(synced.clone.join("src/app.js"), "edited offline\n").unwrap();
    std::thread::sleep(Duration::from_secs(9));
    drop(restore);
    let back = Instant::now();
    while read_there(rig, &remote_app).as_deref() != Some("edited offline\n") {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "the offline edit is not there 20 s after the link returned; log:\n{}",
            synced.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = back.elapsed();
    eprintln!("edit made while the link was down is there {took:?} after the link returned");
    assert!(
        took <= Duration::from_secs(10),
        "the sync came back {took:?} after the link; log:\n{}",
        synced.log()
    );
    // And it goes on syncing both ways.
    there(
        rig,
        &format!("echo after > '{}/after.txt'", synced.remote_clone()),
    );
    wait_for(Duration::from_secs(3), "a file written there after", || {
        std::fs::read_to_string(synced.clone.join("after.txt"))
    });
    assert!(
        synced.log().contains("the link is down"),
        "{}",
        synced.log()
    );
}

/// Brings the rig's link back, even when the test fails.
struct RestoreLink(&'static Rig);

impl Drop for RestoreLink {
    fn drop(&mut self) {
        self.0.control(&["restore-link"]);
    }
}
