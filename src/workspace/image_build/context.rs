//! A build context, read inside its clone without following a link,
//! hashed (and copied for the engine): see the parent module's doc.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::budget::{Budget, MAX_MATCH_STEPS};
use super::dockerfile::{self, Source, Uses};
use super::ignore::Ignore;
use super::selection::{self, Reach};
use super::{ImageBuildError, MAX_CONTEXT_BYTES, MAX_CONTEXT_FILES, Owner};
use crate::workspace::sidecars::Build;

/// Entries looked at, ignored ones included (a `.dockerignore` exception
/// makes dual look inside an ignored directory).
const MAX_VISITED: u64 = 10 * MAX_CONTEXT_FILES;
const MAX_DEPTH: usize = 128;
const MAX_IGNORE_BYTES: u64 = 256 * 1024;
const MAX_DOCKERFILE_BYTES: u64 = 1024 * 1024;
/// Changes whenever what is hashed, or how, changes: for a whole context
/// (the Dockerfile's `.dockerignore` included)…
const HASH_FORMAT: &[u8] = b"dual sidecar build context 1";
/// …and for the files a Dockerfile's `COPY` and `ADD` take.
const HASH_FORMAT_USED: &[u8] = b"dual build: the files a Dockerfile uses 1";

/// A build context inside its clone, checked, with what its Dockerfile
/// takes from it.
pub(super) struct Context<'a> {
    clone: &'a Path,
    of: &'a Owner,
    /// Relative to the clone.
    relative: PathBuf,
    shown: String,
    /// Relative to the context.
    pub(super) dockerfile: PathBuf,
    /// Its bytes, as analysed: the copy the engine builds from must hold
    /// the same.
    pub(super) dockerfile_bytes: Vec<u8>,
    /// Its path relative to the clone, for messages.
    dockerfile_shown: String,
    ignore: Ignore,
    build: &'a Build,
    pub(super) uses: Uses,
    /// The images its stages start from (see `dockerfile::Analysis`).
    pub(super) bases: Vec<String>,
}

/// What a walk of a context found.
pub(super) struct Digested {
    pub(super) hash: String,
    pub(super) files: u64,
    pub(super) bytes: u64,
}

