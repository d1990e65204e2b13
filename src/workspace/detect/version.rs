//! Versions a repo asks for (`.nvmrc`, `engines.node`, `.python-version`,
//! `requires-python`, `go.mod`, …) turned into the version line an
//! official image is tagged with. Only numbers leave this module: a
//! version string the repo wrote never becomes part of an image reference
//! or a command as text, so `22; rm -rf /` or `--privileged` is no version.

/// A version line an image is tagged by: `22`, `3.11`, `1.23`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    pub major: u32,
    pub minor: Option<u32>,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.minor {
            Some(minor) => write!(f, "{}.{minor}", self.major),
            None => write!(f, "{}", self.major),
        }
    }
}

/// A range longer than this is not read (nobody writes one by hand).
const MAX_RANGE: usize = 200;
/// A version component of more digits is nobody's version.
const MAX_DIGITS: usize = 6;

/// `major[.minor[.patch]]`, with a leading `v` allowed (`v20.11.1`):
/// digits and dots only, nothing before or after.
pub fn exact(text: &str) -> Option<[u32; 3]> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut version = [0; 3];
    for (slot, part) in version.iter_mut().zip(&parts) {
        *slot = number(part)?;
    }
    Some(version)
}

/// How many components `exact` found in `text` (for `3.11` vs `3`).
fn components(text: &str) -> usize {
    text.trim().split('.').count()
}

/// `text` as the line it names: `3.11.4` is the line 3.11 where lines
/// have minors (`with_minor`), `22.1.0` the line 22 where they do not.
pub fn line_of(text: &str, with_minor: bool) -> Option<Line> {
    let [major, minor, _] = exact(text)?;
    Some(Line {
        major,
        minor: (with_minor && components(text.trim().trim_start_matches('v')) >= 2)
            .then_some(minor),
    })
}

fn number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > MAX_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The first version number in `text` (`>=18` → 18, `^3.10` → 3.10): a
/// last resort where a range matches none of the lines dual knows.
pub fn first_number(text: &str, with_minor: bool) -> Option<Line> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let found = rest[..end].trim_end_matches('.');
    let mut parts = found.split('.');
    let major = number(parts.next()?)?;
    let minor = match parts.next() {
        Some(minor) if with_minor => Some(number(minor)?),
        _ => None,
    };
    if with_minor && minor.is_none() {
        return None;
    }
    Some(Line { major, minor })
}

/// Which syntax a range is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// npm's semver ranges (`engines.node`): `^20`, `>=18 <21`, `18.x || 20`.
    Npm,
    /// PEP 440 specifiers (`requires-python`): `>=3.9,<3.13`, `~=3.10`.
    Pep440,
}

/// The line to run for `range`: `default` where it allows it, else the
/// newest of `lines` it allows (each line meaning its newest release),
/// else the first version it names; `None` where it says nothing usable.
pub fn choose(range: &str, syntax: Syntax, lines: &[Line], default: Line) -> Option<Line> {
    let range = range.trim();
    if range.len() > MAX_RANGE {
        return None;
    }
    let with_minor = default.minor.is_some();
    if let Some(alternatives) = parse_range(range, syntax) {
        let allows = |line: &Line| {
            let newest = [line.major, line.minor.unwrap_or(LATEST), LATEST];
            alternatives
                .iter()
                .any(|all| all.iter().all(|c| c.allows(newest)))
        };
        if allows(&default) {
            return Some(default);
        }
        if let Some(line) = lines.iter().filter(|line| allows(line)).max() {
            return Some(*line);
        }
    }
    first_number(range, with_minor)
}

/// The newest release of a line, as a component: above any real one.
const LATEST: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    /// The components given are a prefix of the version (`3.11.*`, `18.x`).
    Prefix(usize),
    NotPrefix(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: [u32; 3],
}

impl Comparator {
    fn allows(&self, v: [u32; 3]) -> bool {
        match self.op {
            Op::Ge => v >= self.version,
            Op::Gt => v > self.version,
            Op::Le => v <= self.version,
            Op::Lt => v < self.version,
            Op::Prefix(n) => v[..n] == self.version[..n],
            Op::NotPrefix(n) => v[..n] != self.version[..n],
        }
    }
}

/// A partial version (`18`, `3.11`, `18.x`, `3.11.*`): its numbers and how
/// many were given before any wildcard.
fn partial(text: &str) -> Option<([u32; 3], usize)> {
    let text = text.trim().strip_prefix('v').unwrap_or(text.trim());
    let mut version = [0; 3];
    let mut given = 0;
    for (i, part) in text.split('.').enumerate() {
        if i >= 3 {
            return None;
        }
        if matches!(part, "x" | "X" | "*") {
            break;
        }
        if given != i {
            return None;
        }
        version[i] = number(part)?;
        given += 1;
    }
    Some((version, given))
}

