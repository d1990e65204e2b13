//! Sidecars with `build:` (a compose service's): built with the engine's
//! `build`, once per content of their context, and shared by the repo's
//! workspaces.
//!
//! The context (relative to the clone's root) is read the way `confined`
//! reads a clone: one component at a time, never through a symbolic link.
//! A context that is, or passes through, a link, or that leaves the clone,
//! is refused; a link inside it is part of its content as a link (its
//! target's text), never followed, so a link to `/etc/passwd` is neither an
//! error nor a read of the host's file. FIFOs, sockets and devices are left
//! out. What is read is hashed (SHA-256) with the Dockerfile's path, the
//! `target` and the `args` (sorted), and the hash names the image:
//! `dual-build/{repo}-{sidecar}:{16 hex digits}`. Workspaces of one repo
//! whose contexts hold the same content share that image; when the engine
//! has it, nothing is built.
//!
//! Otherwise the context is copied, as it is hashed, into a directory of
//! dual's own (under its data directory), and the engine builds from that
//! copy: what is built is exactly what was hashed, and the engine never
//! reads the clone, which the workspace's container can change under it.
//! Builds run with `--network=none`: a repo's Dockerfile does not fetch
//! from the network on the user's machine behind their back, so a step
//! that downloads fails (the error says so). A context over
//! `MAX_CONTEXT_BYTES` or `MAX_CONTEXT_FILES` is refused, naming its size.
//!
//! `.dockerignore` in the context's root is honoured as docker reads it:
//! comments, blank lines, `*` and `?` within a path component, `**` across
//! components, `!` exceptions (the last matching line wins), a leading `/`,
//! and a pattern that names a directory excluding everything below it; the
//! Dockerfile and `.dockerignore` are always part of the context. Not
//! supported: character classes (`[a-z]`, matched as written),
//! `.containerignore` (podman applies it to the copy itself, after dual
//! hashed), and a `.dockerignore` that is a link (refused).
//!
//! After a new image is built, older `dual-build/{repo}-{sidecar}:*` images
//! are removed when no container uses them (the engine refuses those) and
//! they were built more than `STALE_AFTER` ago (another workspace may be
//! about to run one it just built): best effort, so disk does not fill up
//! with every version of a Dockerfile; a failure to remove one is ignored.

mod context;
mod ignore;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use self::context::{Context, Digested};
use super::Workspace;
use super::sidecars::Build;
use crate::engine::build::{BuildError, BuildSpec};
use crate::engine::labels::{KIND, MANAGED, SIDECAR};
use crate::engine::{Engine, EngineError, EngineKind, Labels};
use crate::error::Hint;
use crate::process::StatusText;

/// The most a context may hold, in bytes of its files.
pub const MAX_CONTEXT_BYTES: u64 = 512 * 1024 * 1024;
/// The most a context may hold, in files, directories and links.
pub const MAX_CONTEXT_FILES: u64 = 100_000;
/// An older build younger than this is kept: another workspace may have
/// built it a moment ago and not made its container yet.
const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// `dual.kind` of an image built for a sidecar.
pub const KIND_SIDECAR_BUILD: &str = "sidecar-build";
/// The repo label's key (`labels::REPO`, private there; a test keeps the
/// two the same).
const REPO_LABEL: &str = "dual.repo";
/// When it was built, in seconds since the epoch.
const BUILT_LABEL: &str = "dual.built";

#[derive(Debug, thiserror::Error)]
pub enum SidecarBuildError {
    #[error("sidecar `{sidecar}`: the build context `{context}` {why}")]
    Context {
        sidecar: String,
        context: String,
        why: String,
    },
    #[error(
        "sidecar `{sidecar}`: the build context `{context}` is too large to build (over {} files or {} MiB: stopped at {files} files, {} MiB)",
        MAX_CONTEXT_FILES,
        MAX_CONTEXT_BYTES >> 20,
        .bytes >> 20
    )]
    TooLarge {
        sidecar: String,
        context: String,
        files: u64,
        bytes: u64,
    },
    #[error("sidecar `{sidecar}`: could not read `{}` of its build context", .path.display())]
    Read {
        sidecar: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sidecar `{sidecar}`: {why}")]
    Invalid { sidecar: String, why: String },
    #[error("sidecar `{sidecar}`: could not build `{image}` with {kind}")]
    Engine {
        sidecar: String,
        image: String,
        kind: EngineKind,
        #[source]
        source: Box<EngineError>,
    },
    #[error("sidecar `{sidecar}`: building `{image}` with {kind} failed ({status}){}{}", step_text(.step), tail_text(.tail))]
    Failed {
        sidecar: String,
        image: String,
        kind: EngineKind,
        status: StatusText,
        step: Option<String>,
        tail: Vec<String>,
    },
}

