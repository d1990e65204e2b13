//! A Go module (`go.mod`): the Go version it names, `go mod download`, and
//! `go run .` where the module's root is a main package.

use super::files::RepoFiles;
use super::version::{self, Line};
use super::{Plan, ports, service};

const DEFAULT_GO: Line = Line {
    major: 1,
    minor: Some(23),
};

pub fn detect(files: &RepoFiles) -> Option<Plan> {
    if !files.exists("go.mod") {
        return None;
    }
    let module = files.text("go.mod").unwrap_or_default();
    // `toolchain go1.23.4` is what builds it; `go 1.22` the least it needs.
    let toolchain = module.lines().find_map(|line| {
        let written = line.trim().strip_prefix("toolchain go")?;
        version::line_of(written, true).filter(|l| l.minor.is_some())
    });
    let go = module.lines().find_map(|line| {
        let written = line.trim().strip_prefix("go ")?;
        version::line_of(written.trim(), true).filter(|l| l.minor.is_some())
    });
    let (line, why) = match (toolchain, go) {
        (Some(line), _) => (line, "from go.mod's toolchain"),
        (None, Some(line)) => (line, "from go.mod"),
        (None, None) => (DEFAULT_GO, "the default"),
    };
    let mut plan = Plan {
        what: "a Go project".to_owned(),
        marker: "go.mod",
        image: format!("golang:{line}-bookworm"),
        image_why: format!("Go {line}, {why}"),
        setup: Some("go mod download".to_owned()),
        setup_why: "go modules, from go.mod".to_owned(),
        ..Plan::default()
    };
    let main = files
        .text("main.go")
        .filter(|source| source.lines().any(|l| l.trim() == "package main"));
    if let Some(source) = main {
        plan.port = ports::in_address(&source);
        plan.service_why = "a main package, from main.go".to_owned();
        plan.service = Some(service("go run .".to_owned(), plan.port));
    }
    Some(plan)
}