/// `range` as alternatives (any may hold), each a list of comparators
/// (all must hold); `None` where it is not a range of numbers.
fn parse_range(range: &str, syntax: Syntax) -> Option<Vec<Vec<Comparator>>> {
    match syntax {
        Syntax::Npm => range
            .split("||")
            .map(|alternative| npm_comparators(alternative.trim()))
            .collect(),
        Syntax::Pep440 => Some(vec![
            range
                .split(',')
                .map(|spec| pep440_comparators(spec.trim()))
                .collect::<Option<Vec<_>>>()?
                .concat(),
        ]),
    }
}

fn bump(version: [u32; 3], at: usize) -> [u32; 3] {
    let mut next = version;
    next[at] = next[at].saturating_add(1);
    for later in next.iter_mut().skip(at + 1) {
        *later = 0;
    }
    next
}

fn npm_comparators(alternative: &str) -> Option<Vec<Comparator>> {
    if alternative.is_empty() || matches!(alternative, "*" | "x" | "X") {
        return Some(Vec::new());
    }
    let words: Vec<&str> = alternative.split_whitespace().collect();
    if let [low, "-", high] = words.as_slice() {
        let (low, _) = partial(low)?;
        let (high, given) = partial(high)?;
        let upper = if given == 3 {
            Comparator {
                op: Op::Le,
                version: high,
            }
        } else {
            Comparator {
                op: Op::Lt,
                version: bump(high, given.max(1) - 1),
            }
        };
        return Some(vec![
            Comparator {
                op: Op::Ge,
                version: low,
            },
            upper,
        ]);
    }
    let mut all = Vec::new();
    // `>= 18` is one comparator written as two words.
    let mut pending_op: Option<&str> = None;
    for word in words {
        let word = match pending_op.take() {
            Some(op) => format!("{op}{word}"),
            None if matches!(word, ">=" | "<=" | ">" | "<" | "=" | "^" | "~") => {
                pending_op = Some(word);
                continue;
            }
            None => word.to_owned(),
        };
        let (op, rest) = ["^", "~", ">=", "<=", ">", "<", "="]
            .iter()
            .find_map(|op| word.strip_prefix(op).map(|rest| (*op, rest)))
            .unwrap_or(("", word.as_str()));
        let (version, given) = partial(rest)?;
        let ge = Comparator {
            op: Op::Ge,
            version,
        };
        match (op, given) {
            (_, 0) if matches!(op, "" | "=" | "^" | "~" | ">=" | "<=") => {}
            ("" | "=", n) => all.push(Comparator {
                op: Op::Prefix(n),
                version,
            }),
            ("^", _) => {
                // The first non-zero component stays (`^0.3` is `<0.4`).
                let at = version.iter().position(|&c| c != 0).unwrap_or(given - 1);
                all.extend([
                    ge,
                    Comparator {
                        op: Op::Lt,
                        version: bump(version, at.min(given - 1)),
                    },
                ]);
            }
            ("~", n) => all.extend([
                ge,
                Comparator {
                    op: Op::Lt,
                    version: bump(version, if n >= 2 { 1 } else { 0 }),
                },
            ]),
            (">=", _) => all.push(ge),
            ("<", _) => all.push(Comparator {
                op: Op::Lt,
                version,
            }),
            // A partial upper bound covers its whole line (`<=18` is `<19`).
            ("<=", n) if n < 3 => all.push(Comparator {
                op: Op::Lt,
                version: bump(version, n - 1),
            }),
            ("<=", _) => all.push(Comparator {
                op: Op::Le,
                version,
            }),
            (">", n) if n < 3 => all.push(Comparator {
                op: Op::Ge,
                version: bump(version, n - 1),
            }),
            (">", _) => all.push(Comparator {
                op: Op::Gt,
                version,
            }),
            _ => return None,
        }
    }
    if pending_op.is_some() {
        return None;
    }
    Some(all)
}

