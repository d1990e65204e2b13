//! A new workspace's dependency directories, copied from its parent's
//! before `setup` runs, so that `setup` has little left to do.
//!
//! The parent is the workspace its sidecars' data comes from
//! (`stack::data_parent`: `dual create --from`, else `data_from`, else the
//! repo's default branch's). Each directory of `seed` is copied once, when
//! the workspace's container is first made and before its `setup` ever
//! succeeded, and only where the new workspace has nothing there yet: a
//! copy, never shared, so branches diverge from it.
//!
//! The copy runs in a container of its own, never on the host (the
//! parent's clone is written by its container, which could plant links
//! there): the parent's image (what the parent already runs; the new
//! branch's image is the branch's to choose, and would see the parent's
//! clone), no network, as the user, no capabilities, the parent's side
//! read-only and the new clone's `.git` read-only. A directory that is a
//! volume (`node_modules`) is copied volume to volume. The copy then
//! rewrites the parent's clone path to the new one where text files and
//! links hold it: a venv's scripts (`#!/…/main/.venv/bin/python`),
//! `pyvenv.cfg`, its activate scripts, an editable install's `.pth`.
//!
//! Only between workspaces of one image: a venv or a `node_modules` with
//! native modules belongs to the interpreter that made it. The parent keeps
//! running: a directory it writes during the copy (a `pip install` there at
//! that moment) may be copied half-written, an accepted risk (the README
//! says how to repair such a copy). Pausing the parent's container instead
//! would freeze its dev server for every copy, for a risk that needs an
//! install in the parent at that very second.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::engine::labels::SidecarLabels;
use crate::engine::one_off::OneOff;
use crate::engine::spec::{BindMount, Network, Pull, RunSpec};
use crate::engine::{Container, Engine, EngineKind};
use crate::printer::Printer;
use crate::workspace::config::Config;
use crate::workspace::{self, State, Workspace, stack};

/// The program the copy container runs.
const SEED_SCRIPT: &str = include_str!("seed.sh");
/// How long one directory's copy may take (a large `node_modules` copies
/// in tens of seconds; see research/deps.md).
const SEED_TIMEOUT: Duration = Duration::from_secs(600);
/// Where the script keeps its scratch files (`seed.sh` names it too).
const SCRATCH: &str = "/run/dual-seed";
/// The copy container's name in its labels: like a sidecar's data copy, a
/// `dual prune` removes one a killed launch left.
const SEED_LABEL: &str = "seed.copy";

/// What became of one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    Copied {
        dir: String,
        parent: String,
        took: Duration,
        kib: u64,
        /// Files and links that named the parent's clone, rewritten.
        rewritten: u64,
    },
    Skipped {
        dir: String,
        why: String,
    },
}

/// Copies the parent's dependency directories (`config.seed`) into
/// `workspace`, whose container was made now, where it has a parent.
/// A copy that fails is a warning: `setup` then installs from scratch.
pub fn seed(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    state: &State,
    printer: &Printer,
) -> anyhow::Result<()> {
    let Some(parent) = parent_to_copy(engine, workspace, config, state, printer)? else {
        return Ok(());
    };
    // The branch's config is the branch's: it chooses among what its
    // parent's own config offers, never another of the parent's files (a
    // pull request's `seed = [".env.local"]` would copy main's secrets).
    let offered = Config::load(&parent.workspace.path)
        .map(|parent_config| parent_config.seed)
        .unwrap_or_default();
    for dir in &config.seed {
        if !offered.contains(dir) {
            printer.detail(format!(
                "`{dir}` not seeded: the `seed` of `{}`'s own config does not name it",
                parent.workspace.name()
            ));
            continue;
        }
        printer.progress(format!(
            "seeding `{dir}` from `{}`",
            parent.workspace.name()
        ));
        match copy_dir(engine, workspace, config, &parent, dir) {
            Ok(Seeded::Copied {
                dir,
                parent,
                took,
                kib,
                rewritten,
            }) => printer.out(format!(
                "seeded `{dir}` from `{parent}` in {:.1} s ({}{})",
                took.as_secs_f64(),
                crate::engine::volumes::human(kib * 1024),
                match rewritten {
                    0 => String::new(),
                    n => format!("; {n} files naming its clone rewritten"),
                }
            )),
            Ok(Seeded::Skipped { dir, why }) => {
                printer.detail(format!("`{dir}` not seeded: {why}"));
            }
            Err(why) => printer.warn(format!(
                "could not seed `{dir}` from `{}`: {why}; setup installs it afresh",
                parent.workspace.name()
            )),
        }
    }
    Ok(())
}

