//! Every `DUAL_*` environment variable dual reads, listed once with what it
//! does, and read only through the functions here: a user (or a test) can
//! find in one place what changes dual's behaviour from outside.
//!
//! An empty value counts as unset everywhere, so `DUAL_HOME= dual …` is the
//! same as leaving it out. A value that does not parse is ignored (with a
//! note under `-v`), as the default is always a working choice.
//!
//! Read by dual:
//! - `DUAL_HOME`: one directory for all of dual's own files (state, shims,
//!   homes, shared files, the user config); tests use it.
//! - `DUAL_WORKSPACE_ROOT`: where clones go (default `~/dual`, or
//!   `$DUAL_HOME/workspaces` when `DUAL_HOME` is set).
//! - `DUAL_ENGINE`: `docker` or `podman` when `--engine` is not given.
//! - `DUAL_ENGINE_TIMEOUT`: seconds a status call (`ps`, `inspect`, `info`)
//!   may take before the engine counts as hung.
//! - `DUAL_MEASURE_TIMEOUT`: seconds `destroy` may spend measuring one
//!   volume's size before it reports the size as unknown (default 20).
//! - `DUAL_LOG`: `debug` prints every external command, as `-v` does.
//! - `DUAL_BUSYBOX`: the static busybox `dual verify` copies into probes.
//! - `DUAL_PROXY_AUTOSTART`: `0` keeps `launch` from starting the proxy.
//! - `DUAL_PROXY_WORKERS`: the proxy's worker threads (default per core).
//! - `DUAL_TUI_TIMING`: a file where the browser writes when it drew its
//!   first frame (for `scripts/bench-discovery`).
//! - `DUAL_POPUP`: set by dual's tmux popup; the browser quits after a pick.
//! - `DUAL_DEVCONTAINER`: which `.devcontainer/NAME/devcontainer.json` a
//!   repo with several is launched with (its `.dual.toml` `devcontainer`
//!   wins).
//! - `DUAL_CA_BUNDLE`: the CA bundle workspaces get (a file), or `none`;
//!   default: the host's own (see `workspace::trust`).
//!
//! Set by dual for its own children, never a user's setting:
//! - `DUAL_USER_ZDOTDIR`: the user's `ZDOTDIR`, kept for dual's zsh rc.
//!
//! Read only by the tests, probes and scripts (never by dual):
//! `DUAL_BIN` (the dual binary a script drives), `DUAL_TEST_IMAGE`,
//! `DUAL_TEST_ENGINES`, `DUAL_REQUIRE_ENGINE`, `DUAL_TEST_ROOTLESS_USER`,
//! `DUAL_KEEP_CONTAINERS`, `DUAL_DIFFERENTIAL_SEED`,
//! `DUAL_DIFFERENTIAL_MUTATIONS`, `DUAL_PROBE_COUNTS`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub const HOME: &str = "DUAL_HOME";
pub const WORKSPACE_ROOT: &str = "DUAL_WORKSPACE_ROOT";
pub const ENGINE: &str = "DUAL_ENGINE";
pub const ENGINE_TIMEOUT: &str = "DUAL_ENGINE_TIMEOUT";
pub const MEASURE_TIMEOUT: &str = "DUAL_MEASURE_TIMEOUT";
pub const LOG: &str = "DUAL_LOG";
pub const BUSYBOX: &str = "DUAL_BUSYBOX";
pub const PROXY_AUTOSTART: &str = "DUAL_PROXY_AUTOSTART";
pub const PROXY_WORKERS: &str = "DUAL_PROXY_WORKERS";
pub const TUI_TIMING: &str = "DUAL_TUI_TIMING";
pub const POPUP: &str = "DUAL_POPUP";
pub const DEVCONTAINER: &str = "DUAL_DEVCONTAINER";
pub const CA_BUNDLE: &str = "DUAL_CA_BUNDLE";
pub const USER_ZDOTDIR: &str = "DUAL_USER_ZDOTDIR";

/// The settings a tmux server started elsewhere must be handed, so that a
/// workspace's session uses the same dual files and engine as its launcher.
pub const FOR_TMUX: [&str; 3] = [HOME, WORKSPACE_ROOT, ENGINE];

/// `DUAL_HOME`: one directory for all of dual's own files.
pub fn home() -> Option<PathBuf> {
    var(HOME).map(PathBuf::from)
}

/// `DUAL_WORKSPACE_ROOT`: where clones go.
pub fn workspace_root() -> Option<PathBuf> {
    var(WORKSPACE_ROOT).map(PathBuf::from)
}

