//! One devcontainer.json read key by key into a layer: each key dual
//! honours checked for the argument it becomes, each it refuses an error
//! naming it, each it does not use one note.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::super::config_file::{ConfigError, check_image_reference};
use super::super::layer::ConfigLayer;
use super::super::sidecars;
use super::reader::{Reader, kind};
use super::vars::{Context, Vars};
use super::{HostCommand, Loaded};
use crate::untrusted::{shown, shown_line};

/// The file's text as a tree, then the layer it gives.
pub(super) fn read(dir: &Path, file: &str, text: &str) -> Result<Loaded, ConfigError> {
    let path = dir.join(file);
    let invalid = |message: String| ConfigError::Invalid {
        path: path.clone(),
        message: shown(&message),
    };
    let tree = parse_jsonc(text).map_err(&invalid)?;
    let Value::Object(entries) = tree else {
        return Err(invalid(format!(
            "the file is {}, not an object",
            kind(&tree)
        )));
    };
    let base = Path::new(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut reader = Reader {
        dir,
        file,
        base,
        vars: Vars {
            clone: dir.display().to_string(),
        },
        notes: Vec::new(),
        layer: ConfigLayer::default(),
        initialize: None,
    };
    reader.entries(&entries).map_err(invalid)?;
    let Reader {
        mut layer,
        notes,
        initialize,
        ..
    } = reader;
    // One line each: a name of the file's with a newline in it must not
    // forge a line (a `hint:`) of dual's own.
    layer.notes = notes.iter().map(|note| shown_line(note)).collect();
    layer.initialize_command = initialize;
    Ok(Loaded {
        file: file.to_owned(),
        layer,
    })
}

/// JSON with comments and trailing commas, as VS Code writes it; nothing
/// of JSON5 beyond (no single quotes, bare keys or hex numbers).
fn parse_jsonc(text: &str) -> Result<Value, String> {
    let options = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    jsonc_parser::parse_to_serde_value::<Value>(text, &options).map_err(|error| {
        format!(
            "not JSON with comments (line {}, column {}): {}",
            error.line_display(),
            error.column_display(),
            error.kind()
        )
    })
}

/// The keys a devcontainer.json may hold that describe it and set nothing.
const DESCRIPTIVE: [&str; 2] = ["$schema", "name"];

impl Reader<'_> {
    fn entries(&mut self, entries: &Map<String, Value>) -> Result<(), String> {
        let compose = entries.contains_key("dockerComposeFile");
        for (key, value) in entries {
            match key.as_str() {
                key if DESCRIPTIVE.contains(&key) => {}
                "image" if compose => self.note_unused_with_compose(key),
                "image" => self.image(value)?,
                "build" | "dockerFile" | "context" if compose => self.note_unused_with_compose(key),
                "build" => self.build(value)?,
                "dockerFile" | "context" if entries.contains_key("build") => self.note(&format!(
                    "`{key}` is not used: `build` says how to build the image"
                )),
                // The spec's older spelling of `build.dockerfile`/`context`.
                "dockerFile" => self.build(&super::build::legacy_build(entries))?,
                "context" if entries.contains_key("dockerFile") => {}
                "context" => self.note("`context` is not used: there is no `dockerFile`"),
                "dockerComposeFile" => super::compose::read(self, entries)?,
                "service" | "runServices" if compose => {}
                "service" | "runServices" => self.note(&format!(
                    "`{key}` is not used: there is no `dockerComposeFile`"
                )),
                "forwardPorts" => super::ports::forward_ports(self, value)?,
                "appPort" => super::ports::app_port(self, value)?,
                "portsAttributes" => super::ports::attributes(self, value)?,
                "otherPortsAttributes" => self.note(
                    "`otherPortsAttributes` is not used: dual routes every port that speaks HTTP",
                ),
                // Read below, in the order they apply.
                "containerEnv" | "remoteEnv" => {}
                "onCreateCommand" | "updateContentCommand" | "postCreateCommand" => {
                    // Run in the spec's order whatever the file's (the
                    // object's keys come sorted).
                    let hook = super::hooks::hook(self, key, value)?;
                    self.layer.lifecycle.on_create.extend(hook);
                    let order = |hook: &super::super::lifecycle::Hook| {
                        ON_CREATE_ORDER.iter().position(|k| *k == hook.key)
                    };
                    self.layer.lifecycle.on_create.sort_by_key(order);
                }
                "postStartCommand" => {
                    self.layer.lifecycle.post_start = super::hooks::hook(self, key, value)?;
                }
                "postAttachCommand" => {
                    self.layer.lifecycle.post_attach = super::hooks::hook(self, key, value)?;
                }
                "initializeCommand" => {
                    self.initialize = super::hooks::hook(self, key, value)?.map(|hook| HostCommand {
                        file: self.file.to_owned(),
                        hook,
                    });
                }
                "remoteUser" | "containerUser" => self.user(key, value),
                "updateRemoteUserUID" => self.note(
                    "`updateRemoteUserUID` is not needed: every process of a workspace runs with your own uid and gid",
                ),
                "mounts" => self.layer.mounts = super::mounts::mounts(self, value)?,
                "workspaceFolder" | "workspaceMount" => self.note(&format!(
                    "`{key}` is not used: dual mounts the clone at its own path, `{}`, and starts there",
                    self.vars.clone
                )),
                "runArgs" => super::run_args::run_args(self, value)?,
                "privileged" | "capAdd" | "securityOpt" => super::run_args::privileges(key, value)?,
                "init" => self.note(
                    "`init` is not used: dual's own first process reaps orphans and stops the services",
                ),
                "overrideCommand" => self.note(
                    "`overrideCommand` is not used: a workspace container always runs dual's own first process",
                ),
                "features" => self.features(value),
                "overrideFeatureInstallOrder" => {
                    self.note("`overrideFeatureInstallOrder` is not used: dual installs no features");
                }
                "shutdownAction" => self.note(
                    "`shutdownAction` is not used: a workspace runs until `dual stop`",
                ),
                "customizations" | "extensions" | "settings" => self.note(&format!(
                    "`{key}` is for editors: dual does not use it"
                )),
                "hostRequirements" => self.note(
                    "`hostRequirements` is not checked: dual starts the workspace on this host as it is",
                ),
                "secrets" => self.note(
                    "`secrets` are not asked for: set them in `[env]` of .dual.toml, or in the clone's own files",
                ),
                "waitFor" => self.note(
                    "`waitFor` is not used: `dual launch` returns once every lifecycle command it runs has ended",
                ),
                "userEnvProbe" => self.note(
                    "`userEnvProbe` is not used: commands run with the container's environment and dual's",
                ),
                other => self.note(&format!(
                    "`{other}` is not a devcontainer.json key dual knows; ignored"
                )),
            }
        }
        // `remoteEnv` applies over `containerEnv`.
        for key in ["containerEnv", "remoteEnv"] {
            if let Some(value) = entries.get(key) {
                self.env(key, value)?;
            }
        }
        if !compose && self.layer.image.is_none() && self.layer.build.is_none() {
            self.note(
                "it names no `image`, `build` or `dockerComposeFile`: dual's default image is used",
            );
        }
        Ok(())
    }

    fn image(&mut self, value: &Value) -> Result<(), String> {
        let Value::String(image) = value else {
            return Err(format!("`image` is {}, not a string", kind(value)));
        };
        let Some(image) = self.resolve("image", image, Context::Value, true) else {
            return Err(
                "`image` names a variable dual cannot know (see the note); name the image itself"
                    .into(),
            );
        };
        check_image_reference(&image).map_err(|why| {
            format!(
                "`image`: `{}` is not an image reference ({why})",
                image.escape_debug()
            )
        })?;
        self.layer.image = Some(image);
        Ok(())
    }

    fn env(&mut self, key: &str, value: &Value) -> Result<(), String> {
        let Value::Object(entries) = value else {
            return Err(format!("`{key}` is {}, not an object", kind(value)));
        };
        for (name, value) in entries {
            let entry = format!("{key}.{name}");
            let value = match value {
                Value::String(value) => value,
                // `remoteEnv`'s way to unset one: dual sets none to begin with.
                Value::Null => {
                    self.layer.env.remove(name);
                    continue;
                }
                other => {
                    return Err(format!(
                        "`{}` is {}, not a string",
                        entry.escape_debug(),
                        kind(other)
                    ));
                }
            };
            sidecars::check_env(key, name, value)?;
            if let Some(value) = self.resolve(&entry, value, Context::Value, true) {
                sidecars::check_env(key, name, &value)?;
                // Resolved already: literal text to `[env]`'s expansion.
                self.layer
                    .env
                    .insert(name.clone(), value.replace('$', "$$"));
            }
        }
        Ok(())
    }

    fn user(&mut self, key: &str, value: &Value) {
        let user = match value {
            Value::String(user) => format!("`{}`", user.escape_debug()),
            other => kind(other).to_owned(),
        };
        self.note(&format!(
            "`{key}` ({user}) is not used: every process of a workspace runs as you (your uid and gid, your user name, your home at its host path)"
        ));
    }

    fn features(&mut self, value: &Value) {
        let Value::Object(features) = value else {
            self.note(&format!(
                "`features` is {}: no feature is installed",
                kind(value)
            ));
            return;
        };
        for feature in features.keys() {
            self.note(&format!(
                "feature `{}` is not installed: its registry is out of reach. Bake what it installs into the image instead: a Dockerfile (`build.dockerfile`) `FROM` the image with a `RUN` that installs it",
                feature.escape_debug()
            ));
        }
    }

    /// `path` (relative to this file's directory) as a path relative to
    /// the clone, when it stays inside (`..` resolved as written).
    pub(super) fn inside(&self, path: &str) -> Option<PathBuf> {
        if path.contains('\0') {
            return None;
        }
        super::super::config_file::normalized_inside(&self.base.join(path))
    }
}

/// The order the spec runs the once-per-container commands in.
const ON_CREATE_ORDER: [&str; 3] = [
    "onCreateCommand",
    "updateContentCommand",
    "postCreateCommand",
];
