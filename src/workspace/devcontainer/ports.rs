//! `forwardPorts`, `appPort` and `portsAttributes`: the ports a workspace
//! declares (the proxy routes them before anything listens) and their
//! labels.

use serde_json::Value;

use super::reader::{Reader, kind};

/// A label is shown beside a URL: a short line of text.
const MAX_LABEL_CHARS: usize = 60;
/// Each declared port is a listener of the proxy's.
const MAX_PORTS: usize = 32;

/// `forwardPorts`: numbers are the workspace's ports; `"host:port"` names
/// another container's (a compose service's) port.
pub(super) fn forward_ports(reader: &mut Reader, value: &Value) -> Result<(), String> {
    let Value::Array(items) = value else {
        return Err(format!("`forwardPorts` is {}, not an array", kind(value)));
    };
    for item in items {
        match item {
            Value::Number(_) => {
                let port = port("forwardPorts", item)?;
                add_port(reader, port)?;
            }
            Value::String(text) => match text.split_once(':') {
                Some(("localhost" | "127.0.0.1", number)) => {
                    let port = port("forwardPorts", &Value::String(number.to_owned()))?;
                    add_port(reader, port)?;
                }
                Some((_, number)) if number.parse::<u16>().is_ok_and(|p| p != 0) => {
                    reader.note(&format!(
                        "`forwardPorts`: `{}` is not forwarded: a sidecar listens on the workspace's own localhost (`localhost:{number}` inside); from the host, `dual forward WORKSPACE {number}`",
                        text.escape_debug()
                    ));
                }
                _ => {
                    return Err(format!(
                        "`forwardPorts`: `{}` is neither a port nor `host:port`",
                        text.escape_debug()
                    ));
                }
            },
            other => {
                return Err(format!(
                    "`forwardPorts`: an entry is {}, not a port",
                    kind(other)
                ));
            }
        }
    }
    Ok(())
}

/// `appPort`: the ports the spec would publish; dual routes them instead.
pub(super) fn app_port(reader: &mut Reader, value: &Value) -> Result<(), String> {
    let items = match value {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    for item in &items {
        match item {
            Value::Number(_) => {
                let port = port("appPort", item)?;
                add_port(reader, port)?;
            }
            other => reader.note(&format!(
                "`appPort`: `{}` is not published: dual routes the ports a workspace listens on at its own URL",
                crate::untrusted::shown_line(&other.to_string())
            )),
        }
    }
    Ok(())
}

/// `portsAttributes`: each port's `label`, shown beside its URL; the
/// other attributes (and ranges or patterns) are for editors.
pub(super) fn attributes(reader: &mut Reader, value: &Value) -> Result<(), String> {
    let Value::Object(entries) = value else {
        return Err(format!(
            "`portsAttributes` is {}, not an object",
            kind(value)
        ));
    };
    let mut unused = Vec::new();
    for (key, attributes) in entries {
        let Value::Object(attributes) = attributes else {
            return Err(format!(
                "`portsAttributes.{}` is {}, not an object",
                key.escape_debug(),
                kind(attributes)
            ));
        };
        let Ok(port) = key.parse::<u16>() else {
            unused.push(format!("`{}`", key.escape_debug()));
            continue;
        };
        for (name, value) in attributes {
            match (name.as_str(), value) {
                ("label", Value::String(label)) if port != 0 => {
                    let label: String = crate::untrusted::shown_line(label.trim())
                        .chars()
                        .take(MAX_LABEL_CHARS)
                        .collect();
                    if !label.is_empty() {
                        reader.layer.port_labels.insert(port, label);
                    }
                }
                _ => unused.push(format!("`{key}.{}`", name.escape_debug())),
            }
        }
    }
    if !unused.is_empty() {
        reader.note(&format!(
            "`portsAttributes`: {} not used (dual shows a port's `label` beside its URL; the rest is for editors)",
            unused.join(", ")
        ));
    }
    Ok(())
}

pub(super) fn add_port(reader: &mut Reader, port: u16) -> Result<(), String> {
    let ports = reader.layer.ports.get_or_insert_with(Vec::new);
    if !ports.contains(&port) {
        if ports.len() == MAX_PORTS {
            return Err(format!(
                "more than {MAX_PORTS} ports to route (`forwardPorts`, `appPort`)"
            ));
        }
        ports.push(port);
    }
    Ok(())
}

/// A port number, from a JSON number or the digits of a string.
fn port(key: &str, value: &Value) -> Result<u16, String> {
    let port = match value {
        Value::Number(number) => number.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(text) => text.parse::<u16>().ok(),
        _ => None,
    };
    match port {
        Some(port) if port != 0 => Ok(port),
        _ => Err(format!(
            "`{key}`: `{}` is not a port (1 to 65535)",
            crate::untrusted::shown_line(&value.to_string())
        )),
    }
}
