//! devcontainer.json's `build` (and the older top-level `dockerFile` and
//! `context`): paths relative to the devcontainer.json's directory, made
//! into the clone-relative build `launch` makes, kept inside the clone and
//! of characters that stay one argument.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::reader::{Reader, kind};
use super::vars::Context;
use crate::workspace::config_file::{is_plain_relative, is_stage_name};
use crate::workspace::sidecars::{self, Build};

impl Reader<'_> {
    /// `build`: paths relative to this file's directory, made relative to
    /// the clone (the context) and to the context (the Dockerfile).
    pub(super) fn build(&mut self, value: &Value) -> Result<(), String> {
        let Value::Object(build) = value else {
            return Err(format!("`build` is {}, not an object", kind(value)));
        };
        let text = |field: &str| -> Result<Option<&String>, String> {
            match build.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text)),
                Some(other) => Err(format!("`build.{field}` is {}, not a string", kind(other))),
            }
        };
        let dockerfile = text("dockerfile")?.ok_or(
            "`build` names no `dockerfile` (relative to the devcontainer.json's directory)",
        )?;
        let context = text("context")?.map_or(".", String::as_str);
        let context_path = self
            .inside(context)
            .ok_or_else(|| outside("build.context", context))?;
        let dockerfile_path = self
            .inside(dockerfile)
            .ok_or_else(|| outside("build.dockerfile", dockerfile))?;
        let in_context = dockerfile_path
            .strip_prefix(&context_path)
            .map_err(|_| {
                format!(
                    "`build.dockerfile` `{}` is outside `build.context` `{}`: dual builds with a Dockerfile inside its context\nhint: widen `build.context` (`\"..\"` for the repo's root)",
                    dockerfile.escape_debug(),
                    context.escape_debug()
                )
            })?
            .to_string_lossy()
            .into_owned();
        let context = match context_path.to_string_lossy().into_owned() {
            root if root.is_empty() => ".".to_owned(),
            inside => inside,
        };
        for (field, path) in [
            ("build.context", &context),
            ("build.dockerfile", &in_context),
        ] {
            if !is_plain_relative(path) {
                return Err(format!(
                    "`{field}`: `{}` may hold only letters, digits and `/._-+@`, no part starting with `-`",
                    path.escape_debug()
                ));
            }
        }
        let mut args = BTreeMap::new();
        match build.get("args") {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                for (name, value) in entries {
                    let Value::String(value) = value else {
                        return Err(format!(
                            "`build.args.{}` is {}, not a string",
                            name.escape_debug(),
                            kind(value)
                        ));
                    };
                    let key = format!("build.args.{name}");
                    if let Some(value) = self.resolve(&key, value, Context::Value, true) {
                        sidecars::check_env("build.args", name, &value)?;
                        args.insert(name.clone(), value);
                    }
                }
            }
            Some(other) => return Err(format!("`build.args` is {}, not an object", kind(other))),
        }
        let target = text("target")?.cloned();
        if let Some(target) = target.as_ref().filter(|t| !is_stage_name(t)) {
            return Err(format!(
                "`build.target`: `{}` is not a build stage name",
                target.escape_debug()
            ));
        }
        for field in build.keys() {
            match field.as_str() {
                "dockerfile" | "context" | "args" | "target" => {}
                "options" => self.note(
                    "`build.options` are not passed to the build: dual builds with the engine's own defaults",
                ),
                "cacheFrom" => self.note("`build.cacheFrom` is not used: no registry is asked"),
                other => {
                    self.note(&format!("`build.{other}` is not a build setting dual knows; ignored"));
                }
            }
        }
        self.layer.build = Some(Build {
            context,
            dockerfile: Some(in_context),
            args,
            target,
        });
        Ok(())
    }
}

/// `dockerFile` and `context` at the top level, as a `build` object.
pub(super) fn legacy_build(entries: &Map<String, Value>) -> Value {
    let mut build = Map::new();
    if let Some(dockerfile) = entries.get("dockerFile") {
        build.insert("dockerfile".into(), dockerfile.clone());
    }
    if let Some(context) = entries.get("context") {
        build.insert("context".into(), context.clone());
    }
    Value::Object(build)
}

fn outside(key: &str, path: &str) -> String {
    format!(
        "`{key}`: `{}` is not inside the repo (paths are relative to the devcontainer.json's directory)",
        path.escape_debug()
    )
}
