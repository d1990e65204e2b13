//! What a Dockerfile takes from its build context, read from its text: the
//! sources of its `COPY` and `ADD` instructions, so that only those files
//! (and the Dockerfile) are hashed and handed to the engine, and a change
//! to any other file of the repo rebuilds nothing.
//!
//! The reading is deliberately narrow. Whatever it cannot follow for
//! certain makes the whole context count ([`Uses::Everything`], with the
//! reason): a parser directive naming a frontend other than
//! `docker/dockerfile`, a heredoc, a source named through a variable
//! (`COPY $SRC .`), quoted or escaped, a `[…]` class or a `**`, a `RUN
//! --mount` that binds the context, a `COPY` without a destination. A
//! source that leaves the context (`COPY ../../etc/passwd /`) is refused
//! rather than passed on, whatever the engine would make of it.
//!
//! Left out as not from the context: `COPY --from=…` (another stage or an
//! image), `ADD` of a URL, and `ONBUILD` instructions (they run in a child
//! image's build). The base images are returned, so that a base whose own
//! `ONBUILD` triggers would copy from this context can make it count whole.

use std::collections::BTreeSet;

/// What the build takes from its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Uses {
    /// All of it (after `.dockerignore`): why.
    Everything(String),
    /// These sources of `COPY`/`ADD`, and nothing else (none: only the
    /// Dockerfile).
    Sources(Vec<Source>),
}

/// A `COPY` or `ADD` source, relative to the context's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Source {
    /// `COPY` or `ADD`.
    pub(super) instruction: String,
    /// As the Dockerfile wrote it, for messages.
    pub(super) written: String,
    /// Its line in the Dockerfile (1-based), for messages.
    pub(super) line: usize,
    /// Its path's components, cleaned (no `.`, `..` or empty ones); each may
    /// hold `*` (any bytes) and `?` (one byte), matched within a component.
    pub(super) parts: Vec<Vec<u8>>,
}

/// What the Dockerfile says about its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Analysis {
    pub(super) uses: Uses,
    /// Images its stages are built `FROM` (not `scratch`, not an earlier
    /// stage, not named through a variable).
    pub(super) bases: Vec<String>,
}

/// A `COPY`/`ADD` source outside the context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: the `{instruction}` source `{path}` leaves the build context")]
pub struct Outside {
    pub line: usize,
    pub instruction: String,
    pub path: String,
}

/// The parser directive frontends whose `COPY` and `ADD` read as described
/// here (with or without a tag or digest).
const KNOWN_FRONTENDS: &[&str] = &["docker/dockerfile", "docker.io/docker/dockerfile"];

