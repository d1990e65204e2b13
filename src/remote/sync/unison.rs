//! One unison run for a pair: its arguments, the ssh it runs through (the
//! workspace's shared connection), and what its output says.
//!
//! Unison reaches the other side as `ssh://engine-host//PATH`, through
//! `-sshcmd`: a small script dual writes that drops the host unison names
//! and runs the server over dual's own connection to the engine's host, so
//! that no value of unison's becomes an ssh option and every run shares the
//! one multiplexed connection.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::{Direction, SyncPair};
use crate::process::quote;
use crate::remote::Ssh;

/// The host name unison sees in its remote root; the wrapper ignores it.
const PLACEHOLDER_HOST: &str = "engine-host";

/// The script unison runs as ssh: `THIS HOST -e none COMMAND…`.
pub fn ssh_wrapper(ssh: &Ssh) -> Result<String, String> {
    let mut words = vec!["ssh".to_owned()];
    for option in ssh.options() {
        let option = option
            .to_str()
            .ok_or_else(|| format!("an ssh option is not UTF-8: {option:?}"))?;
        words.push(quote(option));
    }
    words.extend(["-e", "none", "--"].map(str::to_owned));
    words.push(quote(&ssh.target().destination()));
    Ok(format!(
        "#!/bin/sh\n\
         # Written by dual for unison's -sshcmd: unison runs it as\n\
         # `THIS HOST -e none COMMAND...`; COMMAND runs on the engine's host,\n\
         # over dual's shared connection, whatever HOST says.\n\
         shift\n\
         if [ \"$1\" = -e ]; then shift 2; fi\n\
         exec {} \"$@\"\n",
        words.join(" ")
    ))
}

/// The remote root as unison reads it.
pub fn remote_root(remote: &Path) -> OsString {
    let mut root = OsString::from(format!("ssh://{PLACEHOLDER_HOST}/"));
    root.push(remote.as_os_str());
    root
}

/// The unison server's command on the engine's host: its archives in the
/// workspace's directory there, its process marked as the pair's, and
/// confined (bubblewrap) to the pair's root and its archives. The container
/// writes the root there: a directory it swaps for a link between two of
/// the server's steps would send a write, a delete or a read anywhere the
/// ssh user reaches (`~/.ssh`); in the sandbox, nothing but the root, the
/// archives and the system's read-only programs exists to reach.
pub fn server_command(remote_archives: &str, remote_root: &Path, marker: &str) -> String {
    let archives = format!("\"$HOME\"/{}", quote(remote_archives));
    let root = quote(&remote_root.to_string_lossy());
    format!(
        "env {}={} UNISON={archives} bwrap --die-with-parent --unshare-pid --unshare-ipc --unshare-uts \
         --ro-bind /usr /usr --ro-bind-try /lib /lib --ro-bind-try /lib64 /lib64 --ro-bind-try /bin /bin \
         --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache --ro-bind-try /etc/passwd /etc/passwd \
         --ro-bind-try /etc/group /etc/group --proc /proc --dev /dev --tmpfs /tmp \
         --bind {archives} {archives} --bind {root} {root} -- unison",
        super::processes::MARKER_VAR,
        quote(marker),
    )
}

/// What a run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Everything: at the start of a session, after events were lost.
    Whole,
    /// Everything, as if never synced before: files on one side only are
    /// copied, none deleted, differing ones kept both (the copy there was
    /// lost while the archives remember it).
    Afresh,
    /// Only these paths (relative), which the watchers reported.
    Paths(&'a [OsString]),
}

