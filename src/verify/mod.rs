//! `dual verify`: checks that this host can do what dual needs, and says what
//! to fix when it cannot. With `--probes` it also reproduces the isolation
//! research (`probes` module) on the real engine and measures it.

pub mod claims;
pub mod cleanup;
mod devcontainer;
mod host;
pub mod http;
pub mod image;
pub mod probes;
mod proxy_check;
mod remote;
pub mod render;
mod sidecars;

use std::time::Instant;

use serde::Serialize;

use crate::engine::{Engine, EngineError, EngineKind, Info, Version};
use cleanup::ProbeRun;

/// How many containers the quick isolation check starts without `--probes`.
pub const QUICK_COUNT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    /// Not run, because a check it depends on failed.
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Check::new(name, Status::Pass, detail, None)
    }

    pub fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check::new(name, Status::Warn, detail, Some(fix.into()))
    }

    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check::new(name, Status::Fail, detail, Some(fix.into()))
    }

    pub fn skip(name: &str, reason: impl Into<String>) -> Self {
        Check::new(name, Status::Skip, reason, None)
    }

    /// A pass or a fail, from a verdict.
    pub fn verdict(name: &str, passed: bool, detail: impl Into<String>, fix: &str) -> Self {
        if passed {
            Check::pass(name, detail)
        } else {
            Check::fail(name, detail, fix)
        }
    }

    fn new(name: &str, status: Status, detail: impl Into<String>, fix: Option<String>) -> Self {
        Check {
            name: name.to_owned(),
            status,
            detail: detail.into(),
            fix,
        }
    }

    /// A failed check from an engine error, with the error's own hint.
    pub fn from_error(name: &str, error: &EngineError) -> Self {
        let fix = error
            .hint()
            .unwrap_or_else(|| "run with -v to see the engine commands and their output".into());
        Check::fail(name, error_chain(error), fix)
    }
}

/// An error and its causes on one line: what a table cell can hold.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineReport {
    pub kind: Option<EngineKind>,
    pub version: Option<Version>,
    pub info: Option<Info>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub engine: EngineReport,
    pub checks: Vec<Check>,
    pub figures: Option<probes::Figures>,
    /// Set when `--probes` ran: how many containers it started at once.
    pub probe_count: Option<usize>,
    pub started_at: String,
    pub duration_ms: u128,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|check| check.status == Status::Fail)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks
            .iter()
            .filter(|check| check.status == status)
            .count()
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub engine: Option<EngineKind>,
    pub probes: bool,
    pub count: usize,
    pub ports: Vec<u16>,
}

pub use crate::error::Interrupted;

pub fn run(options: &Options) -> Result<Report, Interrupted> {
    let started = Instant::now();
    let started_at = now_utc();
    let mut checks = Vec::new();
    let mut engine_report = EngineReport {
        kind: options.engine,
        version: None,
        info: None,
    };
    let mut figures = None;

    let engine = engine_checks(options, &mut checks, &mut engine_report);
    let remote = engine
        .as_ref()
        .and_then(|engine| engine.location().ok())
        .and_then(|location| location.ssh());
    match &engine {
        // The probes reach containers by address from this host: another
        // host's are reached through the link its own checks measure.
        Some(_) if remote.is_some() => {
            let ssh = remote.as_ref().expect("checked");
            checks.extend(remote::checks(ssh));
            skip_container_checks(
                &mut checks,
                None,
                &format!(
                    "the engine is on {}: the remote checks cover the link",
                    ssh.target()
                ),
            );
        }
        Some(engine) => {
            let outcome = container_checks(engine, options, &mut checks);
            match outcome {
                Ok(measured) => figures = measured,
                Err(removed) => return Err(Interrupted { removed }),
            }
        }
        None => skip_container_checks(&mut checks, None, "needs a reachable engine"),
    }
    checks.extend(host::checks(&options.ports));
    // In a workspace's clone: its sidecars and its compose file's notes,
    // its devcontainer.json and what dual did not take of it.
    checks.extend(sidecars::checks(options.engine));
    checks.extend(devcontainer::checks());

    Ok(Report {
        engine: engine_report,
        checks,
        figures,
        probe_count: options.probes.then_some(options.count),
        started_at,
        duration_ms: started.elapsed().as_millis(),
    })
}

