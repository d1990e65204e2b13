//! Compose's `${VAR}` interpolation and its `.env` files, as compose reads
//! them, except where the values come from: see the module doc of
//! `compose` (never the host's environment).

use std::collections::BTreeSet;

/// Where a variable's value comes from (`None`: unset).
pub type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// `text` with `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}` replaced
/// and `$$` made `$`; defaults nest and are expanded only when used. A
/// variable that is unset and has no default becomes empty and is added to
/// `unset`. The error says what is wrong, for the caller to place.
pub fn expand(text: &str, lookup: &Lookup, unset: &mut BTreeSet<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if after.starts_with('{') {
            let close = closing_brace(after).ok_or_else(|| invalid(text))?;
            out.push_str(&braced(&after[1..close], text, lookup, unset)?);
            rest = &after[close + 1..];
        } else {
            let length = name_length(after);
            if length == 0 {
                return Err(invalid(text));
            }
            let name = &after[..length];
            out.push_str(&value_or_empty(name, lookup, unset));
            rest = &after[length..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn invalid(text: &str) -> String {
    format!(
        "`{}` is not a valid interpolation (write `$$` for a `$`)",
        text.escape_debug()
    )
}

/// The index of the `}` that closes the `{` `after` starts with, nested
/// `${…}` counted.
fn closing_brace(after: &str) -> Option<usize> {
    let bytes = after.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'{' if i == 0 => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
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

fn value_or_empty(name: &str, lookup: &Lookup, unset: &mut BTreeSet<String>) -> String {
    lookup(name).unwrap_or_else(|| {
        unset.insert(name.to_owned());
        String::new()
    })
}

/// The value of `${body}`.
fn braced(
    body: &str,
    text: &str,
    lookup: &Lookup,
    unset: &mut BTreeSet<String>,
) -> Result<String, String> {
    let length = name_length(body);
    if length == 0 {
        return Err(invalid(text));
    }
    let (name, operation) = body.split_at(length);
    if operation.is_empty() {
        return Ok(value_or_empty(name, lookup, unset));
    }
    let value = lookup(name);
    // `:` makes an empty value count as unset.
    let (colon, operation) = match operation.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, operation),
    };
    let usable = value.as_ref().filter(|value| !colon || !value.is_empty());
    let mut word = |word: &str| expand(word, lookup, unset);
    match operation.split_at(operation.len().min(1)) {
        ("-", default) => match usable {
            Some(value) => Ok(value.clone()),
            None => word(default),
        },
        ("+", alternative) => match usable {
            Some(_) => word(alternative),
            None => Ok(String::new()),
        },
        ("?", error) => match usable {
            Some(value) => Ok(value.clone()),
            None => {
                let why = word(error)?;
                let state = if value.is_some() {
                    "is empty"
                } else {
                    "is not set"
                };
                Err(format!(
                    "the variable `{name}` {state}{}{}",
                    if why.is_empty() { "" } else { ": " },
                    why.escape_debug()
                ))
            }
        },
        _ => Err(invalid(text)),
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
