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

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

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
/// Entries looked at, ignored ones included (a `.dockerignore` exception
/// makes dual look inside an ignored directory).
const MAX_VISITED: u64 = 10 * MAX_CONTEXT_FILES;
const MAX_DEPTH: usize = 128;
const MAX_IGNORE_BYTES: u64 = 256 * 1024;
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
/// Changes whenever what is hashed, or how, changes.
const HASH_FORMAT: &[u8] = b"dual sidecar build context 1";

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

/// A sidecar's build context inside its clone, checked.
struct Context<'a> {
    clone: &'a Path,
    sidecar: &'a str,
    /// Relative to the clone.
    relative: PathBuf,
    shown: String,
    /// Relative to the context.
    dockerfile: PathBuf,
    ignore: Ignore,
    build: &'a Build,
}

/// What a walk of a context found.
struct Digested {
    hash: String,
    files: u64,
    bytes: u64,
}

impl<'a> Context<'a> {
    fn new(clone: &'a Path, sidecar: &'a str, build: &'a Build) -> Result<Self, SidecarBuildError> {
        let shown = build.context.clone();
        let refused = |why: String| SidecarBuildError::Context {
            sidecar: sidecar.to_owned(),
            context: shown.clone(),
            why,
        };
        let relative = PathBuf::from(&build.context);
        if relative.as_os_str().is_empty()
            || !relative
                .components()
                .all(|part| matches!(part, Component::Normal(_) | Component::CurDir))
        {
            return Err(refused(
                "is not a relative path inside the clone (no `..`, not absolute)".into(),
            ));
        }
        let invalid = |why: String| SidecarBuildError::Invalid {
            sidecar: sidecar.to_owned(),
            why,
        };
        for (arg, value) in &build.args {
            super::sidecars::check_env("build.args", arg, value).map_err(invalid)?;
        }
        let dockerfile = match &build.dockerfile {
            Some(file) => PathBuf::from(file),
            // Podman's own name where the repo has no Dockerfile.
            None if !crate::confined::exists(clone, &relative.join("Dockerfile"))
                && crate::confined::exists(clone, &relative.join("Containerfile")) =>
            {
                PathBuf::from("Containerfile")
            }
            None => PathBuf::from("Dockerfile"),
        };
        let inside = dockerfile.components().all(|part| match part {
            Component::Normal(part) => !part.as_bytes().starts_with(b"-"),
            Component::CurDir => true,
            _ => false,
        });
        if !inside || dockerfile.as_os_str().is_empty() {
            return Err(invalid(format!(
                "the Dockerfile `{}` must be a relative path inside the context, without `..`",
                dockerfile.display()
            )));
        }
        // The context first, so that a link there is named as the context.
        open_context(clone, &relative).map_err(|why| refused(why.to_owned()))?;
        let dockerfile_path = relative.join(&dockerfile);
        crate::confined::open(clone, &dockerfile_path).map_err(|error| {
            invalid(format!(
                "its Dockerfile `{}`: {error}",
                dockerfile_path.display()
            ))
        })?;
        let ignore_path = relative.join(".dockerignore");
        let ignore = match crate::confined::read_text(clone, &ignore_path, MAX_IGNORE_BYTES) {
            Ok(text) => Ignore::parse(&text),
            Err(error) if error.is_not_found() => Ignore::default(),
            Err(error) => return Err(invalid(error.to_string())),
        };
        Ok(Context {
            clone,
            sidecar,
            relative,
            shown,
            dockerfile,
            ignore,
            build,
        })
    }

