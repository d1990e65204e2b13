//! Images built from a repo's Dockerfile: a workspace's own (`build` in
//! `.dual.toml` or devcontainer.json) and a sidecar's (a compose service's
//! `build:`). Each is built with the engine's `build`, once per content of
//! what its Dockerfile uses, and shared by the repo's workspaces.
//!
//! The context (relative to the clone's root) is read the way `confined`
//! reads a clone: one component at a time, never through a symbolic link.
//! A context that is, or passes through, a link, or that leaves the clone,
//! is refused; a link inside it is part of its content as a link (its
//! target's text), never followed, so a link to `/etc/passwd` is neither an
//! error nor a read of the host's file. FIFOs, sockets and devices are left
//! out, and so is the clone's own `.git` (a context at the clone's root):
//! it differs from clone to clone and changes with every git command, so
//! no two workspaces would share an image, and a `git status` would rebuild
//! one.
//!
//! Only what the Dockerfile uses counts: its `COPY` and `ADD` sources are
//! read from its text (`dockerfile`), and only the files they name (after
//! `.dockerignore`) are hashed and handed to the engine, with the
//! Dockerfile itself; a change to any other file rebuilds nothing. A source
//! that leaves the context, or that is (or passes through) a link, is
//! refused, naming its line. A Dockerfile the reading cannot follow for
//! certain (a heredoc, a source named through a `$VARIABLE`, a `RUN
//! --mount` of the context, an unknown `# syntax=` frontend, …), or a base
//! image the engine has whose `ONBUILD` triggers may copy anything, makes
//! the whole context count, as the progress line says. (A base image the
//! engine does not have yet, or one named through a variable, is taken to
//! have no `ONBUILD` triggers: they are rare, and long deprecated.)
//!
//! What is hashed (SHA-256, with the Dockerfile's path, the `target` and
//! the `args`, sorted) names the image: `dual-workspace/{repo}:{16 hex}`
//! for a workspace, `dual-build/{repo}-{sidecar}:{16 hex}` for a sidecar
//! (apart, so that repo `a-b`'s image is never sidecar `b` of repo `a`).
//! Workspaces of one repo whose files hold the same content share that
//! image; when the engine has it, nothing is built. Builds of one image
//! name run one at a time (a lock in dual's data directory): three
//! launches at once build once, and the others wait and reuse it.
//!
//! Otherwise what counts is copied, as it is hashed, into a directory of
//! dual's own (under its data directory), and the engine builds from that
//! copy: what is built is exactly what was hashed, and the engine never
//! reads the clone, which the workspace's container can change under it.
//! A context over `MAX_CONTEXT_BYTES` or `MAX_CONTEXT_FILES` is refused,
//! naming its size. A failed build names its step and shows the engine's
//! last lines; nothing is tagged, and the workspace stays as it was.
//!
//! The network. A sidecar's build runs with `--network=none`: a compose
//! service's image is expected to be a small one, and nothing its
//! Dockerfile says is fetched behind the user's back. A workspace's build
//! gets the engine's default network, because the Dockerfile of a repo as
//! it is installs its toolchain (`apt-get`, `pip install`, …) and would
//! fail without it, and because it gives a `RUN` step nothing the
//! workspace's own container (which has the network, and runs the repo's
//! `setup`) does not have already. Behind a TLS-inspecting proxy such a
//! step does not trust the proxy's CA: neither engine can hand the host's
//! CA bundle to a `RUN` step without a change to the Dockerfile (docker's
//! build args reach a step only where the Dockerfile declares them, a
//! build secret only where a step mounts it, and `podman build --volume`
//! could mount the bundle but set no variable pointing at it), so a step
//! that fails on a certificate gets a hint saying so and what to do.
//!
//! `.dockerignore` in the context's root is honoured as docker reads it:
//! comments, blank lines, `*` and `?` within a path component, `**` across
//! components, `!` exceptions (the last matching line wins), a leading `/`,
//! and a pattern that names a directory excluding everything below it; the
//! Dockerfile (and for a whole context `.dockerignore`) is always part of
//! the context. Not supported: character classes (`[a-z]`, matched as
//! written), `.containerignore` and BuildKit's `Dockerfile.dockerignore`
//! (the engine applies them to the copy itself, after dual hashed), and a
//! `.dockerignore` that is a link (refused).
//!
//! After a new image is built, older images of the same name are removed
//! when no container uses them (the engine refuses those) and they were
//! built more than `STALE_AFTER` ago (another workspace may be about to
//! run one it just built): best effort, so disk does not fill up with every
//! version of a Dockerfile; a failure to remove one is ignored.

