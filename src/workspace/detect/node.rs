//! A Node project (`package.json`): its package manager (`packageManager`,
//! else its lock file), its Node version, the install command, and its dev
//! server (`scripts.dev`, else `scripts.start`) with the framework's port
//! and the flag that makes it listen beyond the container's localhost.

use std::collections::BTreeSet;

use super::files::RepoFiles;
use super::version::{self, Line, Syntax};
use super::{Plan, ports, service};

const DEFAULT_NODE: Line = Line {
    major: 22,
    minor: None,
};
/// Lines with official images (`node:N-bookworm`), oldest first.
const NODE_LINES: [Line; 4] = [
    Line {
        major: 18,
        minor: None,
    },
    Line {
        major: 20,
        minor: None,
    },
    DEFAULT_NODE,
    Line {
        major: 24,
        minor: None,
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Npm,
    Pnpm,
    /// Yarn 1 (in the official Node images) or Yarn 2+ (through corepack).
    Yarn {
        berry: bool,
    },
    Bun,
}

impl Manager {
    fn name(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::Yarn { .. } => "yarn",
            Manager::Bun => "bun",
        }
    }

    /// The command, as the image has it: pnpm and Yarn 2+ come through
    /// corepack (in the Node images), which needs no root to enable.
    fn program(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "corepack pnpm",
            Manager::Yarn { berry: false } => "yarn",
            Manager::Yarn { berry: true } => "corepack yarn",
            Manager::Bun => "bun",
        }
    }

    fn install(self, locked: bool) -> String {
        let program = self.program();
        match (self, locked) {
            (Manager::Npm, true) => "npm ci".to_owned(),
            (Manager::Npm, false) => "npm install".to_owned(),
            (Manager::Yarn { berry: true }, true) => format!("{program} install --immutable"),
            (_, true) => format!("{program} install --frozen-lockfile"),
            (_, false) => format!("{program} install"),
        }
    }

    /// `scripts.NAME` with `args` passed on to it (npm wants `--` first).
    fn run(self, script: &str, args: &str) -> String {
        let program = self.program();
        match (self, args.is_empty()) {
            (_, true) => format!("{program} run {script}"),
            (Manager::Npm, false) => format!("npm run {script} -- {args}"),
            (_, false) => format!("{program} run {script} {args}"),
        }
    }

    fn lock_files(self) -> &'static [&'static str] {
        match self {
            Manager::Npm => &["package-lock.json", "npm-shrinkwrap.json"],
            Manager::Pnpm => &["pnpm-lock.yaml"],
            Manager::Yarn { .. } => &["yarn.lock"],
            Manager::Bun => &["bun.lock", "bun.lockb"],
        }
    }
}

pub fn detect(files: &RepoFiles) -> Option<Plan> {
    let package = files.json("package.json")?;
    let package = package.as_object()?;
    let mut notes = Vec::new();
    let (manager, manager_version, manager_why) = manager(files, package, &mut notes);
    let lock = files.first_of(manager.lock_files());
    let (image, image_why) = match manager {
        Manager::Bun => {
            // oven/bun's tags: `1`, `1.1`, …
            let line = manager_version
                .map(|[major, minor, _]| Line {
                    major,
                    minor: Some(minor),
                })
                .unwrap_or(Line {
                    major: 1,
                    minor: None,
                });
            (
                format!("oven/bun:{line}"),
                format!("Bun {line}, {manager_why}"),
            )
        }
        _ => {
            let (line, why) = node_version(files, package, &mut notes);
            (
                format!("node:{line}-bookworm"),
                format!("Node {line}, {why}"),
            )
        }
    };
    let dependencies = dependency_names(package);
    // Nothing to install: no registry is asked (and none need answer).
    let setup = (!dependencies.is_empty()).then(|| manager.install(lock.is_some()));
    let setup_why = match lock {
        Some(lock) if manager_why != format!("from {lock}") => {
            format!("{}, {manager_why}, locked by {lock}", manager.name())
        }
        _ => format!("{}, {manager_why}", manager.name()),
    };
    let mut plan = Plan {
        what: "a Node project".to_owned(),
        marker: "package.json",
        image,
        image_why,
        setup,
        setup_why,
        path: vec!["node_modules/.bin".to_owned()],
        seed: vec!["node_modules".to_owned()],
        volumes: vec!["node_modules".to_owned()],
        ..Plan::default()
    };
    if matches!(manager, Manager::Pnpm | Manager::Yarn { berry: true }) {
        plan.env
            .insert("COREPACK_ENABLE_DOWNLOAD_PROMPT".into(), "0".into());
    }
    let scripts = package.get("scripts").and_then(|s| s.as_object());
    let script = ["dev", "start"].into_iter().find_map(|name| {
        let text = scripts?.get(name)?.as_str()?;
        Some((name, text))
    });
    if let Some((name, text)) = script {
        let server = server(files, text, &dependencies);
        let command = match &server.direct {
            Some(command) => command.clone(),
            None => manager.run(name, server.host_flag.unwrap_or("")),
        };
        plan.what = super::a_project(server.framework);
        plan.port = server.port;
        plan.service_why = format!("{}, from scripts.{name}", server.framework);
        plan.service = Some(service(command, server.port));
        if let Some(note) = server.note {
            notes.push(note);
        }
    }
    plan.notes = notes;
    Some(plan)
}

