//! The isolation probes: the claims of `research/container-network-isolation`
//! reproduced on the real engine, and measured.
//!
//! Measuring and judging are kept apart: the suite starts containers and
//! collects [`Sample`]s; pure `judge_*` functions turn samples into verdicts,
//! and are unit-tested with samples that show each claim broken.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use super::claims::{PORT, Sample};
use super::claims::{
    PublishObservation, judge_bind, judge_boundary, judge_container_to_container,
    judge_host_localhost, judge_host_network_conflict, judge_host_to_container,
    judge_localhost_private, judge_netns, judge_publish_conflict, judge_same_container_conflict,
};
use super::cleanup::ProbeRun;
use super::http;
use super::{Check, Status, error_chain};
use crate::engine::spec::{BindMount, Network, Publish};
use crate::engine::{Engine, EngineError, RunSpec};

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

    /// Runs a container as dual runs a workspace's (as the user, no
    /// capabilities, no new privileges, a `.git` mounted read-only) and
    /// reads what its processes can do.
    pub fn boundary(&self) -> Check {
        const NAME: &str = "boundary";
        let mode = match crate::workspace::host_mode(self.engine) {
            Ok(mode) => mode,
            Err(error) => return Check::from_error(NAME, &error),
        };
        let facts = self.engine.host_facts().ok();
        let rootless = facts.as_ref().is_some_and(|facts| facts.rootless);
        let clone = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(error) => {
                return Check::fail(
                    NAME,
                    format!("could not make a directory to mount: {error}"),
                    "check that $TMPDIR is writable",
                );
            }
        };
        let git_dir = clone.path().join(".git");
        if let Err(error) = std::fs::create_dir(&git_dir) {
            return Check::fail(
                NAME,
                format!("could not make `{}`: {error}", git_dir.display()),
                "check that $TMPDIR is writable",
            );
        }
        let target = Path::new("/dual-boundary");
        let mut spec = self.spec("boundary", vec!["sleep".into(), "60".into()]);
        spec.user = Some(mode.ids);
        spec.keep_host_uid = mode.keep_host_uid;
        spec.nosuid_binds = self.engine.kind() == crate::engine::EngineKind::Podman;
        spec.bind_mounts.push(BindMount::new(clone.path(), target));
        spec.bind_mounts
            .push(BindMount::new(&git_dir, target.join(".git")).readonly());
        let script = "grep -hE '^(Uid|Groups|CapEff|NoNewPrivs):' /proc/1/status /proc/self/status; \
             touch /dual-boundary/.git/probe 2>/dev/null && echo git=writable || echo git=read-only";
        let seen = (|| -> Result<String, EngineError> {
            let id = self.engine.run_detached(&spec)?;
            let output = self.engine.exec(&id, &["sh", "-c", script]);
            let _ = self.engine.remove(&[&id]);
            Ok(output?.stdout)
        })();
        match seen {
            Ok(seen) => judge_boundary(&seen, rootless, self.engine.kind()),
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

    /// HTTP, SSE and WebSocket through dual's proxy code to a probe
    /// container running dual's test server.
    pub fn proxy(&self) -> Vec<Check> {
        let mut spec = self.spec(
            "proxy",
            vec![
                "dual".into(),
                "test-server".into(),
                "--name".into(),
                self.run.container_name("proxy"),
            ],
        );
        spec.publish.push(Publish::loopback(0, PORT));
        let target = (|| -> Result<Option<SocketAddr>, EngineError> {
            let id = self.engine.run_detached(&spec)?;
            let container = self.engine.inspect_one(&id)?;
            let by_ip = container.ipv4().map(|ip| SocketAddr::from((ip, PORT)));
            let published = container
                .published_port(PORT)
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p.host_port)));
            // Where the host reaches the container, as the real proxy would.
            for addr in by_ip.into_iter().chain(published) {
                if http::get_ok_within(addr, Duration::from_secs(5)).is_ok() {
                    return Ok(Some(addr));
                }
            }
            Ok(None)
        })();
        match target {
            Ok(Some(addr)) => super::proxy_check::check(addr, &self.run.container_name("proxy")),
            Ok(None) => vec![Check::fail(
                "proxy-http",
                "the probe's test server never answered, by IP or by published port",
                "run `dual -v verify` and check the container's networking",
            )],
            Err(error) => vec![Check::from_error("proxy-http", &error)],
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_fields() {
        let fields = parse_fields("ns=net:[4026532301]\nself=dual-probe-a-00\npeer=\n");
        assert_eq!(fields["ns"], "net:[4026532301]");
        assert_eq!(fields["self"], "dual-probe-a-00");
        assert_eq!(fields["peer"], "");
    }
}