fn pep440_comparators(spec: &str) -> Option<Vec<Comparator>> {
    let (op, rest) = ["~=", "==", "!=", ">=", "<=", ">", "<"]
        .iter()
        .find_map(|op| spec.strip_prefix(op).map(|rest| (*op, rest.trim())))?;
    let (version, given) = partial(rest)?;
    let wildcard = rest.ends_with(".*");
    if given == 0 || (wildcard && !matches!(op, "==" | "!=")) {
        return None;
    }
    let one = |op| vec![Comparator { op, version }];
    Some(match op {
        ">=" => one(Op::Ge),
        ">" => one(Op::Gt),
        "<=" => one(Op::Le),
        "<" => one(Op::Lt),
        // `==3.11` is read as the 3.11 line: an image is a line's newest.
        "==" => one(Op::Prefix(given)),
        "!=" if wildcard => one(Op::NotPrefix(given)),
        "!=" => one(Op::NotPrefix(3)),
        // `~=3.10` is `>=3.10, ==3.*`; `~=3.10.2` is `>=3.10.2, ==3.10.*`.
        "~=" if given >= 2 => vec![
            Comparator {
                op: Op::Ge,
                version,
            },
            Comparator {
                op: Op::Prefix(given - 1),
                version,
            },
        ],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn major(major: u32) -> Line {
        Line { major, minor: None }
    }

    const fn minor(major: u32, minor: u32) -> Line {
        Line {
            major,
            minor: Some(minor),
        }
    }

    const NODE: [Line; 4] = [major(18), major(20), major(22), major(24)];
    const PYTHON: [Line; 5] = [
        minor(3, 9),
        minor(3, 10),
        minor(3, 11),
        minor(3, 12),
        minor(3, 13),
    ];

    #[test]
    fn exact_versions_are_digits_and_dots_only() {
        assert_eq!(exact("v20.11.1\n"), Some([20, 11, 1]));
        assert_eq!(exact("3.11"), Some([3, 11, 0]));
        assert_eq!(line_of("3.11.4", true), Some(minor(3, 11)));
        assert_eq!(line_of("22.1.0", false), Some(major(22)));
        assert_eq!(line_of("3", true), Some(major(3)));
        for hostile in [
            "22; rm -rf /",
            "--privileged",
            "22 --rm",
            "3.11-dev",
            "lts/iron",
            "1.2.3.4",
            "",
            "9999999",
            "22\u{1b}[2J",
            "٣.١١",
        ] {
            assert_eq!(exact(hostile), None, "{hostile:?}");
        }
    }

    #[test]
    fn npm_ranges_pick_the_default_else_the_newest_allowed() {
        for (range, expected) in [
            (">=18", 22),
            ("^20.10.0", 20),
            ("18.x", 18),
            ("20 || 22", 22),
            ("18 || 20", 20),
            (">=16 <21", 20),
            (">= 18.0.0 < 21", 20),
            ("~18.2", 18),
            ("<=20", 20),
            (">20", 22),
            (">22", 24),
            ("16 - 20", 20),
            ("*", 22),
            ("", 22),
            ("^16", 16),
            ("node >=14", 14),
        ] {
            assert_eq!(
                choose(range, Syntax::Npm, &NODE, major(22)),
                Some(major(expected)),
                "{range}"
            );
        }
        assert_eq!(choose("latest", Syntax::Npm, &NODE, major(22)), None);
        assert_eq!(
            choose("22; rm -rf /", Syntax::Npm, &NODE, major(22)),
            Some(major(22)),
            "only its number is read"
        );
        assert_eq!(
            choose(&">=1 ".repeat(100), Syntax::Npm, &NODE, major(22)),
            None
        );
    }

    #[test]
    fn pep440_specifiers_pick_the_default_else_the_newest_allowed() {
        for (range, expected) in [
            (">=3.9", minor(3, 12)),
            (">=3.9,<3.12", minor(3, 11)),
            ("<3.12", minor(3, 11)),
            ("<=3.11", minor(3, 10)),
            ("==3.10.*", minor(3, 10)),
            ("==3.11", minor(3, 11)),
            ("~=3.10", minor(3, 12)),
            ("~=3.10.2", minor(3, 10)),
            (">=3.13", minor(3, 13)),
            (">=3.8, !=3.12.*", minor(3, 13)),
            (">3.12", minor(3, 12)),
        ] {
            assert_eq!(
                choose(range, Syntax::Pep440, &PYTHON, minor(3, 12)),
                Some(expected),
                "{range}"
            );
        }
        assert_eq!(
            choose(">=3.14", Syntax::Pep440, &PYTHON, minor(3, 12)),
            Some(minor(3, 14)),
            "a line newer than dual knows: the one named"
        );
        assert_eq!(choose("bogus", Syntax::Pep440, &PYTHON, minor(3, 12)), None);
        assert_eq!(
            choose(">=3", Syntax::Pep440, &PYTHON, minor(3, 12)),
            Some(minor(3, 12))
        );
    }
}
