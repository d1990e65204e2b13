//! Facts about this host's sockets, read from /proc: who holds a port.
//! Below everything that asks (the proxy, `verify`), so neither imports the other.

/// Who listens on a TCP port, from /proc: "pid 1234 (node)".
pub fn holder_of(port: u16) -> Option<String> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    // Every process holding it: a server's forked workers (or a child
    // between fork and exec) share the socket with the one that opened it.
    let mut holders: Vec<(u32, Option<u32>, String)> = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                let target = target.to_string_lossy();
                inodes
                    .iter()
                    .any(|inode| target == format!("socket:[{inode}]"))
            })
        });
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            holders.push((pid, parent_of(pid), name.trim().to_owned()));
        }
    }
    // The one whose parent does not hold it too: the server, not a worker.
    let pids: Vec<u32> = holders.iter().map(|(pid, _, _)| *pid).collect();
    let chosen = holders
        .iter()
        .find(|(_, parent, _)| parent.is_none_or(|parent| !pids.contains(&parent)))
        .or(holders.first())?;
    Some(format!("pid {} ({})", chosen.0, chosen.2))
}

/// A process's parent, from `/proc/PID/stat` (`pid (comm) state ppid …`,
/// read from the end of comm, which may hold spaces or parentheses).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The TCP ports a network namespace listens on, split by whether they
/// can be reached from outside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listening {
    /// Bound to every address (or one that is not loopback).
    pub reachable: std::collections::BTreeSet<u16>,
    /// Bound to loopback only (127.0.0.0/8, ::1): unreachable from the
    /// proxy, whatever it does; the fix is in the server (bind 0.0.0.0).
    pub loopback_only: std::collections::BTreeSet<u16>,
}

/// The listening sockets of the network namespace that process `pid` is in,
/// read from `/proc/{pid}/net/tcp{,6}` (no engine call, no process started).
/// `None` when the process is gone or is not container `container_id`'s (a
/// pid seen by a remote or virtualised engine means another process here).
pub fn listening_in(pid: u32, container_id: &str) -> Option<Listening> {
    is_container_process(pid, container_id).then(|| listening_of(pid))?
}

/// Whether process `pid` here is container `container_id`'s: its cgroup
/// names the container (docker's and podman's scopes both do).
pub fn is_container_process(pid: u32, container_id: &str) -> bool {
    pid != 0
        && container_id.len() >= 12
        && std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|cgroup| cgroup.contains(container_id))
}

/// The listening sockets of process `pid`'s network namespace (see
/// `listening_in`, which first checks whose process it is).
pub fn listening_of(pid: u32) -> Option<Listening> {
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    if !proc.exists() {
        return None;
    }
    let tables: String = ["net/tcp", "net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(proc.join(table)).ok())
        .collect();
    Some(listening_from_tables(&tables))
}

/// The listening sockets in the text of `/proc/net/tcp{,6}` tables: one or
/// several, whole or only some of their lines (another host's, sent by the
/// proxy's remote discovery). A line counts when it is in LISTEN state;
/// anything else (a header) does not.
pub fn listening_from_tables(text: &str) -> Listening {
    let mut listening = Listening::default();
    for (address, port) in listeners(text) {
        if is_loopback(address) {
            listening.loopback_only.insert(port);
        } else {
            listening.reachable.insert(port);
        }
    }
    // A port bound to both (two sockets) is reachable.
    let reachable = listening.reachable.clone();
    listening
        .loopback_only
        .retain(|port| !reachable.contains(port));
    listening
}

/// How many TCP sockets (IPv4, IPv6) process `pid`'s network namespace has
/// open, from `/proc/{pid}/net/sockstat{,6}`: a cheap read, where reading
/// the socket tables walks the kernel's whole connection hash (about 1 ms
/// per table on a large host). When the counts do not change, neither did
/// the listeners, almost surely (see the proxy's discovery for the rest).
pub fn socket_counts(pid: u32) -> Option<(u32, u32)> {
    let count = |file: &str, key: &str| -> Option<u32> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).ok()?;
        let line = text.lines().find(|line| line.starts_with(key))?;
        let mut fields = line.split_whitespace();
        fields.position(|field| field == "inuse")?;
        fields.next()?.parse().ok()
    };
    Some((
        count("sockstat", "TCP:")?,
        count("sockstat6", "TCP6:").unwrap_or(0),
    ))
}

/// The ports something listens on (any address) in a `/proc/net/tcp{,6}`
/// table's text, as read from inside a container.
pub fn listening_ports_in(table: &str) -> Vec<u16> {
    listeners(table).map(|(_, port)| port).collect()
}

/// (local address in hex, port) of each listening socket in a table. A
/// header line (`sl local_address …`) has no address:port: it is skipped.
fn listeners(table: &str) -> impl Iterator<Item = (&str, u16)> {
    table.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        let (address, port) = local.rsplit_once(':')?;
        (state == "0A").then_some(())?;
        Some((address, u16::from_str_radix(port, 16).ok()?))
    })
}

/// Whether a /proc/net address (hex, in the kernel's byte order) is
/// loopback: 127.0.0.0/8, ::1, or ::ffff:127.x.x.x.
fn is_loopback(address: &str) -> bool {
    match address.len() {
        // One little-endian 32-bit word: the first octet is the last byte.
        8 => address.ends_with("7F"),
        32 => {
            address == "00000000000000000000000001000000"
                || (address.starts_with("0000000000000000FFFF0000") && address.ends_with("7F"))
        }
        _ => false,
    }
}

/// Whether process `pid` holds a socket listening on `port` (checked
/// before `holder_of` scans every process).
pub fn held_by(port: u16, pid: u32) -> bool {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
    })
}

