//! Ports the proxy cannot serve because another program holds them, on
//! 127.0.0.1 or on ::1. The proxy then serves that port on neither address:
//! serving one while another program answers on the other would send curl
//! (127.0.0.1) and a browser (::1 first) to different servers in silence.
//! The running proxy answers what it found on its control socket, which
//! `launch`, `list`, `urls` and `proxy status` ask, to say so loudly.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub port: u16,
    /// The address another program holds ("127.0.0.1:5000").
    pub address: String,
    /// "pid 1234 (python3)", or "another process" where /proc does not say.
    pub holder: String,
}

/// Said of a port's holder where `/proc` does not name it (yet).
pub const UNNAMED_HOLDER: &str = "another process";

impl Conflict {
    /// One line: what is wrong, what it does, and the fix.
    pub fn warning(&self) -> String {
        format!(
            "warning: port {} is not served by dual's proxy: {} is held by {}, so http://…localhost:{} would reach that program, not a workspace; stop it (or move it to another port), and the proxy takes the port within seconds",
            self.port, self.address, self.holder, self.port
        )
    }
}

/// The running proxy's conflicts, asked of it; none when no proxy runs.
pub fn read() -> Vec<Conflict> {
    super::control::conflicts()
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
                holder: crate::sockets::holder_of(port).unwrap_or_else(|| UNNAMED_HOLDER.into()),
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
    for found in check_now(ports) {
        match conflicts.iter_mut().find(|c| c.port == found.port) {
            // The proxy may not have named the holder yet (it looks it up
            // off its loop): a name found now says more.
            Some(known) if known.holder == UNNAMED_HOLDER => *known = found,
            Some(_) => {}
            None => conflicts.push(found),
        }
    }
    conflicts.iter().map(Conflict::warning).collect()
}
