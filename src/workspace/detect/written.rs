//! What detection found, as the `.dual.toml` that `dual init` writes: each
//! key with a comment saying where its value came from, so that the user
//! reviews a guess rather than trusts it. The text parses back to the very
//! config detection gave (tested), and is all dual's: the repo's words in
//! it (a note quoting a file) are escaped onto one comment line.

use std::fmt::Write as _;

use super::{Detected, SERVICE};

/// `detected` as the text of a `.dual.toml`.
pub fn render(detected: &Detected) -> String {
    let layer = &detected.layer;
    let why = |key: &str| {
        detected
            .reasons
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, why)| why.as_str())
    };
    let mut text = String::new();
    let mut line = |line: &str| {
        text.push_str(line);
        text.push('\n');
    };
    line("# Written by `dual init`: what dual guessed from this repo's files,");
    line(&format!(
        "# {}.",
        crate::untrusted::shown_line(&detected.summary)
    ));
    line("# Review it, then commit it: each branch's clone reads its own .dual.toml.");
    for note in &layer.notes {
        line(&format!("# note: {}", crate::untrusted::shown_line(note)));
    }
    if let Some(image) = &layer.image {
        line("");
        line(&format!(
            "# {}: the official image's usual tag.",
            why("image").unwrap_or("the image")
        ));
        line(&format!("image = {}", string(image)));
    }
    if let Some(ports) = &layer.ports {
        line("# Routed by the proxy before anything listens (others are found as they open).");
        line(&format!(
            "ports = {}",
            list(ports.iter().map(u16::to_string))
        ));
    }
    if let Some(setup) = &layer.setup {
        line(&format!(
            "# {}: run once, at a workspace's first launch, until it succeeds.",
            why("setup").unwrap_or("the install")
        ));
        line(&format!("setup = {}", string(setup)));
    }
    if let Some(path) = &layer.path {
        line("# Directories of the clone put first on PATH inside (`dual run`, setup, services).");
        line(&format!("path = {}", list(path.iter().map(|p| string(p)))));
    }
    if let Some(seed) = &layer.seed {
        line("# Copied from the parent workspace before setup, so that setup has little to do.");
        line(&format!("seed = {}", list(seed.iter().map(|p| string(p)))));
    }
    if let Some(volumes) = &layer.anonymous_volumes {
        line("# Kept in a volume of the container's, off the host clone.");
        line(&format!(
            "anonymous_volumes = {}",
            list(volumes.iter().map(|p| string(p)))
        ));
    }
    if !layer.env.is_empty() {
        line("");
        line(
            "# Set in the container; `${NAME}` is another entry, dual's own (DUAL_CLONE, …), HOME or USER.",
        );
        line("[env]");
        for (name, value) in &layer.env {
            line(&format!("{name} = {}", string(value)));
        }
    }
    for (name, service) in &layer.services {
        line("");
        let why = if name == SERVICE {
            why("services")
        } else {
            None
        };
        line(&format!(
            "# {}: kept running by `dual launch`; `dual logs` shows its output.",
            why.unwrap_or("the dev server")
        ));
        line(&format!("[services.{name}]"));
        line(&format!("command = {}", string(&service.command)));
        if let Some(cwd) = &service.cwd {
            line(&format!("cwd = {}", string(cwd)));
        }
        if let Some(port) = service.port {
            line(&format!("port = {port}"));
        }
    }
    text
}