/// The package manager, its version where `packageManager` gives one, and
/// what told.
fn manager(
    files: &RepoFiles,
    package: &serde_json::Map<String, serde_json::Value>,
    notes: &mut Vec<String>,
) -> (Manager, Option<[u32; 3]>, String) {
    if let Some(field) = package.get("packageManager").and_then(|v| v.as_str()) {
        let (name, rest) = field.split_once('@').unwrap_or((field, ""));
        let version = version::exact(rest.split('+').next().unwrap_or(""));
        let manager = match name {
            "npm" => Some(Manager::Npm),
            "pnpm" => Some(Manager::Pnpm),
            "yarn" => Some(Manager::Yarn {
                berry: version.is_none_or(|[major, ..]| major >= 2),
            }),
            "bun" => Some(Manager::Bun),
            _ => None,
        };
        match manager {
            Some(manager) => return (manager, version, "from packageManager".to_owned()),
            None => notes.push(format!(
                "package.json's `packageManager` (`{}`) names none of npm, pnpm, yarn and bun: read from the lock file instead",
                crate::untrusted::shown_line(&field.chars().take(80).collect::<String>())
            )),
        }
    }
    let by_lock = [
        ("pnpm-lock.yaml", Manager::Pnpm),
        (
            "yarn.lock",
            Manager::Yarn {
                berry: files.exists(".yarnrc.yml"),
            },
        ),
        ("bun.lock", Manager::Bun),
        ("bun.lockb", Manager::Bun),
        ("package-lock.json", Manager::Npm),
        ("npm-shrinkwrap.json", Manager::Npm),
    ];
    for (lock, manager) in by_lock {
        if files.exists(lock) {
            return (manager, None, format!("from {lock}"));
        }
    }
    (Manager::Npm, None, "no lock file".to_owned())
}

/// The Node line to run, and where it came from.
fn node_version(
    files: &RepoFiles,
    package: &serde_json::Map<String, serde_json::Value>,
    notes: &mut Vec<String>,
) -> (Line, String) {
    for file in [".nvmrc", ".node-version"] {
        let Some(text) = files.text(file) else {
            continue;
        };
        let Some(written) = super::first_line(&text) else {
            continue;
        };
        if let Some(line) = named_line(written) {
            return (line, format!("from {file}"));
        }
        notes.push(format!(
            "{file} says `{}`, not a Node version dual reads (`22`, `v20.11.1`, `lts/iron`): Node {DEFAULT_NODE}",
            crate::untrusted::shown_line(&written.chars().take(40).collect::<String>())
        ));
        return (DEFAULT_NODE, format!("{file} unread, the default"));
    }
    if let Some(text) = files.text(".tool-versions")
        && let Some(written) = super::tool_version(&text, &["nodejs", "node"])
        && let Some(line) = named_line(written)
    {
        return (line, "from .tool-versions".to_owned());
    }
    let engines = package
        .get("engines")
        .and_then(|e| e.get("node"))
        .and_then(|n| n.as_str());
    if let Some(range) = engines
        && let Some(line) = version::choose(range, Syntax::Npm, &NODE_LINES, DEFAULT_NODE)
    {
        return (line, "from engines.node".to_owned());
    }
    (DEFAULT_NODE, "the default".to_owned())
}