    /// Hashes the context (and copies it into `copy_to`, when given).
    fn digest(&self, copy_to: Option<&Path>) -> Result<Digested, SidecarBuildError> {
        let root =
            open_context(self.clone, &self.relative).map_err(|why| SidecarBuildError::Context {
                sidecar: self.sidecar.to_owned(),
                context: self.shown.clone(),
                why: why.to_owned(),
            })?;
        let mut walk = Walk {
            ignore: &self.ignore,
            keep: vec![self.dockerfile.clone(), PathBuf::from(".dockerignore")],
            hasher: Sha256::new(),
            files: 0,
            bytes: 0,
            visited: 0,
            copy_to,
            directories: Vec::new(),
        };
        put(&mut walk.hasher, HASH_FORMAT);
        walk.run(root).map_err(|error| match error {
            WalkError::TooLarge => SidecarBuildError::TooLarge {
                sidecar: self.sidecar.to_owned(),
                context: self.shown.clone(),
                files: walk.files,
                bytes: walk.bytes,
            },
            WalkError::TooDeep(path) => SidecarBuildError::Context {
                sidecar: self.sidecar.to_owned(),
                context: self.shown.clone(),
                why: format!(
                    "is nested deeper than {MAX_DEPTH} directories (at `{}`)",
                    path.display()
                ),
            },
            WalkError::Io(path, source) => SidecarBuildError::Read {
                sidecar: self.sidecar.to_owned(),
                path: self.clone.join(&self.relative).join(path),
                source,
            },
        })?;
        let mut hasher = walk.hasher;
        put(&mut hasher, b"dockerfile");
        put(&mut hasher, self.dockerfile.as_os_str().as_bytes());
        put(&mut hasher, b"target");
        put(
            &mut hasher,
            self.build.target.as_deref().unwrap_or_default().as_bytes(),
        );
        let args: &BTreeMap<String, String> = &self.build.args;
        for (arg, value) in args {
            put(&mut hasher, b"arg");
            put(&mut hasher, arg.as_bytes());
            put(&mut hasher, value.as_bytes());
        }
        let hash = hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Ok(Digested {
            hash,
            files: walk.files,
            bytes: walk.bytes,
        })
    }
}

/// Feeds `bytes` with their length first: no two sequences of fields
/// hash alike.
fn put(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// Opens the context directory below the clone, one component at a time,
/// refusing a link anywhere.
fn open_context(clone: &Path, relative: &Path) -> Result<OwnedFd, &'static str> {
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(clone, directory, Mode::empty())
        .map_err(|_| "cannot be read: the clone is missing")?;
    for part in relative.components() {
        let Component::Normal(part) = part else {
            if part == Component::CurDir {
                continue;
            }
            return Err("is not inside the clone");
        };
        dir = match rustix::fs::openat(&dir, part, directory | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::NOENT) => return Err("does not exist in the clone"),
            Err(Errno::LOOP) => return Err("is (or passes through) a symbolic link"),
            Err(Errno::NOTDIR) => {
                let is_link = rustix::fs::statat(&dir, part, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink);
                return Err(if is_link {
                    "is (or passes through) a symbolic link"
                } else {
                    "is not a directory"
                });
            }
            Err(_) => return Err("cannot be read"),
        };
    }
    Ok(dir)
}

enum WalkError {
    TooLarge,
    TooDeep(PathBuf),
    Io(PathBuf, std::io::Error),
}

struct Walk<'a> {
    ignore: &'a Ignore,
    /// Always part of the context (relative to it), whatever
    /// `.dockerignore` says: the engine needs them.
    keep: Vec<PathBuf>,
    hasher: Sha256,
    files: u64,
    bytes: u64,
    visited: u64,
    copy_to: Option<&'a Path>,
    /// Directories made in the copy, with their modes, set at the end (a
    /// read-only one must still take its files first).
    directories: Vec<(PathBuf, u32)>,
}

/// A directory being walked: its names, sorted, the next one last.
struct Frame {
    dir: OwnedFd,
    path: PathBuf,
    names: Vec<OsString>,
}

