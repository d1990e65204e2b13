//! The isolation probes: the claims of `research/container-network-isolation`
//! reproduced on the real engine, and measured.
//!
//! Measuring and judging are kept apart: the suite starts containers and
//! collects [`Sample`]s; pure `judge_*` functions turn samples into verdicts,
//! and are unit-tested with samples that show each claim broken.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cleanup::ProbeRun;
use super::http;
use super::{Check, Status, error_chain};
use crate::engine::spec::{Network, Publish};
use crate::engine::{Engine, EngineError, RunSpec};

/// The port every probe container serves on, as a dev server would.
pub const PORT: u16 = 3000;
/// Engine calls in flight at once while starting or probing containers.
const WORKERS: usize = 4;

/// Serves the container's own token on :3000. The token arrives as `$0`, so
/// nothing dual passes is ever parsed by the shell.
const SERVE_SCRIPT: &str = r#"mkdir -p /tmp/www && printf %s "$0" > /tmp/www/index.html && exec httpd -f -p 3000 -h /tmp/www"#;

/// Run inside each container: its network namespace, what its own localhost
/// serves, and what a peer's IP (`$1`, validated as IPv4 by dual) serves.
/// `timeout` bounds wget because busybox 1.35's own `wget -T` segfaults.
const PROBE_SCRIPT: &str = r#"
fetch() {
  i=0
  while [ $i -lt 50 ]; do
    if out=$(timeout 3 wget -q -O - "$1" 2>/dev/null); then printf '%s' "$out"; return 0; fi
    i=$((i+1)); sleep 0.1
  done
  return 1
}
echo "ns=$(readlink /proc/self/ns/net)"
echo "self=$(fetch http://127.0.0.1:3000/)"
if [ -n "$1" ]; then echo "peer=$(fetch "http://$1:3000/")"; fi
"#;

/// The probe run was interrupted by the user; nothing more should run.
#[derive(Debug)]
pub struct Stopped;

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

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figures {
    pub containers: usize,
    /// Wall time to start all containers, `WORKERS` engine calls at a time.
    pub start_total_ms: u64,
    pub start_mean_ms: u64,
    pub start_max_ms: u64,
    pub memory_mean_bytes: Option<u64>,
    pub memory_max_bytes: Option<u64>,
    pub workers: usize,
}

pub struct IsolationOutcome {
    pub claims: Vec<Check>,
    pub figures: Option<Figures>,
}

impl IsolationOutcome {
    /// The three checks a quick `dual verify` shows, from the full claims.
    pub fn summary(&self) -> Vec<Check> {
        let find = |name: &str| self.claims.iter().find(|c| c.name == name).cloned();
        let merge = |name: &str, parts: &[&str]| -> Check {
            let found: Vec<Check> = parts.iter().filter_map(|p| find(p)).collect();
            match found.iter().find(|c| c.status != Status::Pass) {
                Some(bad) => Check {
                    name: name.to_owned(),
                    ..bad.clone()
                },
                None => Check::pass(
                    name,
                    found
                        .iter()
                        .map(|c| c.detail.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            }
        };
        vec![
            merge(
                "isolation",
                &["probe:bind-same-port", "probe:netns-distinct"],
            ),
            merge(
                "localhost",
                &["probe:localhost-private", "probe:host-localhost"],
            ),
            merge(
                "reachability",
                &["probe:host-to-container", "probe:container-to-container"],
            ),
        ]
    }
}

pub struct Suite<'a> {
    engine: &'a Engine,
    run: &'a ProbeRun,
    image: &'a str,
}

impl<'a> Suite<'a> {
    pub fn new(engine: &'a Engine, run: &'a ProbeRun, image: &'a str) -> Self {
        Suite { engine, run, image }
    }

    fn spec(&self, suffix: &str, command: Vec<String>) -> RunSpec {
        let mut spec = RunSpec::new(self.run.container_name(suffix), self.image);
        spec.labels = self.run.labels();
        spec.command = command;
        spec
    }

    fn serve_spec(&self, suffix: &str) -> RunSpec {
        let name = self.run.container_name(suffix);
        self.spec(
            suffix,
            vec!["sh".into(), "-c".into(), SERVE_SCRIPT.into(), name],
        )
    }