/// Reads `text`, a Dockerfile: see the module's doc.
pub(super) fn analyse(text: &str) -> Result<Analysis, Outside> {
    let mut bases = Vec::new();
    let everything = |why: &str, bases: Vec<String>| {
        Ok(Analysis {
            uses: Uses::Everything(why.to_owned()),
            bases,
        })
    };
    let (escape, first_line) = match directives(text) {
        Ok(found) => found,
        Err(why) => return everything(why, bases),
    };
    let mut stages: BTreeSet<String> = BTreeSet::new();
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut sources = Vec::new();
    for (line, instruction) in instructions(text, escape, first_line) {
        let (keyword, rest) = split_word(&instruction);
        let keyword = keyword.to_ascii_uppercase();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") && has_heredoc(rest) {
            return everything("the Dockerfile has a heredoc", bases);
        }
        match keyword.as_str() {
            "FROM" => {
                let (_, args) = flags(rest);
                let words: Vec<&str> = args.split_whitespace().collect();
                let Some(&image) = words.first() else {
                    continue;
                };
                let earlier_stage = stages.contains(&image.to_ascii_lowercase());
                // Each once: every one is an engine call (see the parent).
                if image != "scratch"
                    && !image.contains('$')
                    && !earlier_stage
                    && named.insert(image.to_owned())
                {
                    bases.push(image.to_owned());
                }
                if words.len() >= 3 && words[1].eq_ignore_ascii_case("as") {
                    stages.insert(words[2].to_ascii_lowercase());
                }
            }
            "RUN" => {
                let (flags, _) = flags(rest);
                if flags.iter().any(|flag| mounts_the_context(flag)) {
                    return everything("a `RUN --mount` binds the build context", bases);
                }
            }
            "COPY" | "ADD" => {
                let (flags, args) = flags(rest);
                if flags.iter().any(|flag| flag.starts_with("--from")) {
                    continue;
                }
                let words = match args.strip_prefix('[') {
                    Some(_) => serde_json::from_str::<Vec<String>>(args)
                        .unwrap_or_else(|_| args.split_whitespace().map(str::to_owned).collect()),
                    None => args.split_whitespace().map(str::to_owned).collect(),
                };
                let Some((_, written_sources)) = words.split_last().filter(|(_, s)| !s.is_empty())
                else {
                    return everything(
                        &format!("the `{keyword}` on line {line} names no destination"),
                        bases,
                    );
                };
                for written in written_sources {
                    if keyword == "ADD" && is_remote(written) {
                        continue;
                    }
                    if let Some(why) = unclear(written) {
                        return everything(
                            &format!("the `{keyword}` source `{written}` on line {line} {why}"),
                            bases,
                        );
                    }
                    let Some(parts) = clean(written) else {
                        return Err(Outside {
                            line,
                            instruction: keyword,
                            path: written.clone(),
                        });
                    };
                    if parts.is_empty() {
                        return everything(
                            &format!("the `{keyword}` on line {line} copies all of it"),
                            bases,
                        );
                    }
                    sources.push(Source {
                        instruction: keyword.clone(),
                        written: written.clone(),
                        line,
                        parts,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(Analysis {
        uses: Uses::Sources(sources),
        bases,
    })
}

/// The escape character and the first line after the parser directives;
/// `Err` (why) for a frontend or an escape character this reading does not
/// know.
fn directives(text: &str) -> Result<(u8, usize), &'static str> {
    let mut escape = b'\\';
    for (index, line) in text.lines().enumerate() {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            return Ok((escape, index));
        };
        let Some((key, value)) = comment.split_once('=') else {
            return Ok((escape, index));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok((escape, index));
        }
        let value = value.trim();
        match key.to_ascii_lowercase().as_str() {
            "escape" => {
                escape = match value {
                    "\\" => b'\\',
                    "`" => b'`',
                    _ => return Err("its `# escape=` directive is not `\\` or a backquote"),
                };
            }
            "syntax" => {
                let name = value.split(['@', ':']).next().unwrap_or_default();
                if !KNOWN_FRONTENDS.contains(&name) {
                    return Err("its `# syntax=` directive names a frontend dual cannot read");
                }
            }
            // `check` and directives yet to come change no source.
            _ => {}
        }
    }
    Ok((escape, text.lines().count()))
}

/// The instructions from line `first` on, each joined across its line
/// continuations and with its comment lines dropped, with the line it
/// starts on (1-based).
fn instructions(text: &str, escape: u8, first: usize) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate().skip(first) {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        // Between instructions and inside a continuation alike.
        if trimmed.trim_end().is_empty() {
            continue;
        }
        let (body, continues) = match trim_continuation(line, escape) {
            Some(body) => (body, true),
            None => (line, false),
        };
        let (_, text) = current.get_or_insert_with(|| (index + 1, String::new()));
        text.push_str(body);
        if !continues && let Some(done) = current.take() {
            found.push((done.0, done.1.trim().to_owned()));
        }
    }
    if let Some((line, text)) = current {
        found.push((line, text.trim().to_owned()));
    }
    found
}

/// `line` without its continuation (the escape character, then only
/// blanks), if it has one.
fn trim_continuation(line: &str, escape: u8) -> Option<&str> {
    let end = line.trim_end_matches([' ', '\t']);
    end.as_bytes()
        .last()
        .filter(|byte| **byte == escape)
        .map(|_| &end[..end.len() - 1])
}

fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    }
}

