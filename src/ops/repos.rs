//! Registering a repository dual makes workspaces of, and unregistering one.
//! A repo's source is the user's own (a checkout or a remote): dual never
//! writes to it or deletes it.

use std::path::Path;

use anyhow::Context;

use crate::error::{HintExt as _, WithHint};
use crate::printer::Printer;
use crate::workspace::RepoSource;
use crate::workspace::{Repo, Store, WorkspaceError, git, names};

/// What `add` did.
#[derive(Debug)]
pub struct Added {
    pub repo: Repo,
    /// False: it was registered already, from the same source.
    pub new: bool,
}

/// `scheme://…` or scp-like `user@host:path`.
fn is_url(source: &str) -> bool {
    source.contains("://")
        || (source.contains('@') && source.contains(':') && !source.starts_with('/'))
}

/// Registers the repo at `source` (a path or a URL; default: the one around
/// the current directory) as `name` (default: from its path).
pub fn add(source: Option<&str>, name: Option<&str>, _printer: &Printer) -> anyhow::Result<Added> {
    let source = RepoSource::from(match source {
        Some(url) if is_url(url) => url.to_owned(),
        Some(path) => local_repo(Path::new(path))?,
        None => local_repo(&crate::workspace::current_dir()?)?,
    });
    let name = match name {
        Some(name) => {
            names::validate_repo(name)?;
            name.to_owned()
        }
        None => names::repo_name_from(&source.to_string()),
    };
    let default_branch = git::default_branch(&source)
        .with_context(|| format!("could not find the default branch of `{source}`"))?;
    let repo = Repo {
        name: name.clone(),
        source: source.clone(),
        default_branch,
    };
    let new = Store::open_default().update(|state| -> Result<bool, WithHint> {
        match state.repos.get(&name) {
            Some(existing) if existing.source == source => Ok(false),
            Some(existing) => Err(WorkspaceError::RepoNameTaken {
                name: name.clone(),
                source_path: existing.source.to_string(),
            }
            .into()),
            None => {
                state.repos.insert(name.clone(), repo.clone());
                Ok(true)
            }
        }
    })?;
    Ok(Added { repo, new })
}

/// Unregisters the repo `name`. Refuses while it has workspaces (naming
/// them); its source is left as it is, whatever it is. Its shared store
/// (`.env.local` and the like) goes with it: a repo added later under the
/// same name (a URL's last part, which its author picks) must not be
/// handed those files.
pub fn remove(name: &str, _printer: &Printer) -> anyhow::Result<Repo> {
    let repo = Store::open_default()
        .update(|state| -> Result<Repo, WithHint> {
            let workspaces: Vec<String> = state
                .workspaces
                .iter()
                .filter(|w| w.repo == name)
                .map(|w| w.name())
                .collect();
            if !workspaces.is_empty() {
                return Err(WorkspaceError::RepoInUse {
                    name: name.to_owned(),
                    workspaces,
                }
                .into());
            }
            state
                .repos
                .remove(name)
                .ok_or_else(|| WorkspaceError::UnknownRepo(name.to_owned()).into())
        })
        .map_err(anyhow::Error::from)?;
    let store = crate::paths::shared_dir(name);
    match std::fs::remove_dir_all(&store) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error)
            .with_context(|| format!("could not remove the shared files in `{}`", store.display())),
        _ => Ok(repo),
    }
}

fn local_repo(path: &Path) -> anyhow::Result<String> {
    let absolute = path
        .canonicalize()
        .with_context(|| format!("`{}` does not exist", path.display()))?;
    let top = git::toplevel(&absolute)
        .map_err(|_| WorkspaceError::NotARepo(absolute.clone()))
        .hinted()?;
    Ok(top
        .canonicalize()
        .unwrap_or(top)
        .to_string_lossy()
        .into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_and_paths() {
        assert!(super::is_url("https://host/org/repo.git"));
        assert!(super::is_url("git@host:org/repo.git"));
        assert!(super::is_url("file:///srv/repo"));
        assert!(!super::is_url("/home/u/src/repo"));
        assert!(!super::is_url("../repo"));
    }
}
