//! `dockerComposeFile` + `service` + `runServices`: the named service is
//! the workspace (its image or build, environment and ports become the
//! workspace's), the others sidecars through dual's compose reader (which
//! checks and notes them as it does a repo's compose file).

use serde_json::{Map, Value};

use super::reader::{Reader, kind};
use crate::workspace::compose::{self, ComposeFile, Selection};

pub(super) fn read(reader: &mut Reader, entries: &Map<String, Value>) -> Result<(), String> {
    let files: Vec<String> = match &entries["dockerComposeFile"] {
        Value::String(file) => vec![file.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(file) => Ok(file.clone()),
                other => Err(format!(
                    "`dockerComposeFile`: an entry is {}, not a string",
                    kind(other)
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "`dockerComposeFile` is {}, not a string or an array",
                kind(other)
            ));
        }
    };
    let Some((first, overrides)) = files.split_first() else {
        return Err("`dockerComposeFile` names no file".into());
    };
    if !overrides.is_empty() {
        let names: Vec<String> = overrides
            .iter()
            .map(|file| format!("`{}`", file.escape_debug()))
            .collect();
        reader.note(&format!(
            "`dockerComposeFile`: only `{}` is read; {} not merged into it",
            first.escape_debug(),
            names.join(", ")
        ));
    }
    let service = match entries.get("service") {
        Some(Value::String(service)) => service.clone(),
        Some(other) => return Err(format!("`service` is {}, not a string", kind(other))),
        None => {
            return Err(
                "`dockerComposeFile` without `service`: which of its services is the workspace?"
                    .into(),
            );
        }
    };
    let run_services: Option<Vec<String>> = match entries.get("runServices") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| match item {
                    Value::String(name) => Ok(name.clone()),
                    other => Err(format!(
                        "`runServices`: an entry is {}, not a string",
                        kind(other)
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => return Err(format!("`runServices` is {}, not an array", kind(other))),
    };
    let file = reader
        .inside(first)
        .filter(|path| !path.as_os_str().is_empty())
        .map(|path| path.to_string_lossy().into_owned())
        .filter(|path| super::super::config_file::is_plain_relative(path))
        .ok_or_else(|| {
            format!(
                "`dockerComposeFile`: `{}` is not a file inside the repo (relative to the devcontainer.json's directory)",
                first.escape_debug()
            )
        })?;
    if !crate::confined::exists(reader.dir, std::path::Path::new(&file)) {
        return Err(format!("`dockerComposeFile`: the clone has no `{file}`"));
    }
    let selection = Selection {
        app: Some(&service),
        only: run_services.as_deref(),
    };
    // Its errors name the compose file; here they become this file's key's.
    let stack = compose::load_selected(reader.dir, &file, selection).map_err(|error| {
        let cause = match &error {
            super::super::config_file::ConfigError::Invalid { message, .. } => message.clone(),
            other => {
                let source = std::error::Error::source(other)
                    .map(|cause| format!(": {cause}"))
                    .unwrap_or_default();
                format!("{other}{source}")
            }
        };
        format!("`dockerComposeFile` `{file}`: {cause}")
    })?;
    crate::workspace::sidecars::start_order(&stack.sidecars)
        .map_err(|why| format!("`dockerComposeFile` `{file}`: {why}"))?;
    if let Some(app) = stack.app {
        match app.build {
            Some(build) => reader.layer.build = Some(build),
            None => reader.layer.image = Some(app.image),
        }
        for (name, value) in app.env {
            // Interpolated already: literal text to `[env]`'s expansion.
            reader
                .layer
                .env
                .entry(name)
                .or_insert(value.replace('$', "$$"));
        }
        for port in app.ports {
            super::ports::add_port(reader, port)?;
        }
    }
    reader.layer.sidecars = stack.sidecars;
    for note in stack.notes {
        reader.push_note(note);
    }
    // Its sidecars are these, as `runServices` chose them: the compose
    // file is not read again for more.
    reader.layer.compose_file = Some(ComposeFile::Off);
    Ok(())
}
