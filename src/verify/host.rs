//! Host checks that need no engine: the proxy's ports, `*.localhost`
//! resolution, and the tools dual drives besides the engine.

use std::net::{IpAddr, Ipv6Addr, TcpListener, ToSocketAddrs};

use super::Check;
use crate::process::{Cmd, find_on_path};

pub fn checks(ports: &[u16]) -> Vec<Check> {
    vec![
        proxy_ports(ports),
        localhost_names(),
        ca_bundle(),
        tool(
            "git",
            &["--version"],
            true,
            "install git (Debian: `apt-get install git`)",
        ),
        tool(
            "tmux",
            &["-V"],
            false,
            "install tmux (Debian: `apt-get install tmux`) to keep dev servers running in the background",
        ),
    ]
}

/// Which of the host's CAs workspaces trust (see `workspace::trust`).
fn ca_bundle() -> Check {
    use crate::workspace::trust;
    match trust::host_trust() {
        Some(host) => Check::pass(
            "ca-bundle",
            format!(
                "workspaces get {} ({}) as {}",
                host.bundle.display(),
                host.why,
                trust::VARIABLES.join(", ")
            ),
        ),
        None => Check::pass(
            "ca-bundle",
            "the host adds no CA of its own: workspaces trust their image's (DUAL_CA_BUNDLE=FILE passes one)",
        ),
    }
}

fn proxy_ports(ports: &[u16]) -> Check {
    const NAME: &str = "proxy-ports";
    let ipv6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
    // Held by dual's own proxy is as it should be.
    let held: Vec<String> = crate::proxy::conflicts::check_now(ports)
        .into_iter()
        .map(|conflict| format!("{} (held by {})", conflict.address, conflict.holder))
        .collect();
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let families = if ipv6 {
        "127.0.0.1 and ::1"
    } else {
        "127.0.0.1 (no IPv6 loopback)"
    };
    if held.is_empty() {
        Check::pass(
            NAME,
            format!("ports {list} are free (or dual's proxy's) on {families}"),
        )
    } else {
        Check::fail(
            NAME,
            format!("cannot bind {}", held.join(", ")),
            "stop what holds the port, or give the workspace another port in .dual.toml",
        )
    }
}

fn localhost_names() -> Check {
    const NAME: &str = "localhost-names";
    let probe = "dual-verify.localhost";
    let resolved: Vec<IpAddr> = (probe, 80)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .unwrap_or_default();
    if !resolved.is_empty() && resolved.iter().all(IpAddr::is_loopback) {
        Check::pass(
            NAME,
            format!("the system resolver maps {probe} to loopback"),
        )
    } else {
        Check::warn(
            NAME,
            format!(
                "the system resolver does not map {probe} to loopback{}; curl and browsers resolve *.localhost themselves, other tools may not",
                if resolved.is_empty() {
                    String::new()
                } else {
                    format!(" (got {resolved:?})")
                }
            ),
            "for every program: install nss-myhostname (Debian: `apt-get install libnss-myhostname`) and add `myhostname` to the hosts line of /etc/nsswitch.conf",
        )
    }
}

fn tool(program: &str, version_args: &[&str], required: bool, fix: &str) -> Check {
    let Some(path) = find_on_path(program) else {
        let detail = format!("{program} not found on PATH");
        return if required {
            Check::fail(program, detail, fix)
        } else {
            Check::warn(program, detail, fix)
        };
    };
    let version = Cmd::new(&path, version_args)
        .timeout(std::time::Duration::from_secs(5))
        .run()
        .map(|output| output.stdout.trim().to_owned())
        .unwrap_or_default();
    Check::pass(program, format!("{version} at {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_is_reported_with_its_holder() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let check = proxy_ports(&[port]);
        assert_eq!(check.status, super::super::Status::Fail);
        assert!(
            check
                .detail
                .contains(&format!("pid {}", std::process::id())),
            "{}",
            check.detail
        );
    }
}