/// A TOML basic string: quotes, backslashes and control characters
/// escaped, so that the value reads back as it is.
fn string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::config::{Config, ConfigOrigin, FILE_NAME};

    /// The config as `launch` reads it, where it came from and the notes
    /// aside (they are comments once written).
    fn loaded(dir: &std::path::Path) -> (Config, ConfigOrigin) {
        let config = Config::load(dir).unwrap();
        let origin = config.origin.clone();
        (
            Config {
                origin: ConfigOrigin::Defaults,
                notes: Vec::new(),
                ..config
            },
            origin,
        )
    }

    const FIXTURES: [&[(&str, &str)]; 8] = [
        &[
            ("manage.py", ""),
            ("requirements.txt", "django\n"),
            (".python-version", "3.11\n"),
            ("package.json", "{\"scripts\": {\"dev\": \"vite\"}}"),
        ],
        &[
            (
                "package.json",
                "{\"packageManager\": \"pnpm@9.0.0\", \"scripts\": {\"dev\": \"next dev\"}, \"dependencies\": {\"next\": \"1\"}}",
            ),
            (".nvmrc", "20\n"),
        ],
        &[
            (
                "package.json",
                "{\"scripts\": {\"dev\": \"node server.js\"}}",
            ),
            ("server.js", "listen(4000)"),
        ],
        &[
            ("uv.lock", ""),
            ("main.py", "app = FastAPI()\n"),
            ("requirements.txt", "fastapi\n"),
        ],
        &[("Gemfile", ""), ("bin/rails", "")],
        &[("go.mod", "go 1.22\n"), ("main.go", "package main\n")],
        &[("Cargo.toml", ""), ("src/main.rs", "")],
        &[
            ("package.json", "{\"scripts\": {\"dev\": \"vite & x\"}}"),
            (".nvmrc", "\"\\\n\u{1b}x"),
        ],
    ];

    #[test]
    fn the_written_file_reads_back_as_the_config_detection_gave() {
        for files in FIXTURES {
            let dir = tempfile::tempdir().unwrap();
            for (name, text) in files {
                let path = dir.path().join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            let (guessed, origin) = loaded(dir.path());
            assert!(matches!(origin, ConfigOrigin::Detected(_)), "{files:?}");
            let detected = super::super::detect(dir.path()).unwrap();
            let text = render(&detected);
            std::fs::write(dir.path().join(FILE_NAME), &text).unwrap();
            let (written, origin) = loaded(dir.path());
            assert_eq!(
                origin,
                ConfigOrigin::DualToml { devcontainer: None },
                "{text}"
            );
            assert_eq!(written, guessed, "{files:?}:\n{text}");
            assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        }
    }

    #[test]
    fn a_django_project_is_written_with_a_comment_for_each_key() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in FIXTURES[0] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let text = render(&super::super::detect(dir.path()).unwrap());
        assert_eq!(
            text,
            r#"# Written by `dual init`: what dual guessed from this repo's files,
# a Django project (Python 3.11, from .python-version; pip, from requirements.txt; `python manage.py runserver 0.0.0.0:8000` on :8000).
# Review it, then commit it: each branch's clone reads its own .dual.toml.
# note: this is also a Vite project (package.json): dual sets up one stack; `dual init` writes the guess to .dual.toml, where `setup` can do both

# Python 3.11, from .python-version: the official image's usual tag.
image = "python:3.11-bookworm"
# Routed by the proxy before anything listens (others are found as they open).
ports = [8000]
# pip, from requirements.txt: run once, at a workspace's first launch, until it succeeds.
setup = "[ -d .venv ] || python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
# Directories of the clone put first on PATH inside (`dual run`, setup, services).
path = [".venv/bin"]
# Copied from the parent workspace before setup, so that setup has little to do.
seed = [".venv"]
# Kept in a volume of the container's, off the host clone.
anonymous_volumes = []

# Django, from manage.py: kept running by `dual launch`; `dual logs` shows its output.
[services.web]
command = "python manage.py runserver 0.0.0.0:8000"
port = 8000
"#
        );
    }

    #[test]
    fn strings_read_back_as_they_were() {
        for value in [
            "plain",
            "a \"quoted\" \\ value",
            "tab\tnew\nline\u{1b}[2J\u{7f}",
            "${DUAL_CLONE}/x",
            "é ✓",
        ] {
            let text = format!("v = {}\n", string(value));
            let table: toml::Table = text.parse().unwrap();
            assert_eq!(table["v"].as_str(), Some(value), "{text}");
        }
    }
}