/// unison's arguments for one run of `pair`.
pub fn args(pair: &SyncPair, wrapper: &Path, server: &str, scope: Scope<'_>) -> Vec<OsString> {
    let local = pair.local.as_os_str().to_owned();
    let remote = remote_root(&pair.remote);
    let mut args: Vec<OsString> = vec![local.clone(), remote.clone()];
    let mut flag = |name: &str, value: Option<&OsStr>| {
        args.push(format!("-{name}").into());
        if let Some(value) = value {
            args.push(value.to_owned());
        }
    };
    flag("batch", None);
    flag("ui", Some("text".as_ref()));
    flag("dumbtty", None);
    flag("terse", None);
    flag("contactquietly", None);
    flag("log=false", None);
    // dual runs one unison at a time per pair: a lock left by a run that
    // was killed (the link dropped) must not stop the next.
    flag("ignorelocks", None);
    flag("times", None);
    flag("sshcmd", Some(wrapper.as_os_str()));
    flag("servercmd", Some(server.as_ref()));
    match pair.direction {
        Direction::Both => {
            // Both sides changed: the newer wins the name, the other is
            // kept beside it as `NAME (conflict on DATE)`.
            flag("prefer", Some("newer".as_ref()));
            flag("copyonconflict", None);
        }
        Direction::ToRemote => flag("force", Some(&local)),
        Direction::FromRemote => flag("force", Some(&remote)),
    }
    for dir in &pair.ignore {
        flag("ignore", Some(format!("Path {dir}").as_ref()));
    }
    match scope {
        Scope::Whole | Scope::Afresh => {
            // A whole copy that is suddenly empty is a lost copy, not a
            // wish to delete everything: refused (see `Outcome::Emptied`).
            if pair.direction != Direction::Both {
                flag("confirmbigdel=false", None);
            }
            if scope == Scope::Afresh {
                flag("ignorearchives", None);
            }
        }
        Scope::Paths(paths) => {
            // A path's deletion is the change being synced.
            flag("confirmbigdel=false", None);
            // Compare contents, not size and mtime: an editor's second save
            // within the same second, of the same size, is still a change.
            flag("fastcheck", Some("false".as_ref()));
            for path in paths {
                flag("path", Some(path));
            }
        }
    }
    args
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Some paths were skipped (a special file, a path through a link):
    /// what unison said of them.
    Skipped(Vec<String>),
    /// A path under a link or a file on one side only: only a whole run
    /// can sync it.
    NeedsWhole,
    /// A whole side was found empty: the copy there was lost.
    Emptied,
    /// One side's archive is gone (that side was reset): only a run
    /// that ignores the archives can go on.
    ArchiveLost,
    /// It could not run or finish (the link, the engine's host).
    Failed(String),
}

