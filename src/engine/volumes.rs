//! What `destroy` deletes, measured and named before it goes: volumes with
//! their labels and sizes, and the images dual kept of a workspace.
//!
//! A volume's size: the engines have no cheap answer (docker's `system df
//! -v` measures every volume and image; podman's mountpoint is a host path
//! only the engine's own user can read, and under rootless podman holds
//! files of subordinate uids, and with a remote engine it is on another
//! machine). So dual runs `du -sk` in a throwaway container of its own
//! making, from an image known to be there (the one the volume's container
//! runs), as that container's user (the one that wrote the data: a database
//! keeps its files mode 0700 to itself), with no network, no capabilities,
//! a read-only root and the volume mounted read-only. ~0.5-1 s each; a size
//! that cannot be had is [`Size::Unknown`], never an error.
//!
//! The image is the repo's, so its `du` may never end: the measuring
//! container has a known name (`{volume}.size`) and is removed when the
//! measurement fails or times out (a timeout kills the engine's client, not
//! the container, which would hold the volume and fail `volume rm`). It
//! carries the pid of the dual that made it, so `prune` removes one a
//! killed `destroy` left.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::labels::{KIND, KIND_MEASURE, MANAGED};
use super::model::{self, Labels, ParseError, Volume};
use super::one_off::OneOff;
use super::spec::{Network, Pull, RunSpec};
use super::{Engine, EngineError, has_labels};

/// How long one measurement may take: a volume of millions of files (or
/// an image whose `du` hangs) is reported as of unknown size rather than
/// holding up `destroy`.
pub const MEASURE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the volume is mounted in the measuring container.
const MEASURE_TARGET: &str = "/dual-volume";

/// A volume's size, as far as it could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Bytes(u64),
    /// Some of it could not be read: at least this much.
    AtLeast(u64),
    Unknown,
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Bytes(bytes) => f.write_str(&human(*bytes)),
            Size::AtLeast(bytes) => write!(f, "at least {}", human(*bytes)),
            Size::Unknown => f.write_str("size unknown"),
        }
    }
}

/// `48.2 MB`: decimal units, one decimal.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// An image and user to measure a volume with: those of a container that
/// mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurer {
    /// The image's id (present while its container is).
    pub image: String,
    /// `--user` as the container has it; empty: the image's own.
    pub user: String,
}

/// The measuring container of `volume`.
pub fn measure_container(volume: &str) -> String {
    format!("{volume}.size")
}

/// The one-off container that measures `volume` with `measurer`, or
/// `None` where a value cannot be given to the engine as it is.
pub fn measure_spec(volume: &str, measurer: &Measurer) -> Option<RunSpec> {
    let plain = |text: &str, extra: &str| {
        !text.is_empty()
            && !text.starts_with('-')
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c) || extra.contains(c))
    };
    // A volume name is the engine's charset; an image id is hex with an
    // optional `sha256:`; a user is `name`, `uid` or `uid:gid`. The
    // container's name starts as the volume's, and must start with a
    // letter or digit.
    let named = volume.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !named || !plain(volume, "") || !plain(&measurer.image, ":") {
        return None;
    }
    if !measurer.user.is_empty() && !plain(&measurer.user, ":") {
        return None;
    }
    let mut spec = RunSpec::new(measure_container(volume), measurer.image.clone());
    spec.labels = Labels::from([
        (MANAGED.to_owned(), "true".to_owned()),
        (KIND.to_owned(), KIND_MEASURE.to_owned()),
    ]);
    spec.network = Network::None;
    spec.pull = Pull::Never;
    spec.read_only = true;
    // The data's own user, which may keep its files to itself: numeric
    // `uid:gid` as it is (dual's own workspace containers run as the host
    // user, root where dual runs as root), else by name.
    match measurer
        .user
        .split_once(':')
        .map(|(uid, gid)| (uid.parse(), gid.parse()))
    {
        Some((Ok(uid), Ok(gid))) => spec.user = Some((uid, gid)),
        _ if measurer.user.is_empty() => {}
        _ => spec.user_name = Some(measurer.user.clone()),
    }
    spec.readonly_volumes
        .push((volume.to_owned(), PathBuf::from(MEASURE_TARGET)));
    spec.entrypoint = Some("du".into());
    spec.command = vec!["-sk".into(), MEASURE_TARGET.into()];
    Some(spec)
}

