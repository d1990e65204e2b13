//! `.dockerignore`, matched as docker matches it: see the parent
//! module's doc for what is supported.

use super::budget::{Budget, Exhausted};

/// `.dockerignore`'s patterns, matched as docker matches them.
#[derive(Debug, Default)]
pub(super) struct Ignore {
    patterns: Vec<Pattern>,
    /// Some line is a `!` exception.
    pub(super) has_exceptions: bool,
}

#[derive(Debug)]
struct Pattern {
    tokens: Vec<Token>,
    exception: bool,
}

/// Docker turns a pattern into a regular expression; these are its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `?`: one byte, not `/`.
    One,
    /// `*`: any bytes but `/`.
    Star,
    /// `**` (and `**/`) before more: any directories, `(.*/)?`.
    Dirs,
    /// `**` at the end: anything.
    All,
}

impl Ignore {
    pub(super) fn parse(text: &str) -> Ignore {
        let mut ignore = Ignore::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let Some(cleaned) = clean(pattern) else {
                continue;
            };
            ignore.has_exceptions |= exception;
            ignore.patterns.push(Pattern {
                tokens: tokens(&cleaned),
                exception,
            });
        }
        ignore
    }

    /// How many patterns it has.
    pub(super) fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether `path` (relative to the context) is left out: the last
    /// pattern that matches it or a directory above it decides. The work
    /// is taken from `budget`.
    pub(super) fn excludes(&self, path: &[u8], budget: &mut Budget) -> Result<bool, Exhausted> {
        let mut excluded = false;
        for pattern in &self.patterns {
            if pattern.exception != excluded {
                continue;
            }
            let mut ends = path
                .iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b'/')
                .map(|(at, _)| at)
                .chain([path.len()]);
            // A directory above it, or the path itself.
            let matched = ends.try_fold(false, |found, end| {
                if found {
                    return Ok(true);
                }
                let (matched, steps) = matches(&pattern.tokens, &path[..end]);
                budget.spend(steps)?;
                Ok(matched)
            })?;
            if matched {
                excluded = !pattern.exception;
            }
        }
        Ok(excluded)
    }
}

/// Go's `filepath.Clean` of a pattern, leading `/` dropped; `None` for one
/// that names the context itself or leaves it (matches nothing).
fn clean(pattern: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn tokens(pattern: &str) -> Vec<Token> {
    let bytes = pattern.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        at += 1;
        match byte {
            b'*' if bytes.get(at) == Some(&b'*') => {
                at += 1;
                if bytes.get(at) == Some(&b'/') {
                    at += 1;
                }
                tokens.push(if at == bytes.len() {
                    Token::All
                } else {
                    Token::Dirs
                });
            }
            b'*' => tokens.push(Token::Star),
            b'?' => tokens.push(Token::One),
            b'\\' if at < bytes.len() => {
                tokens.push(Token::Byte(bytes[at]));
                at += 1;
            }
            other => tokens.push(Token::Byte(other)),
        }
    }
    tokens
}

/// Whether `tokens` match all of `path`, and the cells of the table that
/// took: a table over positions, so a pattern of many `*` takes time in
/// proportion to its length times the path's, never more, and it stops at
/// the first token that matches nowhere (most patterns, most paths: one
/// row).
fn matches(tokens: &[Token], path: &[u8]) -> (bool, u64) {
    let len = path.len();
    let row = len as u64 + 1;
    let mut steps = row;
    // `next[j]`: the tokens after this one match `path[j..]`.
    let mut next: Vec<bool> = (0..=len).map(|j| j == len).collect();
    let mut here = vec![false; len + 1];
    for token in tokens.iter().rev() {
        steps += row;
        // For `Dirs`: some k > j with path[k-1] == '/' and next[k].
        let mut slash_then_rest = false;
        let mut anywhere = false;
        for j in (0..=len).rev() {
            let byte = path.get(j).copied();
            here[j] = match *token {
                Token::Byte(want) => byte == Some(want) && next[j + 1],
                Token::One => byte.is_some_and(|b| b != b'/') && next[j + 1],
                Token::Star => next[j] || (byte.is_some_and(|b| b != b'/') && here[j + 1]),
                Token::All => next[j] || (byte.is_some() && here[j + 1]),
                Token::Dirs => {
                    if byte == Some(b'/') && next[j + 1] {
                        slash_then_rest = true;
                    }
                    next[j] || slash_then_rest
                }
            };
            anywhere |= here[j];
        }
        if !anywhere {
            return (false, steps);
        }
        std::mem::swap(&mut next, &mut here);
    }
    (next[0], steps)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Whether `ignore` excludes `path`, with all the work it takes.
    fn excluded_by(ignore: &Ignore, path: &[u8]) -> bool {
        ignore.excludes(path, &mut Budget::new(u64::MAX)).unwrap()
    }

    #[test]
    fn dockerignore_patterns_match_as_docker_s() {
        let ignore = Ignore::parse(
            "# comment\n\n*.log\n/build\n**/tmp\ndocs/**\n!docs/keep.md\nsrc/*/gen?.rs\n  spaced  \n",
        );
        let excluded = |path: &str| excluded_by(&ignore, path.as_bytes());
        assert!(excluded("a.log"));
        assert!(!excluded("dir/a.log"), "`*` stays in one component");
        assert!(excluded("build"));
        assert!(excluded("build/x/y.o"), "a directory's contents go with it");
        assert!(!excluded("src/build"));
        assert!(excluded("tmp"));
        assert!(excluded("a/b/tmp/c"));
        assert!(excluded("docs/guide.md"));
        assert!(!excluded("docs/keep.md"), "an exception re-includes");
        assert!(excluded("src/x/gen1.rs"));
        assert!(!excluded("src/x/gen12.rs"));
        assert!(!excluded("src/x/y/gen1.rs"));
        assert!(excluded("spaced"));
        assert!(!excluded("# comment"));
        assert!(!excluded("Dockerfile"));
        assert!(ignore.has_exceptions);

        let last_wins = Ignore::parse("*\n!app\napp/secret\n");
        assert!(excluded_by(&last_wins, b"other"));
        assert!(!excluded_by(&last_wins, b"app"));
        assert!(!excluded_by(&last_wins, b"app/main.py"));
        assert!(excluded_by(&last_wins, b"app/secret"));
        assert!(excluded_by(&last_wins, b"app/secret/x"));

        let nothing = Ignore::parse("../outside\n.\n");
        assert!(nothing.patterns.is_empty());
        let everything = Ignore::parse("**\n");
        assert!(excluded_by(&everything, b"a/b/c"));
    }

    #[test]
    fn a_pattern_of_many_stars_stays_fast() {
        let pattern = tokens(&"*a".repeat(200));
        let path = "a".repeat(199) + "b";
        let started = Instant::now();
        assert!(!matches(&pattern, path.as_bytes()).0);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
