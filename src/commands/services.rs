//! `dual logs [WORKSPACE] [SERVICE]` and `dual restart [WORKSPACE] [SERVICE]`:
//! a workspace's services (see `ops::services`).

use crate::error::HintExt as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::print;
use crate::engine::EngineKind;
use crate::printer::Printer;
use crate::workspace::Store;
use crate::workspace::services;

pub fn restart(
    flag: Option<EngineKind>,
    first: Option<&str>,
    second: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load().hinted()?;
    let restarted = crate::ops::services::restart(flag, &state, first, second, printer)?;
    print(&format!(
        "restarted {} in `{}`\n",
        restarted.services.join(", "),
        restarted.workspace
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub fn logs(
    flag: Option<EngineKind>,
    first: Option<&str>,
    second: Option<&str>,
    follow: bool,
    tail: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let state = Store::open_default().load().hinted()?;
    let (workspace, config, service) = crate::ops::services::resolve(&state, first, second)?;
    if let Some(sidecar) = service
        .as_deref()
        .filter(|s| config.sidecars.contains_key(*s))
    {
        // A sidecar's log is its container's, kept by the engine.
        let engine = crate::ops::engine_for(flag, Some(workspace)).hinted()?;
        let container = crate::workspace::stack::container_name(workspace, sidecar);
        if !follow {
            // One stream, as a service's log is (the engine keeps the
            // process's stdout and stderr apart).
            let text = engine.logs_tail(&container, tail).hinted()?;
            print(&text)?;
            return Ok(ExitCode::SUCCESS);
        }
        let status = engine
            .logs_cmd(&container, follow, tail)
            .run_attached(false, |_| {})?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let names: Vec<String> = match service {
        Some(service) => vec![service],
        None => config.services.keys().cloned().collect(),
    };
    if names.is_empty() {
        anyhow::bail!(crate::error::Hinted {
            message: format!("`{}` has no services, so no logs", workspace.name()),
            hint: "add a `[services.NAME]` table with a `command` to its .dual.toml; \
                   `dual run` shows a command's output as it runs"
                .into(),
        });
    }
    let prefix = names.len() > 1;
    let mut followed = Vec::new();
    for name in &names {
        let log = services::log_file(&workspace.name(), name);
        let text = read_both(&log);
        let lines: Vec<&str> = text.lines().collect();
        let from = tail.map_or(0, |n| lines.len().saturating_sub(n));
        let mut out = String::new();
        for line in &lines[from..] {
            push_line(&mut out, prefix.then_some(name.as_str()), line);
        }
        print(&out)?;
        followed.push(Followed {
            prefix: prefix.then(|| name.clone()),
            offset: std::fs::symlink_metadata(&log).map_or(0, |m| m.len()),
            partial: String::new(),
            log,
        });
    }
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    // The first Ctrl-C or SIGTERM ends it (dual's handlers set a flag
    // rather than exit, so the loop must look).
    loop {
        if crate::interrupt::requested() {
            return Ok(ExitCode::from(130));
        }
        std::thread::sleep(Duration::from_millis(200));
        for log in &mut followed {
            let text = log.read_new();
            if !text.is_empty() {
                print(&text)?;
                let _ = std::io::stdout().flush();
            }
        }
    }
}

/// The older log (rolled over) and then the current one. The logs
/// directory is the container's to write: a name there that is a link or a
/// FIFO reads as empty (see `confined`).
fn read_both(log: &Path) -> String {
    let mut text = services::read_log_from(&rolled(log), 0);
    text.extend(services::read_log_from(log, 0));
    String::from_utf8_lossy(&text).into_owned()
}

fn rolled(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

fn push_line(out: &mut String, prefix: Option<&str>, line: &str) {
    if let Some(prefix) = prefix {
        out.push_str(prefix);
        out.push_str(" | ");
    }
    out.push_str(line);
    out.push('\n');
}

/// A log being followed: what was read of it, and a line not ended yet.
struct Followed {
    log: PathBuf,
    prefix: Option<String>,
    offset: u64,
    partial: String,
}

impl Followed {
    /// What was appended since the last read, in whole lines. A log that
    /// shrank was rolled over: the rest of the old one is in `.1`.
    fn read_new(&mut self) -> String {
        let size = std::fs::symlink_metadata(&self.log).map_or(0, |m| m.len());
        let mut bytes = Vec::new();
        if size < self.offset {
            bytes.extend(services::read_log_from(&rolled(&self.log), self.offset));
            self.offset = 0;
        }
        let current = services::read_log_from(&self.log, self.offset);
        self.offset += current.len() as u64;
        bytes.extend(current);
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(end) = self.partial.rfind('\n') else {
            return String::new();
        };
        let whole: String = self.partial.drain(..=end).collect();
        let mut out = String::new();
        for line in whole.lines() {
            push_line(&mut out, self.prefix.as_deref(), line);
        }
        out
    }
}
