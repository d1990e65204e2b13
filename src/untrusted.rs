//! Showing text a repo controls (its config, its compose file, what its
//! containers print, the names of files they write) on the user's
//! terminal: a control character in it could move the cursor, retitle the
//! window or rewrite what dual printed before, so it is shown escaped
//! (`\u{1b}`), and so are the invisible bidirectional controls that make
//! text read otherwise than it is (Trojan Source, CVE-2021-42574).

/// `text` with every control character escaped but newlines and tabs (for
/// messages and logs of several lines).
pub fn shown(text: &str) -> String {
    escaped(text, |c| c == '\n' || c == '\t')
}

/// `text` as one line: newlines escaped too (a file name in a list, where
/// a newline would forge a line of the list).
pub fn shown_line(text: &str) -> String {
    escaped(text, |c| c == '\t')
}

fn escaped(text: &str, kept: impl Fn(char) -> bool) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if kept(c) {
            shown.push(c);
        } else if c.is_control() || is_bidi_control(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// The marks and embeddings, overrides and isolates of Unicode's
/// bidirectional algorithm.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_not() {
        assert_eq!(shown("plain ünïcode, 日本"), "plain ünïcode, 日本");
        assert_eq!(
            shown("a\u{1b}]0;pwned\u{7}b\rc\u{9b}2J"),
            "a\\u{1b}]0;pwned\\u{7}b\\u{d}c\\u{9b}2J"
        );
        assert_eq!(shown("two\nlines\tand a tab"), "two\nlines\tand a tab");
        assert_eq!(shown("\u{7f}\0"), "\\u{7f}\\u{0}");
        assert_eq!(shown("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(shown_line("/tmp/a\nfake line\t"), "/tmp/a\\u{a}fake line\t");
        let hostile: String = (0u32..0x100).filter_map(char::from_u32).collect();
        for text in [shown(&hostile), shown_line(&hostile)] {
            assert!(
                !text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
                "{text:?}"
            );
        }
    }
}
