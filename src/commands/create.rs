//! `dual create BRANCH [--repo NAME]`: declare a workspace. Nothing is cloned
//! or started until `dual launch`.

use std::process::ExitCode;

use crate::cli::print;
use crate::workspace::{State, Store, Workspace, WorkspaceError, names};

pub fn run(branch: &str, repo: Option<&str>) -> anyhow::Result<ExitCode> {
    names::validate_branch(branch)?;
    let root = crate::paths::workspace_root();
    let (workspace, holder) = Store::open_default().update(|state| -> anyhow::Result<_> {
        let repo = pick_repo(state, repo)?;
        if let Some(existing) = state
            .workspaces
            .iter()
            .find(|w| w.repo == repo && w.branch == branch)
        {
            return Err(WorkspaceError::Exists(existing.name()).into());
        }
        // Names are unique across repos too: `shop` + `a-b` and `shop-a` +
        // `b` would both be `shop-a-b` (one container, one URL).
        let prefix = format!("{repo}-");
        let taken: Vec<String> = state
            .workspaces
            .iter()
            .filter_map(|w| w.name().strip_prefix(&prefix).map(str::to_owned))
            .collect();
        let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
        let label = names::branch_label(&repo, branch, &taken);
        // Whose plain name this one could not have, to say why it differs.
        let plain = format!("{repo}-{}", names::branch_label(&repo, branch, &[]));
        let workspace = Workspace {
            path: root.join(&repo).join(&label),
            repo,
            branch: branch.to_owned(),
            label,
            setup_done: false,
            stopped: false,
            routed: None,
            engine: None,
            user: None,
        };
        let holder = state
            .workspace(&plain)
            .filter(|_| plain != workspace.name())
            .map(|w| format!("`{plain}` is branch `{}` of `{}`", w.branch, w.repo));
        state.workspaces.push(workspace.clone());
        Ok((workspace, holder))
    })?;
    if let Some(holder) = holder {
        print(&format!(
            "note: {holder}, so this workspace is named `{}`\n",
            workspace.name()
        ))?;
    }
    print(&format!(
        "created workspace `{}` (branch `{}` of `{}`)\n  clone: {}\nnext: `dual launch {}`\n",
        workspace.name(),
        workspace.branch,
        workspace.repo,
        workspace.path.display(),
        workspace.name()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `--repo`, else the repo of the workspace or registered clone around the
/// current directory, else the only repo.
fn pick_repo(state: &State, flag: Option<&str>) -> Result<String, WorkspaceError> {
    if let Some(name) = flag {
        return if state.repos.contains_key(name) {
            Ok(name.to_owned())
        } else {
            Err(WorkspaceError::UnknownRepo(name.to_owned()))
        };
    }
    let here = crate::workspace::current_dir().unwrap_or_default();
    if let Some(workspace) = state.workspace_at(&here) {
        return Ok(workspace.repo.clone());
    }
    if let Some(repo) = state
        .repos
        .values()
        .find(|r| r.is_local() && here.starts_with(&r.source))
    {
        return Ok(repo.name.clone());
    }
    match state.repos.keys().collect::<Vec<_>>().as_slice() {
        [] => Err(WorkspaceError::NoRepos),
        [only] => Ok((*only).clone()),
        many => Err(WorkspaceError::AmbiguousRepo(
            many.iter().map(|n| (*n).clone()).collect(),
        )),
    }
}
