//! `dual add [PATH|URL] [--name NAME]`: register a repository.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::print;
use crate::workspace::{Repo, Store, WorkspaceError, git, names};

/// `scheme://…` or scp-like `user@host:path`.
fn is_url(source: &str) -> bool {
    source.contains("://")
        || (source.contains('@') && source.contains(':') && !source.starts_with('/'))
}

pub fn run(source: Option<&str>, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let source = match source {
        Some(url) if is_url(url) => url.to_owned(),
        Some(path) => local_repo(Path::new(path))?,
        None => local_repo(&crate::workspace::current_dir()?)?,
    };
    let name = match name {
        Some(name) => {
            names::validate_repo(name)?;
            name.to_owned()
        }
        None => names::repo_name_from(&source),
    };
    let default_branch = git::default_branch(&source)
        .with_context(|| format!("could not find the default branch of `{source}`"))?;
    let repo = Repo {
        name: name.clone(),
        source: source.clone(),
        default_branch,
    };
    let added = Store::open_default().update(|state| -> anyhow::Result<bool> {
        match state.repos.get(&name) {
            Some(existing) if existing.source == source => Ok(false),
            Some(existing) => Err(WorkspaceError::RepoNameTaken {
                name: name.clone(),
                source_path: existing.source.clone(),
            }
            .into()),
            None => {
                state.repos.insert(name.clone(), repo.clone());
                Ok(true)
            }
        }
    })?;
    let verb = if added {
        "added"
    } else {
        "already registered:"
    };
    print(&format!(
        "{verb} repo `{name}` ({source}, default branch `{}`)\nnext: `dual create BRANCH --repo {name}`\n",
        repo.default_branch
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn local_repo(path: &Path) -> anyhow::Result<String> {
    let absolute = path
        .canonicalize()
        .with_context(|| format!("`{}` does not exist", path.display()))?;
    let top = git::toplevel(&absolute).map_err(|_| WorkspaceError::NotARepo(absolute.clone()))?;
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
