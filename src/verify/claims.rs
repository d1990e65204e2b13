//! The verdicts: pure functions from what the probes measured to a pass or a
//! fail per claim of the isolation research. Kept apart from the measuring so
//! that each claim is tested with samples that show it broken.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::{Check, error_chain};
use crate::engine::EngineError;

const ISOLATION_FIX: &str = "containers must run on the engine's default bridge network, not `--network host`; check `dual -v verify --probes`";

/// The port every probe container serves on, as a dev server would.
pub const PORT: u16 = 3000;

/// What one running container showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    pub token: String,
    pub running: bool,
    pub netns: Option<String>,
    /// What `localhost:3000` served inside the container.
    pub own_localhost: Option<String>,
    /// The peer's token and what this container got from the peer's IP.
    pub peer: Option<(String, Option<String>)>,
    pub ip: Option<Ipv4Addr>,
    /// What the host got from the container's IP.
    pub from_host_by_ip: Option<String>,
    /// Whether a port is published on 127.0.0.1 for this container.
    pub published: bool,
    /// What the host got from that published port.
    pub from_host_by_port: Option<String>,
}

pub fn judge_bind(samples: &[Sample]) -> Check {
    let count = samples.len();
    let serving = samples
        .iter()
        .filter(|s| s.running && s.own_localhost.as_deref() == Some(s.token.as_str()))
        .count();
    Check::verdict(
        "probe:bind-same-port",
        serving == count && count > 0,
        format!("{serving} of {count} containers bound :{PORT} at once and serve on it"),
        ISOLATION_FIX,
    )
}

pub fn judge_netns(samples: &[Sample], host_netns: Option<&str>) -> Check {
    let inodes: Vec<&str> = samples.iter().filter_map(|s| s.netns.as_deref()).collect();
    let distinct: BTreeSet<&str> = inodes.iter().copied().collect();
    let shares_host = host_netns.is_some_and(|host| distinct.contains(host));
    let passed = inodes.len() == samples.len()
        && distinct.len() == samples.len()
        && !shares_host
        && !samples.is_empty();
    let host = host_netns.unwrap_or("unknown");
    Check::verdict(
        "probe:netns-distinct",
        passed,
        format!(
            "{} distinct network namespaces for {} containers{}; host's is {host}",
            distinct.len(),
            samples.len(),
            if shares_host {
                ", one of them the host's"
            } else {
                ", none the host's"
            }
        ),
        ISOLATION_FIX,
    )
}

pub fn judge_localhost_private(samples: &[Sample]) -> Check {
    let private = samples
        .iter()
        .filter(|s| s.own_localhost.as_deref() == Some(s.token.as_str()))
        .count();
    let leaked: Vec<&str> = samples
        .iter()
        .filter(|s| s.own_localhost.as_deref().is_some_and(|got| got != s.token))
        .map(|s| s.token.as_str())
        .collect();
    Check::verdict(
        "probe:localhost-private",
        private == samples.len() && !samples.is_empty(),
        if leaked.is_empty() {
            format!("in each of {private} containers, localhost:{PORT} reached only its own server")
        } else {
            format!(
                "localhost:{PORT} reached another container's server in: {}",
                leaked.join(", ")
            )
        },
        ISOLATION_FIX,
    )
}

pub fn judge_host_localhost(samples: &[Sample], host_got: Option<&str>) -> Check {
    let reached = host_got.and_then(|body| samples.iter().find(|s| s.token == body));
    Check::verdict(
        "probe:host-localhost",
        reached.is_none(),
        match (reached, host_got) {
            (Some(sample), _) => format!(
                "the host's localhost:{PORT} reached container {}",
                sample.token
            ),
            (None, Some(_)) => {
                format!("the host's localhost:{PORT} reached a host service, not a container")
            }
            (None, None) => format!(
                "nothing answers on the host's localhost:{PORT}: no container leaks onto it"
            ),
        },
        "a container is publishing :3000 on the host or uses --network host; dual never does either",
    )
}

pub fn judge_container_to_container(samples: &[Sample]) -> Check {
    const NAME: &str = "probe:container-to-container";
    let pairs: Vec<&(String, Option<String>)> =
        samples.iter().filter_map(|s| s.peer.as_ref()).collect();
    if samples.iter().all(|s| s.ip.is_none()) {
        return Check::warn(
            NAME,
            "containers have no IP address on their network (rootless networking): they reach each other only through published ports",
            "nothing to do for dual; use published ports between workspaces",
        );
    }
    let ok = pairs
        .iter()
        .filter(|(want, got)| got.as_deref() == Some(want.as_str()))
        .count();
    Check::verdict(
        NAME,
        ok == samples.len() && !pairs.is_empty(),
        format!(
            "{ok} of {} containers reached a peer's :{PORT} by its IP and got that peer's answer",
            samples.len()
        ),
        "containers on the default network should reach each other; check the engine's network and firewall (iptables FORWARD policy)",
    )
}