    /// Can this engine create, run, exec into and remove a container?
    pub fn lifecycle(&self) -> Check {
        const NAME: &str = "container";
        let started = Instant::now();
        let spec = self.spec("lifecycle", vec!["sleep".into(), "60".into()]);
        let result = (|| -> Result<String, EngineError> {
            let id = self.engine.run_detached(&spec)?;
            let output = self.engine.exec(&id, &["echo", "dual-ok"])?;
            if output.stdout.trim() != "dual-ok" {
                return Ok(format!(
                    "exec printed {:?}, stderr {:?}",
                    output.stdout, output.stderr
                ));
            }
            self.engine.remove(&[&id])?;
            if self.engine.inspect(&[&id])?.is_empty() {
                Ok(String::new())
            } else {
                Ok("the container was still there after removal".into())
            }
        })();
        match result {
            Ok(problem) if problem.is_empty() => Check::pass(
                NAME,
                format!(
                    "created, ran, exec'd into and removed a container from {} in {:.1}s",
                    self.image,
                    started.elapsed().as_secs_f32()
                ),
            ),
            Ok(problem) => Check::fail(
                NAME,
                problem,
                "run `dual -v verify` to see each engine call",
            ),
            Err(error) => Check::from_error(NAME, &error),
        }
    }

    /// Starts `count` servers on :3000 at once and tests every isolation claim.
    pub fn isolation(&self, count: usize) -> Result<IsolationOutcome, Stopped> {
        let indices: Vec<usize> = (0..count).collect();
        let started = Instant::now();
        let starts = crate::parallel::map(&indices, WORKERS, |&index| {
            if crate::interrupt::requested() {
                return None;
            }
            let mut spec = self.serve_spec(&format!("{index:02}"));
            if index == 0 {
                // One published port shows the route used where container IPs
                // are unreachable (rootless podman, Docker Desktop).
                spec.publish.push(Publish::loopback(0, PORT));
            }
            let begun = Instant::now();
            Some((
                spec.name.clone(),
                self.engine.run_detached(&spec),
                begun.elapsed(),
            ))
        });
        let start_total = started.elapsed();
        stop_if_interrupted()?;
        let starts: Vec<_> = starts.into_iter().flatten().collect();

        let failed: Vec<String> = starts
            .iter()
            .filter_map(|(name, result, _)| {
                result
                    .as_ref()
                    .err()
                    .map(|e| format!("{name}: {}", error_chain(e)))
            })
            .collect();
        if !failed.is_empty() {
            let fix = starts
                .iter()
                .find_map(|(_, result, _)| result.as_ref().err().and_then(EngineError::hint))
                .unwrap_or_else(|| "run `dual -v verify --probes` to see each engine call".into());
            return Ok(IsolationOutcome {
                claims: vec![Check::fail(
                    "probe:bind-same-port",
                    format!(
                        "{} of {count} containers failed to start: {}",
                        failed.len(),
                        failed.join("; ")
                    ),
                    fix,
                )],
                figures: None,
            });
        }

        let tokens: Vec<String> = starts.iter().map(|(name, _, _)| name.clone()).collect();
        let samples = match self.sample(&tokens) {
            Ok(samples) => samples,
            Err(error) if error.is_interrupted() => return Err(Stopped),
            Err(error) => {
                return Ok(IsolationOutcome {
                    claims: vec![Check::from_error("probe:bind-same-port", &error)],
                    figures: None,
                });
            }
        };
        stop_if_interrupted()?;

        let durations: Vec<Duration> = starts.iter().map(|(_, _, took)| *took).collect();
        let memory = self.memory(&tokens);
        let figures = figures(count, start_total, &durations, memory.as_deref());
        let host_netns = std::fs::read_link("/proc/self/ns/net")
            .ok()
            .map(|link| link.to_string_lossy().into_owned());
        let host_localhost = http::get(
            SocketAddr::from(([127, 0, 0, 1], PORT)),
            Duration::from_secs(1),
        )
        .ok()
        .map(|response| response.body);

        let mut claims = vec![
            judge_bind(&samples),
            judge_netns(&samples, host_netns.as_deref()),
            judge_localhost_private(&samples),
            judge_host_localhost(&samples, host_localhost.as_deref()),
            judge_container_to_container(&samples),
            judge_host_to_container(&samples),
        ];
        claims.push(Check::pass(
            "figure:start-time",
            format!(
                "{count} containers started in {:.2}s ({} at a time): mean {} ms, max {} ms per container",
                start_total.as_secs_f64(),
                WORKERS,
                figures.start_mean_ms,
                figures.start_max_ms
            ),
        ));
        claims.push(
            match (figures.memory_mean_bytes, figures.memory_max_bytes) {
                (Some(mean), Some(max)) => Check::pass(
                    "figure:memory",
                    format!(
                        "per container: mean {}, max {}",
                        human_bytes(mean),
                        human_bytes(max)
                    ),
                ),
                _ => Check::warn(
                    "figure:memory",
                    "the engine's `stats` gave no memory figures",
                    "memory figures need cgroup memory accounting on the host",
                ),
            },
        );
        Ok(IsolationOutcome {
            claims,
            figures: Some(figures),
        })
    }

