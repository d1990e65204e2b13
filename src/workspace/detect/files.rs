//! The repo's files as detection reads them: through `confined` (a file
//! that is a link, a FIFO or larger than its limit is not read), each
//! read at most once, and what was refused remembered, so that the
//! summary can say why a file was passed over instead of failing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

/// A manifest or a source file read to guess from: more than this is not
/// what a hand-written one holds.
const TEXT_LIMIT: u64 = 512 * 1024;
/// Lock files of large projects run to megabytes; they are only scanned.
const LOCK_LIMIT: u64 = 8 * 1024 * 1024;

/// The clone at `dir`, read for detection.
pub struct RepoFiles<'d> {
    dir: &'d Path,
    read: RefCell<BTreeMap<String, Option<String>>>,
    /// Files that exist but were not read, and why (one line each).
    pub refused: RefCell<Vec<String>>,
}

impl<'d> RepoFiles<'d> {
    pub fn new(dir: &'d Path) -> RepoFiles<'d> {
        RepoFiles {
            dir,
            read: RefCell::new(BTreeMap::new()),
            refused: RefCell::new(Vec::new()),
        }
    }

    /// Whether `name` (relative) exists as anything, a link included.
    pub fn exists(&self, name: &str) -> bool {
        crate::confined::exists(self.dir, Path::new(name))
    }

    /// The text of the regular file `name`, if it is one of a sane size.
    pub fn text(&self, name: &str) -> Option<String> {
        self.read_limited(name, TEXT_LIMIT)
    }

    /// As `text`, for a lock file (a larger limit).
    pub fn lock_text(&self, name: &str) -> Option<String> {
        self.read_limited(name, LOCK_LIMIT)
    }

    fn read_limited(&self, name: &str, limit: u64) -> Option<String> {
        if let Some(known) = self.read.borrow().get(name) {
            return known.clone();
        }
        let text = match crate::confined::read_text(self.dir, Path::new(name), limit) {
            Ok(text) => Some(text),
            Err(error) if error.is_not_found() => None,
            Err(error) => {
                let why = match error {
                    crate::confined::ConfinedError::Link(_) => "a symbolic link".to_owned(),
                    crate::confined::ConfinedError::NotAFile(_) => "not a regular file".to_owned(),
                    crate::confined::ConfinedError::TooLarge { limit, .. } => {
                        format!("larger than {limit} bytes")
                    }
                    crate::confined::ConfinedError::NotADirectory(_) => {
                        "under something that is not a directory".to_owned()
                    }
                    other => other.to_string(),
                };
                self.refused
                    .borrow_mut()
                    .push(format!("`{name}` was not read: {why}"));
                None
            }
        };
        self.read.borrow_mut().insert(name.to_owned(), text.clone());
        text
    }

    /// `name` as JSON, if it is a readable file that parses.
    pub fn json(&self, name: &str) -> Option<serde_json::Value> {
        let text = self.text(name)?;
        match serde_json::from_str(&text) {
            Ok(value) => Some(value),
            Err(error) => {
                self.refused.borrow_mut().push(format!(
                    "`{name}` does not parse as JSON ({})",
                    crate::untrusted::shown_line(&error.to_string())
                ));
                None
            }
        }
    }

    /// `name` as TOML, if it is a readable file that parses.
    pub fn toml(&self, name: &str) -> Option<toml::Table> {
        let text = self.text(name)?;
        match text.parse::<toml::Table>() {
            Ok(table) => Some(table),
            Err(error) => {
                // The parser's words may quote the file's (a key).
                let first =
                    crate::untrusted::shown_line(error.message().lines().next().unwrap_or(""));
                self.refused
                    .borrow_mut()
                    .push(format!("`{name}` does not parse as TOML ({first})"));
                None
            }
        }
    }

    /// The first of `names` that exists, as it is named there.
    pub fn first_of<'n>(&self, names: &[&'n str]) -> Option<&'n str> {
        names.iter().copied().find(|name| self.exists(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_does_not_parse_is_passed_over_with_the_reason_on_one_clean_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "\"\\u001b]0;pwned\\u0007\" = 1\n\"\\u001b]0;pwned\\u0007\" = 2\n",
        )
        .unwrap();
        let files = RepoFiles::new(dir.path());
        assert_eq!(files.toml("pyproject.toml"), None);
        let refused = files.refused.borrow().clone();
        assert_eq!(refused.len(), 1);
        assert!(!refused[0].chars().any(char::is_control), "{refused:?}");
        assert!(refused[0].starts_with("`pyproject.toml` does not parse as TOML"));
    }

    #[test]
    fn links_fifos_and_huge_files_are_passed_over_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "{\"scripts\":{}}").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            dir.path().join("package.json"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("big.txt"),
            vec![b'a'; TEXT_LIMIT as usize + 1],
        )
        .unwrap();
        let files = RepoFiles::new(dir.path());
        assert!(files.exists("package.json"));
        assert_eq!(files.json("package.json"), None);
        assert_eq!(files.text("big.txt"), None);
        assert_eq!(files.text("missing"), None);
        let refused = files.refused.borrow().clone();
        assert_eq!(
            refused,
            [
                "`package.json` was not read: a symbolic link",
                &format!("`big.txt` was not read: larger than {TEXT_LIMIT} bytes"),
            ]
        );
    }
}