pub fn judge_host_to_container(samples: &[Sample]) -> Check {
    const NAME: &str = "probe:host-to-container";
    let by_ip = samples
        .iter()
        .filter(|s| s.from_host_by_ip.as_deref() == Some(s.token.as_str()))
        .count();
    let by_port: Vec<bool> = samples
        .iter()
        .filter(|s| s.published)
        .map(|s| s.from_host_by_port.as_deref() == Some(s.token.as_str()))
        .collect();
    let port_ok = !by_port.is_empty() && by_port.iter().all(|ok| *ok);
    let port_text = if port_ok { "reached" } else { "did not reach" };
    if by_ip == samples.len() && !samples.is_empty() {
        return Check::verdict(
            NAME,
            port_ok,
            format!(
                "the host reached all {by_ip} containers by IP (the proxy routes to container IPs); a port published on 127.0.0.1 {port_text} its container"
            ),
            "publishing on 127.0.0.1 failed: check the engine's port forwarding (docker-proxy / rootlessport)",
        );
    }
    if port_ok {
        let by_ip_text = if samples.iter().all(|s| s.ip.is_none()) {
            "containers have no address the host can route to".to_owned()
        } else {
            format!(
                "the host reached {by_ip} of {} containers by IP",
                samples.len()
            )
        };
        return Check::warn(
            NAME,
            format!("{by_ip_text}, but a port published on 127.0.0.1 reached its container"),
            "nothing to fix: container IPs are not routable from this host (rootless engine, Docker Desktop or a remote engine), so dual publishes workspace ports on 127.0.0.1 and the proxy routes there",
        );
    }
    Check::fail(
        NAME,
        format!(
            "the host reached {by_ip} of {} containers by IP, and no published port worked",
            samples.len()
        ),
        "the host cannot reach containers at all: check the engine's networking and the host firewall",
    )
}

pub fn judge_host_network_conflict(
    port: u16,
    exited: Option<i64>,
    logs: &str,
    first_running: bool,
) -> Check {
    let in_use = logs.contains("in use");
    let passed = first_running && matches!(exited, Some(code) if code != 0) && in_use;
    Check::verdict(
        "probe:network-host-conflict",
        passed,
        match exited {
            Some(code) => format!(
                "with --network host, a second server on :{port} exited with status {code}: {}",
                last_line(logs)
            ),
            None => format!(
                "with --network host, a second server on :{port} kept running: no conflict seen"
            ),
        },
        "expected EADDRINUSE: --network host should share the host's port table",
    )
}

pub fn judge_same_container_conflict(
    first_serving: bool,
    exit: Option<i32>,
    stderr: &str,
) -> Check {
    // 143/124: busybox `timeout` had to end a second server that had bound.
    let passed = first_serving
        && matches!(exit, Some(code) if code != 0 && code != 143 && code != 124)
        && stderr.contains("in use");
    Check::verdict(
        "probe:same-container-conflict",
        passed,
        format!(
            "a second server on :{PORT} in the same container exited with {}: {}",
            exit.map_or("no status".into(), |c| format!("status {c}")),
            last_line(stderr)
        ),
        "expected EADDRINUSE inside one container: one namespace has one port table",
    )
}

pub struct PublishObservation<'e> {
    /// The first container answered on the published port before the second tried.
    pub served_before: bool,
    pub second_error: Option<&'e EngineError>,
    pub second_running: bool,
    /// ... and still answered after the second had failed.
    pub served_after: bool,
}

pub fn judge_publish_conflict(port: u16, seen: PublishObservation<'_>) -> Check {
    let passed = seen.served_before && seen.second_error.is_some() && !seen.second_running;
    let mut detail = match seen.second_error {
        Some(error) => format!(
            "publishing 127.0.0.1:{port} twice: the second container failed to start ({})",
            telling_line(
                &error
                    .engine_stderr()
                    .map_or_else(|| error_chain(error), str::to_owned)
            )
        ),
        None => format!("publishing 127.0.0.1:{port} twice: the second container started too"),
    };
    if !seen.served_before {
        detail.push_str("; the first never served on the port");
    } else if !seen.served_after {
        // Seen on podman 4.3 with netavark: the failed second run tears down
        // the first container's forwarding. dual only publishes ephemeral ports.
        detail.push_str("; side effect: afterwards the first container's port stopped answering");
    } else {
        detail.push_str("; the first kept serving");
    }
    Check::verdict(
        "probe:publish-conflict",
        passed,
        detail,
        "expected the engine to refuse a host port that is already published",
    )
}

