//! A workspace's logs, read: its services' (files the supervisors write,
//! see `workspace::services`) and its sidecars' (which the engine keeps).
//!
//! Each read returns a cursor, `next`, and a later read given it returns
//! only what was written after it:
//! - a service's: `f{INODE}.{BORN}:{OFFSET}`, the file (`LogId`) and the
//!   byte after its last whole line. A log rolls over to `.1`, so the rest
//!   is in `.1` and then the current file; a file that rolled away twice is
//!   gone (`lost`).
//! - a sidecar's: `t{SECONDS}.{NANOSECONDS}`, the engine's time of the last
//!   line read (from its `--timestamps`, so another host's clock, or a line
//!   written during the read, never skips or repeats a line).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::engine::{Engine, EngineKind, LogsQuery};
use crate::error::HintExt as _;
use crate::process::Cmd;
use crate::workspace::services::{self, LOG_LIMIT, LogId};
use crate::workspace::{State, Workspace};

/// At most this many of the newest bytes of each stream of a sidecar's log
/// are read (a service's log holds at most twice `LOG_LIMIT` too).
pub const SIDECAR_LOG_CAP: usize = 2 * LOG_LIMIT as usize;

/// What one service or sidecar printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLog {
    pub service: String,
    pub sidecar: bool,
    /// Its lines, each ended by `\n`. A service's unfinished last line is
    /// here, and again whole after `next`.
    pub text: String,
    /// The cursor to pass as `since` for what comes after `text`.
    pub next: String,
    /// Some of what was written since the cursor (or, without one, some
    /// older output of a sidecar) is no longer there: rolled away, or past
    /// the bound on what is read.
    pub lost: bool,
}

/// The logs of a workspace's services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    pub workspace: String,
    pub logs: Vec<ServiceLog>,
}

impl Logs {
    /// As `dual logs` prints them: each line prefixed with `SERVICE | `
    /// when there are several services.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.logs.len() < 2 {
            self.logs.iter().for_each(|log| out.push_str(&log.text));
            return out;
        }
        for log in &self.logs {
            for line in log.text.lines() {
                push_line(&mut out, Some(&log.service), line);
            }
        }
        out
    }
}

fn push_line(out: &mut String, prefix: Option<&str>, line: &str) {
    if let Some(prefix) = prefix {
        out.push_str(prefix);
        out.push_str(" | ");
    }
    out.push_str(line);
    out.push('\n');
}

/// The logs of `workspace` (else the one around the working directory):
/// of `service` (a service or a sidecar), else of every service of its
/// config (sidecars are named one at a time). `tail`: at most this many
/// last lines of each. `since`: a cursor,
/// the `next` of an earlier read of the same service: only what was written
/// after it.
pub fn read(
    flag: Option<EngineKind>,
    state: &State,
    workspace: Option<&str>,
    service: Option<&str>,
    tail: Option<usize>,
    since: Option<&str>,
) -> anyhow::Result<Logs> {
    let (workspace, config, service) = super::services::resolve_named(state, workspace, service)?;
    if let Some(sidecar) = service
        .as_deref()
        .filter(|s| config.sidecars.contains_key(*s))
    {
        let engine = super::engine_for(flag, Some(workspace)).hinted()?;
        let container = crate::workspace::stack::container_name(workspace, sidecar);
        let mut log = read_container(&engine, &container, tail, since)?;
        log.service = sidecar.to_owned();
        return Ok(Logs {
            workspace: workspace.name(),
            logs: vec![log],
        });
    }
    let names: Vec<String> = match service {
        Some(service) => vec![service],
        None => config.services.keys().cloned().collect(),
    };
    if names.is_empty() {
        anyhow::bail!(crate::error::Hinted {
            message: format!("`{}` has no services, so no logs", workspace.name()),
            hint: "add a `[services.NAME]` table with a `command` to its .dual.toml; \
                   `dual run` shows a command's output as it runs"
                .into(),
        });
    }
    let since = match since.map(Cursor::parse).transpose()? {
        None => None,
        Some(_) if names.len() > 1 => anyhow::bail!(crate::error::Hinted {
            message: format!(
                "a cursor is one service's, and `{}` has several ({})",
                workspace.name(),
                names.join(", ")
            ),
            hint: "name the service whose earlier read gave the cursor".into(),
        }),
        Some(Cursor::File(at)) => Some(at),
        Some(Cursor::Time(_)) => return Err(wrong_cursor(&names[0], "a sidecar's log")),
    };
    let logs = names
        .into_iter()
        .map(|name| {
            let log = services::log_file(&workspace.name(), &name);
            let read = read_file(&log, since);
            ServiceLog {
                service: name,
                sidecar: false,
                text: lines_of(&read.bytes, tail),
                next: Cursor::File(read.next).to_string(),
                lost: read.lost,
            }
        })
        .collect();
    Ok(Logs {
        workspace: workspace.name(),
        logs,
    })
}