mod budget;
mod context;
mod dockerfile;
mod error;
mod ignore;
mod selection;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use self::context::{Context, Digested};
use self::dockerfile::Uses;
pub use self::error::ImageBuildError;
use super::Workspace;
use super::sidecars::Build;
use crate::engine::build::{BUILD_LIMIT, BuildError, BuildSpec};
use crate::engine::labels::{KIND, MANAGED, SIDECAR};
use crate::engine::{Engine, EngineError, Labels};
use crate::files::{Lock, LockError};

/// The most a context may hold, in bytes of its files.
pub const MAX_CONTEXT_BYTES: u64 = 512 * 1024 * 1024;
/// The most a context may hold, in files, directories and links.
pub const MAX_CONTEXT_FILES: u64 = 100_000;
/// An older build younger than this is kept: another workspace may have
/// built it a moment ago and not made its container yet.
const STALE_AFTER: Duration = Duration::from_secs(10 * 60);
/// How often a launch waiting for another's build of the same image looks.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// `dual.kind` of an image built for a sidecar.
pub const KIND_SIDECAR_BUILD: &str = "sidecar-build";
/// `dual.kind` of an image built for a repo's workspaces.
pub const KIND_WORKSPACE_BUILD: &str = "workspace-build";
/// The repo label's key (`labels::REPO`, private there; a test keeps the
/// two the same).
const REPO_LABEL: &str = "dual.repo";
/// When it was built, in seconds since the epoch.
const BUILT_LABEL: &str = "dual.built";

/// What an image is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The workspaces of a repo (`build` in its config).
    Workspace,
    /// A sidecar, by name.
    Sidecar(String),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Workspace => write!(f, "workspace image"),
            Owner::Sidecar(name) => write!(f, "sidecar `{name}`"),
        }
    }
}

impl Owner {
    fn kind_label(&self) -> &'static str {
        match self {
            Owner::Workspace => KIND_WORKSPACE_BUILD,
            Owner::Sidecar(_) => KIND_SIDECAR_BUILD,
        }
    }

    /// Whether its build's `RUN` steps reach the network: see the module's
    /// doc.
    fn network(&self) -> bool {
        matches!(self, Owner::Workspace)
    }

    /// The image's name, without a tag.
    fn image_base(&self, repo: &str) -> String {
        match self {
            Owner::Workspace => format!("dual-workspace/{repo}"),
            Owner::Sidecar(name) => image_base(repo, name),
        }
    }
}