    /// Inspects every container, then probes each from inside and from the host.
    fn sample(&self, tokens: &[String]) -> Result<Vec<Sample>, EngineError> {
        let names: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let containers = self.engine.inspect(&names)?;
        let by_name: HashMap<&str, &crate::engine::Container> =
            containers.iter().map(|c| (c.name.as_str(), c)).collect();
        let count = tokens.len();
        let indices: Vec<usize> = (0..count).collect();
        let results =
            crate::parallel::map(&indices, WORKERS, |&index| -> Result<Sample, EngineError> {
                let token = &tokens[index];
                let container = by_name.get(token.as_str());
                let peer_token = &tokens[(index + 1) % count];
                let peer_ip = by_name.get(peer_token.as_str()).and_then(|c| c.ipv4());
                let mut sample = Sample {
                    token: token.clone(),
                    running: container.is_some_and(|c| c.running),
                    ip: container.and_then(|c| c.ipv4()),
                    ..Sample::default()
                };
                if !sample.running {
                    return Ok(sample);
                }
                let peer_arg = match (count > 1, peer_ip) {
                    (true, Some(ip)) => ip.to_string(),
                    _ => String::new(),
                };
                let output = self
                    .engine
                    .exec(token, &["sh", "-c", PROBE_SCRIPT, "sh", &peer_arg])?;
                let fields = parse_fields(&output.stdout);
                sample.netns = fields.get("ns").filter(|ns| !ns.is_empty()).cloned();
                sample.own_localhost = fields.get("self").filter(|s| !s.is_empty()).cloned();
                if count > 1 {
                    let got = fields.get("peer").filter(|s| !s.is_empty()).cloned();
                    sample.peer = Some((peer_token.clone(), got));
                }
                if let Some(ip) = sample.ip {
                    sample.from_host_by_ip =
                        http::get_ok_within(SocketAddr::from((ip, PORT)), Duration::from_secs(3))
                            .ok()
                            .map(|response| response.body);
                }
                if let Some(port) = container.and_then(|c| c.published_port(PORT)) {
                    sample.published = true;
                    let addr = SocketAddr::from(([127, 0, 0, 1], port.host_port));
                    sample.from_host_by_port = http::get_ok_within(addr, Duration::from_secs(3))
                        .ok()
                        .map(|response| response.body);
                }
                Ok(sample)
            });
        results.into_iter().collect()
    }

    fn memory(&self, tokens: &[String]) -> Option<Vec<u64>> {
        let names: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let stats = self.engine.stats(&names).ok()?;
        let figures: Vec<u64> = stats
            .iter()
            .map(|s| s.memory_bytes)
            .filter(|&b| b > 0)
            .collect();
        (!figures.is_empty()).then_some(figures)
    }

    /// The seed's failure modes: each must fail the way the research says.
    pub fn failure_modes(&self) -> Result<Vec<Check>, Stopped> {
        let checks = vec![
            self.network_host_conflict(),
            self.same_container_conflict(),
            self.publish_conflict(),
        ];
        stop_if_interrupted()?;
        Ok(checks)
    }

    /// Two `--network host` containers on one port: the second cannot bind.
    fn network_host_conflict(&self) -> Check {
        const NAME: &str = "probe:network-host-conflict";
        let port = match free_port([0, 0, 0, 0]) {
            Ok(port) => port,
            Err(error) => {
                return Check::fail(NAME, format!("no free host port: {error}"), "free a port");
            }
        };
        let serve = |suffix: &str| {
            let mut spec = self.spec(
                suffix,
                vec!["httpd".into(), "-f".into(), "-p".into(), port.to_string()],
            );
            spec.network = Network::Host;
            spec
        };
        let result = (|| -> Result<Check, EngineError> {
            let first = self.engine.run_detached(&serve("hostnet-a"))?;
            // The first must really hold the port before the second tries.
            if http::get_ok_within(
                SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(5),
            )
            .is_err()
                && !port_in_use(port)
            {
                return Ok(Check::fail(
                    NAME,
                    format!("the first --network host container never bound :{port}"),
                    "check the engine's host networking",
                ));
            }
            let second = self.engine.run_detached(&serve("hostnet-b"))?;
            let exited = self.wait_exit(&second, Duration::from_secs(10))?;
            let logs = self.engine.logs(&second)?;
            let first_running = self.engine.inspect_one(&first)?.running;
            Ok(judge_host_network_conflict(
                port,
                exited,
                &logs,
                first_running,
            ))
        })();
        result.unwrap_or_else(|error| Check::from_error(NAME, &error))
    }