/// `du -sk`'s total in bytes: `KILOBYTES<tab>PATH`.
pub fn parse_du(stdout: &str) -> Option<u64> {
    let line = stdout.lines().rev().find(|line| !line.trim().is_empty())?;
    let (kilobytes, path) = line.split_once(['\t', ' '])?;
    if path.trim() != MEASURE_TARGET || !kilobytes.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    kilobytes.parse::<u64>().ok()?.checked_mul(1024)
}

#[derive(Deserialize)]
struct RawRunner {
    image: String,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct RawImage {
    id: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<Labels>,
}

/// An image dual made, as `image inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub tags: Vec<String>,
    pub labels: Labels,
}

impl Image {
    /// Its first name, else its id.
    pub fn reference(&self) -> &str {
        self.tags.first().unwrap_or(&self.id)
    }
}

fn parse_images(raw: &str) -> Result<Vec<Image>, ParseError> {
    raw.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let image: RawImage = serde_json::from_str(line).map_err(|error| ParseError {
                command: "image inspect",
                reason: error.to_string(),
                snippet: line.chars().take(160).collect(),
            })?;
            Ok(Image {
                id: image.id,
                tags: image
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|tag| !tag.contains("<none>"))
                    .collect(),
                labels: image.labels.unwrap_or_default(),
            })
        })
        .collect()
}

impl Engine {
    /// The volumes carrying all the given labels, with their labels (see
    /// `volume_names` for why dual checks the labels itself).
    pub fn volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<Volume>, EngineError> {
        let mut args: Vec<String> = vec!["volume".into(), "ls".into()];
        if let Some((key, value)) = labels.first() {
            args.push("--filter".into());
            args.push(format!("label={key}={value}"));
        }
        args.push("--format".into());
        args.push(self.json_format().into());
        let output = self.run(&self.cmd(args))?;
        let volumes = self.parse(model::parse_volumes(self.kind, &output.stdout))?;
        Ok(volumes
            .into_iter()
            .filter(|v| has_labels(&v.labels, labels))
            .collect())
    }

    /// The image and user of `container`, to measure its volumes with.
    pub fn measurer(&self, container: &str) -> Option<Measurer> {
        let format = r#"{"image":{{json .Image}},"user":{{json .Config.User}}}"#;
        let cmd = self.cmd(["container", "inspect", "--format", format, container]);
        let output = self.run(&cmd).ok()?;
        let raw: RawRunner = serde_json::from_str(output.stdout.trim()).ok()?;
        Some(Measurer {
            image: raw.image,
            user: raw.user.unwrap_or_default(),
        })
    }

    /// `volume`'s size, measured with the first of `measurers` that can
    /// read all of it (else the largest partial answer), each try given
    /// `timeout`; never fails, and leaves no container behind.
    pub fn volume_size(&self, volume: &str, measurers: &[Measurer], timeout: Duration) -> Size {
        let tries: Vec<RunSpec> = measurers
            .iter()
            .filter_map(|measurer| measure_spec(volume, measurer))
            .collect();
        if !tries.is_empty() {
            // One a killed dual left (its name would be taken); each try
            // below removes its own unless it ended well.
            self.clear_one_off(&measure_container(volume));
        }
        let mut best = Size::Unknown;
        for spec in tries {
            let one_off = OneOff {
                spec,
                timeout,
                // As ever, Ctrl-C does not cut a measurement short: `timeout`
                // bounds it, and a size is never an error.
                interruptible: false,
            };
            let output = match self.run_one_off(one_off) {
                Ok(output) => output,
                Err(error) => {
                    crate::log::debug(&format!("measuring volume {volume}: {error}"));
                    continue;
                }
            };
            match parse_du(&output.stdout) {
                Some(bytes) if output.success() => return Size::Bytes(bytes),
                // Files its user may not read: du says so and counts the rest.
                Some(bytes) => {
                    if !matches!(best, Size::AtLeast(seen) if seen >= bytes) {
                        best = Size::AtLeast(bytes);
                    }
                }
                None => crate::log::debug(&format!(
                    "measuring volume {volume}: {}",
                    output.stderr.trim()
                )),
            }
        }
        best
    }

