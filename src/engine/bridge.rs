//! Keeps podman's bridge on one MAC address.
//!
//! A Linux bridge whose address was never set takes the lowest MAC of its
//! ports, so starting or stopping any container can change it. Containers keep
//! the old address in their ARP cache, and what they send to the host (a dev
//! server's responses to the proxy) is lost until that entry expires: measured
//! here, an SSE stream from a workspace stalled for more than 10 s when other
//! containers started. Docker sets the bridge's address when it creates it,
//! and netavark does since 1.9; for older netavark (Debian 12 ships 1.4) dual
//! marks the bridge's current address as set after a workspace starts.

use std::io;

use super::{Engine, EngineKind};

/// `addr_assign_type` of an address someone set (`NET_ADDR_SET`): the bridge
/// keeps it whatever ports come and go.
const ADDRESS_SET: &str = "3";

/// The kernel's limit on an interface name, its terminating NUL included.
const IFNAMSIZ: usize = 16;

#[derive(Debug, PartialEq, Eq)]
pub enum Pinned {
    /// Its address was set already (docker, netavark 1.9+, an earlier dual).
    Already,
    /// dual set it now.
    Now,
    /// No such interface in this network namespace.
    Absent,
}

/// Fixes a bridge's current MAC address so that it stops following its ports.
/// Needs CAP_NET_ADMIN over the interface's network namespace.
pub fn pin_mac(interface: &str) -> io::Result<Pinned> {
    set_if_unset(interface).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("could not fix the address of bridge {interface}: {error}"),
        )
    })
}

fn set_if_unset(interface: &str) -> io::Result<Pinned> {
    check_name(interface)?;
    // sysfs shows the namespace it was mounted in: the host's, where a rootful
    // engine's bridges are. Inside podman's rootless namespace it shows
    // nothing of the bridge, so there the address is set without asking.
    let assign_type = std::path::Path::new("/sys/class/net")
        .join(interface)
        .join("addr_assign_type");
    if std::fs::read_to_string(assign_type).is_ok_and(|t| t.trim() == ADDRESS_SET) {
        return Ok(Pinned::Already);
    }
    let Some(address) = current_address(interface)? else {
        return Ok(Pinned::Absent);
    };
    // Setting the address it has marks it as set (the kernel's NET_ADDR_SET).
    ip(["link", "set", "dev", interface, "address", address.as_str()])?;
    Ok(Pinned::Now)
}

fn check_name(interface: &str) -> io::Result<()> {
    let valid = !interface.is_empty()
        && interface.len() < IFNAMSIZ
        && !interface.contains(['/', '\0', ' '])
        && !interface.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{interface}` is not an interface name"),
        ))
    }
}

/// How long `ip` may take: one netlink request, but on a busy machine.
const IP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The MAC address `interface` has now in this network namespace, or `None`
/// when there is no such interface. Asked of `ip` (netlink), which sees the
/// namespace dual runs in, where sysfs may show another one.
fn current_address(interface: &str) -> io::Result<Option<String>> {
    let output = crate::process::Cmd::new("ip", ["-j", "link", "show", "dev", interface])
        .timeout(IP_TIMEOUT)
        .output()
        .map_err(io::Error::other)?;
    if !output.success() {
        if output.stderr.contains("does not exist") {
            return Ok(None);
        }
        return Err(io::Error::other(format!(
            "`ip link show dev {interface}` failed: {}",
            output.stderr.trim()
        )));
    }
    parse_address(&output.stdout)
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("`ip` printed no MAC address for {interface}")))
}

/// The `address` of the one link in `ip -j link show` output.
fn parse_address(json: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Link {
        address: String,
    }
    let links: Vec<Link> = serde_json::from_str(json).ok()?;
    let address = links.into_iter().next()?.address;
    let is_mac = address.len() == 17
        && address
            .split(':')
            .all(|part| part.len() == 2 && part.bytes().all(|b| b.is_ascii_hexdigit()));
    is_mac.then_some(address)
}

fn ip<const N: usize>(args: [&str; N]) -> io::Result<()> {
    crate::process::Cmd::new("ip", args)
        .timeout(IP_TIMEOUT)
        .run()
        .map(drop)
        .map_err(io::Error::other)
}

/// Whether podman's bridges here live in podman's own namespace (rootless),
/// out of the host's sight.
fn rootless() -> bool {
    !rustix::process::geteuid().is_root()
}

/// Rootful podman, and every bridge it has (it names them `podman0`,
/// `podman1`, …) already with a fixed address: then a new container on the
/// default network needs no engine call to be steady. Rootless bridges are
/// out of sight, so this is false there.
pub fn all_pinned_already() -> bool {
    if rootless() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return false;
    };
    let mut bridges = entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("podman"))
        .peekable();
    bridges.peek().is_some()
        && bridges.all(|entry| {
            std::fs::read_to_string(entry.path().join("addr_assign_type"))
                .is_ok_and(|t| t.trim() == ADDRESS_SET)
        })
}

/// Pins the bridges of a running container's networks. On rootful podman the
/// bridge is in the host's namespace and dual (root) pins it itself; on
/// rootless podman it is in podman's rootless network namespace, entered with
/// `podman unshare --rootless-netns`. Failures are reported, not fatal: the
/// workspace works, it may only stall when its bridge changes address.
pub fn steady(engine: &Engine, networks: &[&str]) -> Result<(), String> {
    if engine.kind() != EngineKind::Podman || networks.is_empty() {
        return Ok(());
    }
    let interfaces = engine
        .network_interfaces(networks)
        .map_err(|error| error.to_string())?;
    let rootless = rootless();
    for interface in interfaces {
        let pinned = if rootless {
            engine
                .pin_rootless_bridge(&interface)
                .map_err(|error| error.to_string())?;
            Pinned::Now
        } else {
            pin_mac(&interface).map_err(|error| error.to_string())?
        };
        crate::log::debug(&format!("bridge {interface}: {pinned:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_before_any_path_is_built() {
        for bad in ["", "../x", "a/b", "averyveryverylongname", ".", "a b"] {
            assert_eq!(
                pin_mac(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{bad}"
            );
        }
        assert_eq!(pin_mac("dual-no-such0").unwrap(), Pinned::Absent);
    }

    #[test]
    fn the_address_is_read_from_ip_json_and_checked() {
        let shown = r#"[{"ifindex":5,"ifname":"podman0","address":"02:42:56:aa:f4:86"}]"#;
        assert_eq!(parse_address(shown).as_deref(), Some("02:42:56:aa:f4:86"));
        for bad in [
            "[]",
            "not json",
            r#"[{"address":"02:42:56:aa:f4:86 up"}]"#,
            r#"[{"address":"02:42:56:aa:f4"}]"#,
        ] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }
}
