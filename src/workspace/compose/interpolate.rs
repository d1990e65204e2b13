//! Compose's `${VAR}` interpolation and its `.env` files, as compose reads
//! them, except where the values come from: see the module doc of
//! `compose` (never the host's environment).

use std::collections::BTreeSet;

/// Where a variable's value comes from (`None`: unset).
pub type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// How deep `${…}` may nest in defaults: real compose files nest two or
/// three; the bound keeps a hostile file (`${A:-` five thousand times) from
/// exhausting the stack of `dual list` or the proxy, which read every
/// workspace's config.
pub const MAX_NESTING: usize = 10;

/// `text` with `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}` replaced
/// and `$$` made `$`; defaults nest (at most [`MAX_NESTING`] deep) and are
/// expanded only when used. A variable that is unset and has no default
/// becomes empty and is added to `unset`. The error says what is wrong, for
/// the caller to place. One pass over the text: linear in its length.
pub fn expand(text: &str, lookup: &Lookup, unset: &mut BTreeSet<String>) -> Result<String, String> {
    let mut expander = Expander {
        text,
        lookup,
        unset,
    };
    let (value, _) = expander.word(0, 0, true)?;
    Ok(value)
}

fn invalid(text: &str) -> String {
    // The whole of a long hostile value would flood the terminal.
    const SHOWN: usize = 80;
    let shown: String = text.chars().take(SHOWN).collect();
    let more = if text.chars().nth(SHOWN).is_some() {
        "…"
    } else {
        ""
    };
    format!(
        "`{}{more}` is not a valid interpolation (write `$$` for a `$`)",
        shown.escape_debug()
    )
}

/// How many bytes of `text` make a variable name (`[A-Za-z_][A-Za-z0-9_]*`).
fn name_length(text: &str) -> usize {
    let mut length = 0;
    for (i, c) in text.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        length = i + c.len_utf8();
    }
    length
}

/// One text being expanded.
struct Expander<'a, 'b> {
    text: &'a str,
    lookup: &'b Lookup<'b>,
    unset: &'b mut BTreeSet<String>,
}

impl Expander<'_, '_> {
    /// The word starting at byte `start`: to the end of the text at `depth`
    /// 0, else to the `}` that closes the `${` it is inside. Its value
    /// (empty unless `used`: an unused default is read for its end, never
    /// looked up) and the index where it ends (that `}`, or the text's
    /// length).
    fn word(&mut self, start: usize, depth: usize, used: bool) -> Result<(String, usize), String> {
        let text = self.text;
        let bytes = text.as_bytes();
        let mut value = String::new();
        let mut at = start;
        loop {
            let next = bytes[at..]
                .iter()
                .position(|&b| b == b'$' || (depth > 0 && b == b'}'))
                .map(|offset| at + offset);
            let Some(special) = next else {
                if depth > 0 {
                    return Err(invalid(text));
                }
                if used {
                    value.push_str(&text[at..]);
                }
                return Ok((value, text.len()));
            };
            if used {
                value.push_str(&text[at..special]);
            }
            if bytes[special] == b'}' {
                return Ok((value, special));
            }
            match bytes.get(special + 1) {
                Some(b'$') => {
                    if used {
                        value.push('$');
                    }
                    at = special + 2;
                }
                Some(b'{') => {
                    let (braced, close) = self.braced(special + 2, depth + 1, used)?;
                    value.push_str(&braced);
                    at = close + 1;
                }
                _ => {
                    let length = name_length(&text[special + 1..]);
                    if length == 0 {
                        return Err(invalid(text));
                    }
                    if used {
                        let name = &text[special + 1..special + 1 + length];
                        value.push_str(&self.value_or_empty(name));
                    }
                    at = special + 1 + length;
                }
            }
        }
    }