/// The leading `--flag[=value]` words, and what follows them.
fn flags(mut rest: &str) -> (Vec<&str>, &str) {
    let mut found = Vec::new();
    loop {
        let (word, after) = split_word(rest);
        if !word.starts_with("--") {
            return (found, rest.trim());
        }
        found.push(word);
        rest = after;
    }
}

/// `<<WORD`, `<<-WORD`, `<<"WORD"`: a heredoc's opening (BuildKit reads
/// the lines after it as its body, which this reading does not follow).
fn has_heredoc(text: &str) -> bool {
    text.match_indices("<<").any(|(at, _)| {
        let after = text[at + 2..].trim_start_matches('-');
        let after = after.trim_start_matches(['"', '\'']);
        after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
    })
}

/// A `RUN --mount=…` of the context: a bind mount (the default type)
/// without `from=`.
fn mounts_the_context(flag: &str) -> bool {
    let Some(options) = flag.strip_prefix("--mount=") else {
        return false;
    };
    let mut kind = "bind";
    let mut from = false;
    for option in options.split(',') {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        match key.trim().to_ascii_lowercase().as_str() {
            "type" => kind = value.trim(),
            "from" => from = true,
            _ => {}
        }
    }
    kind.eq_ignore_ascii_case("bind") && !from
}

/// An `ADD` source the engine downloads rather than reads from the context.
fn is_remote(source: &str) -> bool {
    source.contains("://") || source.starts_with("git@")
}

/// Why a source cannot be followed for certain, if it cannot.
fn unclear(source: &str) -> Option<&'static str> {
    if source.contains('$') {
        Some("is named through a variable")
    } else if source.contains(['"', '\'', '\\', '`']) {
        Some("is quoted or escaped")
    } else if source.contains(['[', ']']) || source.contains("**") {
        Some("is a pattern with `[…]` or `**`")
    } else if source.contains(|c: char| c.is_control()) {
        Some("holds a control character")
    } else {
        None
    }
}

