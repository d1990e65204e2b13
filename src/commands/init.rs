//! `dual init [DIR] [--force] [--print]`: writes what detection guesses
//! for a repo with no config into its `.dual.toml`, with a comment on each
//! key, for the user to review, change and commit. Without `--force` an
//! existing `.dual.toml` is kept; a repo with a devcontainer.json is left to
//! it (dual reads that as it is).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::error::{Hint, HintExt as _};
use crate::printer::Printer;
use crate::workspace::config::{DevcontainerChoice, FILE_NAME};
use crate::workspace::{WorkspaceError, detect, devcontainer, git};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("`{}` has a {FILE_NAME} already", .0.display())]
    Exists(PathBuf),
    #[error(
        "`{}` has `{file}`, which gives its workspaces their settings: dual reads it as it is",
        .dir.display()
    )]
    Devcontainer { dir: PathBuf, file: String },
    #[error(
        "nothing in `{}` says what it is: no package.json, pyproject.toml, requirements.txt, manage.py, Gemfile, go.mod or Cargo.toml at its root",
        .0.display()
    )]
    NothingFound(PathBuf),
    #[error("could not write `{}`", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: crate::confined::ConfinedError,
    },
}

impl Hint for InitError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            InitError::NotADirectory(_) => "name a repo's directory: `dual init DIR`".into(),
            InitError::Exists(_) => {
                "`dual init --force` replaces it; `dual init --print` shows what it would write"
                    .into()
            }
            InitError::Devcontainer { .. } => format!(
                "`dual launch` uses it; a {FILE_NAME} beside it changes what it says, key by key (`dual init --print` shows what detection would guess)"
            ),
            InitError::NothingFound(_) => format!(
                "write a {FILE_NAME} by hand: `image = \"…\"`, `setup = \"…\"` and a `[services.web]` with its `command`"
            ),
            InitError::Write { .. } => {
                "check the directory's permissions, or `dual init --print > FILE`".into()
            }
        })
    }
}

pub fn run(
    dir: Option<&Path>,
    force: bool,
    print_only: bool,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let dir = match dir {
        Some(dir) => dir
            .canonicalize()
            .ok()
            .filter(|dir| dir.is_dir())
            .ok_or_else(|| InitError::NotADirectory(dir.to_owned()))
            .hinted()?,
        None => {
            let here = crate::workspace::current_dir()?;
            git::toplevel(&here)
                .map_err(|_| WorkspaceError::NotARepo(here))
                .hinted()?
        }
    };
    let detected = detect::detect(&dir)
        .ok_or_else(|| InitError::NothingFound(dir.clone()))
        .hinted()?;
    let text = detect::written::render(&detected);
    if print_only {
        super::print(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Checked after detection: `--print` shows the guess anyway.
    if let Some(loaded) = devcontainer::load(&dir, &DevcontainerChoice::Usual)? {
        return Err(InitError::Devcontainer {
            dir,
            file: loaded.file,
        })
        .hinted();
    }
    if crate::confined::exists(&dir, Path::new(FILE_NAME)) && !force {
        return Err(InitError::Exists(dir)).hinted();
    }
    crate::confined::write(&dir, Path::new(FILE_NAME), text.as_bytes(), 0o644)
        .map_err(|source| InitError::Write {
            path: dir.join(FILE_NAME),
            source,
        })
        .hinted()?;
    super::print(&text)?;
    printer.progress(format!(
        "wrote {}: review it, then commit it (each workspace's clone reads its branch's {FILE_NAME})",
        dir.join(FILE_NAME).display()
    ));
    Ok(ExitCode::SUCCESS)
}
