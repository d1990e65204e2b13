//! The workspace in focus: plain `http://localhost:PORT` (and
//! `127.0.0.1`, `[::1]`) reaches it through the proxy, so that OAuth
//! callbacks, CORS allowlists, cookies and the URL a dev server prints work
//! for the branch being worked on. A file of one line, which the proxy
//! reads every second.

use std::path::PathBuf;

fn path() -> PathBuf {
    crate::paths::data_dir().join("focus")
}

/// The focused workspace's name, if any.
pub fn read() -> Option<String> {
    let text = std::fs::read_to_string(path()).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

pub fn set(name: &str) -> std::io::Result<()> {
    let path = path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{name}\n"))?;
    std::fs::rename(partial, path)
}

pub fn clear() -> std::io::Result<()> {
    match std::fs::remove_file(path()) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}
