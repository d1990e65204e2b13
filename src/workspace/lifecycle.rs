//! Commands a repo's config asks to run in the workspace's container at
//! moments of its life (devcontainer.json's `onCreateCommand`,
//! `postStartCommand`, …): what they are. Running them is `ops`'.

/// One command: a line for `sh -c`, or words run as they are (the array
/// form, no shell).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum HookCommand {
    Shell(String),
    Argv(Vec<String>),
}

/// A hook as the config wrote it: one command, or several (the object form)
/// run in parallel, each under its name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hook {
    /// The key it came from (`postCreateCommand`), for messages.
    pub key: String,
    /// `(name, command)`; the name is `None` for the single form.
    pub commands: Vec<(Option<String>, HookCommand)>,
}

/// The lifecycle hooks of a config, each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Lifecycle {
    /// Once per container, in this order: `onCreateCommand`,
    /// `updateContentCommand`, `postCreateCommand`.
    pub on_create: Vec<Hook>,
    /// Each time the container starts.
    pub post_start: Option<Hook>,
    /// Each time the user attaches (`dual attach`).
    pub post_attach: Option<Hook>,
}

impl Lifecycle {
    pub fn is_empty(&self) -> bool {
        self.on_create.is_empty() && self.post_start.is_none() && self.post_attach.is_none()
    }
}

/// `initializeCommand`: what a devcontainer.json asks to run on the host
/// before anything else. dual never runs it (see `ops::lifecycle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCommand {
    /// The devcontainer.json, relative to the clone.
    pub file: String,
    pub hook: Hook,
}