/// `source`'s components relative to the context's root (a leading `/` is
/// the root too), with `.` and `..` resolved; `None` where it leaves the
/// context.
fn clean(source: &str) -> Option<Vec<Vec<u8>>> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part.as_bytes().to_vec()),
        }
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(text: &str) -> Vec<String> {
        match analyse(text).unwrap().uses {
            Uses::Sources(sources) => sources
                .into_iter()
                .map(|source| {
                    source
                        .parts
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect(),
            Uses::Everything(why) => panic!("everything: {why}"),
        }
    }

    fn everything(text: &str) -> String {
        match analyse(text).unwrap().uses {
            Uses::Everything(why) => why,
            Uses::Sources(sources) => panic!("sources: {sources:?}"),
        }
    }

    #[test]
    fn copy_and_add_sources_are_read_in_every_form() {
        let text = "\
FROM base:1 AS build
COPY requirements.txt /app/
copy --chown=1000:1000 --chmod=644 src/*.py ./lib/ /app/
ADD [\"vendor/pkg.tar\", \"conf/a b.ini\", \"/opt/\"]
ADD https://example.com/x.tgz /opt/
COPY --from=build /out /out
COPY --link \\
     /top.txt \\
# a comment inside the instruction
     ./a/../b/c.txt /dst/
ONBUILD COPY . /app
";
        assert_eq!(
            sources(text),
            [
                "requirements.txt",
                "src/*.py",
                "lib",
                "vendor/pkg.tar",
                "conf/a b.ini",
                "top.txt",
                "b/c.txt"
            ]
        );
        assert_eq!(sources("FROM x\nRUN make\n"), Vec::<String>::new());
    }

    #[test]
    fn lines_are_numbered_as_written() {
        let Uses::Sources(found) = analyse("FROM x\n\n# note\nCOPY \\\n  a /b\nCOPY c /d\n")
            .unwrap()
            .uses
        else {
            panic!()
        };
        let lines: Vec<(usize, &str)> =
            found.iter().map(|s| (s.line, s.written.as_str())).collect();
        assert_eq!(lines, [(4, "a"), (6, "c")]);
    }

    #[test]
    fn what_cannot_be_followed_counts_the_whole_context() {
        for (text, why) in [
            ("FROM x\nCOPY . /app\n", "copies all of it"),
            ("FROM x\nCOPY ./ /app\n", "copies all of it"),
            ("FROM x\nCOPY / /app\n", "copies all of it"),
            ("FROM x\nCOPY a/.. /app\n", "copies all of it"),
            ("FROM x\nARG SRC\nCOPY $SRC /app\n", "variable"),
            ("FROM x\nCOPY ${SRC:-a} /app\n", "variable"),
            ("FROM x\nCOPY \"a b\" /app\n", "quoted"),
            ("FROM x\nCOPY a\\ b /app\n", "quoted"),
            ("FROM x\nCOPY [a-z]* /app\n", "pattern"),
            ("FROM x\nCOPY src/**/x /app\n", "pattern"),
            ("FROM x\nCOPY <<EOF /app/x\nhi\nEOF\n", "heredoc"),
            ("FROM x\nRUN <<-'EOT' sh\necho\nEOT\n", "heredoc"),
            ("FROM x\nRUN --mount=target=/src make\n", "--mount"),
            (
                "FROM x\nRUN --mount=type=bind,source=.,target=/s make\n",
                "--mount",
            ),
            ("FROM x\nCOPY onlyone\n", "no destination"),
            (
                "# syntax=example.com/frontend:1\nFROM x\nCOPY a /b\n",
                "frontend",
            ),
            ("# escape=|\nFROM x\nCOPY a /b\n", "escape"),
        ] {
            assert!(
                everything(text).contains(why),
                "{text}: {}",
                everything(text)
            );
        }
    }

    #[test]
    fn what_is_not_the_context_is_left_out() {
        let text = "\
# syntax=docker/dockerfile:1.7
FROM x
RUN --mount=type=cache,target=/root/.cache pip install x
RUN --mount=type=bind,from=build,source=/o,target=/o ls
RUN --mount=type=secret,id=token cat /run/secrets/token
ADD git@github.com:x/y.git /y
COPY --from=x a /b
COPY keep /k
";
        assert_eq!(sources(text), ["keep"]);
        // Directives stop at the first line that is not one.
        assert_eq!(
            sources("# hello\n# syntax=mine/frontend\nFROM x\nCOPY a /b\n"),
            ["a"]
        );
    }

    #[test]
    fn the_backquote_escape_continues_lines() {
        assert_eq!(
            sources("# escape=`\nFROM x\nCOPY a `\n  b /dst\n"),
            ["a", "b"]
        );
        assert!(everything("# escape=`\nFROM x\nCOPY c\\d /e\n").contains("quoted"));
    }

    #[test]
    fn a_source_outside_the_context_is_refused() {
        for text in [
            "FROM x\nCOPY ../../etc/passwd /p\n",
            "FROM x\nCOPY a ../b /c\n",
            "FROM x\nADD [\"../x\", \"/y\"]\n",
            "FROM x\nCOPY /../../x /y\n",
            "FROM x\nCOPY a/../../x /y\n",
        ] {
            let refused = analyse(text).unwrap_err();
            assert!(
                refused.to_string().contains("leaves the build context"),
                "{text}"
            );
        }
        let refused = analyse("FROM x\n\nCOPY ../../etc/passwd /p\n").unwrap_err();
        assert_eq!(refused.line, 3);
        assert_eq!(refused.path, "../../etc/passwd");
    }

    #[test]
    fn bases_are_the_images_stages_start_from() {
        let text = "\
ARG V=1
FROM --platform=linux/amd64 node:22 AS deps
FROM deps AS build
FROM python:${V}
FROM scratch
FROM Deps
FROM registry.local/base@sha256:0123 as final
";
        assert_eq!(
            analyse(text).unwrap().bases,
            ["node:22", "registry.local/base@sha256:0123"]
        );
    }
}
