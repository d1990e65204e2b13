//! A lifecycle command of devcontainer.json (`postCreateCommand`, …) in any
//! of its three forms: a string (run by `sh -c`), an array (argv, no
//! shell), or an object of those (run in parallel, each under its name).

use serde_json::Value;

use super::reader::{Reader, kind};
use super::vars::Context;
use crate::workspace::lifecycle::{Hook, HookCommand};

/// Commands of one object run at once, each an exec into the container.
const MAX_PARALLEL: usize = 16;
/// A command line, or an argv in all, as the kernel takes one argument
/// (its limit is 128 KiB) with room to spare.
const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// An object's names prefix every line their command prints.
const MAX_NAME_CHARS: usize = 40;

/// `key`'s value as a hook; `None` when it runs nothing.
pub(super) fn hook(reader: &mut Reader, key: &str, value: &Value) -> Result<Option<Hook>, String> {
    let commands = match value {
        Value::Null => Vec::new(),
        Value::String(_) | Value::Array(_) => command(reader, key, value)?
            .map(|command| vec![(None, command)])
            .unwrap_or_default(),
        Value::Object(entries) => {
            if entries.len() > MAX_PARALLEL {
                return Err(format!(
                    "`{key}` names {} commands; dual runs at most {MAX_PARALLEL} at once",
                    entries.len()
                ));
            }
            let mut commands = Vec::new();
            for (name, entry) in entries {
                let plain = !name.trim().is_empty()
                    && name.chars().count() <= MAX_NAME_CHARS
                    && !name.chars().any(char::is_control);
                if !plain {
                    return Err(format!(
                        "`{key}`: `{}` is not a name dual can show (at most {MAX_NAME_CHARS} characters, no control characters)",
                        name.escape_debug()
                    ));
                }
                if let Some(command) = command(reader, &format!("{key}.{name}"), entry)? {
                    commands.push((Some(name.clone()), command));
                }
            }
            commands
        }
        other => {
            return Err(format!(
                "`{key}` is {}, not a string, an array or an object",
                kind(other)
            ));
        }
    };
    Ok((!commands.is_empty()).then(|| Hook {
        key: key.to_owned(),
        commands,
    }))
}

/// One command: a line for `sh -c`, or argv. `None` for an empty one.
fn command(reader: &mut Reader, key: &str, value: &Value) -> Result<Option<HookCommand>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(line) => {
            let line = reader
                .resolve(key, line, Context::Shell, false)
                .unwrap_or_default();
            if line.trim().is_empty() {
                return Ok(None);
            }
            check_words(key, std::slice::from_ref(&line))?;
            Ok(Some(HookCommand::Shell(line)))
        }
        Value::Array(items) => {
            let mut words = Vec::with_capacity(items.len());
            for item in items {
                let Value::String(word) = item else {
                    return Err(format!("`{key}`: a word is {}, not a string", kind(item)));
                };
                words.push(
                    reader
                        .resolve(key, word, Context::Value, false)
                        .unwrap_or_default(),
                );
            }
            if words.is_empty() {
                return Ok(None);
            }
            if words[0].is_empty() {
                return Err(format!("`{key}`: the program (its first word) is empty"));
            }
            check_words(key, &words)?;
            Ok(Some(HookCommand::Argv(words)))
        }
        other => Err(format!(
            "`{key}` is {}, not a string or an array of strings",
            kind(other)
        )),
    }
}

/// No NUL (an argument cannot hold one), bounded, and a first word that
/// is no option: `sh -c -x` would read `-x` as its own.
fn check_words(key: &str, words: &[String]) -> Result<(), String> {
    if words.iter().any(|word| word.contains('\0')) {
        return Err(format!("`{key}`: a command cannot hold a NUL character"));
    }
    if words.iter().map(String::len).sum::<usize>() > MAX_COMMAND_BYTES {
        return Err(format!(
            "`{key}`: longer than {} KiB; put it in a script in the repo and run that",
            MAX_COMMAND_BYTES / 1024
        ));
    }
    if words[0].starts_with('-') {
        return Err(format!(
            "`{key}`: `{}` starts with `-`, which would be read as an option, not a command",
            words[0].escape_debug()
        ));
    }
    Ok(())
}