/// The engine's own `logs --follow` of a sidecar, to run attached to a
/// terminal (starting with its last `tail` lines).
pub fn follow_sidecar(
    flag: Option<EngineKind>,
    workspace: &Workspace,
    sidecar: &str,
    tail: Option<usize>,
) -> anyhow::Result<Cmd> {
    let engine = super::engine_for(flag, Some(workspace)).hinted()?;
    let container = crate::workspace::stack::container_name(workspace, sidecar);
    let query = LogsQuery {
        follow: true,
        ..LogsQuery::tail(tail)
    };
    Ok(engine.logs_cmd(&container, &query))
}

/// Service logs being followed: each look returns what was written since
/// the one before, in whole lines.
#[derive(Debug)]
pub struct Follower {
    workspace: String,
    followed: Vec<Followed>,
}

#[derive(Debug)]
struct Followed {
    service: String,
    log: PathBuf,
    at: Position,
}

impl Follower {
    /// Follows the service logs of `logs` from where that read ended (a
    /// sidecar's is followed by its engine: `follow_sidecar`).
    pub fn new(logs: &Logs) -> anyhow::Result<Follower> {
        let mut followed = Vec::new();
        for log in logs.logs.iter().filter(|log| !log.sidecar) {
            let Cursor::File(at) = Cursor::parse(&log.next)? else {
                return Err(wrong_cursor(&log.service, "a sidecar's log"));
            };
            followed.push(Followed {
                service: log.service.clone(),
                log: services::log_file(&logs.workspace, &log.service),
                at,
            });
        }
        Ok(Follower {
            workspace: logs.workspace.clone(),
            followed,
        })
    }

    /// What each service wrote since the last look, in whole lines (an
    /// unfinished one waits for its end); an empty `text` when nothing.
    pub fn read_new(&mut self) -> Logs {
        let logs = self
            .followed
            .iter_mut()
            .map(|followed| {
                let read = read_file(&followed.log, Some(followed.at));
                followed.at = read.next;
                ServiceLog {
                    service: followed.service.clone(),
                    sidecar: false,
                    text: lines_of(&read.bytes[..read.whole], None),
                    next: Cursor::File(read.next).to_string(),
                    lost: read.lost,
                }
            })
            .collect();
        Logs {
            workspace: self.workspace.clone(),
            logs,
        }
    }
}

/// A cursor, as `next` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    File(Position),
    Time(Stamp),
}

/// A place in a service's log: the file, and the byte offset in it. The
/// file is `NONE` when there was no log yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    file: LogId,
    offset: u64,
}

const NONE: LogId = LogId { inode: 0, born: 0 };

/// A time as the engine tells it: seconds since the epoch, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    seconds: i64,
    nanos: u32,
}