/// The line of an engine error that names the conflict, else its last line.
/// What a container made as dual makes a workspace's could do, from its
/// processes' `Uid`/`Groups`/`CapEff`/`NoNewPrivs` lines and a write into
/// `.git`.
pub fn judge_boundary(seen: &str, rootless: bool, kind: crate::engine::EngineKind) -> Check {
    const NAME: &str = "boundary";
    let values = |key: &str| -> Vec<&str> {
        seen.lines()
            .filter_map(|line| line.strip_prefix(key))
            .map(str::trim)
            .collect()
    };
    let uids: Vec<&str> = values("Uid:")
        .iter()
        .filter_map(|ids| ids.split_whitespace().next())
        .collect();
    let capabilities = values("CapEff:");
    let no_new_privileges = values("NoNewPrivs:");
    let root_group = values("Groups:")
        .iter()
        .any(|groups| groups.split_whitespace().any(|gid| gid == "0"));
    let git_read_only = seen.lines().any(|line| line == "git=read-only");
    let mut problems = Vec::new();
    if capabilities.is_empty()
        || capabilities
            .iter()
            .any(|c| !c.trim_start_matches('0').is_empty())
    {
        problems.push(format!("capabilities {capabilities:?} (want none)"));
    }
    if no_new_privileges.is_empty() || no_new_privileges.iter().any(|v| *v != "1") {
        problems.push(format!("no-new-privileges {no_new_privileges:?} (want 1)"));
    }
    if root_group && uids.iter().any(|uid| *uid != "0") {
        problems.push("a process of the user's is in group 0 (root)".into());
    }
    if !git_read_only {
        problems.push("a read-only `.git` mount was writable".into());
    }
    if !problems.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "a workspace container on {kind} is not confined: {}",
                problems.join("; ")
            ),
            "run `dual -v verify` to see the engine calls; an engine that ignores --cap-drop or --security-opt cannot hold a hostile repo",
        );
    }
    let mode = if rootless {
        "rootless (the engine runs in your user's namespace)"
    } else {
        "rootful"
    };
    let detail = format!(
        "{mode}; processes run as uid {}, with no capabilities, no-new-privileges, `.git` read-only",
        uids.first().copied().unwrap_or("?")
    );
    if uids.contains(&"0") && !rootless {
        return Check::warn(
            NAME,
            format!("{detail}; but dual runs as root here, so they are root inside"),
            "run dual as your own user: a workspace's processes then run as you, and none as root",
        );
    }
    Check::pass(NAME, detail)
}

fn telling_line(text: &str) -> &str {
    text.lines()
        .find(|line| line.contains("already") || line.contains("in use"))
        .map_or_else(|| last_line(text), str::trim)
}

