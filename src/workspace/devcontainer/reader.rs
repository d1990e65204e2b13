//! The reader of one devcontainer.json that each key's module writes into:
//! the layer being made, its notes, and the variables its values may name.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::super::layer::ConfigLayer;
use super::HostCommand;
use super::vars::{Context, Resolved, Vars};

/// What JSON calls a value, for messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The file being read.
pub(super) struct Reader<'a> {
    /// The clone.
    pub dir: &'a Path,
    /// The devcontainer.json, relative to the clone.
    pub file: &'a str,
    /// Its directory, relative to the clone: its paths are relative to it.
    pub base: PathBuf,
    pub vars: Vars,
    pub notes: Vec<String>,
    pub layer: ConfigLayer,
    pub initialize: Option<HostCommand>,
}

impl Reader<'_> {
    /// One note, naming the file (`verify` tells this file's apart by it).
    pub(super) fn note(&mut self, text: &str) {
        self.notes.push(format!("{}: {text}", self.file));
    }

    /// A note as written elsewhere (the compose reader's, naming its file).
    pub(super) fn push_note(&mut self, note: String) {
        self.notes.push(note);
    }

    pub(super) fn note_unused_with_compose(&mut self, key: &str) {
        self.note(&format!(
            "`{key}` is not used: with `dockerComposeFile`, the image is the `service`'s"
        ));
    }

    /// `text` with its variables resolved; a note for each that had no
    /// value (`key` names where). `None` where one had neither a value
    /// nor a default and `leave_out` says the key goes without it.
    pub(super) fn resolve(
        &mut self,
        key: &str,
        text: &str,
        context: Context,
        leave_out: bool,
    ) -> Option<String> {
        let Resolved { text, missing } = self.vars.resolve(text, context);
        let dropped = leave_out && missing.iter().any(|m| !m.defaulted);
        for variable in &missing {
            let fate = if dropped {
                "; left out"
            } else if variable.defaulted {
                ""
            } else {
                "; empty here"
            };
            self.note(&format!("`{key}`: {}{fate}", variable.describe()));
        }
        (!dropped).then_some(text)
    }
}