impl Walk<'_> {
    fn run(&mut self, root: OwnedFd) -> Result<(), WalkError> {
        let mut stack = vec![self.frame(root, PathBuf::new())?];
        loop {
            let depth = stack.len();
            let Some(top) = stack.last_mut() else {
                break;
            };
            let Some(name) = top.names.pop() else {
                stack.pop();
                continue;
            };
            let path = top.path.join(&name);
            let io = |error: Errno| WalkError::Io(path.clone(), error.into());
            self.visited += 1;
            if self.visited > MAX_VISITED {
                return Err(WalkError::TooLarge);
            }
            let stat =
                match rustix::fs::statat(&top.dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => stat,
                    // Gone since it was listed.
                    Err(Errno::NOENT) => continue,
                    Err(error) => return Err(io(error)),
                };
            let mode = stat.st_mode & 0o777;
            let kept = self.keep.contains(&path);
            let excluded = !kept && self.ignore.excludes(path.as_os_str().as_bytes());
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => {
                    let below = self.keep.iter().any(|k| k.starts_with(&path));
                    if excluded && !self.ignore.has_exceptions && !below {
                        continue;
                    }
                    if depth > MAX_DEPTH {
                        return Err(WalkError::TooDeep(path));
                    }
                    let flags =
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    let dir = rustix::fs::openat(&top.dir, name.as_os_str(), flags, Mode::empty())
                        .map_err(io)?;
                    if !excluded {
                        self.count(0)?;
                        put(&mut self.hasher, b"d");
                        put(&mut self.hasher, path.as_os_str().as_bytes());
                        put(&mut self.hasher, &mode.to_le_bytes());
                        if let Some(copy) = self.copy_to {
                            let made = copy.join(&path);
                            std::fs::create_dir_all(&made)
                                .map_err(|error| WalkError::Io(path.clone(), error))?;
                            self.directories.push((made, mode | 0o700));
                        }
                    }
                    let frame = self.frame(dir, path)?;
                    stack.push(frame);
                }
                FileType::RegularFile if !excluded => {
                    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
                    self.count(size)?;
                    let flags =
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                    let fd = rustix::fs::openat(&top.dir, name.as_os_str(), flags, Mode::empty())
                        .map_err(io)?;
                    let now = rustix::fs::fstat(&fd).map_err(io)?;
                    if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile {
                        return Err(io(Errno::INVAL));
                    }
                    put(&mut self.hasher, b"f");
                    put(&mut self.hasher, path.as_os_str().as_bytes());
                    put(&mut self.hasher, &mode.to_le_bytes());
                    self.hasher.update(size.to_le_bytes());
                    self.file(std::fs::File::from(fd), size, &path, mode)?;
                }
                FileType::Symlink if !excluded => {
                    self.count(0)?;
                    let target = rustix::fs::readlinkat(&top.dir, name.as_os_str(), Vec::new())
                        .map_err(io)?;
                    let target = target.into_bytes();
                    put(&mut self.hasher, b"l");
                    put(&mut self.hasher, path.as_os_str().as_bytes());
                    put(&mut self.hasher, &target);
                    if let Some(copy) = self.copy_to {
                        let made = copy.join(&path);
                        if let Some(parent) = made.parent() {
                            std::fs::create_dir_all(parent)
                                .map_err(|error| WalkError::Io(path.clone(), error))?;
                        }
                        std::os::unix::fs::symlink(OsString::from_vec(target), &made)
                            .map_err(|error| WalkError::Io(path.clone(), error))?;
                    }
                }
                // Ignored, or a FIFO, socket or device: not part of it.
                _ => {}
            }
        }
        for (made, mode) in self.directories.drain(..).rev() {
            std::fs::set_permissions(&made, std::fs::Permissions::from_mode(mode))
                .map_err(|error| WalkError::Io(made.clone(), error))?;
        }
        Ok(())
    }

    /// The directory's names, sorted (the hash must not depend on the
    /// order the filesystem lists them in), to be taken from the end.
    fn frame(&mut self, dir: OwnedFd, path: PathBuf) -> Result<Frame, WalkError> {
        let io = |error: Errno| WalkError::Io(path.clone(), error.into());
        let mut names = Vec::new();
        let mut entries = rustix::fs::Dir::read_from(&dir).map_err(io)?;
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(OsString::from_vec(name.to_vec()));
            if names.len() as u64 > MAX_VISITED {
                return Err(WalkError::TooLarge);
            }
        }
        names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        Ok(Frame { dir, path, names })
    }

    fn count(&mut self, size: u64) -> Result<(), WalkError> {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(size);
        if self.files > MAX_CONTEXT_FILES || self.bytes > MAX_CONTEXT_BYTES {
            return Err(WalkError::TooLarge);
        }
        Ok(())
    }

    /// Hashes `size` bytes of `file` (and copies them): a file that
    /// shrinks meanwhile is an error, one that grows is read up to `size`.
    fn file(
        &mut self,
        file: std::fs::File,
        size: u64,
        path: &Path,
        mode: u32,
    ) -> Result<(), WalkError> {
        let io = |error: std::io::Error| WalkError::Io(path.to_owned(), error);
        let mut copy = match self.copy_to {
            Some(copy) => {
                let made = copy.join(path);
                if let Some(parent) = made.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                Some((std::fs::File::create_new(&made).map_err(io)?, made))
            }
            None => None,
        };
        let mut reader = file.take(size);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut read = 0u64;
        loop {
            let n = reader.read(&mut buffer).map_err(io)?;
            if n == 0 {
                break;
            }
            read += n as u64;
            self.hasher.update(&buffer[..n]);
            if let Some((copy, _)) = &mut copy {
                copy.write_all(&buffer[..n]).map_err(io)?;
            }
        }
        if read != size {
            return Err(io(std::io::Error::other("it changed while it was read")));
        }
        if let Some((copy, made)) = copy {
            drop(copy);
            std::fs::set_permissions(&made, std::fs::Permissions::from_mode(mode)).map_err(io)?;
        }
        Ok(())
    }
}