/// The parent workspace and its container's image, where there is one to
/// copy from: set up on this engine, of the same image.
struct Parent<'s> {
    workspace: &'s Workspace,
    image: String,
}

fn parent_to_copy<'s>(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    state: &'s State,
    printer: &Printer,
) -> anyhow::Result<Option<Parent<'s>>> {
    if config.seed.is_empty() || workspace.setup_done {
        return Ok(None);
    }
    let Some(parent) = stack::data_parent(state, workspace, config) else {
        return Ok(None);
    };
    let not_seeded = |why: String| {
        printer.out(format!(
            "not seeded from `{}`: {why}; setup installs everything",
            parent.name()
        ));
        Ok(None)
    };
    // The same engine, on the same host: a copy mounts both clones (their
    // mirrors, on another host), and one host has no other's.
    if parent.engine != Some(engine.kind()) || parent.endpoint != workspace.endpoint {
        return not_seeded("it is not a workspace launched on this engine".into());
    }
    let found = engine.inspect(&[&parent.container_name(), &workspace.container_name()])?;
    let image_of = |name: String| -> Option<&Container> {
        found
            .iter()
            .find(|c| c.name.trim_start_matches('/') == name)
    };
    let (Some(parents), Some(own)) = (
        image_of(parent.container_name()),
        image_of(workspace.container_name()),
    ) else {
        return not_seeded("it has no container".into());
    };
    if parents.image != own.image {
        return not_seeded(format!(
            "its image (`{}`) is not this one's (`{}`), and what one interpreter installed may not run under another",
            parents.image, own.image
        ));
    }
    Ok(Some(Parent {
        workspace: parent,
        image: parents.image.clone(),
    }))
}

/// Where one side of a copy lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Side {
    /// The workspace's named volume for the directory.
    Volume(String),
    /// A directory of the clone.
    Clone,
}

fn copy_dir(
    engine: &Engine,
    workspace: &Workspace,
    config: &Config,
    parent: &Parent,
    dir: &str,
) -> Result<Seeded, String> {
    let skipped = |why: &str| {
        Ok(Seeded::Skipped {
            dir: dir.to_owned(),
            why: why.to_owned(),
        })
    };
    let parent_volume = workspace::volume_name(parent.workspace, dir);
    let parent_labels = workspace::labels(parent.workspace, None);
    let parent_volumes = engine
        .volume_names(&parent_labels.filters())
        .map_err(|error| error.to_string())?;
    let from = if parent_volumes.contains(&parent_volume) {
        Side::Volume(parent_volume)
    } else {
        Side::Clone
    };
    let to = if config.anonymous_volumes.iter().any(|v| v == dir) {
        Side::Volume(workspace::volume_name(workspace, dir))
    } else {
        Side::Clone
    };
    let Some(program) = rewrite_program(&parent.workspace.path, &workspace.path) else {
        return skipped("a clone path holds a line break");
    };
    let mode = workspace::host_mode(engine).map_err(|error| error.to_string())?;
    let mut spec = copy_spec(
        engine.kind(),
        Copy {
            workspace,
            parent,
            dir,
            from: &from,
            to: &to,
            program: &program,
        },
        mode.ids,
        mode.keep_host_uid,
    );
    // On another engine host, the clones it mounts are their mirrors there:
    // the paths of this host's clones are that host's own files (or none).
    let location = engine.location().map_err(|error| error.to_string())?;
    if let Some(ssh) = location.ssh() {
        let base = super::remote_host::mirror_base(&ssh).map_err(|error| format!("{error:#}"))?;
        crate::remote::mirror::onto_mirror(&mut spec, &base)
            .map_err(|error| format!("{error:#}"))?;
    }
    engine.clear_one_off(&spec.name);
    let started = Instant::now();
    let output = engine.run_one_off(OneOff {
        spec,
        timeout: SEED_TIMEOUT,
        interruptible: true,
    });
    let took = started.elapsed();
    let output = output.map_err(|error| error.to_string())?;
    let said = output.stdout.trim();
    if output.status.code() == Some(3) {
        let why = said.strip_prefix("skipped: ").unwrap_or(said);
        return skipped(&crate::untrusted::shown(why));
    }
    if !output.success() {
        let stderr = output.stderr.trim();
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "the copy in `{}` failed ({}): {}",
            parent.image,
            crate::process::StatusText(output.status),
            crate::untrusted::shown(&tail.join(" | "))
        ));
    }
    let (kib, rewritten) = parse_copied(said)
        .ok_or_else(|| format!("the copy said `{}`", crate::untrusted::shown(said)))?;
    Ok(Seeded::Copied {
        dir: dir.to_owned(),
        parent: parent.workspace.name(),
        took,
        kib,
        rewritten,
    })
}

