//! Watching one side of a pair for changes: `inotifywait -m -r` here, and
//! the same over ssh on the engine's host, each printing the paths that
//! changed, NUL-terminated (a name may hold a newline), after the line
//! that says its watches are set.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;
use std::sync::mpsc::Sender;

use crate::process::{Cmd, CommandError, quote};
use crate::remote::Ssh;

/// Which copy of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Here,
    There,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Here => "here",
            Side::There => "on the engine's host",
        }
    }
}

/// What a watcher tells its pair.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// Its watches are set: every change from now on is reported.
    Ready(Side),
    /// This path (relative to the pair's root; empty for the root) changed.
    Changed(Side, OsString),
    /// The kernel dropped events: only a whole sync is sure to catch up.
    Overflow(Side),
    /// It ended (the link dropped, the root went away); why, as it said.
    Ended(Side, String),
}

/// The events that mean a change of content, name or metadata; never
/// reads (a container reading its sources must not cause syncs).
const EVENTS: &[&str] = &[
    "modify",
    "attrib",
    "close_write",
    "moved_to",
    "moved_from",
    "create",
    "delete",
    "delete_self",
];

/// What inotifywait says once every watch is set.
const ESTABLISHED: &[u8] = b"Watches established.\n";

/// inotifywait's arguments for `root`, its `ignore`d directories (relative)
/// never watched: never following a link (`-P`), one record per event,
/// `EVENTS PATH` and a NUL.
pub fn inotify_args(root: &OsStr, ignore: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-m", "-r", "-P", "--no-newline", "--format", "%e %w%f%0"]
        .map(OsString::from)
        .into();
    for event in EVENTS {
        args.push("-e".into());
        args.push((*event).into());
    }
    args.push("--".into());
    for dir in ignore {
        let mut exclude = OsString::from("@");
        exclude.push(root);
        exclude.push("/");
        exclude.push(dir);
        args.push(exclude);
    }
    args.push(root.to_owned());
    args
}

/// The watcher on this host.
pub fn here_command(root: &OsStr, ignore: &[String], marker: &str) -> Cmd {
    let mut args: Vec<OsString> = ["-c", "exec inotifywait \"$@\" 2>&1", "sh"]
        .map(OsString::from)
        .into();
    args.extend(inotify_args(root, ignore));
    Cmd::new("sh", args).env(super::processes::MARKER_VAR, marker)
}

/// The remote shell's line for the watcher on the engine's host. It reads
/// its stdin, held open by dual: once that ends (dual stopped, or the
/// channel closed), the watcher is ended, rather than staying until its
/// next event finds the pipe gone.
pub fn there_line(root: &str, ignore: &[String], marker: &str) -> String {
    let args: Vec<String> = inotify_args(OsStr::new(root), ignore)
        .iter()
        .map(|arg| quote(&arg.to_string_lossy()))
        .collect();
    format!(
        "{var}={marker}; export {var}; exec 3<&0 </dev/null; \
         inotifywait {args} 2>&1 & w=$!; \
         {{ cat <&3 >/dev/null 2>&1; kill $w 2>/dev/null; }} >/dev/null 2>&1 & \
         exec 3<&-; wait $w",
        var = super::processes::MARKER_VAR,
        marker = quote(marker),
        args = args.join(" "),
    )
}

/// What a watcher watches.
#[derive(Debug, Clone, Copy)]
pub struct Watched<'a> {
    pub root: &'a OsStr,
    pub ignore: &'a [String],
    /// Its processes' marker (see `processes`).
    pub marker: &'a str,
}

/// A running watcher: ends when dropped.
pub struct Watcher {
    handle: Arc<duct::ReaderHandle>,
    /// The remote watcher's stdin: closing it ends the watcher there.
    _stdin: Option<std::io::PipeWriter>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.handle.kill();
    }
}

impl Watcher {
    /// Starts watching `root` on `side`; its reports go to `reports`,
    /// tagged with `generation` (a later watcher's reports are told from
    /// an earlier one's that are still on their way).
    pub fn start(
        side: Side,
        ssh: &Ssh,
        watched: Watched<'_>,
        generation: u64,
        reports: Sender<(u64, Report)>,
    ) -> Result<Watcher, CommandError> {
        let Watched {
            root,
            ignore,
            marker,
        } = watched;
        let (handle, stdin) = match side {
            Side::Here => (here_command(root, ignore, marker).stream()?, None),
            Side::There => {
                let line = there_line(&root.to_string_lossy(), ignore, marker);
                let (handle, stdin) = ssh.command(&line).stream_holding_stdin()?;
                (handle, Some(stdin))
            }
        };
        let handle = Arc::new(handle);
        let reading = Arc::clone(&handle);
        let mut parser = Parser::new(side, root.as_bytes());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            loop {
                match (&*reading).read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        for report in parser.feed(&buffer[..read]) {
                            if reports.send((generation, report)).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            let _ = reports.send((generation, Report::Ended(side, parser.said())));
        });
        Ok(Watcher {
            handle,
            _stdin: stdin,
        })
    }
}

