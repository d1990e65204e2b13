//! `mounts`: named volumes become the workspace's own (one set per
//! workspace, kept across a recreated container, removed by `destroy`);
//! a bind mount is refused, since its source is a path of the host.
//!
//! A volume is per workspace rather than shared by the repo's: a volume
//! that every branch mounts would let a hostile branch's container write
//! what the main branch's then runs (a `node_modules`, a shell history).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::reader::{Reader, kind};
use super::vars::Context;
use crate::workspace::sidecars::{self, Volume};

/// Each a volume of the workspace's and a mount of its container.
const MAX_MOUNTS: usize = 16;

pub(super) fn mounts(reader: &mut Reader, value: &Value) -> Result<Vec<Volume>, String> {
    let Value::Array(items) = value else {
        return Err(format!("`mounts` is {}, not an array", kind(value)));
    };
    if items.len() > MAX_MOUNTS {
        return Err(format!(
            "`mounts` names {} mounts; dual mounts at most {MAX_MOUNTS}",
            items.len()
        ));
    }
    let mut volumes: Vec<Volume> = Vec::new();
    let mut targets = BTreeSet::new();
    for item in items {
        let fields = match item {
            Value::String(text) => {
                let Some(text) = reader.resolve("mounts", text, Context::Value, true) else {
                    continue;
                };
                parse_fields(&text)?
            }
            Value::Object(entries) => {
                let mut fields = Vec::new();
                for (name, value) in entries {
                    let Value::String(value) = value else {
                        return Err(format!(
                            "`mounts`: `{}` is {}, not a string",
                            name.escape_debug(),
                            kind(value)
                        ));
                    };
                    let Some(value) = reader.resolve("mounts", value, Context::Value, true) else {
                        continue;
                    };
                    fields.push((name.clone(), Some(value)));
                }
                fields
            }
            other => {
                return Err(format!(
                    "`mounts`: an entry is {}, not a string or an object",
                    kind(other)
                ));
            }
        };
        if let Some(volume) = mount(reader, &fields)? {
            if !targets.insert(volume.target.clone()) {
                return Err(format!(
                    "`mounts`: two mounts at `{}`",
                    volume.target.escape_debug()
                ));
            }
            volumes.push(volume);
        }
    }
    Ok(volumes)
}

/// `type=volume,source=x,target=/y,readonly`: fields, a bare one (`readonly`)
/// without a value. A quote would make the engine read the fields otherwise
/// than split here, so it is refused.
fn parse_fields(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    if text.contains(['"', '\'']) {
        return Err(format!(
            "`mounts`: `{}` holds a quote; write the mount as an object (`{{ \"type\": \"volume\", \"source\": …, \"target\": … }}`)",
            text.escape_debug()
        ));
    }
    Ok(text
        .split(',')
        .map(str::trim)
        .filter(|field| !field.is_empty())
        .map(|field| match field.split_once('=') {
            Some((name, value)) => (name.trim().to_owned(), Some(value.trim().to_owned())),
            None => (field.to_owned(), None),
        })
        .collect())
}

/// One mount as a volume; `None` (with a note) for one dual skips.
fn mount(
    reader: &mut Reader,
    fields: &[(String, Option<String>)],
) -> Result<Option<Volume>, String> {
    let (mut kind, mut source, mut target) = (None, None, None);
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("type", Some(value)) => kind = Some(value.clone()),
            ("source" | "src", Some(value)) => source = Some(value.clone()),
            ("target" | "destination" | "dst", Some(value)) => target = Some(value.clone()),
            ("readonly" | "ro", _) => reader.note(
                "`mounts`: `readonly` is not honoured: the volume is the workspace's own and mounted writable",
            ),
            ("consistency", _) => {}
            ("volume-opt" | "volume-driver" | "volume-nocopy" | "bind-propagation", _) => {
                return Err(format!(
                    "`mounts`: `{}` is refused: with it a volume can be a path of the host\nhint: remove it; dual makes plain named volumes",
                    name.escape_debug()
                ));
            }
            _ => {
                return Err(format!(
                    "`mounts`: `{}` is not a field of a mount dual knows (`type`, `source`, `target`, `readonly`)",
                    name.escape_debug()
                ));
            }
        }
    }
    let target = target.ok_or("`mounts`: a mount names no `target`")?;
    match kind.as_deref().unwrap_or("volume") {
        "volume" => {}
        "bind" => {
            return Err(format!(
                "`mounts`: the bind mount of `{}` at `{}` is refused: dual mounts no path of the host in a workspace but its clone\nhint: remove it from `mounts` (a named volume, `type=volume`, is kept per workspace), or write `devcontainer = false` in .dual.toml",
                source.unwrap_or_default().escape_debug(),
                target.escape_debug()
            ));
        }
        "tmpfs" => {
            reader.note(&format!(
                "`mounts`: the tmpfs at `{}` is not mounted: the directory is the image's",
                target.escape_debug()
            ));
            return Ok(None);
        }
        other => {
            return Err(format!(
                "`mounts`: `type={}` is not a mount dual makes (`volume`)",
                other.escape_debug()
            ));
        }
    }
    let name = source.unwrap_or_else(|| sidecars::volume_name_for(&target));
    sidecars::check_volume("mounts", &name, &target)?;
    check_target(reader, &target)?;
    Ok(Some(Volume { name, target }))
}

/// A volume never hides what dual mounts: the clone and the directories
/// above it, its `.git`, the home, the files that name the user, dual's own.
fn check_target(reader: &Reader, target: &str) -> Result<(), String> {
    let target_path = Path::new(target);
    let clone = reader.dir;
    let home = crate::paths::user_home();
    let hides = |mounted: &Path| mounted.starts_with(target_path);
    let in_git = target_path.starts_with(clone.join(".git"));
    // Compared as paths: `/etc//passwd` is `/etc/passwd` to the engine.
    let dual_own = ["/run/dual", super::super::services::LOG_MOUNT]
        .iter()
        .any(|own| target_path.starts_with(own))
        || ["/etc/passwd", "/etc/group", crate::workspace::trust::MOUNT]
            .iter()
            .any(|file| target_path == Path::new(file));
    if hides(clone) || hides(&home) || in_git || dual_own {
        return Err(format!(
            "`mounts`: a volume at `{}` would hide what dual mounts there (the clone, its `.git`, your home or dual's own files)",
            target.escape_debug()
        ));
    }
    Ok(())
}
