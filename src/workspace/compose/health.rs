//! A compose `healthcheck` as a sidecar's ready check.

use std::time::Duration;

use super::service::Service;
use super::yaml::Node;
use crate::workspace::sidecars::{self, Check, Ready};

impl Service<'_, '_> {
    /// `healthcheck` as the sidecar's ready check.
    pub(super) fn healthcheck(&mut self, node: &Node) -> Result<Option<Ready>, String> {
        let key = self.key("healthcheck");
        if !matches!(node, Node::Map(_)) {
            return Err(format!("`{key}` is {}, not a mapping", node.kind()));
        }
        if node.get("disable") == Some(&Node::Bool(true)) {
            return Ok(None);
        }
        let test = match node.get("test") {
            None | Some(Node::Null) => {
                self.note(
                    "`healthcheck` without `test` (the image's own) is not read: no ready check",
                );
                return Ok(None);
            }
            Some(Node::Seq(_)) => {
                let words =
                    self.texts(node.get("test").unwrap_or(&Node::Null), "healthcheck.test")?;
                match words.split_first() {
                    Some((first, rest)) if first == "CMD" => rest.to_vec(),
                    Some((first, rest)) if first == "CMD-SHELL" => {
                        vec!["sh".into(), "-c".into(), rest.join(" ")]
                    }
                    Some((first, _)) if first == "NONE" => return Ok(None),
                    _ => {
                        return Err(format!(
                            "`{key}.test`: a list starts with `CMD`, `CMD-SHELL` or `NONE`"
                        ));
                    }
                }
            }
            Some(line) => vec![
                "sh".into(),
                "-c".into(),
                self.text(line, "healthcheck.test")?,
            ],
        };
        if test.is_empty() || test.iter().all(|word| word.trim().is_empty()) {
            return Err(format!("`{key}.test` is an empty command"));
        }
        sidecars::check_argv(&format!("{key}.test"), &test)?;
        let mut check = Check::new(test);
        let Node::Map(entries) = node else {
            return Ok(Some(Ready::Command(check)));
        };
        for (field, value) in entries {
            let duration = || -> Result<Duration, String> {
                let text = value.as_text().unwrap_or_default();
                parse_duration(&text).ok_or_else(|| {
                    format!(
                        "`{key}.{field}`: `{}` is not a duration (like `5s`, `1m30s`, `500ms`)",
                        text.escape_debug()
                    )
                })
            };
            match field.as_str() {
                "interval" => check.interval = duration()?,
                "timeout" => check.timeout = duration()?,
                "start_period" => check.start_period = duration()?,
                "retries" => {
                    check.retries = value
                        .as_text()
                        .and_then(|text| text.parse().ok())
                        .ok_or_else(|| format!("`{key}.retries` is not a count"))?;
                }
                // dual polls at `interval` from the start.
                "test" | "disable" | "start_interval" => {}
                other => self.note(&format!("`healthcheck.{other}` is not used")),
            }
        }
        Ok(Some(Ready::Command(check)))
    }
}

/// A Go duration as compose writes them: `1m30s`, `500ms`, `1.5s`, `0`.
fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_length = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_length].parse().ok()?;
        rest = &rest[number_length..];
        let unit_length = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_length] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_length..];
        total += number * seconds;
    }
    // A day at most: more is a typo, and `from_secs_f64` panics past u64.
    (total <= 86_400.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        for (text, millis) in [
            ("5s", 5000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1.5s", 1500),
            ("1h", 3_600_000),
            ("0", 0),
            ("0s", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for text in ["", "5", "s", "5x", "1e9h", "-1s", "99999999999h"] {
            assert_eq!(parse_duration(text), None, "{text}");
        }
    }
}
