//! What the running proxy found each workspace listening on, shared with
//! `dual list` (which would otherwise read every container's socket tables
//! itself, about 2 ms of kernel time each on a large host).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::sockets::Listening;

fn path() -> PathBuf {
    crate::paths::data_dir().join("proxy-listening.json")
}

/// Written by the proxy whenever what it found changes.
pub fn write(found: &HashMap<String, Listening>) {
    let sorted: BTreeMap<
        &String,
        (
            &std::collections::BTreeSet<u16>,
            &std::collections::BTreeSet<u16>,
        ),
    > = found
        .iter()
        .map(|(name, l)| (name, (&l.reachable, &l.loopback_only)))
        .collect();
    let Ok(text) = serde_json::to_string(&sorted) else {
        return;
    };
    let path = path();
    let partial = path.with_extension("json.partial");
    if std::fs::write(&partial, text).is_ok() {
        let _ = std::fs::rename(&partial, &path);
    }
}

pub fn remove() {
    let _ = std::fs::remove_file(path());
}

/// The running proxy's view, when a proxy runs (a file left by one that
/// was killed says nothing about now).
pub fn read() -> Option<HashMap<String, Listening>> {
    crate::proxy::instance::running_pid()?;
    let text = std::fs::read_to_string(path()).ok()?;
    let parsed: HashMap<String, (Vec<u16>, Vec<u16>)> = serde_json::from_str(&text).ok()?;
    Some(
        parsed
            .into_iter()
            .map(|(name, (reachable, loopback_only))| {
                (
                    name,
                    Listening {
                        reachable: reachable.into_iter().collect(),
                        loopback_only: loopback_only.into_iter().collect(),
                    },
                )
            })
            .collect(),
    )
}
