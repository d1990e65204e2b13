//! Every process a workspace's sync starts, here and on the engine's host,
//! carries `DUAL_SYNC=/OWNER/WORKSPACE/PAIR/` in its environment, so that
//! what a killed supervisor or a dropped link left behind can be found and
//! ended (a remote process whose link dropped lives on until sshd notices,
//! which can take hours), and nothing else is: not another installation's
//! workspace of the same name (another user, or another `DUAL_HOME`, on
//! this host or syncing as the same user to the same engine host).

use std::path::Path;

use crate::process::quote;

pub const MARKER_VAR: &str = "DUAL_SYNC";

/// The marker of one pair's processes; `owner` is the installation's id
/// (`workspace::owner_id`).
pub fn pair_marker(owner: &str, workspace: &str, pair: usize) -> String {
    format!("/{owner}/{workspace}/{pair}/")
}

/// What every marker of the workspace starts with.
pub fn workspace_marker(owner: &str, workspace: &str) -> String {
    format!("/{owner}/{workspace}/")
}

/// The remote shell's line that ends the processes there whose marker
/// starts with `prefix` (one `grep` over every process's environment).
pub fn kill_there_line(prefix: &str) -> String {
    let needle = quote(&format!("{MARKER_VAR}={prefix}"));
    format!(
        "for f in $(grep -l -s -a -F -e {needle} /proc/[0-9]*/environ 2>/dev/null); do \
         p=${{f#/proc/}}; p=${{p%/environ}}; [ \"$p\" = \"$$\" ] || kill \"$p\" 2>/dev/null; \
         done; true"
    )
}

/// Ends this host's processes whose marker starts with `prefix`: never an
/// ssh connection's master (`ssh: PATH [mux]`), which the workspace's
/// other commands share, and never this process. Returns how many.
pub fn kill_here(prefix: &str) -> usize {
    kill_here_in(Path::new("/proc"), prefix)
}

fn kill_here_in(proc: &Path, prefix: &str) -> usize {
    use rustix::process::{Pid, Signal, kill_process};
    let needle = format!("{MARKER_VAR}={prefix}");
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir(proc) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let marked = environ
            .split(|&b| b == 0)
            .any(|var| var.starts_with(needle.as_bytes()));
        if !marked || is_mux_master(&entry.path()) {
            continue;
        }
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw)
            && kill_process(pid, Signal::TERM).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

fn is_mux_master(process: &Path) -> bool {
    std::fs::read(process.join("cmdline")).is_ok_and(|cmdline| {
        let cmdline = String::from_utf8_lossy(&cmdline);
        cmdline.starts_with("ssh: ") && cmdline.trim_end_matches('\0').ends_with("[mux]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_of_one_workspace_never_match_another() {
        let all = workspace_marker("ab12", "shop-main");
        assert!(pair_marker("ab12", "shop-main", 2).starts_with(&all));
        assert!(!pair_marker("ab12", "shop-main2", 0).starts_with(&all));
        assert!(
            !pair_marker("ab12", "shop-main", 10).starts_with(&pair_marker("ab12", "shop-main", 1))
        );
        // Another installation's workspace of the same name: its stop must
        // not end this one's sync.
        assert!(!pair_marker("cd34", "shop-main", 0).starts_with(&all));
    }

    #[test]
    fn the_remote_kill_quotes_its_marker() {
        let line = kill_there_line("/a b/1/");
        assert!(line.contains("-e 'DUAL_SYNC=/a b/1/'"), "{line}");
    }

    #[test]
    fn a_marked_process_here_is_ended_and_others_are_not() {
        let marker = format!("/test-kill-{}/0/", std::process::id());
        let marked = crate::process::Cmd::new("sleep", ["30"])
            .env(MARKER_VAR, &marker)
            .stream()
            .unwrap();
        let other = crate::process::Cmd::new("sleep", ["30"]).stream().unwrap();
        // Its environment is readable once it has exec'd.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut killed = 0;
        while killed == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            killed = kill_here(&marker);
        }
        assert_eq!(killed, 1);
        assert!(
            marked.try_wait().unwrap().is_some() || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                marked.try_wait().unwrap().is_some()
            }
        );
        assert!(other.try_wait().unwrap().is_none());
    }
}