    /// The images carrying label `key` (any value) and all of `labels`.
    pub fn images_labelled(
        &self,
        key: &str,
        labels: &[(&str, &str)],
    ) -> Result<Vec<Image>, EngineError> {
        let cmd = self.cmd([
            "image",
            "ls",
            "--quiet",
            "--no-trunc",
            "--filter",
            &format!("label={key}"),
        ]);
        let output = self.run(&cmd)?;
        let mut ids: Vec<&str> = output.stdout.split_whitespace().collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // `{{json .Id}}` fails on podman 4.3 ("can't evaluate field Id"),
        // where `{{.Id}}` works; an id is hex (`sha256:` on docker), safe
        // between quotes.
        let format =
            r#"{"id":"{{.Id}}","tags":{{json .RepoTags}},"labels":{{json .Config.Labels}}}"#;
        let args = ["image", "inspect", "--format", format]
            .into_iter()
            .chain(ids.iter().copied());
        let output = self.run_tolerating(&self.cmd(args), super::only_missing_objects)?;
        let images = self.parse(parse_images(&output.stdout))?;
        Ok(images
            .into_iter()
            .filter(|image| image.labels.contains_key(key) && has_labels(&image.labels, labels))
            .collect())
    }

    /// Removes an image by name or id, unforced: one that a container (the
    /// user's, made to copy files out) still uses stays, with the engine's
    /// reason.
    pub fn image_remove(&self, reference: &str) -> Result<(), EngineError> {
        let cmd = self.cmd(["image", "rm", reference]).uncancellable();
        self.run_tolerating(&cmd, super::only_missing_objects)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(48_200_000), "48.2 MB");
        assert_eq!(human(999_960), "1.0 MB");
        assert_eq!(Size::AtLeast(4096).to_string(), "at least 4.1 KB");
        assert_eq!(Size::Unknown.to_string(), "size unknown");
    }

    #[test]
    fn du_totals_parse_and_junk_does_not() {
        assert_eq!(parse_du("208\t/dual-volume\n"), Some(208 * 1024));
        assert_eq!(
            parse_du("du: can't open '/dual-volume/s': Permission denied\n204\t/dual-volume\n"),
            Some(204 * 1024)
        );
        assert_eq!(parse_du("208\t/elsewhere\n"), None);
        assert_eq!(parse_du("-1\t/dual-volume\n"), None);
        assert_eq!(parse_du(""), None);
    }

    #[test]
    fn the_measuring_container_has_nothing_it_does_not_need() {
        let measurer = Measurer {
            image: "sha256:6af50bd9".into(),
            user: "999:999".into(),
        };
        let spec = measure_spec("dual-shop-main.db-pgdata", &measurer).unwrap();
        let args: Vec<String> = spec
            .create_args()
            .unwrap()
            .into_iter()
            .map(|arg| arg.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "create",
                "--name=dual-shop-main.db-pgdata.size",
                "--pull=never",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                "--read-only",
                "--label=dual.kind=measure",
                "--label=dual.managed=true",
                "--network=none",
                "--entrypoint=du",
                "--user=999:999",
                "--mount=type=volume,source=dual-shop-main.db-pgdata,target=/dual-volume,ro",
                "--",
                "sha256:6af50bd9",
                "-sk",
                "/dual-volume",
            ]
        );
        let odd = |volume: &str, image: &str, user: &str| {
            measure_spec(
                volume,
                &Measurer {
                    image: image.into(),
                    user: user.into(),
                },
            )
        };
        assert!(odd("v:/etc", "img", "").is_none(), "a volume is one word");
        assert!(odd("v", "--privileged", "").is_none());
        assert!(odd("v", "img", "--privileged").is_none());
        let own = odd("v", "img", "").unwrap();
        assert_eq!(
            (own.user, own.user_name),
            (None, None),
            "no user: the image's own"
        );
        assert_eq!(
            odd("v", "img", "postgres").unwrap().user_name.as_deref(),
            Some("postgres")
        );
        assert_eq!(
            odd("v", "img", "0:0").unwrap().user,
            Some((0, 0)),
            "as the data's writer"
        );
        assert!(odd("_v", "img", "").is_none(), "not a container's name");
    }

    #[test]
    fn images_parse_without_dangling_tags() {
        let raw = "{\"id\":\"sha256:ab\",\"tags\":[\"dual-kept/x:1\"],\"labels\":{\"dual.kept\":\"c\"}}\n{\"id\":\"cd\",\"tags\":null,\"labels\":null}\n";
        let images = parse_images(raw).unwrap();
        assert_eq!(images[0].reference(), "dual-kept/x:1");
        assert_eq!(images[1].reference(), "cd");
    }
}
