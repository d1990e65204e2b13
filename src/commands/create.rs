//! `dual create BRANCH [--repo NAME] [--from WORKSPACE]`: declare a workspace (see `ops::create`).

use std::process::ExitCode;

use super::print;
use crate::printer::Printer;

pub fn run(
    branch: &str,
    repo: Option<&str>,
    from: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let created = crate::ops::create::create(branch, repo, from, printer)?;
    let workspace = &created.workspace;
    if let Some(holder) = &created.renamed_because {
        print(&format!(
            "note: {holder}, so this workspace is named `{}`\n",
            workspace.name()
        ))?;
    }
    print(&format!(
        "created workspace `{}` (branch `{}` of `{}`)\n  clone: {}\n",
        workspace.name(),
        workspace.branch,
        workspace.repo,
        workspace.path.display(),
    ))?;
    if let Some(parent) = &workspace.data_from {
        print(&format!(
            "  data: its sidecars start with a copy of `{parent}`'s\n"
        ))?;
    }
    if let Some(note) = created.branch_note() {
        print(&format!("note: {note}\n"))?;
    }
    print(&format!("next: `dual launch {}`\n", workspace.name()))?;
    Ok(ExitCode::SUCCESS)
}
