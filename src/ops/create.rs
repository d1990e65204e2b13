//! Declaring a workspace: a name and a clone path in dual's state; nothing
//! is cloned or started until it is launched.

use crate::error::WithHint;
use crate::printer::Printer;
use crate::workspace::git::{self, BranchAt};
use crate::workspace::{RepoSource, State, Store, Workspace, WorkspaceError, names};

/// What `create` did.
#[derive(Debug)]
pub struct Created {
    pub workspace: Workspace,
    /// Who holds the name this one would have had (`shop-a-b`), where it
    /// had to be named otherwise.
    pub renamed_because: Option<String>,
    /// Where its branch is now, where the source could be asked.
    pub branch_at: Option<BranchAt>,
    pub source: RepoSource,
    pub default_branch: String,
}

impl Created {
    /// What launching will do about a branch the source does not have.
    pub fn branch_note(&self) -> Option<String> {
        let branch = &self.workspace.branch;
        let default = &self.default_branch;
        let source = self.source.to_string();
        match self.branch_at? {
            BranchAt::Nowhere => Some(format!(
                "`{branch}` is not a branch of {source}: launching creates it from the default branch `{default}`"
            )),
            BranchAt::SourceRemoteOnly => Some(format!(
                "`{branch}` is only on the `origin` of {source}, not one of its branches: launching creates it from the default branch `{default}`, unless you make it a branch there first (`git -C {} branch {branch} origin/{branch}`)",
                crate::process::quote(&source)
            )),
            BranchAt::Source => None,
        }
    }
}

/// Declares a workspace for `branch` of `repo` (else the repo around the
/// current directory, else the only one). It prints nothing: the report
/// says all (its `printer` is for symmetry with the other operations).
/// `from`: the workspace whose sidecars' data this one starts with (else
/// the config's `data_from`, else the repo's default branch's).
pub fn create(
    branch: &str,
    repo: Option<&str>,
    from: Option<&str>,
    _printer: &Printer,
) -> anyhow::Result<Created> {
    names::validate_branch(branch)?;
    let root = crate::paths::workspace_root();
    let store = Store::open_default();
    let (workspace, renamed_because, repo_source, default_branch) =
        store.update(|state| -> Result<_, WithHint> {
            let repo = pick_repo(state, repo)?;
            let data_from = match from {
                None => None,
                Some(from) => {
                    let parent = crate::workspace::resolve(state, Some(from))?;
                    if parent.repo != repo {
                        return Err(crate::error::Hinted {
                            message: format!(
                                "`--from {from}`: `{}` is a workspace of `{}`, not of `{repo}`",
                                parent.name(),
                                parent.repo
                            ),
                            hint: format!("name a workspace of `{repo}` (`dual list`)"),
                        }
                        .into());
                    }
                    Some(parent.name())
                }
            };
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
                data_from,
                engine: None,
                endpoint: None,
                user: None,
            };
            let holder = state
                .workspace(&plain)
                .filter(|_| plain != workspace.name())
                .map(|w| format!("`{plain}` is branch `{}` of `{}`", w.branch, w.repo));
            let registered = &state.repos[&workspace.repo];
            let source = registered.source.clone();
            let default_branch = registered.default_branch.clone();
            state.workspaces.push(workspace.clone());
            Ok((workspace, holder, source, default_branch))
        })?;
    let branch_at = git::branch_at(&repo_source, branch);
    Ok(Created {
        workspace,
        renamed_because,
        branch_at,
        source: repo_source,
        default_branch,
    })
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
    if let Some(repo) = state.repos.values().find(|r| {
        r.source
            .local_path()
            .is_some_and(|path| here.starts_with(path))
    }) {
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
