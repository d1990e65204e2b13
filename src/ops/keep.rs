//! Nothing a container wrote is lost silently when dual makes it again.
//!
//! A workspace's (or a sidecar's) container is removed and made again when
//! its settings drift, on `--recreate`, or when its image changes. Its
//! mounts (the clone, the home, its volumes) outlive it; what it wrote in
//! its own filesystem does not: a file put in /tmp or /opt, a tool
//! installed outside the home. Before the
//! removal, dual asks the engine what changed outside the mounts and, where
//! anything did, says so and commits the container to an image
//! `dual-kept/{name}:{time}` (labelled as its workspace's, so `destroy`
//! removes it with the workspace), then goes on.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::diff::{ENGINE_FILES, PODMAN_WRITES};
use crate::engine::labels::{KEPT, KIND, KIND_KEPT, MANAGED};
use crate::engine::model::Labels;
use crate::engine::{Engine, EngineError, EngineKind};
use crate::error::Hint;
use crate::printer::Printer;

/// How many paths the warning names; the rest are counted.
const SHOWN_PATHS: usize = 10;

/// Where the images of kept writes are named.
pub const KEPT_REPOSITORY: &str = "dual-kept";

/// What was kept of a container before it was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// `dual-kept/{name}:{time}`.
    pub image: String,
    /// What it had written outside its mounts (empty where the engine
    /// could not tell, and everything was kept to be safe).
    pub paths: Vec<String>,
}

/// The container could not be kept, so it was not removed.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{container}` wrote files outside its mounts and could not be kept as an image, so it was not removed"
)]
pub struct KeepFailed {
    pub container: String,
    pub program: &'static str,
    #[source]
    pub source: EngineError,
}

impl Hint for KeepFailed {
    fn hint(&self) -> Option<String> {
        Some(format!(
            "copy out what you need (`{0} diff {1}` lists it; `{0} cp {1}:/PATH .`), then `{0} rm -f {1}` and launch again",
            self.program, self.container
        ))
    }
}

/// Before `container` is removed to be made again: when it wrote anything
/// outside its mounts (`mounts`, plus those the engine reports), warns
/// naming it and commits the container to an image, said on `printer`.
/// `Ok(None)`: nothing to keep. Where the engine cannot say what changed,
/// everything is kept.
pub fn keep_writes(
    engine: &Engine,
    container: &str,
    mounts: &[String],
    printer: &Printer,
) -> Result<Option<Kept>, KeepFailed> {
    let program = engine.kind().program();
    let written = engine.mount_targets(container).and_then(|mut targets| {
        targets.extend(mounts.iter().cloned());
        targets.extend(ENGINE_FILES.map(String::from));
        if engine.kind() == EngineKind::Podman {
            targets.extend(PODMAN_WRITES.map(String::from));
        }
        let changes = engine.diff(container)?;
        Ok(crate::engine::diff::written_outside(&changes, &targets))
    });
    let paths = match written {
        Ok(paths) if paths.is_empty() => return Ok(None),
        Ok(paths) => {
            printer.warn(describe_writes(container, &paths));
            paths
        }
        Err(error) => {
            printer.warn(format!(
                "could not tell what `{container}` wrote outside its mounts ({error}); keeping all of it"
            ));
            Vec::new()
        }
    };
    let image = kept_image_name(container, SystemTime::now());
    let labels = Labels::from([
        (MANAGED.to_owned(), "true".to_owned()),
        // Not a workspace's container: one made from this image must not
        // pass for one (labels pass from an image to its containers).
        (KIND.to_owned(), KIND_KEPT.to_owned()),
        (KEPT.to_owned(), container.to_owned()),
    ]);
    engine
        .commit(container, &image, &labels)
        .map_err(|source| KeepFailed {
            container: container.to_owned(),
            program,
            source,
        })?;
    printer.out(format!(
        "kept them as image `{image}`: look with `{program} run --rm -it --entrypoint sh {image}`, or copy one out with `{program} create --name kept {image}` then `{program} cp kept:/PATH .` (`dual destroy` removes it)"
    ));
    Ok(Some(Kept { image, paths }))
}