impl Stamp {
    /// The engine's `--since`: a unix time with its fraction.
    fn since_arg(self) -> String {
        format!("{}.{:09}", self.seconds, self.nanos)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::File(at) => write!(f, "f{}.{}:{}", at.file.inode, at.file.born, at.offset),
            Cursor::Time(stamp) => write!(f, "t{}", stamp.since_arg()),
        }
    }
}

impl Cursor {
    fn parse(text: &str) -> anyhow::Result<Cursor> {
        let parsed = if let Some(file) = text.strip_prefix('f') {
            (|| {
                let (id, offset) = file.split_once(':')?;
                let (inode, born) = id.split_once('.')?;
                Some(Cursor::File(Position {
                    file: LogId {
                        inode: inode.parse().ok()?,
                        born: born.parse().ok()?,
                    },
                    offset: offset.parse().ok()?,
                }))
            })()
        } else if let Some(time) = text.strip_prefix('t') {
            (|| {
                let (seconds, nanos) = time.split_once('.')?;
                let nanos: u32 = nanos.parse().ok()?;
                (nanos < 1_000_000_000).then_some(Cursor::Time(Stamp {
                    seconds: seconds.parse().ok()?,
                    nanos,
                }))
            })()
        } else {
            None
        };
        parsed.ok_or_else(|| {
            anyhow::Error::new(crate::error::Hinted {
                message: format!("`{text}` is not a logs cursor"),
                hint: "pass the `next` of an earlier logs call, for the same service".into(),
            })
        })
    }
}

fn wrong_cursor(service: &str, whose: &str) -> anyhow::Error {
    anyhow::Error::new(crate::error::Hinted {
        message: format!("the cursor is one of {whose}, not of `{service}`'s"),
        hint: "pass the `next` of an earlier logs call, for the same service".into(),
    })
}

/// What was read of a service's log.
#[derive(Debug)]
struct FileRead {
    bytes: Vec<u8>,
    /// How many of `bytes` are whole lines.
    whole: usize,
    /// After the last whole line.
    next: Position,
    lost: bool,
}

/// A service's log `log` (with its rolled-over `.1`) from `since` on, else
/// whole.
fn read_file(log: &Path, since: Option<Position>) -> FileRead {
    let current = services::open_log(log);
    let current_id = current.as_ref().map(|log| log.id);
    let mut parts: Vec<(Position, Vec<u8>)> = Vec::new();
    let mut lost = false;
    match current {
        Some(current) if since.is_some_and(|at| at.file == current.id) => {
            let at = since.expect("matched");
            // Past its end: not a place this file ever had.
            lost = at.offset > current.size;
            let from = if lost { 0 } else { at.offset };
            let start = Position {
                file: current.id,
                offset: from,
            };
            parts.push((start, current.read_from(from)));
        }
        current => {
            // `.1` is opened after the current file: a roll-over between
            // the two opens shows the same file twice (skipped), never
            // hides one.
            let older =
                services::open_log(&rolled(log)).filter(|older| Some(older.id) != current_id);
            let expected = since.filter(|at| at.file != NONE);
            match older {
                Some(older) => {
                    let from = match expected {
                        Some(at) if at.file == older.id && at.offset <= older.size => at.offset,
                        Some(_) => {
                            lost = true;
                            0
                        }
                        None => 0,
                    };
                    let start = Position {
                        file: older.id,
                        offset: from,
                    };
                    parts.push((start, older.read_from(from)));
                }
                None => lost = expected.is_some(),
            }
            if let Some(current) = current {
                let start = Position {
                    file: current.id,
                    offset: 0,
                };
                parts.push((start, current.read_from(0)));
            }
        }
    }
    let mut bytes = Vec::new();
    let mut whole = 0;
    let mut next = None;
    for (start, part) in parts.iter() {
        if let Some(newline) = part.iter().rposition(|&byte| byte == b'\n') {
            whole = bytes.len() + newline + 1;
            next = Some(Position {
                file: start.file,
                offset: start.offset + newline as u64 + 1,
            });
        }
        bytes.extend_from_slice(part);
    }
    // No whole line: the next read starts where this one did.
    let next = next
        .or_else(|| parts.first().map(|(start, _)| *start))
        .or(since)
        .unwrap_or(Position {
            file: NONE,
            offset: 0,
        });
    FileRead {
        bytes,
        whole,
        next,
        lost,
    }
}