fn last_line(text: &str) -> &str {
    text.trim().lines().last().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Status;
    use std::net::Ipv4Addr;

    fn healthy(count: usize) -> Vec<Sample> {
        (0..count)
            .map(|i| {
                let token = format!("dual-probe-x-{i:02}");
                let peer = format!("dual-probe-x-{:02}", (i + 1) % count);
                Sample {
                    token: token.clone(),
                    running: true,
                    netns: Some(format!("net:[40265{i:05}]")),
                    own_localhost: Some(token.clone()),
                    peer: Some((peer.clone(), Some(peer))),
                    ip: Some(Ipv4Addr::new(172, 17, 0, 2 + i as u8)),
                    from_host_by_ip: Some(token.clone()),
                    published: i == 0,
                    from_host_by_port: (i == 0).then(|| token.clone()),
                }
            })
            .collect()
    }

    const HOST_NS: Option<&str> = Some("net:[4026531992]");

    #[test]
    fn the_boundary_needs_every_confinement() {
        use crate::engine::EngineKind::Docker;
        let confined = "Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n\
                        Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\ngit=read-only\n";
        assert_eq!(judge_boundary(confined, false, Docker).status, Status::Pass);
        let as_root = confined.replace("1000", "0");
        assert_eq!(judge_boundary(&as_root, false, Docker).status, Status::Warn);
        assert_eq!(judge_boundary(&as_root, true, Docker).status, Status::Pass);
        for broken in [
            confined.replacen("CapEff:\t0000000000000000", "CapEff:\t00000000a80425fb", 1),
            confined.replacen("NoNewPrivs:\t1", "NoNewPrivs:\t0", 1),
            confined.replace("git=read-only", "git=writable"),
            confined.replace(
                "NoNewPrivs:\t1\ngit",
                "NoNewPrivs:\t1\nGroups:\t0 1000\ngit",
            ),
            String::new(),
        ] {
            assert_eq!(
                judge_boundary(&broken, false, Docker).status,
                Status::Fail,
                "{broken}"
            );
        }
    }

    #[test]
    fn healthy_samples_pass_every_claim() {
        let samples = healthy(5);
        for check in [
            judge_bind(&samples),
            judge_netns(&samples, HOST_NS),
            judge_localhost_private(&samples),
            judge_host_localhost(&samples, None),
            judge_container_to_container(&samples),
            judge_host_to_container(&samples),
        ] {
            assert_eq!(check.status, Status::Pass, "{check:?}");
        }
    }

    #[test]
    fn a_shared_namespace_fails_isolation() {
        let mut samples = healthy(5);
        samples[3].netns = samples[1].netns.clone();
        assert_eq!(judge_netns(&samples, HOST_NS).status, Status::Fail);
        let mut samples = healthy(2);
        samples[0].netns = HOST_NS.map(str::to_owned);
        assert_eq!(judge_netns(&samples, HOST_NS).status, Status::Fail);
        let mut samples = healthy(2);
        samples[1].netns = None;
        assert_eq!(judge_netns(&samples, HOST_NS).status, Status::Fail);
    }

    #[test]
    fn a_localhost_answered_by_another_container_fails() {
        let mut samples = healthy(3);
        samples[2].own_localhost = Some(samples[0].token.clone());
        let check = judge_localhost_private(&samples);
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("dual-probe-x-02"), "{}", check.detail);
        assert_eq!(judge_bind(&samples).status, Status::Fail);
    }

    #[test]
    fn a_container_that_died_fails_the_bind_claim() {
        let mut samples = healthy(3);
        samples[1].running = false;
        samples[1].own_localhost = None;
        assert_eq!(judge_bind(&samples).status, Status::Fail);
    }

    #[test]
    fn host_localhost_reaching_a_container_fails() {
        let samples = healthy(3);
        assert_eq!(
            judge_host_localhost(&samples, Some("dual-probe-x-01")).status,
            Status::Fail
        );
        assert_eq!(
            judge_host_localhost(&samples, Some("host app")).status,
            Status::Pass
        );
    }

    #[test]
    fn wrong_peer_answer_fails_container_to_container() {
        let mut samples = healthy(3);
        samples[0].peer = Some(("dual-probe-x-01".into(), Some("dual-probe-x-02".into())));
        assert_eq!(judge_container_to_container(&samples).status, Status::Fail);
    }

    #[test]
    fn unreachable_ips_with_a_working_published_port_warn() {
        let mut samples = healthy(3);
        for sample in &mut samples {
            sample.from_host_by_ip = None;
        }
        let check = judge_host_to_container(&samples);
        assert_eq!(check.status, Status::Warn);
        assert!(check.fix.unwrap().contains("publish"));
        samples[0].from_host_by_port = None;
        assert_eq!(judge_host_to_container(&samples).status, Status::Fail);
    }

    #[test]
    fn failure_modes_need_the_error_to_happen() {
        assert_eq!(
            judge_host_network_conflict(4000, Some(1), "httpd: bind: Address already in use", true)
                .status,
            Status::Pass
        );
        assert_eq!(
            judge_host_network_conflict(4000, None, "", true).status,
            Status::Fail
        );
        assert_eq!(
            judge_same_container_conflict(true, Some(1), "httpd: bind: Address already in use")
                .status,
            Status::Pass
        );
        assert_eq!(
            judge_same_container_conflict(true, Some(143), "").status,
            Status::Fail
        );
        let seen = |second_error, second_running| PublishObservation {
            served_before: true,
            second_error,
            second_running,
            served_after: true,
        };
        assert_eq!(
            judge_publish_conflict(4000, seen(None, true)).status,
            Status::Fail
        );
        let refused = EngineError::NotFound {
            what: "port",
            name: "4000".into(),
        };
        assert_eq!(
            judge_publish_conflict(4000, seen(Some(&refused), false)).status,
            Status::Pass
        );
    }
}
