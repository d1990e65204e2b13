//! Debug logging to stderr, switched on by `-v` or `DUAL_LOG=debug`: enough to
//! see every external command dual runs, without pulling in a logging framework.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

pub fn debug(message: &str) {
    if verbose() {
        eprintln!("{}", debug_line(message));
    }
}

/// A debug line as the terminal gets it: the commands it shows carry a
/// repo's text (a devcontainer.json's env values, its lifecycle commands),
/// shown escaped as all of a repo's text is (see `untrusted`).
fn debug_line(message: &str) -> String {
    format!("[dual] {}", crate::untrusted::shown(message))
}

/// Where a long-running dual (the background proxy) writes its log: its
/// stderr, a file opened for appending. Kept under `limit` bytes: past it the
/// file is emptied (writes in append mode then start again at its start) and
/// says so, so that no outage or runaway can fill the disk.
pub fn bound_stderr(limit: u64) {
    bound_file(std::io::stderr().as_fd(), limit);
}

fn bound_file(fd: BorrowedFd<'_>, limit: u64) {
    let Ok(stat) = rustix::fs::fstat(fd) else {
        return;
    };
    let regular =
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile;
    if !regular || u64::try_from(stat.st_size).unwrap_or(0) <= limit {
        return;
    }
    if rustix::fs::ftruncate(fd, 0).is_ok() {
        let note = format!("[dual] log emptied at {limit} bytes\n");
        let _ = rustix::io::write(fd, note.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_command_s_escape_sequences_are_logged_escaped() {
        let line = super::debug_line(
            "+ docker run '--env=A=v\u{1b}]0;pwned\u{7}\u{1b}[2J' -- image\n  exit status 0",
        );
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\n'),
            "{line:?}"
        );
        assert!(line.contains("\\u{1b}]0;pwned"), "{line}");
    }

    #[test]
    fn a_log_over_its_limit_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.log");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        for _ in 0..100 {
            writeln!(file, "{}", "x".repeat(99)).unwrap();
            super::bound_file(file.as_fd(), 4096);
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 4096 + 100, "{size} bytes");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("[dual] log emptied at 4096 bytes\n"),
            "{text}"
        );
        writeln!(file, "after").unwrap();
        assert!(
            std::fs::read_to_string(&path).unwrap().ends_with("after\n"),
            "appends go on"
        );
    }
}
