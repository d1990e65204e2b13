//! The port a server's source or its command line names, found cheaply:
//! a few textual patterns, no parsing of the language. A miss costs only a
//! URL shown before the server listens (dual finds the port once it does).

/// A port from a dev command's words: `--port 4000`, `--port=4000`,
/// `-p 4000`, `PORT=4000`.
pub fn in_command(words: &[&str]) -> Option<u16> {
    words.iter().enumerate().find_map(|(i, word)| {
        let value = match *word {
            "--port" | "-p" => words.get(i + 1).copied(),
            word => word
                .strip_prefix("--port=")
                .or_else(|| word.strip_prefix("PORT=")),
        }?;
        port(value)
    })
}

/// A port from JavaScript or TypeScript: `listen(4000`, `PORT || 4000`,
/// `PORT ?? 4000`, `port = 4000`, `port: 4000`.
pub fn in_js(source: &str) -> Option<u16> {
    let lower = source.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    // Every place either word starts, in order, found in one pass each: a
    // search for the next of either from each place found was a pass per
    // place (a file full of `port` took a minute).
    let mut places: Vec<(usize, bool)> = lower
        .match_indices("listen(")
        .map(|(start, _)| (start, true))
        .chain(lower.match_indices("port").map(|(start, _)| (start, false)))
        .collect();
    places.sort_unstable();
    for (start, listen) in places {
        let after = start
            + if listen {
                "listen(".len()
            } else {
                "port".len()
            };
        let mut i = after;
        if !listen {
            // A word of its own or a camel-case part (`PORT`, `serverPort`),
            // not the inside of `export` or `report`.
            let inside_word = start > 0
                && source.as_bytes()[start] == b'p'
                && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            if inside_word {
                continue;
            }
            // `PORT`, `port`, `PORT_NUMBER`, then an operator.
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            i = skip_spaces(bytes, i);
            if lower[i..].starts_with("==") {
                continue;
            }
            match ["||", "??", "=", ":"]
                .iter()
                .find(|op| lower[i..].starts_with(**op))
            {
                Some(op) => i += op.len(),
                None => continue,
            }
        }
        i = skip_spaces(bytes, i);
        if i < bytes.len() && (bytes[i] == b'\'' || bytes[i] == b'"') {
            i += 1;
        }
        if let Some(port) = digits_at(&lower, i).and_then(port) {
            return Some(port);
        }
    }
    None
}

/// A port from an address in quotes, as Go and Rust write one:
/// `":8080"`, `"0.0.0.0:8080"`, `"127.0.0.1:3000"`, `"[::]:3000"`, or
/// Rust's `([0, 0, 0, 0], 3000)`.
pub fn in_address(source: &str) -> Option<u16> {
    let mut at = 0;
    while let Some(found) = source[at..].find(':') {
        let colon = at + found;
        let before = source[..colon].chars().next_back();
        let opened = before.is_some_and(|c| c == '"' || c == ']' || c == 't' || c.is_ascii_digit());
        if opened
            && let Some(digits) = digits_at(source, colon + 1)
            && source[colon + 1 + digits.len()..].starts_with('"')
            && let Some(port) = port(digits)
        {
            return Some(port);
        }
        at = colon + 1;
    }
    for prefix in ["0, 0, 0, 0], ", "127, 0, 0, 1], "] {
        if let Some(found) = source.find(prefix)
            && let Some(port) = digits_at(source, found + prefix.len()).and_then(port)
        {
            return Some(port);
        }
    }
    None
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
        i += 1;
    }
    i
}

/// The run of ASCII digits at byte `i` of `text`, if there is one.
fn digits_at(text: &str, i: usize) -> Option<&str> {
    let rest = text.get(i..)?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// A TCP port a server can listen on: 1 to 65535, digits only.
pub fn port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|port| *port != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_in_commands() {
        assert_eq!(in_command(&["vite", "--port", "4000"]), Some(4000));
        assert_eq!(in_command(&["next", "dev", "-p", "3001"]), Some(3001));
        assert_eq!(in_command(&["astro", "dev", "--port=4400"]), Some(4400));
        assert_eq!(in_command(&["PORT=8080", "node", "app.js"]), Some(8080));
        for hostile in [
            &["vite", "--port", "70000"][..],
            &["vite", "--port", "0"],
            &["vite", "--port", "-1"],
            &["vite", "--port", "3000;rm"],
            &["vite", "--port"],
        ] {
            assert_eq!(in_command(hostile), None, "{hostile:?}");
        }
    }

    #[test]
    fn ports_in_javascript() {
        for (source, port) in [
            ("app.listen(4000, () => {})", Some(4000)),
            (
                "const port = process.env.PORT || 8080;\napp.listen(port)",
                Some(8080),
            ),
            (
                "const PORT = Number(process.env.PORT ?? '5001')",
                Some(5001),
            ),
            ("server.listen({ port: 7000 })", Some(7000)),
            ("http.createServer(h).listen( 9000 )", Some(9000)),
            ("if (port == 80) {}\nlisten(3005)", Some(3005)),
            ("app.listen(port)", None),
            ("const port = 99999", None),
            ("export default 5;\nconst report = 6", None),
            ("const serverPort = 4100", Some(4100)),
            ("", None),
        ] {
            assert_eq!(in_js(source), port, "{source}");
        }
    }

    #[test]
    fn a_source_full_of_the_words_is_read_in_one_pass() {
        // A repo's `server.js` at detection's size limit, every word of it
        // one the reading stops at; and one whose last line names a port.
        for word in ["port ", "xport ", "listen( ", "portport "] {
            let mut source = word.repeat(512 * 1024 / word.len());
            let started = std::time::Instant::now();
            assert_eq!(in_js(&source), None, "{word}");
            source.push_str("\napp.listen(4321)");
            assert_eq!(in_js(&source), Some(4321), "{word}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{word}: {:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn ports_in_addresses() {
        for (source, port) in [
            ("http.ListenAndServe(\":8080\", nil)", Some(8080)),
            ("Addr: \"0.0.0.0:9090\",", Some(9090)),
            ("TcpListener::bind(\"127.0.0.1:3000\")", Some(3000)),
            ("bind(\"[::]:4000\")", Some(4000)),
            ("bind(\"localhost:4001\")", Some(4001)),
            ("SocketAddr::from(([0, 0, 0, 0], 3002))", Some(3002)),
            ("fmt.Println(\"a:b\")", None),
            ("x := map[string]int{\"a\": 1}", None),
        ] {
            assert_eq!(in_address(source), port, "{source}");
        }
    }
}