    /// Two servers on :3000 in one container: the second gets EADDRINUSE.
    fn same_container_conflict(&self) -> Check {
        const NAME: &str = "probe:same-container-conflict";
        let result = (|| -> Result<Check, EngineError> {
            let id = self.engine.run_detached(&self.serve_spec("twice"))?;
            // busybox `timeout` ends a second server that (wrongly) bound.
            let script = "fetch_ok=0; for i in $(seq 50); do wget -q -O /dev/null http://127.0.0.1:3000/ && fetch_ok=1 && break; sleep 0.1; done; \
                          echo \"first=$fetch_ok\"; timeout 2 httpd -f -p 3000; echo \"exit=$?\"";
            let output = self.engine.exec(&id, &["sh", "-c", script])?;
            let fields = parse_fields(&output.stdout);
            Ok(judge_same_container_conflict(
                fields.get("first").map(String::as_str) == Some("1"),
                fields.get("exit").and_then(|code| code.parse().ok()),
                &output.stderr,
            ))
        })();
        result.unwrap_or_else(|error| Check::from_error(NAME, &error))
    }

    /// Publishing one host port twice: the second container does not start.
    fn publish_conflict(&self) -> Check {
        const NAME: &str = "probe:publish-conflict";
        let port = match free_port([127, 0, 0, 1]) {
            Ok(port) => port,
            Err(error) => {
                return Check::fail(NAME, format!("no free host port: {error}"), "free a port");
            }
        };
        let publish = |suffix: &str| {
            let mut spec = self.serve_spec(suffix);
            spec.publish.push(Publish::loopback(port, PORT));
            spec
        };
        if let Err(error) = self.engine.run_detached(&publish("publish-a")) {
            return Check::from_error(NAME, &error);
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let first_token = self.run.container_name("publish-a");
        let first_serves = || {
            http::get_ok_within(addr, Duration::from_secs(5))
                .is_ok_and(|response| response.body == first_token)
        };
        let served_before = first_serves();
        let second = self.engine.run_detached(&publish("publish-b"));
        let second_running = self
            .engine
            .inspect(&[&self.run.container_name("publish-b")])
            .ok()
            .and_then(|mut found| found.pop())
            .is_some_and(|container| container.running);
        let served_after = first_serves();
        judge_publish_conflict(
            port,
            PublishObservation {
                served_before,
                second_error: second.as_ref().err(),
                second_running,
                served_after,
            },
        )
    }

    fn wait_exit(&self, id: &str, within: Duration) -> Result<Option<i64>, EngineError> {
        let deadline = Instant::now() + within;
        loop {
            let container = self.engine.inspect_one(id)?;
            if !container.running && container.status != "created" {
                return Ok(Some(container.exit_code));
            }
            if Instant::now() >= deadline || crate::interrupt::requested() {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn stop_if_interrupted() -> Result<(), Stopped> {
    if crate::interrupt::requested() {
        Err(Stopped)
    } else {
        Ok(())
    }
}

/// `key=value` lines, as the probe script prints them.
fn parse_fields(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn free_port(ip: [u8; 4]) -> std::io::Result<u16> {
    Ok(TcpListener::bind(SocketAddr::from((ip, 0)))?
        .local_addr()?
        .port())
}

fn port_in_use(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).is_err()
}

fn figures(count: usize, total: Duration, starts: &[Duration], memory: Option<&[u64]>) -> Figures {
    let millis: Vec<u64> = starts.iter().map(|d| d.as_millis() as u64).collect();
    let mean = |values: &[u64]| values.iter().sum::<u64>() / values.len().max(1) as u64;
    Figures {
        containers: count,
        start_total_ms: total.as_millis() as u64,
        start_mean_ms: mean(&millis),
        start_max_ms: millis.iter().copied().max().unwrap_or(0),
        memory_mean_bytes: memory.map(mean),
        memory_max_bytes: memory.and_then(|m| m.iter().copied().max()),
        workers: WORKERS,
    }
}

pub fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / KIB / KIB / KIB)
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / KIB / KIB)
    } else {
        format!("{:.0} KiB", b / KIB)
    }
}

// ------------------------------------------------------------------ judges

const ISOLATION_FIX: &str = "containers must run on the engine's default bridge network, not `--network host`; check `dual -v verify --probes`";

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
                "the host reached all {by_ip} containers by IP; a port published on 127.0.0.1 {port_text} its container"
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
            "container IPs are not routable from this host (rootless engine, Docker Desktop or a remote engine): dual will publish workspace ports on 127.0.0.1 and route there",
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

    #[test]
    fn probe_output_fields() {
        let fields = parse_fields("ns=net:[4026532301]\nself=dual-probe-a-00\npeer=\n");
        assert_eq!(fields["ns"], "net:[4026532301]");
        assert_eq!(fields["self"], "dual-probe-a-00");
        assert_eq!(fields["peer"], "");
    }
}
