//! A workspace container on another host mounts what a local one mounts
//! from this host (the clone, its `.git`, the home, the services' logs, the
//! accounts and CA files) from a mirror there: `{base}/{the host path}`,
//! where `base` is a directory of dual's in the remote user's home, one per
//! local dual installation. Inside, every path is the same as on a local
//! engine.
//!
//! Each bind mount's source is classified here (a pure function, so that
//! what crosses to the other host is testable without one): the clone is
//! synced both ways, `.git` only from here, the logs only back; other
//! directories are made empty there, and files are copied once.

use std::path::{Component, Path, PathBuf};

use crate::engine::RunSpec;

/// What a bind mount's source becomes on the engine's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// The clone: kept in sync both ways, but for what is ignored
    /// (`.git`, anonymous volumes' directories).
    Clone { local: PathBuf, remote: PathBuf },
    /// The clone's `.git`: from here only (the container only reads it).
    GitDir { local: PathBuf, remote: PathBuf },
    /// What the container writes for this host to read (the services'
    /// logs and states): from there only.
    Written { local: PathBuf, remote: PathBuf },
    /// A directory of the container's own (its home): made, never synced.
    Made { remote: PathBuf },
    /// A file made here (accounts, the CA bundle): copied at launch.
    Copied { local: PathBuf, remote: PathBuf },
}

/// `local` as it sits under the mirror's `base`: an absolute path of plain
/// names only, so that what is made, mounted and removed there (`rm -rf`
/// when a workspace is destroyed) is never outside the mirror, as a `..`
/// would lead it.
pub fn mirrored(base: &Path, local: &Path) -> anyhow::Result<PathBuf> {
    let mut components = local.components();
    let plain = components.next() == Some(Component::RootDir)
        && components.all(|c| matches!(c, Component::Normal(_)));
    anyhow::ensure!(
        plain,
        "`{}` is not a plain absolute path (no `.` or `..`), which its mirror on the engine's host must be",
        local.display()
    );
    Ok(base.join(local.strip_prefix("/")?))
}

/// Moves every bind mount of `spec` onto the mirror under `base`, as it is
/// (a one-off container's, which mounts what the workspace's mounts).
pub fn onto_mirror(spec: &mut RunSpec, base: &Path) -> anyhow::Result<()> {
    for mount in &mut spec.bind_mounts {
        mount.source = mirrored(base, &mount.source)?;
    }
    Ok(())
}

/// Moves `spec`'s bind mounts onto the mirror under `base` and says what
/// each needs; `clone` and `written` are the workspace's clone and logs
/// directory.
pub fn carry(
    spec: &mut RunSpec,
    base: &Path,
    clone: &Path,
    written: &Path,
) -> anyhow::Result<Vec<Carried>> {
    let git_dir = clone.join(".git");
    let mut carried = Vec::new();
    for mount in &mut spec.bind_mounts {
        let local = mount.source.clone();
        let remote = mirrored(base, &local)?;
        carried.push(if local == clone {
            Carried::Clone {
                local,
                remote: remote.clone(),
            }
        } else if local == git_dir {
            Carried::GitDir {
                local,
                remote: remote.clone(),
            }
        } else if local == written {
            Carried::Written {
                local,
                remote: remote.clone(),
            }
        } else if std::fs::metadata(&local).is_ok_and(|m| m.is_file()) {
            Carried::Copied {
                local,
                remote: remote.clone(),
            }
        } else {
            Carried::Made {
                remote: remote.clone(),
            }
        });
        mount.source = remote;
    }
    Ok(carried)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::BindMount;

    #[test]
    fn every_mount_comes_from_the_mirror_at_the_same_path_inside() {
        let files = tempfile::tempdir().unwrap();
        let passwd = files.path().join("passwd");
        std::fs::write(&passwd, "u:x:1000:1000::/home/u:/bin/sh\n").unwrap();
        let clone = Path::new("/home/u/dual/app/main");
        let logs = Path::new("/home/u/.local/share/dual/logs/app-main");
        let mut spec = RunSpec::new("dual-app-main", "img");
        spec.bind_mounts = vec![
            BindMount::new("/home/u/.local/share/dual/homes/app-main", "/home/u"),
            BindMount::new(clone, clone),
            BindMount::new(clone.join(".git"), clone.join(".git")).readonly(),
            BindMount::new(logs, "/var/log/dual"),
            BindMount::new(&passwd, "/etc/passwd").readonly(),
        ];
        let base = Path::new("/root/.local/share/dual-remote/abc");
        let carried = carry(&mut spec, base, clone, logs).unwrap();
        assert_eq!(
            carried[1],
            Carried::Clone {
                local: clone.into(),
                remote: base.join("home/u/dual/app/main")
            }
        );
        assert!(matches!(carried[0], Carried::Made { .. }));
        assert!(matches!(carried[2], Carried::GitDir { .. }));
        assert!(matches!(carried[3], Carried::Written { .. }));
        assert!(matches!(carried[4], Carried::Copied { .. }));
        // Inside, nothing moved; outside, everything is under the mirror.
        assert_eq!(spec.bind_mounts[1].target, clone);
        assert!(spec.bind_mounts[2].readonly);
        for mount in &spec.bind_mounts {
            assert!(mount.source.starts_with(base), "{}", mount.source.display());
        }
    }

    #[test]
    fn a_path_that_would_lead_out_of_the_mirror_has_none() {
        let base = Path::new("/root/.local/share/dual-remote/abc");
        assert_eq!(
            mirrored(base, Path::new("/home/u/dual/app/main")).unwrap(),
            base.join("home/u/dual/app/main")
        );
        // `rm -rf` of these on the engine's host would reach its `/etc`.
        for outside in [
            "/../../../../../etc",
            "/home/u/../../../../../../etc/app/main",
            "etc/app",
            "",
        ] {
            assert!(
                mirrored(base, Path::new(outside)).is_err(),
                "{outside} was mirrored"
            );
        }
        let mut spec = RunSpec::new("dual-app-main.seed", "img");
        spec.bind_mounts = vec![BindMount::new("/w/../../x", "/w")];
        assert!(onto_mirror(&mut spec, base).is_err());
    }
}