fn rolled(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// `bytes` as lines, each ended by `\n`: the last `tail` of them, else all.
fn lines_of(bytes: &[u8], tail: Option<usize>) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    let from = tail.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = String::new();
    for line in &lines[from..] {
        push_line(&mut out, None, line);
    }
    out
}

/// The log of a container (a sidecar's) as the engine keeps it: stdout,
/// then stderr (the engine keeps them apart), its last `tail` lines (of
/// both together: so docker and podman count) and at most the last
/// `SIDECAR_LOG_CAP` bytes of each. `since`: the `next` of an earlier
/// read of it. The `service` of the answer is the container's name.
pub fn read_container(
    engine: &Engine,
    container: &str,
    tail: Option<usize>,
    since: Option<&str>,
) -> anyhow::Result<ServiceLog> {
    let since = match since.map(Cursor::parse).transpose()? {
        None => None,
        Some(Cursor::Time(stamp)) => Some(stamp),
        Some(Cursor::File(_)) => return Err(wrong_cursor(container, "a service's log file")),
    };
    let query = LogsQuery {
        tail,
        since: since.map(Stamp::since_arg),
        timestamps: true,
        ..LogsQuery::default()
    };
    let kept = engine
        .logs_kept(container, &query, SIDECAR_LOG_CAP)
        .hinted()?;
    // Nothing read: everything from the start of time is new.
    let mut next = since.unwrap_or(Stamp {
        seconds: 0,
        nanos: 0,
    });
    let mut text = String::new();
    for (stream, cut) in [
        (&kept.stdout, kept.stdout_cut),
        (&kept.stderr, kept.stderr_cut),
    ] {
        let stream = String::from_utf8_lossy(stream);
        // A stream cut to its end begins mid-line.
        for line in stream.split_inclusive('\n').skip(usize::from(cut)) {
            match split_stamp(line) {
                // `--since` keeps what was written at that very time.
                Some((stamp, _)) if since.is_some_and(|since| stamp <= since) => {}
                Some((stamp, rest)) => {
                    next = next.max(stamp);
                    text.push_str(rest);
                }
                // The engine's own words (the container is gone).
                None => text.push_str(line),
            }
        }
    }
    Ok(ServiceLog {
        service: container.to_owned(),
        sidecar: true,
        text,
        next: Cursor::Time(next).to_string(),
        lost: kept.stdout_cut || kept.stderr_cut,
    })
}

/// A line of `logs --timestamps`: its time and the rest after the space.
fn split_stamp(line: &str) -> Option<(Stamp, &str)> {
    let (time, rest) = line.split_once(' ')?;
    Some((parse_rfc3339(time)?, rest))
}