/// `.dockerignore`'s patterns, matched as docker matches them.
#[derive(Debug, Default)]
struct Ignore {
    patterns: Vec<Pattern>,
    has_exceptions: bool,
}

#[derive(Debug)]
struct Pattern {
    tokens: Vec<Token>,
    exception: bool,
}

/// Docker turns a pattern into a regular expression; these are its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `?`: one byte, not `/`.
    One,
    /// `*`: any bytes but `/`.
    Star,
    /// `**` (and `**/`) before more: any directories, `(.*/)?`.
    Dirs,
    /// `**` at the end: anything.
    All,
}

impl Ignore {
    fn parse(text: &str) -> Ignore {
        let mut ignore = Ignore::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let Some(cleaned) = clean(pattern) else {
                continue;
            };
            ignore.has_exceptions |= exception;
            ignore.patterns.push(Pattern {
                tokens: tokens(&cleaned),
                exception,
            });
        }
        ignore
    }

    /// Whether `path` (relative to the context) is left out: the last
    /// pattern that matches it or a directory above it decides.
    fn excludes(&self, path: &[u8]) -> bool {
        let mut excluded = false;
        for pattern in &self.patterns {
            if pattern.exception != excluded {
                continue;
            }
            let above = path
                .iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b'/')
                .any(|(at, _)| matches(&pattern.tokens, &path[..at]));
            if above || matches(&pattern.tokens, path) {
                excluded = !pattern.exception;
            }
        }
        excluded
    }
}

/// Go's `filepath.Clean` of a pattern, leading `/` dropped; `None` for one
/// that names the context itself or leaves it (matches nothing).
fn clean(pattern: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn tokens(pattern: &str) -> Vec<Token> {
    let bytes = pattern.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        at += 1;
        match byte {
            b'*' if bytes.get(at) == Some(&b'*') => {
                at += 1;
                if bytes.get(at) == Some(&b'/') {
                    at += 1;
                }
                tokens.push(if at == bytes.len() {
                    Token::All
                } else {
                    Token::Dirs
                });
            }
            b'*' => tokens.push(Token::Star),
            b'?' => tokens.push(Token::One),
            b'\\' if at < bytes.len() => {
                tokens.push(Token::Byte(bytes[at]));
                at += 1;
            }
            other => tokens.push(Token::Byte(other)),
        }
    }
    tokens
}

