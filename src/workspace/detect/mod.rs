//! What a repo with no config is, guessed from its files: its stack, the
//! image, install command, dev server and port that stack usually has.
//!
//! Every file is read through `confined` (never through a link, never a
//! FIFO, never more than a manifest's size), and every value of the repo's
//! that would reach a command or the image's name (a version, a module, a
//! file a script runs) is checked for its own syntax first, or left out:
//! the result is dual's own text around numbers and names it checked.

mod files;
mod go;
mod node;
mod ports;
mod python;
mod ruby;
mod rust;
mod version;
pub mod written;

use std::collections::BTreeMap;
use std::path::Path;

use super::config::Service;
use super::layer::ConfigLayer;
use files::RepoFiles;

/// The name of the dev server's service in a detected config.
pub const SERVICE: &str = "web";

/// What was detected in the clone at `dir`, if anything was.
pub fn detect(dir: &Path) -> Option<Detected> {
    let files = RepoFiles::new(dir);
    // In this order where several stacks have a dev server: a Rails or
    // Django app keeps its assets' package.json beside it.
    let mut found: Vec<Plan> = [
        ruby::detect,
        python::detect,
        node::detect,
        go::detect,
        rust::detect,
    ]
    .iter()
    .filter_map(|detect| detect(&files))
    .collect();
    if found.is_empty() {
        return None;
    }
    let chosen = found
        .iter()
        .position(|plan| plan.service.is_some())
        .unwrap_or(0);
    let mut plan = found.remove(chosen);
    for other in &found {
        plan.notes.push(format!(
            "this is also {} ({}): dual sets up one stack; `dual init` writes the guess to .dual.toml, where `setup` can do both",
            other.what, other.marker
        ));
    }
    plan.notes.extend(files.refused.borrow().iter().cloned());
    Some(plan.into_detected())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// One line: what was guessed ("a Node project (pnpm, Vite: :5173)").
    pub summary: String,
    pub layer: ConfigLayer,
    /// Why each key has its value (`image`, `setup`, `services.web`, …),
    /// for the comments `dual init` writes.
    pub reasons: Vec<(&'static str, String)>,
}

/// Why detection gave `key` (`image`, `setup`, `services`) its value, in
/// the clone at `dir`, where its settings are detection's (no
/// devcontainer.json gives them).
pub fn reason(dir: &Path, key: &str) -> Option<String> {
    let choice = super::config::DevcontainerChoice::Usual;
    if !matches!(super::devcontainer::load(dir, &choice), Ok(None)) {
        return None;
    }
    let detected = detect(dir)?;
    detected
        .reasons
        .into_iter()
        .find_map(|(k, why)| (k == key).then_some(why))
}

/// Whether the clone at `dir` is a Node project (a `package.json` at its
/// root): the default `node_modules` volume is for those only.
pub fn is_node_project(dir: &Path) -> bool {
    crate::confined::exists(dir, Path::new("package.json"))
}

/// One stack's guess, before it becomes a layer.
#[derive(Debug, Clone, Default)]
struct Plan {
    /// "a Django project".
    what: String,
    /// The file that said so (`manage.py`, `package.json`).
    marker: &'static str,
    image: String,
    /// Where the version came from ("Python 3.11, from .python-version").
    image_why: String,
    setup: Option<String>,
    /// The tool and what told it ("pip, from requirements.txt").
    setup_why: String,
    env: BTreeMap<String, String>,
    service: Option<Service>,
    /// The framework and what told it ("Django, from manage.py").
    service_why: String,
    /// Where the dev server listens, where known.
    port: Option<u16>,
    path: Vec<String>,
    seed: Vec<String>,
    volumes: Vec<String>,
    notes: Vec<String>,
}

impl Plan {
    fn into_detected(self) -> Detected {
        let mut facts = vec![self.image_why.clone()];
        if self.setup.is_some() {
            facts.push(self.setup_why.clone());
        }
        match (&self.service, self.port) {
            (Some(service), Some(port)) => facts.push(format!(
                "`{}` on :{port}",
                crate::untrusted::shown_line(&service.command)
            )),
            (Some(service), None) => facts.push(format!(
                "`{}`, its port found as it listens",
                crate::untrusted::shown_line(&service.command)
            )),
            (None, _) => facts.push("no dev server found".to_owned()),
        }
        let summary = format!("{} ({})", self.what, facts.join("; "));
        let mut reasons = vec![("image", self.image_why.clone())];
        if self.setup.is_some() {
            reasons.push(("setup", self.setup_why.clone()));
        }
        if self.service.is_some() {
            reasons.push(("services", self.service_why.clone()));
        }
        let layer = ConfigLayer {
            image: Some(self.image),
            ports: Some(self.port.into_iter().collect()),
            setup: self.setup,
            env: self.env,
            services: self
                .service
                .map(|service| (SERVICE.to_owned(), service))
                .into_iter()
                .collect(),
            anonymous_volumes: Some(self.volumes),
            path: Some(self.path),
            seed: Some(self.seed),
            notes: self.notes,
            ..ConfigLayer::default()
        };
        Detected {
            summary,
            layer,
            reasons,
        }
    }
}

/// A service running `command` in the clone's root, listening on `port`.
fn service(command: String, port: Option<u16>) -> Service {
    Service {
        command,
        cwd: None,
        port,
        depends_on: Vec::new(),
        ready: None,
    }
}

/// The first line of a version file that is not empty or a comment.
fn first_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
}

/// The version `.tool-versions` (asdf, mise) gives `tool` (any of its
/// names), as written.
fn tool_version<'t>(text: &'t str, names: &[&str]) -> Option<&'t str> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let tool = words.next()?;
        names.contains(&tool).then(|| words.next())?
    })
}

/// "a Vite project", "an Express project".
fn a_project(name: &str) -> String {
    let article = if name.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name} project")
}

/// A module path of Python (`app.main`) or a name in one (`app`): ASCII
/// identifiers, so that it is one word of a command.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