fn step_text(step: &Option<String>) -> String {
    step.as_ref()
        .map(|step| format!(" at `{}`", shown(step)))
        .unwrap_or_default()
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n  its last lines:");
    for line in tail {
        text.push_str("\n  | ");
        text.push_str(&shown(line));
    }
    text
}

/// The engine's (and the repo's) words: control characters reach the
/// terminal escaped.
fn shown(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl Hint for SidecarBuildError {
    fn hint(&self) -> Option<String> {
        match self {
            SidecarBuildError::Context { .. } => Some(
                "`build:` (or `build.context`) must name a real directory inside the repo, not a link".into(),
            ),
            SidecarBuildError::TooLarge { context, .. } => Some(format!(
                "leave out what the image does not need with a `.dockerignore` in `{context}` (e.g. `node_modules`, `.git`, build output)"
            )),
            SidecarBuildError::Read { .. } => None,
            SidecarBuildError::Invalid { .. } => Some("fix `build:` in the compose file".into()),
            SidecarBuildError::Engine { source, .. } => source.hint(),
            SidecarBuildError::Failed { .. } => Some(
                "fix the Dockerfile and `dual launch` again; dual builds with `--network=none`, so a step that downloads (apt-get, pip, npm, curl) fails: keep what it needs in the context, or build the image yourself and name it with `image =` under `[sidecars.NAME]` in .dual.toml".into(),
            ),
        }
    }

    fn interrupted(&self) -> bool {
        matches!(self, SidecarBuildError::Engine { source, .. } if source.is_interrupted())
    }
}

/// The image sidecar `name` of `workspace` runs, from its `build`: the
/// tag of its context's content, built now unless the engine has it.
/// `terminal`: the engine's own output may be shown as it builds.
pub fn prepare(
    engine: &Engine,
    workspace: &Workspace,
    name: &str,
    build: &Build,
    progress: &dyn Fn(String),
    terminal: bool,
) -> Result<String, SidecarBuildError> {
    let context = Context::new(&workspace.path, name, build)?;
    let base = image_base(&workspace.repo, name);
    let tag_of = |digest: &Digested| {
        let tag = format!("{base}:{}", &digest.hash[..16]);
        super::config::check_image_reference(&tag)
            .map(|()| tag.clone())
            .map_err(|why| SidecarBuildError::Invalid {
                sidecar: name.to_owned(),
                why: format!("`{tag}` is not an image name ({why})"),
            })
    };
    let engine_error = |image: &str, source: EngineError| SidecarBuildError::Engine {
        sidecar: name.to_owned(),
        image: image.to_owned(),
        kind: engine.kind(),
        source: Box::new(source),
    };
    let hashed = context.digest(None)?;
    let tag = tag_of(&hashed)?;
    let reused = |tag: &str| {
        progress(format!(
            "sidecar `{name}`: image `{tag}` is built already (same context), reused"
        ));
    };
    if engine
        .image_id(&tag)
        .map_err(|error| engine_error(&tag, error))?
        .is_some()
    {
        reused(&tag);
        return Ok(tag);
    }
    // Built from a copy made as it is hashed again: the engine builds
    // exactly what the tag says, never the clone itself.
    let builds = crate::paths::data_dir().join("builds");
    let copy_error = |source: std::io::Error| SidecarBuildError::Read {
        sidecar: name.to_owned(),
        path: builds.clone(),
        source,
    };
    std::fs::create_dir_all(&builds).map_err(copy_error)?;
    let copy = tempfile::Builder::new()
        .prefix("sidecar-")
        .tempdir_in(&builds)
        .map_err(copy_error)?;
    let copied = context.digest(Some(copy.path()))?;
    let tag = tag_of(&copied)?;
    if copied.hash != hashed.hash
        && engine
            .image_id(&tag)
            .map_err(|error| engine_error(&tag, error))?
            .is_some()
    {
        reused(&tag);
        return Ok(tag);
    }
    progress(format!(
        "sidecar `{name}`: building `{tag}` from `{}` with {} ({} file{}, {:.1} MiB; no network)",
        build.context,
        engine.kind(),
        copied.files,
        if copied.files == 1 { "" } else { "s" },
        copied.bytes as f64 / f64::from(1 << 20)
    ));
    let built_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let spec = BuildSpec {
        tag: tag.clone(),
        context: copy.path().to_owned(),
        dockerfile: Some(context.dockerfile.clone()),
        target: build.target.clone(),
        args: build.args.clone(),
        labels: Labels::from([
            (MANAGED.to_owned(), "true".to_owned()),
            (KIND.to_owned(), KIND_SIDECAR_BUILD.to_owned()),
            (REPO_LABEL.to_owned(), workspace.repo.clone()),
            (SIDECAR.to_owned(), name.to_owned()),
            (BUILT_LABEL.to_owned(), built_at.to_string()),
        ]),
    };
    let echo = |line: &str| {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    };
    let started = Instant::now();
    engine
        .build_image(&spec, terminal.then_some(&echo as &dyn Fn(&str)))
        .map_err(|error| match error {
            BuildError::Engine(source) => engine_error(&tag, source),
            BuildError::Failed { status, step, tail } => SidecarBuildError::Failed {
                sidecar: name.to_owned(),
                image: tag.clone(),
                kind: engine.kind(),
                status,
                step,
                tail,
            },
        })?;
    progress(format!(
        "sidecar `{name}`: built `{tag}` in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    remove_stale(engine, &workspace.repo, &base, &tag, progress);
    Ok(tag)
}

/// `dual-build/{repo}-{sidecar}`: an image name is lower-case, so a
/// sidecar name that is not gets a hash of itself (`Db` and `db` stay
/// apart), as does one that ends in `_` or `-`.
fn image_base(repo: &str, sidecar: &str) -> String {
    let lower = sidecar.to_ascii_lowercase();
    let plain = lower == sidecar && lower.ends_with(|c: char| c.is_ascii_alphanumeric());
    if plain {
        format!("dual-build/{repo}-{lower}")
    } else {
        format!(
            "dual-build/{repo}-{lower}-{}",
            super::names::short_hash(sidecar)
        )
    }
}

/// Removes older builds of this sidecar that no container uses: see the
/// module's doc. Best effort.
fn remove_stale(engine: &Engine, repo: &str, base: &str, current: &str, progress: &dyn Fn(String)) {
    let filters = [(KIND, KIND_SIDECAR_BUILD), (REPO_LABEL, repo)];
    let Ok(images) = engine.images_labelled(BUILT_LABEL, &filters) else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let prefix = format!("{base}:");
    for image in images {
        let Some(built) = image
            .labels
            .get(BUILT_LABEL)
            .and_then(|at| at.parse::<u64>().ok())
        else {
            continue;
        };
        if now.saturating_sub(Duration::from_secs(built)) < STALE_AFTER {
            continue;
        }
        for tag in &image.tags {
            // Podman names a local image `localhost/…`.
            let plain = tag.strip_prefix("localhost/").unwrap_or(tag);
            if plain.starts_with(&prefix) && plain != current && engine.image_remove(tag).is_ok() {
                progress(format!(
                    "removed `{plain}`, an older build no container uses"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_valid_references() {
        for sidecar in ["echo", "Db", "cache_", "my-db", "x_y"] {
            let name = format!("{}:0123456789abcdef", image_base("shop", sidecar));
            super::super::config::check_image_reference(&name)
                .unwrap_or_else(|why| panic!("{name}: {why}"));
        }
        assert_ne!(image_base("shop", "Db"), image_base("shop", "db"));
        assert_eq!(image_base("shop", "echo"), "dual-build/shop-echo");
    }

    #[test]
    fn the_repo_label_is_the_one_workspaces_carry() {
        let labels = crate::engine::labels::WorkspaceLabels {
            repo: "shop".into(),
            ..Default::default()
        }
        .to_labels();
        assert_eq!(labels.get(REPO_LABEL).map(String::as_str), Some("shop"));
    }
}