/// `DUAL_DEVCONTAINER`: the NAME of `.devcontainer/NAME/devcontainer.json`.
pub fn devcontainer() -> Option<String> {
    var(DEVCONTAINER).map(|value| value.to_string_lossy().into_owned())
}

/// `DUAL_CA_BUNDLE`: a CA bundle's path, or `none`.
pub fn ca_bundle() -> Option<OsString> {
    var(CA_BUNDLE)
}

/// `DUAL_ENGINE`, as given (the caller names it in its error when unknown).
pub fn engine() -> Option<String> {
    var(ENGINE).map(|value| value.to_string_lossy().into_owned())
}

/// `DUAL_ENGINE_TIMEOUT`: how long a status call may take.
pub fn engine_timeout() -> Option<Duration> {
    parsed(ENGINE_TIMEOUT, parse_seconds)
}

/// `DUAL_MEASURE_TIMEOUT`: how long measuring one volume may take.
pub fn measure_timeout() -> Option<Duration> {
    parsed(MEASURE_TIMEOUT, parse_seconds)
}

/// `DUAL_LOG=debug`: print every external command.
pub fn debug_log() -> bool {
    var(LOG).is_some_and(|value| value == "debug")
}

/// `DUAL_BUSYBOX`: the busybox to copy into probe containers.
pub fn busybox() -> Option<PathBuf> {
    var(BUSYBOX).map(PathBuf::from)
}

/// `DUAL_PROXY_AUTOSTART`: whether `launch` starts the proxy (all but `0`).
pub fn proxy_autostart() -> bool {
    var(PROXY_AUTOSTART).is_none_or(|value| value != "0")
}

/// `DUAL_PROXY_WORKERS`: the proxy's worker threads, when set to a count.
pub fn proxy_workers() -> Option<usize> {
    parsed(PROXY_WORKERS, |text| {
        text.parse::<usize>().ok().filter(|count| *count > 0)
    })
}

/// `DUAL_TUI_TIMING`: where the browser notes when its first frame was drawn.
pub fn tui_timing_file() -> Option<PathBuf> {
    var(TUI_TIMING).map(PathBuf::from)
}

/// `DUAL_POPUP`: the browser runs in dual's tmux popup.
pub fn popup() -> bool {
    var(POPUP).is_some()
}

fn var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

fn parsed<T>(name: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    let value = var(name)?;
    let parsed = value.to_str().and_then(parse);
    if parsed.is_none() {
        crate::log::debug(&format!(
            "ignoring {name}={}: not a value it takes",
            value.to_string_lossy()
        ));
    }
    parsed
}

/// Seconds, fractions allowed, more than zero and finite.
fn parse_seconds(text: &str) -> Option<Duration> {
    let seconds = text.trim().parse::<f64>().ok()?;
    (seconds > 0.0 && seconds.is_finite() && seconds < 1e9)
        .then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_positive_finite_numbers() {
        assert_eq!(parse_seconds("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_seconds(" 30 "), Some(Duration::from_secs(30)));
        for bad in ["0", "-1", "nan", "inf", "1e300", "ten", ""] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
    }

    /// Files that still read a `DUAL_*` variable themselves; each should
    /// call the function here instead (see the report of the change that
    /// made this module), and leave this list.
    const NOT_YET_CONVERTED: [&str; 0] = [];

    #[test]
    fn dual_variables_are_read_only_here() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut pending = vec![root.join("src")];
        let mut readers = Vec::new();
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                if path.extension().is_none_or(|ext| ext != "rs") {
                    continue;
                }
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let text = std::fs::read_to_string(&path).unwrap();
                let reads = ["var(\"DUAL_", "var_os(\"DUAL_", "\"DUAL_HOME\", \"DUAL_"]
                    .iter()
                    .any(|read| text.contains(read));
                if reads && relative != "src/settings.rs" {
                    readers.push(relative);
                }
            }
        }
        readers.sort();
        assert_eq!(
            readers, NOT_YET_CONVERTED,
            "read DUAL_* variables through crate::settings"
        );
    }

    #[test]
    fn every_setting_is_documented_in_the_module_header() {
        let source = include_str!("settings.rs");
        let header: String = source
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect();
        for name in [
            HOME,
            WORKSPACE_ROOT,
            ENGINE,
            ENGINE_TIMEOUT,
            LOG,
            BUSYBOX,
            PROXY_AUTOSTART,
            PROXY_WORKERS,
            TUI_TIMING,
            POPUP,
            USER_ZDOTDIR,
        ] {
            assert!(
                header.contains(&format!("`{name}`")),
                "{name} is not listed"
            );
        }
    }
}