/// `22`, `v20.11.1`, `lts/iron`, `node`, `lts/*` as the line they name.
fn named_line(written: &str) -> Option<Line> {
    let codename = match written.to_ascii_lowercase().as_str() {
        "node" | "stable" | "latest" | "current" | "lts/*" | "lts" => Some(DEFAULT_NODE.major),
        "lts/hydrogen" => Some(18),
        "lts/iron" => Some(20),
        "lts/jod" => Some(22),
        _ => None,
    };
    codename
        .map(|major| Line { major, minor: None })
        .or_else(|| version::line_of(written, false))
}

fn dependency_names(package: &serde_json::Map<String, serde_json::Value>) -> BTreeSet<String> {
    ["dependencies", "devDependencies"]
        .iter()
        .filter_map(|key| package.get(*key)?.as_object())
        .flat_map(|deps| deps.keys().cloned())
        .collect()
}

/// What a dev script runs, as far as the words of it say.
#[derive(Debug, PartialEq, Eq)]
struct Server {
    framework: &'static str,
    port: Option<u16>,
    /// Added to the script's command line so that it listens on every
    /// address (Vite and the like listen on localhost alone by default,
    /// where the proxy cannot reach them).
    host_flag: Option<&'static str>,
    /// The script's command itself, where it is `node FILE` (no package
    /// manager needed to run it).
    direct: Option<String>,
    note: Option<String>,
}

const HOST_FLAG: &str = "--host 0.0.0.0";

fn server(files: &RepoFiles, script: &str, dependencies: &BTreeSet<String>) -> Server {
    let words: Vec<&str> = script.split_whitespace().collect();
    // One command, which arguments can be added to.
    let simple =
        !script.contains([';', '&', '|', '<', '>', '`', '$', '(', ')', '\n']) && words.len() <= 32;
    // `NODE_ENV=development vite`, `cross-env X=1 next dev`.
    let command: Vec<&str> = words
        .iter()
        .copied()
        .skip_while(|word| word.contains('=') || *word == "cross-env")
        .collect();
    let has = |name: &str| dependencies.contains(name);
    let (framework, default_port, wants_host) = match command.first().copied().unwrap_or("") {
        "vite" if has("@sveltejs/kit") => ("SvelteKit", Some(5173), true),
        "vite" if has("@remix-run/dev") => ("Remix", Some(5173), true),
        "vite" => ("Vite", Some(5173), true),
        "next" => ("Next.js", Some(3000), false),
        "astro" => ("Astro", Some(4321), true),
        "nuxt" | "nuxi" => ("Nuxt", Some(3000), true),
        "remix" if command.get(1) == Some(&"vite:dev") => ("Remix", Some(5173), true),
        "remix" => ("Remix", Some(3000), false),
        "ng" => ("Angular", Some(4200), true),
        "react-scripts" => ("Create React App", Some(3000), false),
        "node" | "nodemon" => {
            let port = command
                .iter()
                .skip(1)
                .find(|word| !word.starts_with('-'))
                .filter(|file| is_script_file(file))
                .and_then(|file| files.text(file))
                .and_then(|source| ports::in_js(&source));
            let framework = if has("express") { "Express" } else { "Node" };
            (framework, Some(port.unwrap_or(3000)), false)
        }
        _ => ("Node", None, false),
    };
    let port = ports::in_command(&words).or(default_port);
    let already_open = words
        .iter()
        .any(|word| word.starts_with("--host") || *word == "-H" || word.starts_with("--hostname"));
    let mut note = None;
    let host_flag = match (wants_host && !already_open, simple) {
        (true, true) => Some(HOST_FLAG),
        (true, false) => {
            note = Some(format!(
                "its dev script is more than one command, so dual adds no `{HOST_FLAG}` to it: where {framework} then listens on the container's localhost alone, `dual list` says so"
            ));
            None
        }
        (false, _) => None,
    };
    let direct = match words.as_slice() {
        ["node", file] if is_script_file(file) => Some(format!("node {file}")),
        _ => None,
    };
    Server {
        framework,
        port,
        host_flag,
        direct,
        note,
    }
}

/// A JavaScript file of the repo's a command may name: a plain relative
/// path (no option, no `..`, no shell syntax).
fn is_script_file(file: &str) -> bool {
    super::super::config_file::is_plain_relative(file)
        && [".js", ".mjs", ".cjs"]
            .iter()
            .any(|ext| file.ends_with(ext))
}
