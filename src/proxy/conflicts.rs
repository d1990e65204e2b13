//! Ports the proxy cannot serve because another program holds them, on
//! 127.0.0.1 or on ::1. The proxy then serves that port on neither address:
//! serving one while another program answers on the other would send curl
//! (127.0.0.1) and a browser (::1 first) to different servers in silence.
//! The running proxy writes what it found to a file, which `launch`, `list`,
//! `urls` and `proxy status` read, to say so loudly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub port: u16,
    /// The address another program holds ("127.0.0.1:5000").
    pub address: String,
    /// "pid 1234 (python3)", or "another process" where /proc does not say.
    pub holder: String,
}

impl Conflict {
    /// One line: what is wrong, what it does, and the fix.
    pub fn warning(&self) -> String {
        format!(
            "warning: port {} is not served by dual's proxy: {} is held by {}, so http://…localhost:{} would reach that program, not a workspace; stop it (or move it to another port), and the proxy takes the port within seconds",
            self.port, self.address, self.holder, self.port
        )
    }
}

fn path() -> PathBuf {
    crate::paths::data_dir().join("proxy-conflicts.json")
}

/// Written by the proxy whenever its conflicts change (empty: no file).
pub fn write(conflicts: &BTreeMap<u16, Conflict>) {
    let path = path();
    if conflicts.is_empty() {
        let _ = std::fs::remove_file(&path);
        return;
    }
    let list: Vec<&Conflict> = conflicts.values().collect();
    if let Ok(text) = serde_json::to_string_pretty(&list) {
        let partial = path.with_extension("json.partial");
        if std::fs::write(&partial, text).is_ok() {
            let _ = std::fs::rename(&partial, &path);
        }
    }
}

/// The running proxy's conflicts; none when no proxy runs (a file left by
/// one that was killed says nothing about now).
pub fn read() -> Vec<Conflict> {
    if crate::proxy::instance::running_pid().is_none() {
        return Vec::new();
    }
    std::fs::read_to_string(path())
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Another program than the proxy holding one of `ports` on a loopback
/// address, found now (the proxy may not have tried these ports yet).
pub fn check_now(ports: &[u16]) -> Vec<Conflict> {
    let proxy = crate::proxy::instance::running_pid();
    let ipv6 = std::net::TcpListener::bind(("::1", 0)).is_ok();
    let mut found = Vec::new();
    for &port in ports {
        let addresses: &[&str] = if ipv6 {
            &["127.0.0.1", "::1"]
        } else {
            &["127.0.0.1"]
        };
        for address in addresses {
            let addr = std::net::SocketAddr::new(address.parse().expect("an IP"), port);
            if std::net::TcpListener::bind(addr).is_ok() {
                continue;
            }
            if proxy.is_some_and(|pid| crate::sockets::held_by(port, pid)) {
                continue;
            }
            found.push(Conflict {
                port,
                address: addr.to_string(),
                holder: crate::sockets::holder_of(port).unwrap_or_else(|| "another process".into()),
            });
            break;
        }
    }
    found
}

/// The ports of these workspace URLs (`http://{name}.localhost:{port}`).
pub fn ports_of_urls<'a>(urls: impl IntoIterator<Item = &'a String>) -> Vec<u16> {
    let mut ports: Vec<u16> = urls
        .into_iter()
        .filter_map(|url| url.rsplit(':').next()?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A warning for each port of `ports` that another program holds, as the
/// proxy found it or as found now; for the caller to print.
pub fn warnings(ports: &[u16]) -> Vec<String> {
    let mut conflicts = read();
    conflicts.retain(|c| ports.contains(&c.port));
    for conflict in check_now(ports) {
        if !conflicts.iter().any(|c| c.port == conflict.port) {
            conflicts.push(conflict);
        }
    }
    conflicts.iter().map(Conflict::warning).collect()
}