    /// The value of the `${…}` whose body starts at byte `start`, `depth`
    /// levels deep, and the index of its `}`.
    fn braced(
        &mut self,
        start: usize,
        depth: usize,
        used: bool,
    ) -> Result<(String, usize), String> {
        if depth > MAX_NESTING {
            return Err(format!("`${{…}}` nests deeper than {MAX_NESTING} levels"));
        }
        let text = self.text;
        let length = name_length(&text[start..]);
        if length == 0 {
            return Err(invalid(text));
        }
        let name = &text[start..start + length];
        let mut at = start + length;
        let bytes = text.as_bytes();
        if bytes.get(at) == Some(&b'}') {
            let value = if used {
                self.value_or_empty(name)
            } else {
                String::new()
            };
            return Ok((value, at));
        }
        let value = if used { (self.lookup)(name) } else { None };
        // `:` makes an empty value count as unset.
        let colon = bytes.get(at) == Some(&b':');
        if colon {
            at += 1;
        }
        let usable = value.as_ref().filter(|value| !colon || !value.is_empty());
        let operation = bytes.get(at).copied();
        let word_used = used
            && match operation {
                Some(b'+') => usable.is_some(),
                _ => usable.is_none(),
            };
        if !matches!(operation, Some(b'-' | b'+' | b'?')) {
            return Err(invalid(text));
        }
        let (word, close) = self.word(at + 1, depth, word_used)?;
        if !used {
            return Ok((String::new(), close));
        }
        let result = match (operation, usable) {
            (Some(b'-' | b'?'), Some(value)) => value.clone(),
            (Some(b'-' | b'+'), _) => word,
            _ => {
                let state = if value.is_some() {
                    "is empty"
                } else {
                    "is not set"
                };
                return Err(format!(
                    "the variable `{name}` {state}{}{}",
                    if word.is_empty() { "" } else { ": " },
                    word.escape_debug()
                ));
            }
        };
        Ok((result, close))
    }

    fn value_or_empty(&mut self, name: &str) -> String {
        (self.lookup)(name).unwrap_or_else(|| {
            self.unset.insert(name.to_owned());
            String::new()
        })
    }
}

/// A `.env` or `env_file` file as compose reads one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EnvFile {
    /// In the file's order (a later one of a name wins).
    pub values: Vec<(String, String)>,
    /// Names given without `=`: compose would take them from the host's
    /// environment, which dual does not read.
    pub bare: Vec<String>,
}

impl EnvFile {
    pub fn get(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }
}

/// Parses `KEY=VALUE` lines (`export ` allowed, `#` comments, values
/// unquoted, `'single'` (literal) or `"double"` (escapes), quoted ones
/// across lines). Unquoted and double-quoted values are interpolated from
/// the file's earlier values, then `outer`.
pub fn parse_env_file(
    text: &str,
    outer: &Lookup,
    unset: &mut BTreeSet<String>,
) -> Result<EnvFile, String> {
    let mut file = EnvFile::default();
    let mut rest = text;
    let mut line_number = 1;
    while !rest.is_empty() {
        let start_line = line_number;
        let at = |why: String| format!("line {start_line}: {why}");
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        let trimmed = line.trim_start();
        if trimmed.trim().is_empty() || trimmed.starts_with('#') {
            rest = after;
            line_number += 1;
            continue;
        }
        let entry = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some(equals) = entry.find('=') else {
            let name = entry.split('#').next().unwrap_or_default().trim();
            file.bare.push(name.to_owned());
            rest = after;
            line_number += 1;
            continue;
        };
        let name = entry[..equals].trim().to_owned();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(at(format!("`{}` is not `NAME=value`", line.escape_debug())));
        }
        let value_and_more = entry[equals + 1..].trim_start_matches([' ', '\t']);
        // The value may run on past this line when quoted: parse from the
        // whole rest of the text.
        let offset = value_and_more.as_ptr() as usize - rest.as_ptr() as usize;
        let (value, consumed, interpolate) = read_value(&rest[offset..]).map_err(at)?;
        line_number += rest[..offset + consumed].matches('\n').count();
        rest = &rest[offset + consumed..];
        let value = if interpolate {
            let lookup = |wanted: &str| file.get(wanted).or_else(|| outer(wanted));
            expand(&value, &lookup, unset).map_err(at)?
        } else {
            value
        };
        file.values.push((name, value));
    }
    Ok(file)
}