/// engine, daemon, mode: returns the engine when its daemon answers.
fn engine_checks(
    options: &Options,
    checks: &mut Vec<Check>,
    report: &mut EngineReport,
) -> Option<Engine> {
    let engine = match Engine::select(options.engine) {
        Ok(engine) => engine,
        Err(error) => {
            return fail_engine_check(
                checks,
                Check::from_error("engine", &error),
                "needs an engine",
            );
        }
    };
    report.kind = Some(engine.kind());
    let location = crate::process::find_on_path(engine.kind().program())
        .map(|path| format!(" at {}", path.display()))
        .unwrap_or_default();
    match engine.version() {
        Ok(version) => {
            let client = version.client.as_deref().unwrap_or("(version unknown)");
            checks.push(Check::pass(
                "engine",
                format!("{} {client}{location}", engine.kind()),
            ));
            report.version = Some(version);
        }
        Err(error @ (EngineError::DaemonUnreachable { .. } | EngineError::Hung { .. })) => {
            checks.push(Check::pass(
                "engine",
                format!("{} found{location}", engine.kind()),
            ));
            return fail_engine_check(
                checks,
                Check::from_error("daemon", &error),
                "needs a reachable daemon",
            );
        }
        Err(error) => {
            return fail_engine_check(
                checks,
                Check::from_error("engine", &error),
                "needs an engine",
            );
        }
    }
    let info = match engine.info() {
        Ok(info) => info,
        Err(error) => {
            return fail_engine_check(
                checks,
                Check::from_error("daemon", &error),
                "needs a reachable daemon",
            );
        }
    };
    checks.push(Check::pass(
        "daemon",
        format!(
            "server {} on {}, kernel {}, cgroup {}, {} CPUs",
            info.server_version, info.operating_system, info.kernel, info.cgroup_version, info.cpus
        ),
    ));
    checks.push(Check::pass(
        "mode",
        if info.rootless {
            "rootless: containers run in your user's namespace"
        } else {
            "rootful"
        },
    ));
    report.info = Some(info);
    Some(engine)
}

/// The checks that need containers, in the order they run (quick mode).
const CONTAINER_CHECKS: [&str; 9] = [
    "image",
    "container",
    "boundary",
    "isolation",
    "localhost",
    "reachability",
    "proxy-http",
    "proxy-sse",
    "proxy-websocket",
];

/// Skips the container checks after `failed` (all of them for `None`).
fn skip_container_checks(checks: &mut Vec<Check>, failed: Option<&str>, reason: &str) {
    let start = failed
        .and_then(|name| CONTAINER_CHECKS.iter().position(|c| *c == name))
        .map_or(0, |i| i + 1);
    checks.extend(
        CONTAINER_CHECKS[start..]
            .iter()
            .map(|name| Check::skip(name, reason)),
    );
}

/// Records the failed engine-level check and skips the ones after it.
fn fail_engine_check(checks: &mut Vec<Check>, failed: Check, skip_reason: &str) -> Option<Engine> {
    let after: Vec<&str> = ["engine", "daemon", "mode"]
        .into_iter()
        .skip_while(|name| *name != failed.name)
        .skip(1)
        .collect();
    checks.push(failed);
    checks.extend(after.into_iter().map(|name| Check::skip(name, skip_reason)));
    None
}

/// image, container lifecycle, and the isolation probes. `Err` carries how
/// many containers were removed after an interrupt.
fn container_checks(
    engine: &Engine,
    options: &Options,
    checks: &mut Vec<Check>,
) -> Result<Option<probes::Figures>, usize> {
    // Containers abandoned by a dual that was killed outright (SIGKILL).
    let _ = cleanup::sweep_abandoned(engine);
    let run = ProbeRun::new(engine.clone());
    let outcome = (|| {
        let image = match image::ensure_probe_image(engine) {
            Ok(outcome) => {
                checks.push(Check::pass("image", outcome.describe()));
                outcome.image
            }
            Err(error) => {
                checks.push(Check::fail("image", error_chain(&error), error.fix()));
                skip_container_checks(checks, Some("image"), "needs the probe image");
                return Ok(None);
            }
        };
        let suite = probes::Suite::new(engine, &run, &image);
        let lifecycle = suite.lifecycle();
        let lifecycle_ok = lifecycle.status == Status::Pass;
        checks.push(lifecycle);
        if !lifecycle_ok {
            skip_container_checks(
                checks,
                Some("container"),
                "needs a working container lifecycle",
            );
            return Ok(None);
        }
        checks.push(suite.boundary());
        let count = if options.probes {
            options.count
        } else {
            QUICK_COUNT
        };
        let outcome = suite.isolation(count)?;
        let figures = if options.probes {
            checks.extend(outcome.claims);
            checks.extend(suite.failure_modes()?);
            outcome.figures
        } else {
            checks.extend(outcome.summary());
            None
        };
        checks.extend(suite.proxy());
        Ok(figures)
    })();
    let removed = run.cleanup();
    // An interrupted engine call shows up as a failed check; the run as a
    // whole is what was interrupted, so report that instead.
    match outcome {
        Ok(_) | Err(probes::Stopped) if crate::interrupt::requested() => Err(removed),
        Ok(figures) => Ok(figures),
        Err(probes::Stopped) => Err(removed),
    }
}

/// The current time in UTC as `YYYY-MM-DD HH:MM:SS UTC`, without a date crate.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn format_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_times_are_the_calendar_s() {
        // Checked against `date -u -d @SECS`: the epoch, a leap day, a
        // day's last second, and 2100 (not a leap year).
        for (secs, expected) in [
            (0, "1970-01-01 00:00:00 UTC"),
            (951_782_400, "2000-02-29 00:00:00 UTC"),
            (1_798_675_199, "2026-12-30 23:59:59 UTC"),
            (4_102_444_800, "2100-01-01 00:00:00 UTC"),
        ] {
            assert_eq!(super::format_utc(secs), expected, "{secs}");
        }
    }
}