/// One directory's copy, for its container's spec.
struct Copy<'a> {
    workspace: &'a Workspace,
    parent: &'a Parent<'a>,
    dir: &'a str,
    from: &'a Side,
    to: &'a Side,
    program: &'a str,
}

/// The copy container: the parent's image, no network, as the user, the
/// parent's side read-only; the new clone writable but for its `.git`.
fn copy_spec(kind: EngineKind, copy: Copy, ids: (u32, u32), keep_host_uid: bool) -> RunSpec {
    let Copy {
        workspace,
        parent,
        dir,
        from,
        to,
        program,
    } = copy;
    let mut spec = RunSpec::new(
        format!("{}.seed", workspace.container_name()),
        parent.image.clone(),
    );
    spec.labels = SidecarLabels {
        workspace: workspace::labels(workspace, None),
        name: SEED_LABEL.into(),
    }
    .to_labels();
    spec.network = Network::None;
    spec.pull = Pull::Never;
    spec.user = Some(ids);
    spec.keep_host_uid = keep_host_uid;
    spec.nosuid_binds = kind == EngineKind::Podman;
    // The script's scratch files, on a tmpfs of their own: an image's /tmp
    // may be root's alone (docker keeps the mode of a directory the image
    // has under a tmpfs mounted there).
    spec.tmpfs.push(SCRATCH.into());
    let from_path = parent.workspace.path.join(dir);
    let to_path = workspace.path.join(dir);
    match from {
        Side::Volume(volume) => spec
            .readonly_volumes
            .push((volume.clone(), from_path.clone())),
        Side::Clone => spec
            .bind_mounts
            .push(BindMount::new(&parent.workspace.path, &parent.workspace.path).readonly()),
    }
    match to {
        Side::Volume(volume) => spec.volumes.push((volume.clone(), to_path.clone())),
        Side::Clone => {
            spec.bind_mounts
                .push(BindMount::new(&workspace.path, &workspace.path));
            let git = workspace.path.join(".git");
            spec.bind_mounts.push(BindMount::new(&git, &git).readonly());
        }
    }
    let mode = match to {
        Side::Volume(_) => "volume",
        Side::Clone => "dir",
    };
    spec.entrypoint = Some("sh".into());
    spec.command = vec![
        "-c".into(),
        SEED_SCRIPT.into(),
        "sh".into(),
        from_path.display().to_string(),
        to_path.display().to_string(),
        mode.into(),
        parent.workspace.path.display().to_string(),
        workspace.path.display().to_string(),
        program.to_owned(),
    ];
    spec
}