/// The image `of` runs in `workspace`, from its `build`: the tag of the
/// content of what its Dockerfile uses, built now unless the engine has
/// it. `terminal`: the engine's own output may be shown as it builds.
pub fn prepare(
    engine: &Engine,
    workspace: &Workspace,
    of: &Owner,
    build: &Build,
    progress: &dyn Fn(String),
    terminal: bool,
) -> Result<String, ImageBuildError> {
    let mut context = Context::new(&workspace.path, of, build)?;
    if matches!(context.uses, Uses::Sources(_))
        && let Some(why) = onbuild_reason(&context.bases, |base| {
            matches!(engine.image_has_onbuild(base), Ok(Some(true)))
        })
    {
        context.use_everything(why);
    }
    let base = of.image_base(&workspace.repo);
    let tag_of = |digest: &Digested| {
        let tag = format!("{base}:{}", &digest.hash[..16]);
        super::config::check_image_reference(&tag)
            .map(|()| tag.clone())
            .map_err(|why| ImageBuildError::Invalid {
                of: of.clone(),
                why: format!("`{tag}` is not an image name ({why})"),
            })
    };
    let engine_error = |image: &str, source: EngineError| ImageBuildError::Engine {
        of: of.clone(),
        image: image.to_owned(),
        kind: engine.kind(),
        source: Box::new(source),
    };
    let has = |tag: &str| {
        engine
            .image_id(tag)
            .map(|id| id.is_some())
            .map_err(|error| engine_error(tag, error))
    };
    let reused = |tag: &str| {
        progress(format!(
            "{of}: image `{tag}` is built already (same context), reused"
        ));
    };
    let hashed = context.digest(None)?;
    let tag = tag_of(&hashed)?;
    if has(&tag)? {
        reused(&tag);
        return Ok(tag);
    }
    let builds = crate::paths::data_dir().join("builds");
    let _building = wait_for_lock(engine, of, &builds, &base, &tag, progress)?;
    // Another launch may have built it while this one waited.
    if has(&tag)? {
        reused(&tag);
        return Ok(tag);
    }
    // Built from a copy made as it is hashed again: the engine builds
    // exactly what the tag says, never the clone itself.
    let copy_error = |source: std::io::Error| ImageBuildError::Read {
        of: of.clone(),
        path: builds.clone(),
        source,
    };
    std::fs::create_dir_all(&builds).map_err(copy_error)?;
    let copy = tempfile::Builder::new()
        .prefix(match of {
            Owner::Workspace => "workspace-",
            Owner::Sidecar(_) => "sidecar-",
        })
        .tempdir_in(&builds)
        .map_err(copy_error)?;
    let copied = context.digest(Some(copy.path()))?;
    check_same_dockerfile(&context, copy.path(), of)?;
    let tag = tag_of(&copied)?;
    if copied.hash != hashed.hash && has(&tag)? {
        reused(&tag);
        return Ok(tag);
    }
    progress(format!(
        "{of}: building `{tag}` from `{}` with {} ({} file{}, {:.1} MiB: {}; {})",
        build.context,
        engine.kind(),
        copied.files,
        if copied.files == 1 { "" } else { "s" },
        copied.bytes as f64 / f64::from(1 << 20),
        match &context.uses {
            Uses::Sources(_) => "what its Dockerfile uses".to_owned(),
            Uses::Everything(why) => format!("the whole context, as {}", error::shown(why)),
        },
        if of.network() {
            "with network"
        } else {
            "no network"
        },
    ));
    let built_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut labels = Labels::from([
        (MANAGED.to_owned(), "true".to_owned()),
        (KIND.to_owned(), of.kind_label().to_owned()),
        (REPO_LABEL.to_owned(), workspace.repo.clone()),
        (BUILT_LABEL.to_owned(), built_at.to_string()),
    ]);
    if let Owner::Sidecar(name) = of {
        labels.insert(SIDECAR.to_owned(), name.clone());
    }
    let spec = BuildSpec {
        tag: tag.clone(),
        context: copy.path().to_owned(),
        dockerfile: Some(context.dockerfile.clone()),
        target: build.target.clone(),
        args: build.args.clone(),
        labels,
        network: of.network(),
    };
    // The engine's lines carry what the repo's `RUN` steps print: shown
    // escaped, as everything of the repo's on the terminal.
    let echo = |line: &str| {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            crate::untrusted::shown_line(line)
        );
    };
    let started = Instant::now();
    engine
        .build_image(&spec, terminal.then_some(&echo as &dyn Fn(&str)))
        .map_err(|error| match error {
            BuildError::Engine(source) => engine_error(&tag, source),
            BuildError::Failed { status, step, tail } => ImageBuildError::Failed {
                of: of.clone(),
                image: tag.clone(),
                kind: engine.kind(),
                status,
                step,
                tail,
            },
        })?;
    progress(format!(
        "{of}: built `{tag}` in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    remove_stale(engine, of, &workspace.repo, &base, &tag, progress);
    Ok(tag)
}

/// Base images looked at for `ONBUILD` triggers, an engine call each: a
/// Dockerfile of thousands of `FROM` lines must not make thousands.
const MAX_BASES_LOOKED_AT: usize = 16;

/// Why the whole context counts because of the images the build starts
/// from (`has_onbuild`: whether the engine has one with `ONBUILD`
/// triggers, which would run in this build; one the engine cannot say
/// about counts as without), if it does.
fn onbuild_reason(bases: &[String], has_onbuild: impl Fn(&str) -> bool) -> Option<String> {
    if bases.len() > MAX_BASES_LOOKED_AT {
        return Some(format!(
            "it starts from {} images, more than dual looks at for ONBUILD triggers ({MAX_BASES_LOOKED_AT})",
            bases.len()
        ));
    }
    let base = bases.iter().find(|base| has_onbuild(base))?;
    Some(format!(
        "its base image `{}` has ONBUILD triggers, which may copy any of it",
        error::shown(base)
    ))
}

/// The copy's Dockerfile is the one that was read: the clone's may have
/// changed meanwhile, and then what was read of it says nothing of the
/// copy.
fn check_same_dockerfile(
    context: &Context<'_>,
    copy: &Path,
    of: &Owner,
) -> Result<(), ImageBuildError> {
    let path = copy.join(&context.dockerfile);
    let copied = std::fs::read(&path).map_err(|source| ImageBuildError::Read {
        of: of.clone(),
        path: path.clone(),
        source,
    })?;
    if copied == context.dockerfile_bytes {
        return Ok(());
    }
    Err(ImageBuildError::Read {
        of: of.clone(),
        path: context.dockerfile.clone(),
        source: std::io::Error::other("it changed while it was read; launch again"),
    })
}

/// The lock on building `base`, taken once no other launch holds it (the
/// first wait is said): see the module's doc.
fn wait_for_lock(
    engine: &Engine,
    of: &Owner,
    builds: &Path,
    base: &str,
    tag: &str,
    progress: &dyn Fn(String),
) -> Result<Lock, ImageBuildError> {
    let path = builds.join(format!("{}-{}.lock", engine.kind(), base.replace('/', "+")));
    let started = Instant::now();
    let mut said = false;
    loop {
        let holder = match Lock::try_exclusive(&path) {
            Ok(lock) => return Ok(lock),
            Err(LockError::Held { holder, .. } | LockError::TimedOut { holder, .. }) => holder,
            Err(LockError::Io { source, .. }) => {
                return Err(ImageBuildError::Read {
                    of: of.clone(),
                    path,
                    source,
                });
            }
        };
        let interrupted = crate::interrupt::requested();
        if interrupted || started.elapsed() > BUILD_LIMIT {
            return Err(ImageBuildError::Waiting {
                of: of.clone(),
                image: tag.to_owned(),
                holder,
                interrupted,
            });
        }
        if !said {
            progress(format!(
                "{of}: waiting for {holder}, which is building `{base}` (another launch)"
            ));
            said = true;
        }
        std::thread::sleep(WAIT_POLL);
    }
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

/// Removes older builds of this image that no container uses: see the
/// module's doc. Best effort.
fn remove_stale(
    engine: &Engine,
    of: &Owner,
    repo: &str,
    base: &str,
    current: &str,
    progress: &dyn Fn(String),
) {
    let filters = [(KIND, of.kind_label()), (REPO_LABEL, repo)];
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
    fn a_workspace_image_is_never_named_as_a_sidecar_s() {
        // Repo `a-b`'s image and sidecar `b` of repo `a`.
        let workspace = Owner::Workspace.image_base("a-b");
        assert_ne!(workspace, Owner::Sidecar("b".into()).image_base("a"));
        assert_eq!(workspace, "dual-workspace/a-b");
        super::super::config::check_image_reference(&format!("{workspace}:0123456789abcdef"))
            .unwrap();
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
    fn a_dockerfile_of_many_bases_makes_no_engine_call_for_each() {
        let many: Vec<String> = (0..10_000).map(|n| format!("base{n}")).collect();
        let calls = std::cell::Cell::new(0);
        let counted = |_: &str| {
            calls.set(calls.get() + 1);
            false
        };
        let why = onbuild_reason(&many, counted).unwrap();
        assert!(why.contains("10000 images"), "{why}");
        assert_eq!(calls.get(), 0);
        let few: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(onbuild_reason(&few, counted), None);
        assert_eq!(calls.get(), 3);
        let why = onbuild_reason(&few, |base| base == "b").unwrap();
        assert!(why.contains("`b` has ONBUILD"), "{why}");
        // The same base named again is looked at once; a Dockerfile at its
        // size limit, all `FROM`, is read at once.
        let text = "FROM a AS one\nFROM a\nFROM a AS two\n".repeat(1000);
        let analysis = dockerfile::analyse(&text).unwrap();
        assert_eq!(analysis.bases, ["a"]);
        let text: String = (0..100_000).map(|n| format!("FROM b{n}\n")).collect();
        let started = std::time::Instant::now();
        assert_eq!(dockerfile::analyse(&text).unwrap().bases.len(), 100_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