impl<'a> Context<'a> {
    pub(super) fn new(
        clone: &'a Path,
        of: &'a Owner,
        build: &'a Build,
    ) -> Result<Self, ImageBuildError> {
        let shown = build.context.clone();
        let refused = |why: String| ImageBuildError::Context {
            of: of.clone(),
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
        let invalid = |why: String| ImageBuildError::Invalid {
            of: of.clone(),
            why,
        };
        for (arg, value) in &build.args {
            crate::workspace::sidecars::check_env("build.args", arg, value).map_err(invalid)?;
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
        // As the user would name it, relative to the clone (no `./`).
        let dockerfile_path: PathBuf = relative
            .join(&dockerfile)
            .components()
            .filter(|part| *part != Component::CurDir)
            .collect();
        let (dockerfile_bytes, _) =
            crate::confined::read(clone, &dockerfile_path, MAX_DOCKERFILE_BYTES).map_err(
                |error| {
                    invalid(format!(
                        "its Dockerfile `{}`: {error}",
                        dockerfile_path.display()
                    ))
                },
            )?;
        let analysis = dockerfile::analyse(&String::from_utf8_lossy(&dockerfile_bytes)).map_err(
            |outside| ImageBuildError::Source {
                of: of.clone(),
                dockerfile: dockerfile_path.display().to_string(),
                line: outside.line,
                instruction: outside.instruction,
                path: outside.path,
                why: "leaves the build context",
            },
        )?;
        let ignore_path = relative.join(".dockerignore");
        let ignore = match crate::confined::read_text(clone, &ignore_path, MAX_IGNORE_BYTES) {
            Ok(text) => Ignore::parse(&text),
            Err(error) if error.is_not_found() => Ignore::default(),
            Err(error) => return Err(invalid(error.to_string())),
        };
        Ok(Context {
            clone,
            of,
            relative,
            shown,
            dockerfile,
            dockerfile_bytes,
            dockerfile_shown: dockerfile_path.display().to_string(),
            ignore,
            build,
            uses: analysis.uses,
            bases: analysis.bases,
        })
    }

    /// From now on the whole context counts (`why`): something the
    /// Dockerfile's text does not show takes from it.
    pub(super) fn use_everything(&mut self, why: String) {
        self.uses = Uses::Everything(why);
    }

    /// Hashes the context (and copies it into `copy_to`, when given): all
    /// of it, or only what the Dockerfile takes.
    pub(super) fn digest(&self, copy_to: Option<&Path>) -> Result<Digested, ImageBuildError> {
        self.digest_within(copy_to, Budget::new(MAX_MATCH_STEPS))
    }

    /// `digest`, matching paths with the work `budget` gives.
    fn digest_within(
        &self,
        copy_to: Option<&Path>,
        budget: Budget,
    ) -> Result<Digested, ImageBuildError> {
        let root =
            open_context(self.clone, &self.relative).map_err(|why| ImageBuildError::Context {
                of: self.of.clone(),
                context: self.shown.clone(),
                why: why.to_owned(),
            })?;
        let (sources, keep, format) = match &self.uses {
            Uses::Everything(_) => (
                None,
                vec![self.dockerfile.clone(), PathBuf::from(".dockerignore")],
                HASH_FORMAT,
            ),
            // What the engine gets holds the chosen files alone: it has
            // nothing left for `.dockerignore` to leave out.
            Uses::Sources(sources) => (
                Some(sources.as_slice()),
                vec![self.dockerfile.clone()],
                HASH_FORMAT_USED,
            ),
        };
        // The clone's own `.git` differs from clone to clone and changes
        // with every git command: never part of the context.
        let at_root = !self
            .relative
            .components()
            .any(|part| matches!(part, Component::Normal(_)));
        let mut walk = Walk {
            ignore: &self.ignore,
            sources,
            skip_git: at_root,
            keep,
            hasher: Sha256::new(),
            files: 0,
            bytes: 0,
            visited: 0,
            copy_to,
            directories: Vec::new(),
            budget,
        };
        put(&mut walk.hasher, format);
        walk.run(root).map_err(|error| match error {
            WalkError::TooLarge => ImageBuildError::TooLarge {
                of: self.of.clone(),
                context: self.shown.clone(),
                files: walk.files,
                bytes: walk.bytes,
            },
            WalkError::TooDeep(path) => ImageBuildError::Context {
                of: self.of.clone(),
                context: self.shown.clone(),
                why: format!(
                    "is nested deeper than {MAX_DEPTH} directories (at `{}`)",
                    path.display()
                ),
            },
            WalkError::Link(source) => ImageBuildError::Source {
                of: self.of.clone(),
                dockerfile: self.dockerfile_shown.clone(),
                line: source.line,
                instruction: source.instruction.clone(),
                path: source.written.clone(),
                why: "is (or passes through) a symbolic link",
            },
            WalkError::Io(path, source) => ImageBuildError::Read {
                of: self.of.clone(),
                path: self.clone.join(&self.relative).join(path),
                source,
            },
            WalkError::TooCostly => ImageBuildError::TooCostly {
                of: self.of.clone(),
                context: self.shown.clone(),
                patterns: self.ignore.len(),
                sources: sources.map_or(0, <[Source]>::len),
            },
            WalkError::Interrupted => ImageBuildError::Interrupted {
                of: self.of.clone(),
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
    /// A link that a source names or passes through.
    Link(Source),
    Io(PathBuf, std::io::Error),
    /// Matching its paths took more than `MAX_MATCH_STEPS`.
    TooCostly,
    /// The user asked dual to stop.
    Interrupted,
}

struct Walk<'a> {
    ignore: &'a Ignore,
    /// What the Dockerfile takes (`None`: everything).
    sources: Option<&'a [Source]>,
    /// Leave out `.git` at the context's root (the clone's).
    skip_git: bool,
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
    /// The matching work left: `.dockerignore` and the sources are the
    /// repo's (see `budget`).
    budget: Budget,
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
            if self.skip_git && depth == 1 && name == ".git" {
                continue;
            }
            let io = |error: Errno| WalkError::Io(path.clone(), error.into());
            self.visited += 1;
            if self.visited > MAX_VISITED {
                return Err(WalkError::TooLarge);
            }
            // A large context takes a while: Ctrl-C ends it.
            if crate::interrupt::requested() {
                return Err(WalkError::Interrupted);
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
            let bytes = path.as_os_str().as_bytes();
            let too_costly = |_| WalkError::TooCostly;
            let excluded = !kept
                && self
                    .ignore
                    .excludes(bytes, &mut self.budget)
                    .map_err(too_costly)?;
            let reach = match self.sources {
                None => Reach::Taken {
                    named: false,
                    source: 0,
                },
                Some(sources) => {
                    selection::reach(sources, bytes, &mut self.budget).map_err(too_costly)?
                }
            };
            let taken = kept || matches!(reach, Reach::Taken { .. });
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => {
                    let below = self.keep.iter().any(|k| k.starts_with(&path));
                    if excluded && !self.ignore.has_exceptions && !below {
                        continue;
                    }
                    if reach == Reach::Outside && !below {
                        continue;
                    }
                    if depth > MAX_DEPTH {
                        return Err(WalkError::TooDeep(path));
                    }
                    let flags =
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    let dir = rustix::fs::openat(&top.dir, name.as_os_str(), flags, Mode::empty())
                        .map_err(io)?;
                    if !excluded && taken {
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
                FileType::RegularFile if !excluded && taken => {
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
                // The Dockerfile and `.dockerignore` were read as files;
                // one made a link since would be followed by the engine.
                FileType::Symlink if kept => {
                    return Err(WalkError::Io(
                        path.clone(),
                        std::io::Error::other(
                            "it is a symbolic link now; dual does not follow links",
                        ),
                    ));
                }
                FileType::Symlink if !excluded && reach != Reach::Outside => {
                    // A link the Dockerfile names (or must go through) would
                    // be followed by the engine: refused, never read.
                    if let (
                        Some(sources),
                        Reach::Taken {
                            named: true,
                            source,
                        }
                        | Reach::Toward { source },
                    ) = (self.sources, reach)
                    {
                        return Err(WalkError::Link(sources[source].clone()));
                    }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::error::Hint as _;

    fn build(context: &str) -> Build {
        Build {
            context: context.into(),
            dockerfile: None,
            args: BTreeMap::new(),
            target: None,
        }
    }

    /// A clone holding `ctx/Dockerfile` (which copies all of `ctx`),
    /// `ctx/app.txt` and `ctx/src/main.c`.
    fn clone() -> tempfile::TempDir {
        let clone = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(clone.path().join("ctx/src")).unwrap();
        std::fs::write(clone.path().join("ctx/Dockerfile"), "FROM x\nCOPY . /app\n").unwrap();
        std::fs::write(clone.path().join("ctx/app.txt"), "app\n").unwrap();
        std::fs::write(clone.path().join("ctx/src/main.c"), "int main;\n").unwrap();
        clone
    }

    const ECHO: Owner = Owner::Workspace;

    fn hash(clone: &Path, build: &Build) -> Result<String, ImageBuildError> {
        Ok(Context::new(clone, &ECHO, build)?.digest(None)?.hash)
    }

    /// The files (and links) of a copy, relative to it, sorted.
    fn files_of(copy: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut dirs = vec![copy.to_owned()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else {
                    let path = entry.path();
                    found.push(path.strip_prefix(copy).unwrap().display().to_string());
                }
            }
        }
        found.sort();
        found
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
        let context = Context::new(path, &ECHO, &ctx).unwrap();
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
                matches!(refused, ImageBuildError::Context { .. }),
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
            ImageBuildError::Invalid { .. }
        ));
        let mut escaping = build("ctx");
        escaping.dockerfile = Some("../Dockerfile".into());
        assert!(hash(path, &escaping).is_err());
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
    fn only_the_files_the_dockerfile_copies_count() {
        let clone = clone();
        let path = clone.path();
        std::fs::write(
            path.join("ctx/Dockerfile"),
            "FROM x\nCOPY app.txt /app/\nCOPY src/ /src\nRUN make\n",
        )
        .unwrap();
        std::fs::write(path.join("ctx/unused.txt"), "one").unwrap();
        std::fs::create_dir_all(path.join("ctx/docs")).unwrap();
        std::fs::write(path.join("ctx/docs/guide.md"), "one").unwrap();
        let ctx = build("ctx");
        let context = Context::new(path, &ECHO, &ctx).unwrap();
        assert!(matches!(context.uses, Uses::Sources(_)));
        let first = hash(path, &ctx).unwrap();

        std::fs::write(path.join("ctx/unused.txt"), "two").unwrap();
        std::fs::write(path.join("ctx/docs/guide.md"), "two").unwrap();
        std::fs::write(path.join("ctx/new-file"), "x").unwrap();
        std::fs::write(path.join("ctx/.dockerignore"), "src/*.o\n").unwrap();
        std::fs::write(path.join("ctx/src/main.o"), "obj").unwrap();
        assert_eq!(first, hash(path, &ctx).unwrap(), "files it does not copy");

        std::fs::write(path.join("ctx/app.txt"), "app 2\n").unwrap();
        let second = hash(path, &ctx).unwrap();
        assert_ne!(first, second, "a file it copies");
        std::fs::write(path.join("ctx/src/extra.c"), "int x;\n").unwrap();
        let third = hash(path, &ctx).unwrap();
        assert_ne!(second, third, "a new file in a directory it copies");
        std::fs::write(
            path.join("ctx/Dockerfile"),
            "FROM x\nCOPY app.txt /app/\nCOPY src/ /src\nRUN make all\n",
        )
        .unwrap();
        assert_ne!(third, hash(path, &ctx).unwrap(), "the Dockerfile itself");

        // The copy the engine builds from holds those files alone.
        let copy = tempfile::tempdir().unwrap();
        let context = Context::new(path, &ECHO, &ctx).unwrap();
        let copied = context.digest(Some(copy.path())).unwrap();
        assert_eq!(copied.hash, hash(path, &ctx).unwrap());
        assert_eq!(
            files_of(copy.path()),
            ["Dockerfile", "app.txt", "src/extra.c", "src/main.c"]
        );
    }

    #[test]
    fn a_pattern_takes_the_files_it_matches() {
        let clone = clone();
        let path = clone.path();
        std::fs::write(
            path.join("ctx/Dockerfile"),
            "FROM x\nCOPY src/*.c *.txt /app/\n",
        )
        .unwrap();
        std::fs::write(path.join("ctx/src/main.h"), "h").unwrap();
        let copy = tempfile::tempdir().unwrap();
        let ctx = build("ctx");
        let context = Context::new(path, &ECHO, &ctx).unwrap();
        context.digest(Some(copy.path())).unwrap();
        assert_eq!(
            files_of(copy.path()),
            ["Dockerfile", "app.txt", "src/main.c"]
        );
    }

    #[test]
    fn a_source_that_is_or_passes_through_a_link_is_refused() {
        let clone = clone();
        let path = clone.path();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        symlink(outside.path(), path.join("ctx/linked")).unwrap();
        symlink("/etc/passwd", path.join("ctx/passwd")).unwrap();
        symlink("/etc/passwd", path.join("ctx/src/inner")).unwrap();
        let ctx = build("ctx");
        for (dockerfile, source) in [
            ("FROM x\nCOPY linked/secret /s\n", "linked/secret"),
            ("FROM x\nCOPY passwd /p\n", "passwd"),
            ("FROM x\nCOPY pass* /p\n", "pass*"),
            ("FROM x\nADD [\"src/inner\", \"/i\"]\n", "src/inner"),
        ] {
            std::fs::write(path.join("ctx/Dockerfile"), dockerfile).unwrap();
            let refused = hash(path, &ctx).unwrap_err();
            let text = refused.to_string();
            assert!(
                matches!(refused, ImageBuildError::Source { .. })
                    && text.contains("symbolic link")
                    && text.contains(&format!("`{source}`"))
                    && text.contains("line 2"),
                "{dockerfile}: {text}"
            );
        }
        // A link below a directory it copies stays a link, never followed.
        std::fs::write(path.join("ctx/Dockerfile"), "FROM x\nCOPY src /src\n").unwrap();
        let copy = tempfile::tempdir().unwrap();
        Context::new(path, &ECHO, &ctx)
            .unwrap()
            .digest(Some(copy.path()))
            .unwrap();
        assert_eq!(
            std::fs::read_link(copy.path().join("src/inner")).unwrap(),
            Path::new("/etc/passwd")
        );
        // A link the .dockerignore leaves out is nothing to the build.
        std::fs::write(path.join("ctx/.dockerignore"), "passwd\n").unwrap();
        std::fs::write(
            path.join("ctx/Dockerfile"),
            "FROM x\nCOPY pass* app.txt /p/\n",
        )
        .unwrap();
        hash(path, &ctx).unwrap();
    }

    #[test]
    fn a_source_outside_the_context_is_refused_naming_its_line() {
        let clone = clone();
        let path = clone.path();
        std::fs::write(
            path.join("ctx/Dockerfile"),
            "FROM x\nCOPY app.txt /a\nCOPY ../../etc/passwd /p\n",
        )
        .unwrap();
        let refused = hash(path, &build("ctx")).unwrap_err();
        let text = refused.to_string();
        assert!(
            text.contains("line 3 of `ctx/Dockerfile`")
                && text.contains("`../../etc/passwd` leaves the build context"),
            "{text}"
        );
        assert!(
            crate::error::Hint::hint(&refused)
                .unwrap()
                .contains("context")
        );
    }

    #[test]
    fn a_dockerfile_that_cannot_be_followed_counts_the_whole_context() {
        let clone = clone();
        let path = clone.path();
        std::fs::write(
            path.join("ctx/Dockerfile"),
            "FROM x\nARG F=app.txt\nCOPY $F /a\n",
        )
        .unwrap();
        let ctx = build("ctx");
        let context = Context::new(path, &ECHO, &ctx).unwrap();
        assert!(matches!(&context.uses, Uses::Everything(why) if why.contains("variable")));
        let first = hash(path, &ctx).unwrap();
        std::fs::write(path.join("ctx/src/main.c"), "changed").unwrap();
        assert_ne!(first, hash(path, &ctx).unwrap());
    }

    #[test]
    fn the_clone_s_git_directory_is_not_part_of_the_context() {
        let clone = clone();
        let path = clone.path();
        std::fs::write(path.join("Dockerfile"), "FROM x\nCOPY . /app\n").unwrap();
        std::fs::create_dir_all(path.join(".git/refs")).unwrap();
        std::fs::write(path.join(".git/index"), "one").unwrap();
        let root = build(".");
        let first = hash(path, &root).unwrap();
        std::fs::write(path.join(".git/index"), "two").unwrap();
        std::fs::write(path.join(".git/refs/x"), "new").unwrap();
        assert_eq!(first, hash(path, &root).unwrap());
        let copy = tempfile::tempdir().unwrap();
        Context::new(path, &ECHO, &root)
            .unwrap()
            .digest(Some(copy.path()))
            .unwrap();
        assert!(!copy.path().join(".git").exists());
        assert!(copy.path().join("ctx/app.txt").exists());
        // Below the root, a `.git` is the context's own content.
        std::fs::create_dir_all(path.join("ctx/.git")).unwrap();
        let ctx = build("ctx");
        let before = hash(path, &ctx).unwrap();
        std::fs::write(path.join("ctx/.git/HEAD"), "ref").unwrap();
        assert_ne!(before, hash(path, &ctx).unwrap());
    }

    #[test]
    fn a_context_over_the_limit_is_refused_naming_its_size() {
        let clone = clone();
        let ctx = build("ctx");
        let context = Context::new(clone.path(), &ECHO, &ctx).unwrap();
        let mut walk = Walk {
            ignore: &context.ignore,
            sources: None,
            skip_git: false,
            keep: Vec::new(),
            hasher: Sha256::new(),
            files: MAX_CONTEXT_FILES - 1,
            bytes: 0,
            visited: 0,
            copy_to: None,
            directories: Vec::new(),
            budget: Budget::new(MAX_MATCH_STEPS),
        };
        let root = open_context(clone.path(), Path::new("ctx")).unwrap();
        assert!(matches!(walk.run(root), Err(WalkError::TooLarge)));
        let error = ImageBuildError::TooLarge {
            of: Owner::Sidecar("echo".into()),
            context: "ctx".into(),
            files: MAX_CONTEXT_FILES + 1,
            bytes: 3 << 20,
        };
        let text = error.to_string();
        assert!(text.contains("`ctx`") && text.contains("3 MiB"), "{text}");
        assert!(error.hint().unwrap().contains(".dockerignore"));
    }

    /// A hostile `.dockerignore`: thousands of patterns of many `*`, each
    /// matching all of a path but its first byte (so every row of the
    /// table is filled), over a context of many files.
    fn costly_clone(patterns: usize, files: usize) -> tempfile::TempDir {
        let clone = tempfile::tempdir().unwrap();
        let ctx = clone.path().join("ctx");
        std::fs::create_dir_all(ctx.join("d")).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM x\nCOPY . /app\n").unwrap();
        let mut ignore = String::from("!keep\n");
        for _ in 0..patterns {
            ignore.push_str("q*a*a*a*a*a*a*a*a*a*a*a*a\n");
        }
        std::fs::write(ctx.join(".dockerignore"), ignore).unwrap();
        for i in 0..files {
            let name = format!("{i:05}{}", "a".repeat(60));
            std::fs::write(ctx.join("d").join(name), "x").unwrap();
        }
        clone
    }

    #[test]
    fn a_dockerignore_that_costs_too_much_is_refused_in_bounded_time() {
        let clone = costly_clone(2000, 200);
        let build = build("ctx");
        let context = Context::new(clone.path(), &ECHO, &build).unwrap();
        let started = std::time::Instant::now();
        let refused = context
            .digest_within(None, Budget::new(50_000_000))
            .map(|digested| digested.hash)
            .unwrap_err();
        assert!(
            matches!(refused, ImageBuildError::TooCostly { patterns: 2001, .. }),
            "{refused}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        let text = refused.to_string();
        assert!(text.contains("`.dockerignore` (2001 patterns)"), "{text}");
        assert!(refused.hint().unwrap().contains("shorten"), "{text}");
    }

    #[test]
    fn an_ordinary_dockerignore_over_a_large_context_costs_little_of_the_bound() {
        let clone = tempfile::tempdir().unwrap();
        let ctx = clone.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM x\nCOPY . /app\n").unwrap();
        std::fs::write(
            ctx.join(".dockerignore"),
            "# the usual\n.git\nnode_modules\n**/__pycache__\n*.pyc\n*.log\n.env*\n!.env.example\n\
             dist/\nbuild/\ncoverage/\n**/*.tmp\ndocs/**/*.md\n!docs/README.md\n.venv\ntarget\n",
        )
        .unwrap();
        for dir in 0..20 {
            let dir = ctx.join(format!("src/module{dir}/sub"));
            std::fs::create_dir_all(&dir).unwrap();
            for file in 0..50 {
                std::fs::write(dir.join(format!("file_{file}.py")), "x").unwrap();
            }
        }
        let build = build("ctx");
        let context = Context::new(clone.path(), &ECHO, &build).unwrap();
        // 1,000 files, a hundredth of the largest context dual builds: a
        // tenth of a hundredth of the bound is plenty.
        let budget = MAX_MATCH_STEPS / 100 / 10;
        let digested = context.digest_within(None, Budget::new(budget)).unwrap();
        assert_eq!(
            digested.files,
            1000 + 20 * 2 + 3,
            "files, directories, the two kept"
        );
    }

    #[test]
    fn a_dockerfile_or_dockerignore_made_a_link_after_it_was_read_is_refused() {
        for (name, dockerfile) in [
            (".dockerignore", "FROM x\nCOPY . /app\n"),
            ("Dockerfile", "FROM x\nCOPY app.txt /app\n"),
        ] {
            let clone = clone();
            let path = clone.path();
            std::fs::write(path.join("ctx/Dockerfile"), dockerfile).unwrap();
            std::fs::write(path.join("ctx/.dockerignore"), "*.log\n").unwrap();
            let secret = path.join("secret");
            std::fs::write(&secret, "the user's secret\n").unwrap();
            let ctx = build("ctx");
            let context = Context::new(path, &ECHO, &ctx).unwrap();
            // The workspace's container swaps it for a link meanwhile.
            std::fs::remove_file(path.join("ctx").join(name)).unwrap();
            symlink(&secret, path.join("ctx").join(name)).unwrap();
            let copy = tempfile::tempdir().unwrap();
            let refused = context
                .digest(Some(copy.path()))
                .map(|digested| digested.hash)
                .unwrap_err();
            assert!(
                matches!(refused, ImageBuildError::Read { .. }),
                "{name}: {refused}"
            );
            assert!(
                !copy.path().join(name).exists(),
                "{name}: nothing in the copy leads to the secret"
            );
        }
    }
}