/// Turns inotifywait's output into reports.
pub struct Parser {
    side: Side,
    /// The watched root, as inotifywait prints it (no trailing `/`).
    root: Vec<u8>,
    pending: Vec<u8>,
    established: bool,
    /// The last lines it printed that were not events (its errors).
    messages: Vec<String>,
}

impl Parser {
    pub fn new(side: Side, root: &[u8]) -> Parser {
        let mut root = root.to_vec();
        while root.len() > 1 && root.ends_with(b"/") {
            root.pop();
        }
        Parser {
            side,
            root,
            pending: Vec::new(),
            established: false,
            messages: Vec::new(),
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Report> {
        self.pending.extend_from_slice(bytes);
        let mut reports = Vec::new();
        if !self.established {
            let Some(at) = find(&self.pending, ESTABLISHED) else {
                return reports;
            };
            let before: Vec<u8> = self.pending.drain(..at + ESTABLISHED.len()).collect();
            self.note(&before[..at]);
            self.established = true;
            reports.push(Report::Ready(self.side));
        }
        while let Some(end) = self.pending.iter().position(|&b| b == 0) {
            let record: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(report) = self.record(&record[..end]) {
                reports.push(report);
            }
        }
        reports
    }

    /// `EVENTS PATH`, maybe after a message on stderr (`2>&1`), which ends
    /// with a newline before the events (event names have none).
    fn record(&mut self, record: &[u8]) -> Option<Report> {
        // Events start the record or a line of it: `CREATE,ISDIR `.
        let is_events = |text: &[u8]| {
            let end = text.iter().position(|&b| b == b' ');
            end.is_some_and(|end| {
                end > 0
                    && text[..end]
                        .iter()
                        .all(|&b| b.is_ascii_uppercase() || b == b'_' || b == b',')
            })
        };
        let start = std::iter::once(0)
            .chain(
                record
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(at, _)| at + 1),
            )
            .find(|&at| is_events(&record[at..]));
        let Some(start) = start else {
            self.note(record);
            return None;
        };
        if start > 0 {
            self.note(&record[..start - 1]);
        }
        let record = &record[start..];
        let space = record.iter().position(|&b| b == b' ')?;
        let (events, path) = (&record[..space], &record[space + 1..]);
        if events.split(|&b| b == b',').any(|e| e == b"Q_OVERFLOW") {
            return Some(Report::Overflow(self.side));
        }
        let relative = self.relative(path)?;
        Some(Report::Changed(self.side, OsString::from_vec(relative)))
    }

    /// `path` relative to the root: `%w%f` is `ROOT/` for the root itself
    /// and `ROOT/DIR/` for an event on a watched directory itself.
    fn relative(&self, path: &[u8]) -> Option<Vec<u8>> {
        let rest = path.strip_prefix(self.root.as_slice())?;
        let rest = match rest {
            [] => rest,
            [b'/', rest @ ..] => rest,
            _ => return None,
        };
        let mut rest = rest.to_vec();
        while rest.ends_with(b"/") {
            rest.pop();
        }
        Some(rest)
    }

    fn note(&mut self, text: &[u8]) {
        for line in String::from_utf8_lossy(text).lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("Setting up watches") {
                continue;
            }
            self.messages.push(line.to_owned());
            if self.messages.len() > 5 {
                self.messages.remove(0);
            }
        }
    }