/// The sed program (extended regular expressions, `#` as delimiter) that
/// replaces the clone path `old` by `new` where a path, a quote, a space or
/// the line's end follows it (so `/r/shop/main-2` is not a `/r/shop/main`).
/// `None` where a path holds a line break, which sed cannot take.
fn rewrite_program(old: &Path, new: &Path) -> Option<String> {
    let (old, new) = (old.to_str()?, new.to_str()?);
    if old.contains('\n') || new.contains('\n') {
        return None;
    }
    let mut pattern = String::new();
    for c in old.chars() {
        if "\\.[](){}*+?|^$#".contains(c) {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    let mut replacement = String::new();
    for c in new.chars() {
        if "\\&#".contains(c) {
            replacement.push('\\');
        }
        replacement.push(c);
    }
    Some(format!(
        "s#{pattern}(/|\"|'|[[:space:]]|$)#{replacement}\\1#g"
    ))
}

/// `copied KIB REWRITTEN`, the script's last line.
fn parse_copied(said: &str) -> Option<(u64, u64)> {
    let line = said.lines().last()?;
    let mut words = line.strip_prefix("copied ")?.split_whitespace();
    let kib = words.next()?.parse().ok()?;
    let rewritten = words.next()?.parse().ok()?;
    Some((kib, rewritten))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(label: &str) -> Workspace {
        Workspace {
            repo: "shop".into(),
            branch: label.into(),
            label: label.into(),
            path: format!("/home/u/dual/shop/{label}").into(),
            setup_done: false,
            stopped: false,
            routed: None,
            data_from: None,
            engine: Some(EngineKind::Docker),
            endpoint: None,
            user: Some((1000, 1000)),
        }
    }

    #[test]
    fn the_rewrite_escapes_both_paths_and_stops_at_a_path_s_end() {
        let program = rewrite_program(Path::new("/r/a.b/main"), Path::new("/r/a&b#/feat")).unwrap();
        assert_eq!(
            program,
            r#"s#/r/a\.b/main(/|"|'|[[:space:]]|$)#/r/a\&b\#/feat\1#g"#
        );
        assert_eq!(
            rewrite_program(Path::new("/r/x\ny"), Path::new("/r/z")),
            None
        );
    }

    #[test]
    fn the_copy_runs_as_the_user_offline_and_cannot_write_the_parent_or_git() {
        let parent_workspace = workspace("main");
        let parent = Parent {
            workspace: &parent_workspace,
            image: "python:3.11-bookworm".into(),
        };
        let child = workspace("feat");
        let spec = copy_spec(
            EngineKind::Podman,
            Copy {
                workspace: &child,
                parent: &parent,
                dir: ".venv",
                from: &Side::Clone,
                to: &Side::Clone,
                program: "s#a#b#g",
            },
            (1000, 1000),
            false,
        );
        assert_eq!(spec.image, "python:3.11-bookworm", "the parent's image");
        assert_eq!(spec.network, Network::None);
        assert_eq!(spec.user, Some((1000, 1000)));
        assert!(spec.nosuid_binds);
        assert_eq!(
            spec.bind_mounts,
            [
                BindMount::new("/home/u/dual/shop/main", "/home/u/dual/shop/main").readonly(),
                BindMount::new("/home/u/dual/shop/feat", "/home/u/dual/shop/feat"),
                BindMount::new("/home/u/dual/shop/feat/.git", "/home/u/dual/shop/feat/.git")
                    .readonly(),
            ]
        );
        let args = spec.run_args().unwrap();
        assert!(args.contains(&"--cap-drop=ALL".into()));
        assert_eq!(
            &spec.command[3..8],
            [
                "/home/u/dual/shop/main/.venv",
                "/home/u/dual/shop/feat/.venv",
                "dir",
                "/home/u/dual/shop/main",
                "/home/u/dual/shop/feat"
            ]
        );

        let volumes = copy_spec(
            EngineKind::Docker,
            Copy {
                workspace: &child,
                parent: &parent,
                dir: "node_modules",
                from: &Side::Volume("p".into()),
                to: &Side::Volume("c".into()),
                program: "s#a#b#g",
            },
            (1000, 1000),
            false,
        );
        assert!(volumes.bind_mounts.is_empty(), "no clone is mounted");
        assert_eq!(
            volumes.readonly_volumes,
            [("p".into(), "/home/u/dual/shop/main/node_modules".into())]
        );
        assert_eq!(
            volumes.volumes,
            [("c".into(), "/home/u/dual/shop/feat/node_modules".into())]
        );
        assert_eq!(volumes.command[5], "volume");
    }

    #[test]
    fn the_script_s_report_is_read_or_refused() {
        assert_eq!(parse_copied("copied 2048 14"), Some((2048, 14)));
        assert_eq!(parse_copied("noise\ncopied 1 0"), Some((1, 0)));
        assert_eq!(parse_copied("copied x 0"), None);
        assert_eq!(parse_copied(""), None);
    }
}