/// Whether a connection to 127.0.0.1:`port` can only reach process `pid`:
/// something listens there, and every listening socket that could take
/// such a connection (on 127.0.0.1, on 0.0.0.0, on `::` or
/// ::ffff:127.0.0.1) is one of `pid`'s (another program of the same user
/// may share a port through SO_REUSEPORT).
pub fn only_held_by(port: u16, pid: u32) -> bool {
    let tables: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let held: std::collections::HashSet<String> = fds
        .flatten()
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.path()).ok()?;
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let reaching = loopback_v4_listeners(&tables.join("\n"), port);
    !reaching.is_empty() && reaching.iter().all(|inode| held.contains(inode))
}

/// The inodes of the listening sockets in /proc/net/tcp{,6} tables that a
/// connection to 127.0.0.1:`port` could reach.
fn loopback_v4_listeners(tables: &str, port: u16) -> Vec<String> {
    const REACHING: [&str; 4] = [
        "0100007F",
        "00000000",
        "00000000000000000000000000000000",
        "0000000000000000FFFF00000100007F",
    ];
    tables
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, local_port) = fields.get(1)?.rsplit_once(':')?;
            let listening = fields.get(3) == Some(&"0A");
            (listening
                && u16::from_str_radix(local_port, 16).ok()? == port
                && REACHING.contains(&address))
            .then(|| fields.get(9).map(|inode| (*inode).to_owned()))?
        })
        .collect()
}

/// Socket inodes listening on `port` in a /proc/net/tcp{,6} table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (local_port == port && fields.get(3) == Some(&LISTEN))
                .then(|| fields.get(9).map(|s| (*s).to_owned()))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_a_connection_to_loopback_could_reach() {
        let tables = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11 1 0\n   \
            1: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12 1 0\n   \
            2: 0100007F:0BB8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 13 1 0\n   \
            3: 0200A8C0:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 14 1 0\n   \
            4: 0100007F:0BB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15 1 0\n\
            sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 16 1 0\n   \
            1: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 17 1 0\n";
        assert_eq!(loopback_v4_listeners(tables, 3000), ["11", "12", "17"]);
        assert_eq!(loopback_v4_listeners(tables, 3001), ["15"]);
        assert!(loopback_v4_listeners(tables, 3002).is_empty());
    }

    #[test]
    fn a_port_is_only_held_by_its_one_listener() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(only_held_by(port, std::process::id()));
        assert!(!only_held_by(port, 1), "not init's");
        drop(listener);
        assert!(!only_held_by(port, std::process::id()), "nobody listens");
    }

    #[test]
    fn finds_listening_sockets_in_a_proc_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0\n   \
            1: 0100007F:0BB8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 3000), vec!["123456".to_owned()]);
        assert!(listening_inodes(table, 3001).is_empty());
    }

    #[test]
    fn tells_loopback_listeners_from_reachable_ones() {
        let v4 = "  sl  local_address rem_address   st\n   \
            0: 00000000:1388 00000000:0000 0A 0 0 0 0 0 1\n   \
            1: 0100007F:1389 00000000:0000 0A 0 0 0 0 0 2\n   \
            2: 0200A8C0:138A 00000000:0000 0A 0 0 0 0 0 3\n   \
            3: 0100007F:0BB8 0100007F:9C40 01 0 0 0 0 0 4\n";
        let v6 = "  sl  local_address remote_address st\n   \
            0: 00000000000000000000000001000000:1F40 00000000000000000000000000000000:0000 0A 0 0\n   \
            1: 0000000000000000FFFF00000100007F:1F41 00000000000000000000000000000000:0000 0A 0 0\n   \
            2: 00000000000000000000000000000000:1F42 00000000000000000000000000000000:0000 0A 0 0\n";
        let found: Vec<(bool, u16)> = listeners(v4)
            .chain(listeners(v6))
            .map(|(address, port)| (is_loopback(address), port))
            .collect();
        assert_eq!(
            found,
            [
                (false, 5000),
                (true, 5001),
                (false, 5002),
                (true, 8000),
                (true, 8001),
                (false, 8002)
            ]
        );
    }

    #[test]
    fn tables_are_read_whole_or_in_part_one_after_another() {
        let v4 = "  sl  local_address rem_address   st\n   \
            0: 0100007F:1F90 00000000:0000 0A 0 0\n   \
            1: 00000000:0BB8 00000000:0000 0A 0 0\n";
        let v6 = "  sl  local_address remote_address st\n   \
            0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0\n";
        // Lines without their header, as the remote discovery sends them:
        // the first line counts too.
        let lines = "42: 0100007F:2382 00000000:0000 0A\n42: 00000000:0050 0100007F:9C40 01\n";
        let listening = listening_from_tables(&format!("{lines}{v4}{v6}"));
        assert_eq!(listening.reachable, [3000, 8080].into());
        assert_eq!(listening.loopback_only, [9090].into());
        assert_eq!(listening_from_tables(""), Listening::default());
    }

    #[test]
    fn counts_sockets_of_a_live_process_only() {
        // (The host's namespace, shared with parallel tests: no exact count.)
        let (v4, _) = socket_counts(std::process::id()).expect("this host has /proc");
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(v4 < 1_000_000);
        assert_eq!(socket_counts(u32::MAX), None);
    }

    #[test]
    fn a_process_that_is_not_the_container_is_not_read() {
        let me = std::process::id();
        assert_eq!(listening_in(me, "0123456789abcdef0123"), None);
        assert_eq!(listening_in(0, "0123456789abcdef0123"), None);
    }
}