    /// What it printed besides events, for the reason it ended.
    pub fn said(&mut self) -> String {
        if !self.established {
            let pending = std::mem::take(&mut self.pending);
            self.note(&pending);
        }
        if self.messages.is_empty() {
            "it ended".into()
        } else {
            self.messages.join("; ")
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Whether a changed path needs no sync: in an ignored directory, or one
/// of unison's own temporary files (it writes `.unison.NAME.….unison.tmp`
/// and renames it into place; the rename is the change that counts).
pub fn is_ignored(relative: &OsStr, ignore: &[String]) -> bool {
    let bytes = relative.as_bytes();
    let under = |dir: &str| {
        let dir = dir.as_bytes();
        bytes == dir || (bytes.starts_with(dir) && bytes.get(dir.len()) == Some(&b'/'))
    };
    if ignore.iter().any(|dir| under(dir)) {
        return true;
    }
    bytes
        .split(|&b| b == b'/')
        .any(|component| component.starts_with(b".unison.") && component.ends_with(b".unison.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(path: &str) -> Report {
        Report::Changed(Side::Here, path.into())
    }

    #[test]
    fn paths_come_relative_once_the_watches_are_set() {
        let mut parser = Parser::new(Side::Here, b"/w/clone");
        let setup = b"Setting up watches.  Beware: since -r was given, this may take a while!\n";
        assert_eq!(parser.feed(setup), []);
        let mut out =
            b"Watches established.\nMODIFY /w/clone/src/a.rs\0CREATE,ISDIR /w/clone/".to_vec();
        out.extend_from_slice(
            b"new dir\0DELETE_SELF /w/clone/gone/\0MOVED_TO /w/clone/line\nbreak\0",
        );
        out.extend_from_slice(b"ATTRIB /w/clone/\0MODIFY /w/clone2/x\0MODIFY /w/cl");
        assert_eq!(
            parser.feed(&out),
            [
                Report::Ready(Side::Here),
                changed("src/a.rs"),
                changed("new dir"),
                changed("gone"),
                changed("line\nbreak"),
                changed(""),
            ]
        );
        assert_eq!(parser.feed(b"one/b\0"), [changed("b")]);
    }

    #[test]
    fn a_record_split_across_reads_is_whole() {
        let mut parser = Parser::new(Side::There, b"/w/clone/");
        parser.feed(b"Watches established.\n");
        assert_eq!(parser.feed(b"CLOSE_WRITE,CLOSE /w/cl"), []);
        assert_eq!(
            parser.feed(b"one/x.txt\0"),
            [Report::Changed(Side::There, "x.txt".into())]
        );
    }

    #[test]
    fn an_error_between_events_is_kept_as_a_message() {
        let mut parser = Parser::new(Side::Here, b"/w");
        parser.feed(b"Watches established.\n");
        let reports = parser.feed(
            b"Failed to watch /w/deep; upper limit on inotify watches reached!\nCREATE /w/f\0",
        );
        assert_eq!(reports, [changed("f")]);
        assert!(parser.said().contains("upper limit"), "{}", parser.said());
        assert_eq!(
            parser.feed(b"Q_OVERFLOW \0"),
            [Report::Overflow(Side::Here)]
        );
    }

    #[test]
    fn a_watcher_that_fails_before_its_watches_says_why() {
        let mut parser = Parser::new(Side::Here, b"/w");
        assert_eq!(
            parser.feed(b"Setting up watches.\nCouldn't watch /w: No such file or directory\n"),
            []
        );
        assert_eq!(
            parser.said(),
            "Couldn't watch /w: No such file or directory"
        );
    }

    #[test]
    fn ignored_dirs_and_unison_temporaries_are_skipped() {
        let ignore = ["node_modules".to_string(), "web/node_modules".to_string()];
        let skipped = |path: &str| is_ignored(OsStr::new(path), &ignore);
        assert!(skipped("node_modules"));
        assert!(skipped("node_modules/x/y.js"));
        assert!(skipped("web/node_modules/a"));
        assert!(!skipped("node_modules2/a"));
        assert!(!skipped("web/node"));
        assert!(!skipped("src/node_modules.txt"));
        assert!(skipped("src/.unison.a.rs.1f2e.unison.tmp"));
        assert!(skipped(".unison.src.99.unison.tmp/deep/file"));
        assert!(!skipped(".unison.keep"));
    }

    #[test]
    fn the_watch_never_follows_links_and_skips_ignored_dirs() {
        let args: Vec<String> = inotify_args(OsStr::new("/w/clone"), &["node_modules".into()])
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"-P".into()), "{args:?}");
        assert!(!args.contains(&"access".into()), "{args:?}");
        let dash = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(&args[dash + 1..], ["@/w/clone/node_modules", "/w/clone"]);
    }

    #[test]
    fn the_remote_watcher_quotes_every_word_and_ends_with_its_stdin() {
        let line = there_line("/home/u/dual remote/ws", &["a'b".into()], "/ws/0/");
        assert!(line.contains("'/home/u/dual remote/ws'"), "{line}");
        assert!(line.contains(r"'@/home/u/dual remote/ws/a'\''b'"), "{line}");
        assert!(line.contains("cat <&3"), "{line}");
        assert!(
            line.starts_with("DUAL_SYNC=/ws/0/; export DUAL_SYNC;"),
            "{line}"
        );
    }
}