/// The warning: up to `SHOWN_PATHS` paths, and how many more.
fn describe_writes(container: &str, paths: &[String]) -> String {
    let mut text = format!(
        "`{container}` wrote {} outside its mounts, which removing it would lose:",
        count(paths.len(), "path")
    );
    for path in paths.iter().take(SHOWN_PATHS) {
        text.push_str("\n  ");
        // Named by the container: shown escaped, one per line.
        text.push_str(&crate::untrusted::shown_line(path));
    }
    if paths.len() > SHOWN_PATHS {
        text.push_str(&format!("\n  … and {} more", paths.len() - SHOWN_PATHS));
    }
    text
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `dual-kept/{container without dual-}:{UTC time}`, a valid reference
/// whatever the name holds (an image name is lower case).
pub fn kept_image_name(container: &str, now: SystemTime) -> String {
    let base = container.strip_prefix("dual-").unwrap_or(container);
    let mut name: String = base
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !is_path_component(&name) {
        name = format!("c{}", crate::workspace::names::short_hash(container));
    }
    format!("{KEPT_REPOSITORY}/{name}:{}", utc_stamp(now))
}

/// A repository path component: `[a-z0-9]+` joined by `.`, `_`, `__` or
/// runs of `-`.
fn is_path_component(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut previous_separator: Option<char> = None;
    let mut run = 0;
    for c in name.chars() {
        if alnum(c) {
            previous_separator = None;
            run = 0;
            continue;
        }
        run += 1;
        let allowed = match previous_separator {
            None => true,
            Some('-') => c == '-',
            Some('_') => c == '_' && run == 2,
            Some(_) => false,
        };
        if !allowed {
            return false;
        }
        previous_separator = Some(c);
    }
    name.starts_with(alnum) && name.ends_with(alnum)
}

/// `20250131-235959`, in UTC: sorts as time does, and is a valid tag.
fn utc_stamp(now: SystemTime) -> String {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn kept_images_are_named_after_the_container_and_the_time() {
        let at = UNIX_EPOCH + Duration::from_secs(1_738_367_999); // 2025-01-31 23:59:59
        assert_eq!(
            kept_image_name("dual-shop-main", at),
            "dual-kept/shop-main:20250131-235959"
        );
        assert_eq!(
            kept_image_name("dual-shop-main.db", at),
            "dual-kept/shop-main.db:20250131-235959"
        );
        assert_eq!(
            kept_image_name("dual-Shop-Main", at),
            "dual-kept/shop-main:20250131-235959"
        );
        let odd = kept_image_name("dual-x..y", at);
        assert!(odd.starts_with("dual-kept/c"), "{odd}");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229-000000"
        );
    }

    #[test]
    fn path_components_follow_the_reference_grammar() {
        for good in ["a", "shop-main", "shop--main", "a.b", "a_b", "a__b", "x1"] {
            assert!(is_path_component(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a..b", "a___b", "a._b", "A", ".a"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn the_warning_names_ten_paths_and_counts_the_rest() {
        let paths: Vec<String> = (0..12).map(|i| format!("/opt/f{i}")).collect();
        let text = describe_writes("dual-shop-main", &paths);
        assert!(text.starts_with("`dual-shop-main` wrote 12 paths outside its mounts"));
        assert!(text.contains("\n  /opt/f9\n  … and 2 more"), "{text}");
        assert!(!text.contains("/opt/f10"));
        assert!(describe_writes("c", &paths[..1]).contains("wrote 1 path "));
    }

    #[test]
    fn paths_reach_the_terminal_escaped() {
        let paths = [
            "/tmp/\u{1b}]0;pwned\u{7}".to_owned(),
            "/a\n  /forged".to_owned(),
        ];
        let text = describe_writes("c", &paths);
        assert!(
            text.ends_with("\n  /tmp/\\u{1b}]0;pwned\\u{7}\n  /a\\u{a}  /forged"),
            "{text}"
        );
    }
}
