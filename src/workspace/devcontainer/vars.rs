//! devcontainer.json's `${…}` variables, resolved as far as dual can
//! without reading the host's environment.
//!
//! - `${localWorkspaceFolder}` and `${containerWorkspaceFolder}` are both
//!   the clone's path: dual mounts the clone at its own host path (their
//!   `…Basename` forms, its last component).
//! - `${devcontainerId}`: a hash of the clone's path, stable per workspace.
//! - `${localEnv:VAR}` and `${localEnv:VAR:default}` never read the user's
//!   environment: a branch could name `${localEnv:AWS_SECRET_ACCESS_KEY}`.
//!   The default stands in where there is one; without, the value is
//!   missing (the caller leaves its key out, or uses nothing).
//! - `${containerEnv:VAR}`: the container's own value, unknown before it
//!   exists. In a shell command it becomes `${VAR}`, which that shell
//!   expands inside; elsewhere it is missing.
//! - Anything else (`${HOME}`, a shell's own `${x:-y}`) stays as written.

/// Where a string stands, which decides what a variable may become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Context {
    /// A value given to the engine as it is (env, build args, mounts).
    Value,
    /// A command line for `sh -c` in the container.
    Shell,
}

/// The clone the file belongs to, which the workspace-folder variables name.
pub(super) struct Vars {
    pub clone: String,
}

/// A variable that could not be given a value, for the caller's note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Missing {
    /// As written: `${localEnv:TOKEN}`.
    pub variable: String,
    pub why: &'static str,
    /// Its default stood in for it.
    pub defaulted: bool,
}

pub(super) const HOST_ENV: &str =
    "names your host's environment, which dual never passes to a workspace";
pub(super) const CONTAINER_ENV: &str =
    "is the container's own value, which dual cannot know before the container exists";

/// What `text` holds once its variables are resolved: the text with a
/// stand-in (a default, or nothing) for each missing variable, and those.
pub(super) struct Resolved {
    pub text: String,
    /// Variables that had no value (their defaults stood in where given).
    pub missing: Vec<Missing>,
}

impl Vars {
    pub(super) fn resolve(&self, text: &str, context: Context) -> Resolved {
        let mut out = String::with_capacity(text.len());
        let mut missing = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let inner = &after[..end];
            let written = &rest[start..start + 2 + end + 1];
            match self.value(inner, context) {
                Value::Known(value) => out.push_str(&value),
                Value::Untouched => out.push_str(written),
                Value::Missing { default, why } => {
                    out.push_str(default.unwrap_or_default());
                    missing.push(Missing {
                        variable: written.to_owned(),
                        why,
                        defaulted: default.is_some(),
                    });
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Resolved { text: out, missing }
    }

    fn value<'t>(&self, inner: &'t str, context: Context) -> Value<'t> {
        let basename = || {
            self.clone
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        match inner {
            "localWorkspaceFolder" | "containerWorkspaceFolder" => {
                return Value::Known(self.clone.clone());
            }
            "localWorkspaceFolderBasename" | "containerWorkspaceFolderBasename" => {
                return Value::Known(basename());
            }
            "devcontainerId" => {
                return Value::Known(super::super::names::long_hash(&self.clone));
            }
            _ => {}
        }
        let Some((kind, rest)) = inner.split_once(':') else {
            return Value::Untouched;
        };
        let (name, default) = match rest.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (rest, None),
        };
        if !super::super::config_file::is_env_name(name) {
            return Value::Untouched;
        }
        match (kind, context) {
            ("localEnv", _) => Value::Missing {
                default,
                why: HOST_ENV,
            },
            ("containerEnv", Context::Shell) => Value::Known(match default {
                Some(default) => format!("${{{name}:-{default}}}"),
                None => format!("${{{name}}}"),
            }),
            ("containerEnv", Context::Value) => Value::Missing {
                default,
                why: CONTAINER_ENV,
            },
            _ => Value::Untouched,
        }
    }
}

enum Value<'t> {
    Known(String),
    Untouched,
    Missing {
        default: Option<&'t str>,
        why: &'static str,
    },
}

impl Missing {
    /// One line for a note: `` `${localEnv:X}` names your host's … ``.
    pub(super) fn describe(&self) -> String {
        let default = if self.defaulted {
            ": its default is used"
        } else {
            ""
        };
        format!("`{}` {}{default}", self.variable, self.why)
    }
}
