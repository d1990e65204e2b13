//! `dual sync [WORKSPACE]`: copy the repo's shared files (`shared_files` in
//! `.dual.toml`: `.env.local` and the like, which git does not carry) from
//! the repo's shared store into its workspaces. A file missing from the store
//! is taken from the registered local repo when it has one.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::print;
use crate::workspace::config::Config;
use crate::workspace::{self, Store, Workspace};

pub fn run(name: Option<&str>) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load()?;
    let targets: Vec<&Workspace> = match name {
        Some(_) => vec![workspace::resolve(&state, name)?],
        None => match workspace::resolve(&state, None) {
            Ok(one) => vec![one],
            Err(_) => state
                .workspaces
                .iter()
                .filter(|w| w.path.exists())
                .collect(),
        },
    };
    let mut copied = 0;
    for workspace in targets {
        if !workspace.path.exists() {
            print(&format!("{}: not cloned yet, skipped\n", workspace.name()))?;
            continue;
        }
        let config = Config::load(&workspace.path)?;
        let store = crate::paths::shared_dir(&workspace.repo);
        let source = state
            .repos
            .get(&workspace.repo)
            .filter(|r| r.is_local())
            .map(|r| Path::new(&r.source).to_owned());
        for file in &config.shared_files {
            let stored = store.join(file);
            if !stored.exists()
                && let Some(original) = source
                    .as_ref()
                    .map(|s| s.join(file))
                    .filter(|p| p.is_file())
            {
                copy(&original, &stored)?;
            }
            if !stored.exists() {
                print(&format!(
                    "{}: `{file}` is not in {} yet, skipped\n",
                    workspace.name(),
                    store.display()
                ))?;
                continue;
            }
            copy(&stored, &workspace.path.join(file))?;
            print(&format!("{}: {file}\n", workspace.name()))?;
            copied += 1;
        }
    }
    print(&format!("synced {copied} file(s)\n"))?;
    Ok(ExitCode::SUCCESS)
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("could not create `{}`", parent.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("could not copy `{}` to `{}`", from.display(), to.display()))?;
    Ok(())
}
