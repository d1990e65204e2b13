//! The workspace in focus: plain `http://localhost:PORT` (and
//! `127.0.0.1`, `[::1]`) reaches it through the proxy, so that OAuth
//! callbacks, CORS allowlists, cookies and the URL a dev server prints work
//! for the branch being worked on.
//!
//! The running proxy is told on its control socket, and answers once the
//! new focus routes. The choice is also kept in a file of one line, read
//! only when a proxy starts, so that a restarted proxy keeps it.

use std::path::PathBuf;

use crate::proxy::control::{self, ControlError};

fn path() -> PathBuf {
    crate::paths::data_dir().join("focus")
}

/// The focused workspace's name, as chosen last (the running proxy's,
/// unless something went wrong telling it: see `apply`).
pub fn read() -> Option<String> {
    let text = std::fs::read_to_string(path()).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// What became of a focus change.
#[derive(Debug)]
pub enum Applied {
    /// The running proxy routes by it now.
    ByProxy,
    /// No proxy runs: the proxy takes it when it starts.
    NoProxy,
    /// A proxy runs but was not told (its error): it takes the choice when
    /// it starts again.
    NotTold(ControlError),
}

impl Applied {
    /// What to tell the user when the choice does not route yet.
    pub fn warning(&self) -> Option<String> {
        match self {
            Applied::ByProxy => None,
            Applied::NoProxy => Some(
                "the proxy is not running; the choice takes effect when it starts (`dual proxy start`)"
                    .into(),
            ),
            Applied::NotTold(error) => Some(format!(
                "the running proxy was not told: {error}; the choice takes effect when it starts again (`dual proxy stop`, then `dual proxy start`)"
            )),
        }
    }
}

/// Sets (`Some`) or clears (`None`) the focus: keeps the choice, then tells
/// the running proxy and waits for it to apply it.
pub fn apply(name: Option<&str>) -> std::io::Result<Applied> {
    keep(name)?;
    Ok(match control::set_focus(name) {
        Ok(_) => Applied::ByProxy,
        Err(ControlError::NotRunning) => Applied::NoProxy,
        Err(error) => Applied::NotTold(error),
    })
}

pub fn set(name: &str) -> std::io::Result<()> {
    report(apply(Some(name))?);
    Ok(())
}

pub fn clear() -> std::io::Result<()> {
    report(apply(None)?);
    Ok(())
}

fn report(applied: Applied) {
    if let Applied::NotTold(error) = applied {
        crate::log::debug(&format!("focus: {error}"));
    }
}

/// Keeps the choice for the next proxy to start.
fn keep(name: Option<&str>) -> std::io::Result<()> {
    let path = path();
    let Some(name) = name else {
        return match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        };
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{name}\n"))?;
    std::fs::rename(partial, path)
}