/// Whether `tokens` match all of `path`: a table over positions, so a
/// pattern of many `*` takes time in proportion to its length times the
/// path's, never more.
fn matches(tokens: &[Token], path: &[u8]) -> bool {
    let len = path.len();
    // `next[j]`: the tokens after this one match `path[j..]`.
    let mut next: Vec<bool> = (0..=len).map(|j| j == len).collect();
    let mut here = vec![false; len + 1];
    for token in tokens.iter().rev() {
        // For `Dirs`: some k > j with path[k-1] == '/' and next[k].
        let mut slash_then_rest = false;
        for j in (0..=len).rev() {
            let byte = path.get(j).copied();
            here[j] = match *token {
                Token::Byte(want) => byte == Some(want) && next[j + 1],
                Token::One => byte.is_some_and(|b| b != b'/') && next[j + 1],
                Token::Star => next[j] || (byte.is_some_and(|b| b != b'/') && here[j + 1]),
                Token::All => next[j] || (byte.is_some() && here[j + 1]),
                Token::Dirs => {
                    if byte == Some(b'/') && next[j + 1] {
                        slash_then_rest = true;
                    }
                    next[j] || slash_then_rest
                }
            };
        }
        std::mem::swap(&mut next, &mut here);
    }
    next[0]
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn build(context: &str) -> Build {
        Build {
            context: context.into(),
            dockerfile: None,
            args: BTreeMap::new(),
            target: None,
        }
    }

    /// A clone holding `ctx/Dockerfile` and `ctx/app.txt`.
    fn clone() -> tempfile::TempDir {
        let clone = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(clone.path().join("ctx/src")).unwrap();
        std::fs::write(clone.path().join("ctx/Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(clone.path().join("ctx/app.txt"), "app\n").unwrap();
        std::fs::write(clone.path().join("ctx/src/main.c"), "int main;\n").unwrap();
        clone
    }

    fn hash(clone: &Path, build: &Build) -> Result<String, SidecarBuildError> {
        Ok(Context::new(clone, "echo", build)?.digest(None)?.hash)
    }

    #[test]
    fn the_hash_follows_content_and_leaves_out_what_dockerignore_names() {
        let clone = clone();
        let path = clone.path();
        let first = hash(path, &build("ctx")).unwrap();
        assert_eq!(first, hash(path, &build("./ctx")).unwrap(), "same content");

        std::fs::write(path.join("ctx/.dockerignore"), "# logs\n*.log\nbuild/\n").unwrap();
        let with_ignore = hash(path, &build("ctx")).unwrap();
        assert_ne!(first, with_ignore, ".dockerignore is part of the context");
        std::fs::write(path.join("ctx/debug.log"), "noise").unwrap();
        std::fs::create_dir_all(path.join("ctx/build/deep")).unwrap();
        std::fs::write(path.join("ctx/build/deep/out.o"), "obj").unwrap();
        std::fs::write(path.join("outside-the-context"), "x").unwrap();
        assert_eq!(
            with_ignore,
            hash(path, &build("ctx")).unwrap(),
            "ignored files do not change it"
        );

        std::fs::write(path.join("ctx/src/main.c"), "int main(void);\n").unwrap();
        let changed = hash(path, &build("ctx")).unwrap();
        assert_ne!(with_ignore, changed, "a changed file does");
        std::fs::set_permissions(
            path.join("ctx/src/main.c"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_ne!(
            changed,
            hash(path, &build("ctx")).unwrap(),
            "so does its mode"
        );

        let mut with_arg = build("ctx");
        with_arg.args.insert("VERSION".into(), "2".into());
        let mut with_target = build("ctx");
        with_target.target = Some("dev".into());
        let now = hash(path, &build("ctx")).unwrap();
        assert_ne!(now, hash(path, &with_arg).unwrap());
        assert_ne!(now, hash(path, &with_target).unwrap());
    }

    #[test]
    fn a_link_is_hashed_as_a_link_and_never_followed() {
        let clone = clone();
        let path = clone.path();
        symlink("/etc/passwd", path.join("ctx/passwd")).unwrap();
        symlink("/nonexistent/dangling", path.join("ctx/dangling")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "one").unwrap();
        symlink(outside.path(), path.join("ctx/elsewhere")).unwrap();
        let first = hash(path, &build("ctx")).unwrap();
        // What a link points at is not read: changing it changes nothing.
        std::fs::write(outside.path().join("secret"), "two").unwrap();
        assert_eq!(first, hash(path, &build("ctx")).unwrap());
        // Where it points is its content.
        std::fs::remove_file(path.join("ctx/passwd")).unwrap();
        symlink("/etc/shadow", path.join("ctx/passwd")).unwrap();
        assert_ne!(first, hash(path, &build("ctx")).unwrap());

        // The copy the engine builds from holds the links as links.
        let copy = tempfile::tempdir().unwrap();
        let ctx = build("ctx");
        let context = Context::new(path, "echo", &ctx).unwrap();
        let copied = context.digest(Some(copy.path())).unwrap();
        assert_eq!(copied.hash, hash(path, &build("ctx")).unwrap());
        let link = copy.path().join("passwd");
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/etc/shadow"));
        assert!(
            std::fs::symlink_metadata(copy.path().join("elsewhere"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(copy.path().join("src/main.c")).unwrap(),
            "int main;\n"
        );
    }

    #[test]
    fn a_context_that_is_a_link_or_leaves_the_clone_is_refused() {
        let clone = clone();
        let path = clone.path();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("Dockerfile"), "FROM x\n").unwrap();
        symlink(outside.path(), path.join("linked")).unwrap();
        symlink(path.join("ctx"), path.join("inner-link")).unwrap();
        for context in [
            "linked",
            "inner-link",
            "linked/sub",
            "../x",
            "/etc",
            "ctx/../..",
        ] {
            let refused = hash(path, &build(context)).unwrap_err();
            assert!(
                matches!(refused, SidecarBuildError::Context { .. }),
                "{context}: {refused}"
            );
        }
        let link_error = hash(path, &build("linked")).unwrap_err().to_string();
        assert!(link_error.contains("symbolic link"), "{link_error}");

        // A Dockerfile that is a link is not read either.
        std::fs::remove_file(path.join("ctx/Dockerfile")).unwrap();
        symlink("/etc/passwd", path.join("ctx/Dockerfile")).unwrap();
        assert!(matches!(
            hash(path, &build("ctx")).unwrap_err(),
            SidecarBuildError::Invalid { .. }
        ));
        let mut escaping = build("ctx");
        escaping.dockerfile = Some("../Dockerfile".into());
        assert!(hash(path, &escaping).is_err());
    }

    #[test]
    fn dockerignore_patterns_match_as_docker_s() {
        let ignore = Ignore::parse(
            "# comment\n\n*.log\n/build\n**/tmp\ndocs/**\n!docs/keep.md\nsrc/*/gen?.rs\n  spaced  \n",
        );
        let excluded = |path: &str| ignore.excludes(path.as_bytes());
        assert!(excluded("a.log"));
        assert!(!excluded("dir/a.log"), "`*` stays in one component");
        assert!(excluded("build"));
        assert!(excluded("build/x/y.o"), "a directory's contents go with it");
        assert!(!excluded("src/build"));
        assert!(excluded("tmp"));
        assert!(excluded("a/b/tmp/c"));
        assert!(excluded("docs/guide.md"));
        assert!(!excluded("docs/keep.md"), "an exception re-includes");
        assert!(excluded("src/x/gen1.rs"));
        assert!(!excluded("src/x/gen12.rs"));
        assert!(!excluded("src/x/y/gen1.rs"));
        assert!(excluded("spaced"));
        assert!(!excluded("# comment"));
        assert!(!excluded("Dockerfile"));
        assert!(ignore.has_exceptions);

        let last_wins = Ignore::parse("*\n!app\napp/secret\n");
        assert!(last_wins.excludes(b"other"));
        assert!(!last_wins.excludes(b"app"));
        assert!(!last_wins.excludes(b"app/main.py"));
        assert!(last_wins.excludes(b"app/secret"));
        assert!(last_wins.excludes(b"app/secret/x"));

        let nothing = Ignore::parse("../outside\n.\n");
        assert!(nothing.patterns.is_empty());
        let everything = Ignore::parse("**\n");
        assert!(everything.excludes(b"a/b/c"));
    }

    #[test]
    fn a_pattern_of_many_stars_stays_fast() {
        let pattern = tokens(&"*a".repeat(200));
        let path = "a".repeat(199) + "b";
        let started = Instant::now();
        assert!(!matches(&pattern, path.as_bytes()));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn an_ignored_directory_is_not_walked_unless_an_exception_may_reach_into_it() {
        let clone = clone();
        let path = clone.path();
        std::fs::write(path.join("ctx/.dockerignore"), "src\n").unwrap();
        let without_src = hash(path, &build("ctx")).unwrap();
        std::fs::write(path.join("ctx/src/main.c"), "changed").unwrap();
        assert_eq!(without_src, hash(path, &build("ctx")).unwrap());
        std::fs::write(path.join("ctx/.dockerignore"), "src\n!src/main.c\n").unwrap();
        let with_main = hash(path, &build("ctx")).unwrap();
        std::fs::write(path.join("ctx/src/main.c"), "changed again").unwrap();
        assert_ne!(with_main, hash(path, &build("ctx")).unwrap());
        // The Dockerfile is part of the context even when ignored.
        std::fs::write(path.join("ctx/.dockerignore"), "*\n").unwrap();
        let ignored = hash(path, &build("ctx")).unwrap();
        std::fs::write(path.join("ctx/Dockerfile"), "FROM y\n").unwrap();
        assert_ne!(ignored, hash(path, &build("ctx")).unwrap());
    }

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

    #[test]
    fn a_context_over_the_limit_is_refused_naming_its_size() {
        let clone = clone();
        let mut walk_error = None;
        let ctx = build("ctx");
        let context = Context::new(clone.path(), "echo", &ctx).unwrap();
        let mut walk = Walk {
            ignore: &context.ignore,
            keep: Vec::new(),
            hasher: Sha256::new(),
            files: MAX_CONTEXT_FILES - 1,
            bytes: 0,
            visited: 0,
            copy_to: None,
            directories: Vec::new(),
        };
        if let Err(error) = walk.run(open_context(clone.path(), Path::new("ctx")).unwrap()) {
            walk_error = Some(error);
        }
        assert!(matches!(walk_error, Some(WalkError::TooLarge)));
        let error = SidecarBuildError::TooLarge {
            sidecar: "echo".into(),
            context: "ctx".into(),
            files: MAX_CONTEXT_FILES + 1,
            bytes: 3 << 20,
        };
        let text = error.to_string();
        assert!(text.contains("`ctx`") && text.contains("3 MiB"), "{text}");
        assert!(error.hint().unwrap().contains(".dockerignore"));
    }
}