/// Judges a run from its exit status and output (`-terse`: stdout has one
/// line per item, stderr the progress and errors).
pub fn outcome(code: Option<i32>, stdout: &str, stderr: &str) -> Outcome {
    let all = format!("{stdout}\n{stderr}");
    // Unison's messages for these end the run (status 3). A run that went
    // on may have printed them only as a name among its items: the
    // container names files in the mirror as it likes, and must not choose
    // a run that ignores the archives.
    let fatal = code == Some(3);
    if fatal && all.contains("completely emptied in one replica") {
        return Outcome::Emptied;
    }
    if fatal && all.contains(" is MISSING") {
        return Outcome::ArchiveLost;
    }
    if all.contains("is not a directory in one of the replicas") {
        return Outcome::NeedsWhole;
    }
    match code {
        Some(0) => Outcome::Done,
        Some(1 | 2) => Outcome::Skipped(
            all.lines()
                .filter_map(|line| line.trim().strip_prefix("skipped: "))
                .chain(
                    all.lines()
                        .filter_map(|line| line.trim().strip_prefix("failed: ")),
                )
                .map(str::to_owned)
                .collect(),
        ),
        _ => Outcome::Failed(
            all.lines()
                .map(str::trim)
                .filter(|line| {
                    !line.is_empty()
                        && !line.starts_with("[BGN]")
                        && !line.starts_with("[END]")
                        && !line.contains("ETA")
                })
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

/// The paths both sides changed, from `-terse` stdout: `changed  <====
/// changed    PATH`, a status on each side of the arrow. `-prefer newer`
/// resolved them; the older was kept as a copy beside.
pub fn conflicts(stdout: &str) -> Vec<String> {
    const ARROWS: [&str; 3] = [" <==== ", " ====> ", " <-?-> "];
    let mut found = Vec::new();
    for line in stdout.lines() {
        for arrow in ARROWS {
            let Some((left, right)) = line.split_once(arrow) else {
                continue;
            };
            let status_width = 8;
            let (status, path) = match right.char_indices().nth(status_width) {
                Some((at, _)) => right.split_at(at),
                None => (right, ""),
            };
            if !left.trim().is_empty() && !status.trim().is_empty() {
                found.push(path.trim().to_owned());
            }
        }
    }
    found
}

/// The paths a run wrote, on each side.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub here: Vec<String>,
    pub there: Vec<String>,
}

/// What a run wrote where, from `-terse` stdout: `STATUS ARROW STATUS
/// PATH`, each status 8 wide, 3 spaces before the path and 2 after it; the
/// arrow points at the side written. A line read otherwise (a name with odd
/// spaces) is left out: its echo costs one more run, nothing else.
pub fn written(stdout: &str) -> Written {
    const ARROWS: [(&str, bool); 4] = [
        (" ----> ", true),
        (" ====> ", true),
        (" <---- ", false),
        (" <==== ", false),
    ];
    let mut written = Written::default();
    for line in stdout.lines() {
        for (arrow, there) in ARROWS {
            let Some((_, right)) = line.split_once(arrow) else {
                continue;
            };
            let Some(path) = right.get(11..).and_then(|rest| rest.strip_suffix("  ")) else {
                continue;
            };
            if path.is_empty() {
                continue;
            }
            if there {
                written.there.push(path.to_owned());
            } else {
                written.here.push(path.to_owned());
            }
        }
    }
    written
}

/// The version in `unison -version`'s answer: `unison version 2.52.1 (…)`.
pub fn version(answer: &str) -> Option<&str> {
    let rest = answer.split("unison version ").nth(1)?;
    rest.split_whitespace().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::SshTarget;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn pair(direction: Direction) -> SyncPair {
        SyncPair {
            local: "/home/u/dual/shop/main".into(),
            remote: "/home/r/.dual/shop-main/clone".into(),
            direction,
            ignore: vec![".git".into(), "web/node_modules".into()],
        }
    }

    #[test]
    fn a_two_way_pair_keeps_both_sides_of_a_conflict_and_skips_its_ignored_dirs() {
        let args = strings(&args(
            &pair(Direction::Both),
            Path::new("/d/ssh"),
            "unison",
            Scope::Whole,
        ));
        assert_eq!(args[0], "/home/u/dual/shop/main");
        assert_eq!(args[1], "ssh://engine-host//home/r/.dual/shop-main/clone");
        let after = |flag: &str| {
            let at = args.iter().position(|a| a == flag).unwrap();
            args[at + 1].clone()
        };
        assert_eq!(after("-prefer"), "newer");
        assert!(args.contains(&"-copyonconflict".into()));
        assert_eq!(after("-sshcmd"), "/d/ssh");
        let ignored: Vec<&String> = args
            .windows(2)
            .filter(|w| w[0] == "-ignore")
            .map(|w| &w[1])
            .collect();
        assert_eq!(ignored, ["Path .git", "Path web/node_modules"]);
        // A whole run refuses to empty a side (a lost copy).
        assert!(!args.iter().any(|a| a.starts_with("-confirmbigdel")));
        assert!(!args.contains(&"-path".into()));
    }

    #[test]
    fn one_way_pairs_force_their_source() {
        let to = strings(&args(
            &pair(Direction::ToRemote),
            Path::new("/d/ssh"),
            "unison",
            Scope::Whole,
        ));
        let at = to.iter().position(|a| a == "-force").unwrap();
        assert_eq!(to[at + 1], "/home/u/dual/shop/main");
        assert!(!to.contains(&"-copyonconflict".into()));
        let from = strings(&args(
            &pair(Direction::FromRemote),
            Path::new("/d/ssh"),
            "unison",
            Scope::Whole,
        ));
        let at = from.iter().position(|a| a == "-force").unwrap();
        assert_eq!(from[at + 1], from[1]);
    }

    #[test]
    fn paths_are_whole_arguments_and_compared_by_content() {
        let paths: Vec<OsString> = vec!["-rf".into(), "a b/new\nline".into()];
        let args = strings(&args(
            &pair(Direction::Both),
            Path::new("/d/ssh"),
            "unison",
            Scope::Paths(&paths),
        ));
        let given: Vec<&String> = args
            .windows(2)
            .filter(|w| w[0] == "-path")
            .map(|w| &w[1])
            .collect();
        assert_eq!(given, ["-rf", "a b/new\nline"]);
        let at = args.iter().position(|a| a == "-fastcheck").unwrap();
        assert_eq!(args[at + 1], "false");
        assert!(args.contains(&"-confirmbigdel=false".into()));
    }

    #[test]
    fn the_wrapper_runs_the_server_over_the_shared_connection_only() {
        let ssh = Ssh::new(SshTarget::parse("ssh://root@10.0.0.2:2222").unwrap(), None);
        let script = ssh_wrapper(&ssh).unwrap();
        assert!(script.contains("ControlMaster=auto"), "{script}");
        assert!(script.contains("Port=2222"), "{script}");
        assert!(
            script.contains("-e none -- root@10.0.0.2 \"$@\""),
            "{script}"
        );
        let server = server_command(
            ".cache/dual-sync/shop-main/unison",
            Path::new("/root/m/home/u/dual/shop/main"),
            "/shop-main/0/",
        );
        assert!(
            server.starts_with(
                "env DUAL_SYNC=/shop-main/0/ UNISON=\"$HOME\"/.cache/dual-sync/shop-main/unison bwrap "
            ),
            "{server}"
        );
        // Only the root and the archives are writable, at their own paths.
        assert!(
            server.contains("--bind /root/m/home/u/dual/shop/main /root/m/home/u/dual/shop/main"),
            "{server}"
        );
        assert!(server.ends_with("-- unison"), "{server}");
        assert!(!server.contains("--bind / "), "{server}");
    }

    #[test]
    fn conflicts_are_read_from_the_reconciled_items() {
        let stdout = [
            "changed  <==== changed    src/a.rs  ",
            "new file ---->            g  ",
            "         <---- deleted    old.txt  ",
            "new file ====> new file   both new.txt  ",
            "deleted  <==== changed    f.txt  ",
        ]
        .join("\n");
        assert_eq!(conflicts(&stdout), ["src/a.rs", "both new.txt", "f.txt"]);
    }

    #[test]
    fn what_a_run_wrote_is_read_per_side() {
        let stdout = [
            "changed  ---->            src/a b.rs  ",
            "         <---- new file   new one  ",
            "changed  <==== changed    f.txt  ",
            "new dir  ---->            lib  ",
        ]
        .join("\n");
        let stdout = stdout.as_str();
        assert_eq!(
            written(stdout),
            Written {
                here: vec!["new one".into(), "f.txt".into()],
                there: vec!["src/a b.rs".into(), "lib".into()],
            }
        );
    }

    #[test]
    fn a_file_named_like_unison_s_fatal_messages_is_only_a_file() {
        for name in [
            "x is MISSING",
            "The following paths have been completely emptied in one replica",
        ] {
            let stdout = format!("new file ---->            {name}  \n");
            let stderr = format!(
                "[BGN] Copying {name} from /m to /h\n[END] Copying {name}\n\
                 Synchronization complete at 14:22:26  (1 item transferred, 0 skipped, 0 failed)"
            );
            assert_eq!(outcome(Some(0), &stdout, &stderr), Outcome::Done, "{name}");
        }
    }

    #[test]
    fn outcomes_tell_a_lost_link_from_skipped_paths() {
        assert_eq!(
            outcome(Some(0), "", "Synchronization complete"),
            Outcome::Done
        );
        assert_eq!(
            outcome(
                Some(1),
                "",
                "  skipped: a/x (path a/x is not valid because a is not a directory in one of the replicas)"
            ),
            Outcome::NeedsWhole
        );
        assert_eq!(
            outcome(Some(1), "", "  skipped: s.sock (special file)\n"),
            Outcome::Skipped(vec!["s.sock (special file)".into()])
        );
        assert_eq!(
            outcome(
                Some(3),
                "",
                "The following paths have been completely emptied in one replica:\n  ''\nAborting..."
            ),
            Outcome::Emptied
        );
        assert_eq!(
            outcome(
                Some(3),
                "",
                "Fatal error: Warning: inconsistent state.\nThe archive file is missing on some hosts.\n\
                 Archive ar52 on host dual-remote-rig is MISSING\nPlease delete archive files"
            ),
            Outcome::ArchiveLost
        );
        assert_eq!(
            outcome(Some(3), "", "Fatal error: Lost connection with the server"),
            Outcome::Failed("Fatal error: Lost connection with the server".into())
        );
    }

    #[test]
    fn the_version_is_read_from_unison_s_answer() {
        assert_eq!(
            version("unison version 2.52.1 (ocaml 4.13.1)\n"),
            Some("2.52.1")
        );
        assert_eq!(version("sh: unison: not found"), None);
    }
}
