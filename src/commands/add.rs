//! `dual add [PATH|URL] [--name NAME]`, `dual repo list` and `dual repo
//! remove NAME` (see `ops::repos`).

use std::process::ExitCode;

use super::print;
use crate::error::HintExt as _;
use crate::printer::Printer;

pub fn run(
    source: Option<&str>,
    name: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let added = crate::ops::repos::add(source, name, printer)?;
    let verb = if added.new {
        "added"
    } else {
        "already registered:"
    };
    let repo = &added.repo;
    print(&format!(
        "{verb} repo `{}` ({}, default branch `{}`)\nnext: `dual create BRANCH --repo {}`\n",
        repo.name, repo.source, repo.default_branch, repo.name
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub fn remove(name: &str, printer: &Printer) -> anyhow::Result<ExitCode> {
    let repo = crate::ops::repos::remove(name, printer)?;
    print(&format!(
        "removed repo `{}` and its shared files; its source {} is untouched\n",
        repo.name, repo.source
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub fn list() -> anyhow::Result<ExitCode> {
    let state = crate::workspace::Store::open_default().load().hinted()?;
    if state.repos.is_empty() {
        print("no repos yet: `dual add` inside a git repository, or `dual add PATH|URL`\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    for repo in state.repos.values() {
        let workspaces = state
            .workspaces
            .iter()
            .filter(|w| w.repo == repo.name)
            .count();
        print(&format!(
            "{}  {}  (default branch `{}`, {workspaces} workspace(s))\n",
            repo.name, repo.source, repo.default_branch
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