/// The value at the start of `text`, how many bytes it took (through the
/// end of its line), and whether it is interpolated.
fn read_value(text: &str) -> Result<(String, usize, bool), String> {
    let end_of_line = |from: usize| -> Result<usize, String> {
        let tail = &text[from..];
        let (line, newline) = match tail.find('\n') {
            Some(i) => (&tail[..i], 1),
            None => (tail, 0),
        };
        let tail_ok = line.trim().is_empty() || line.trim_start().starts_with('#');
        if !tail_ok {
            return Err(format!(
                "`{}` after a quoted value",
                line.trim().escape_debug()
            ));
        }
        Ok(from + line.len() + newline)
    };
    if let Some(quoted) = text.strip_prefix('\'') {
        let close = quoted.find('\'').ok_or("a `'` is not closed")?;
        return Ok((quoted[..close].to_owned(), end_of_line(close + 2)?, false));
    }
    if let Some(quoted) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok((value, end_of_line(i + 2)?, true)),
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    // Kept escaped for interpolation to make a plain `$`.
                    Some('$') => value.push_str("$$"),
                    Some(other) => value.push(other),
                    None => break,
                },
                '$' => value.push('$'),
                c => value.push(c),
            }
        }
        return Err("a `\"` is not closed".into());
    }
    let line_end = text.find('\n').unwrap_or(text.len());
    let line = &text[..line_end];
    // ` #` starts a comment; a `#` inside a word does not.
    let value = match line.find(" #").or_else(|| line.find("\t#")) {
        Some(comment) => &line[..comment],
        None if line.starts_with('#') => "",
        None => line,
    };
    let consumed = (line_end + 1).min(text.len());
    Ok((value.trim().to_owned(), consumed, true))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn with(vars: &[(&str, &str)], text: &str) -> (Result<String, String>, BTreeSet<String>) {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut unset = BTreeSet::new();
        let lookup = |name: &str| vars.get(name).cloned();
        (expand(text, &lookup, &mut unset), unset)
    }

    #[test]
    fn every_form_compose_knows() {
        let vars = [("SET", "v"), ("EMPTY", "")];
        for (text, expected) in [
            ("plain", "plain"),
            ("$SET/${SET}", "v/v"),
            ("$SET_x", ""),
            ("${SET}_x", "v_x"),
            ("a$$b $${SET}", "a$b ${SET}"),
            ("${UNSET:-d}|${EMPTY:-d}|${SET:-d}", "d|d|v"),
            ("${UNSET-d}|${EMPTY-d}|${SET-d}", "d||v"),
            ("${UNSET:+a}|${EMPTY:+a}|${SET:+a}", "||a"),
            ("${UNSET+a}|${EMPTY+a}|${SET+a}", "|a|a"),
            ("${UNSET:-${ALSO:-x}}", "x"),
            ("${UNSET:-${SET}y}", "vy"),
            ("${SET:-${NEVER:?not evaluated}}", "v"),
            ("${UNSET:-a b}c", "a bc"),
            ("${UNSET:-}", ""),
            ("${EMPTY?x}", ""),
            ("price: 5$$", "price: 5$"),
        ] {
            assert_eq!(with(&vars, text).0.as_deref(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn unset_variables_are_empty_and_listed() {
        let (value, unset) = with(&[], "a${X}b$Y${Z:-z}");
        assert_eq!(value.unwrap(), "abz");
        assert_eq!(unset.into_iter().collect::<Vec<_>>(), ["X", "Y"]);
    }

    #[test]
    fn required_and_invalid_forms_are_errors() {
        let (error, _) = with(&[("EMPTY", "")], "${DB_URL:?set DB_URL in .env}");
        assert_eq!(
            error.unwrap_err(),
            "the variable `DB_URL` is not set: set DB_URL in .env"
        );
        let (error, _) = with(&[("EMPTY", "")], "${EMPTY:?}");
        assert_eq!(error.unwrap_err(), "the variable `EMPTY` is empty");
        assert!(with(&[], "${X?}").0.is_err());
        for text in [
            "$", "a $1", "${", "${X", "${}", "${1X}", "${X/a/b}", "${X:=d}",
        ] {
            assert!(
                with(&[], text).0.unwrap_err().contains("not a valid"),
                "{text}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded_and_reading_is_linear() {
        let nested = |depth: usize| format!("{}x{}", "${A:-".repeat(depth), "}".repeat(depth));
        assert_eq!(with(&[], &nested(MAX_NESTING)).0.as_deref(), Ok("x"));
        let error = with(&[], &nested(MAX_NESTING + 1)).0.unwrap_err();
        assert!(error.contains("nests deeper than 10 levels"), "{error}");
        // A hostile file: once a stack overflow that aborted dual.
        let error = with(&[], &nested(5000)).0.unwrap_err();
        assert!(error.contains("nests deeper"), "{error}");
        let unclosed = with(&[], &"${A:-".repeat(5000)).0.unwrap_err();
        assert!(unclosed.contains("nests deeper"), "{unclosed}");
        // Nested in a default that is not used: bounded all the same.
        let error = with(&[("A", "set")], &nested(5000)).0.unwrap_err();
        assert!(error.contains("nests deeper"), "{error}");

        // Long and flat: a megabyte in well under a second (was a rescan
        // of the rest of the text at every `${`).
        let started = std::time::Instant::now();
        let flat = "${A:-${B:-x}}$$ $C ".repeat(60_000);
        let (value, unset) = with(&[], &flat);
        assert_eq!(value.unwrap().len(), "x$  ".len() * 60_000);
        assert_eq!(unset.into_iter().collect::<Vec<_>>(), ["C"]);
        let open = format!("{}${{A:-{}", "${B}".repeat(100_000), "y".repeat(500_000));
        let error = with(&[], &open).0.unwrap_err();
        assert!(error.contains("not a valid interpolation"), "{error}");
        assert!(
            error.len() < 200,
            "the message shows the start only: {error}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn env_files_are_read_as_compose_reads_them() {
        let text = "# a comment\n\nexport A=1\nB = two words # comment\nC='lit ${A} \\n'\nD=\"x\\ny ${A} \\$A\"\nE=\"multi\nline\"  # after\nF=a#b\nBARE\nG=${B:-no}-$A\nH=${OUTER}\nI=\n";
        let mut unset = BTreeSet::new();
        let outer = |name: &str| (name == "OUTER").then(|| "o".to_owned());
        let file = parse_env_file(text, &outer, &mut unset).unwrap();
        let get = |name: &str| file.get(name).unwrap();
        assert_eq!(get("A"), "1");
        assert_eq!(get("B"), "two words");
        assert_eq!(get("C"), "lit ${A} \\n");
        assert_eq!(get("D"), "x\ny 1 $A");
        assert_eq!(get("E"), "multi\nline");
        assert_eq!(get("F"), "a#b");
        assert_eq!(get("G"), "two words-1");
        assert_eq!(get("H"), "o");
        assert_eq!(get("I"), "");
        assert_eq!(file.bare, ["BARE"]);
        assert!(unset.is_empty());
        for (bad, says) in [
            ("A='open\n", "line 1: a `'` is not closed"),
            ("X=1\nA=\"a\" b\n", "line 2: `b` after a quoted value"),
            ("X=\"a\nb\"\nA B=1\n", "line 3:"),
        ] {
            let error = parse_env_file(bad, &|_| None, &mut unset).unwrap_err();
            assert!(error.starts_with(says), "{bad}: {error}");
        }
    }
}