/// `2024-05-06T07:08:09.123456789Z` (or with an offset, `+02:00`).
fn parse_rfc3339(time: &str) -> Option<Stamp> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = time.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators
        .iter()
        .all(|&(at, byte)| time.as_bytes().get(at) == Some(&byte))
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &time[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (place, byte) in fraction.bytes().take(9).take(digits).enumerate() {
            nanos += u32::from(byte - b'0') * 10u32.pow(8 - place as u32);
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = rest[1..].split_once(':')?;
            if hours.len() != 2 || minutes.len() != 2 {
                return None;
            }
            sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60)
        }
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(Stamp { seconds, nanos })
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (counted in 400-year eras of 146 097 days, years starting in March so
/// that the leap day ends one).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A scratch logs directory with one service's log.
    struct Scratch {
        _dir: tempfile::TempDir,
        log: PathBuf,
    }

    impl Scratch {
        fn new() -> Scratch {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("web.log");
            Scratch { _dir: dir, log }
        }

        fn append(&self, text: &str) {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .unwrap();
            file.write_all(text.as_bytes()).unwrap();
        }

        /// As the supervisor rolls a log over: renamed to `.1` (replacing
        /// the older one), a new file started.
        fn roll(&self) {
            std::fs::rename(&self.log, rolled(&self.log)).unwrap();
            // Two files born in the same nanosecond would look alike.
            std::thread::sleep(std::time::Duration::from_millis(2));
            self.append("");
        }

        /// The text and cursor of a read from `since` (a cursor's text).
        fn read(&self, since: Option<&str>, tail: Option<usize>) -> (String, String, bool) {
            let since = since.map(|text| match Cursor::parse(text).unwrap() {
                Cursor::File(at) => at,
                Cursor::Time(_) => panic!("a time"),
            });
            let read = read_file(&self.log, since);
            (
                lines_of(&read.bytes, tail),
                Cursor::File(read.next).to_string(),
                read.lost,
            )
        }
    }

    #[test]
    fn a_cursor_gives_only_what_was_appended_since() {
        let scratch = Scratch::new();
        let (text, start, lost) = scratch.read(None, None);
        assert_eq!((text.as_str(), start.as_str(), lost), ("", "f0.0:0", false));
        scratch.append("one\ntwo\n");
        // From before the log existed: all of it, nothing lost.
        let (text, next, lost) = scratch.read(Some(&start), None);
        assert_eq!((text.as_str(), lost), ("one\ntwo\n", false));
        assert!(next.ends_with(":8"), "{next}");
        scratch.append("three\n");
        let (text, next, lost) = scratch.read(Some(&next), None);
        assert_eq!((text.as_str(), lost), ("three\n", false));
        // Nothing new: nothing, and the same cursor.
        let (text, again, _) = scratch.read(Some(&next), None);
        assert_eq!((text.as_str(), &again), ("", &next));
    }

    #[test]
    fn an_unfinished_line_is_shown_and_again_once_whole() {
        let scratch = Scratch::new();
        scratch.append("done\nhalf");
        let (text, next, _) = scratch.read(None, None);
        assert_eq!(text, "done\nhalf\n");
        assert!(next.ends_with(":5"), "{next}");
        scratch.append(" and the rest\n");
        let (text, _, _) = scratch.read(Some(&next), None);
        assert_eq!(text, "half and the rest\n");
        // What `dual logs -f` prints: whole lines only.
        let read = read_file(&scratch.log, None);
        assert_eq!(read.whole, read.bytes.len());
    }

    #[test]
    fn after_one_roll_over_the_rest_of_the_old_file_comes_first() {
        let scratch = Scratch::new();
        scratch.append("one\n");
        let (_, next, _) = scratch.read(None, None);
        scratch.append("two\n");
        scratch.roll();
        scratch.append("three\n");
        let (text, next, lost) = scratch.read(Some(&next), None);
        assert_eq!((text.as_str(), lost), ("two\nthree\n", false));
        // Without a cursor: the rolled file, then the current one.
        assert_eq!(scratch.read(None, None).0, "one\ntwo\nthree\n");
        // The cursor now names the new file.
        scratch.append("four\n");
        assert_eq!(scratch.read(Some(&next), None).0, "four\n");
    }

    #[test]
    fn after_two_roll_overs_everything_there_is_comes_and_it_says_lost() {
        let scratch = Scratch::new();
        scratch.append("one\n");
        let (_, next, _) = scratch.read(None, None);
        scratch.append("two\n");
        scratch.roll();
        scratch.append("three\n");
        scratch.roll();
        // The first file is gone; ext4 hands its inode to the next file,
        // which must not pass for it.
        scratch.append("four\nfive\nsix\n");
        let (text, _, lost) = scratch.read(Some(&next), None);
        assert_eq!((text.as_str(), lost), ("three\nfour\nfive\nsix\n", true));
        // A cursor of the right shape naming no file there: the same.
        let (text, _, lost) = scratch.read(Some("f1.2:3"), None);
        assert_eq!((text.as_str(), lost), ("three\nfour\nfive\nsix\n", true));
        // An offset past the file's end is no place in it.
        let (_, current, _) = scratch.read(None, None);
        let past = current.replace(":14", ":500");
        assert_ne!(past, current);
        let (text, _, lost) = scratch.read(Some(&past), None);
        assert_eq!((text.as_str(), lost), ("four\nfive\nsix\n", true));
    }

    #[test]
    fn tail_keeps_the_last_lines_and_the_cursor_stays_at_the_end() {
        let scratch = Scratch::new();
        scratch.append("one\ntwo\nthree\n");
        let (text, next, _) = scratch.read(None, Some(2));
        assert_eq!(text, "two\nthree\n");
        assert!(next.ends_with(":14"), "{next}");
        scratch.append("four\nfive\nsix\n");
        assert_eq!(scratch.read(Some(&next), Some(1)).0, "six\n");
        assert_eq!(scratch.read(None, Some(0)).0, "");
    }

    #[test]
    fn a_cursor_that_does_not_parse_says_what_to_pass() {
        for bad in [
            "",
            "12:3",
            "f12:3",
            "fx.1:2",
            "t1",
            "t1.x",
            "t1.1000000000",
            "x1.2:3",
        ] {
            let error = Cursor::parse(bad).unwrap_err();
            assert!(
                error.to_string().contains("is not a logs cursor"),
                "{bad}: {error}"
            );
            let hint = error
                .downcast_ref::<crate::error::Hinted>()
                .unwrap()
                .hint
                .clone();
            assert!(hint.contains("`next`"), "{hint}");
        }
        for good in ["f12.34:56", "t1700000000.000000001"] {
            assert_eq!(Cursor::parse(good).unwrap().to_string(), good);
        }
    }

    #[test]
    fn engine_timestamps_are_read_as_unix_times() {
        let stamp = |text| parse_rfc3339(text).map(|s: Stamp| (s.seconds, s.nanos));
        assert_eq!(stamp("1970-01-01T00:00:00Z"), Some((0, 0)));
        // `date -u -d 2026-11-30T17:22:50Z +%s`
        assert_eq!(
            stamp("2026-11-30T17:22:50.983552703Z"),
            Some((1_796_059_370, 983_552_703))
        );
        assert_eq!(
            stamp("2024-02-29T12:00:00.5+02:00"),
            Some((1_709_200_800, 500_000_000))
        );
        assert_eq!(stamp("2000-03-01T00:00:00Z"), Some((951_868_800, 0)));
        for bad in [
            "",
            "hello",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
        ] {
            assert_eq!(stamp(bad), None, "{bad}");
        }
        let (stamp, rest) = split_stamp("2026-11-30T17:22:50.983552703Z ready to serve\n").unwrap();
        assert_eq!((stamp.seconds, rest), (1_796_059_370, "ready to serve\n"));
        assert!(split_stamp("no time here\n").is_none());
    }

    #[test]
    fn several_logs_render_with_their_names() {
        let log = |service: &str, text: &str| ServiceLog {
            service: service.into(),
            sidecar: false,
            text: text.into(),
            next: String::new(),
            lost: false,
        };
        let one = Logs {
            workspace: "w".into(),
            logs: vec![log("web", "a\nb\n")],
        };
        assert_eq!(one.render(), "a\nb\n");
        let two = Logs {
            workspace: "w".into(),
            logs: vec![log("api", "x\n"), log("web", "a\nb\n")],
        };
        assert_eq!(two.render(), "api | x\nweb | a\nweb | b\n");
    }
}
