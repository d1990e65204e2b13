//! Readying another engine host for a workspace container: the mirror of
//! what it mounts (see `remote::mirror`), made in one SSH round trip, and
//! the clone's sync started and its first copy awaited, before the
//! container is made.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::engine::RunSpec;
use crate::printer::Printer;
use crate::remote::mirror::{self, Carried};
use crate::remote::{Ssh, sync};
use crate::workspace::Workspace;
use crate::workspace::config::Config;

/// The largest file copied to the engine's host (accounts, CA bundles).
const COPIED_LIMIT: u64 = 4 * 1024 * 1024;

/// The mirror's base there: `~/.local/share/dual-remote/{owner}` of the
/// remote user, one per local dual installation.
pub fn mirror_base(ssh: &Ssh) -> anyhow::Result<PathBuf> {
    let output = ssh
        .command(r#"printf %s "$HOME""#)
        .timeout(Duration::from_secs(20))
        .run()
        .with_context(|| format!("could not reach {} over ssh", ssh.target()))?;
    let home = output.stdout.trim();
    anyhow::ensure!(
        home.starts_with('/'),
        "the home of {} on its host is `{home}`, not an absolute path",
        ssh.target()
    );
    Ok(Path::new(home)
        .join(".local/share/dual-remote")
        .join(crate::workspace::owner_id()))
}

/// Moves `spec`'s mounts onto the mirror on `ssh`'s host and makes what
/// they need there: directories, and the files made here, copied.
pub fn prepare(
    ssh: &Ssh,
    workspace: &Workspace,
    spec: &mut RunSpec,
) -> anyhow::Result<Vec<Carried>> {
    let base = mirror_base(ssh)?;
    let logs = crate::workspace::services::logs_dir(&workspace.name());
    let carried = mirror::carry(spec, &base, &workspace.path, &logs)?;
    let archive = archive(&base, &carried)?;
    let unpack = format!(
        "umask 077 && mkdir -p {base} && tar -x -f - -C {base}",
        base = crate::process::quote(&base.display().to_string())
    );
    ssh.command(&unpack)
        .stdin_bytes(archive)
        .timeout(Duration::from_secs(60))
        .run()
        .with_context(|| {
            format!(
                "could not prepare the mirror of `{}` on {}",
                workspace.name(),
                ssh.target()
            )
        })?;
    Ok(carried)
}

/// One tar of what the mirror needs made: every directory, and the copied
/// files' contents (read here without following a link).
fn archive(base: &Path, carried: &[Carried]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in carried {
        match item {
            Carried::Copied { local, remote } => {
                let bytes = read_plain_file(local)?;
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_cksum();
                builder.append_data(&mut header, relative(base, remote)?, bytes.as_slice())?;
            }
            Carried::Clone { remote, .. }
            | Carried::GitDir { remote, .. }
            | Carried::Written { remote, .. }
            | Carried::Made { remote } => {
                let mut header = tar::Header::new_gnu();
                header.set_size(0);
                header.set_mode(0o755);
                header.set_entry_type(tar::EntryType::Directory);
                header.set_cksum();
                builder.append_data(&mut header, relative(base, remote)?, std::io::empty())?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

fn relative<'p>(base: &Path, remote: &'p Path) -> anyhow::Result<&'p Path> {
    remote
        .strip_prefix(base)
        .with_context(|| format!("`{}` is outside the mirror", remote.display()))
}

/// A file of dual's or the host's (never the clone's: that is synced), small.
fn read_plain_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .with_context(|| format!("could not read `{}`", path.display()))?;
    let mut bytes = Vec::new();
    file.take(COPIED_LIMIT + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(
        bytes.len() as u64 <= COPIED_LIMIT,
        "`{}` is over {COPIED_LIMIT} bytes",
        path.display()
    );
    Ok(bytes)
}

/// How long a launch waits for the first copy of a clone.
const FIRST_COPY: Duration = Duration::from_secs(600);

/// Makes sure the workspace's files are kept in sync with their mirror on
/// `ssh`'s host (the clone both ways, its `.git` there only, the services'
/// logs back only), and that the first copy is done: the container must
/// find its clone whole. A sync already running is left as it is.
pub fn ensure_sync(
    ssh: &Ssh,
    workspace: &Workspace,
    config: &Config,
    printer: &Printer,
) -> anyhow::Result<()> {
    let name = workspace.name();
    if sync::is_running(&name) {
        return Ok(());
    }
    let base = mirror_base(ssh)?;
    let logs = crate::workspace::services::logs_dir(&name);
    let pairs = sync::workspace_pairs(
        &workspace.path,
        &mirror::mirrored(&base, &workspace.path)?,
        &config.anonymous_volumes,
        &logs,
        &mirror::mirrored(&base, &logs)?,
    );
    printer.progress(format!(
        "syncing {} with {}",
        workspace.path.display(),
        ssh.target()
    ));
    let started = Instant::now();
    sync::start(&name, ssh, &pairs)?;
    sync::wait_initial(&name, FIRST_COPY)?;
    printer.detail(format!(
        "the clone's first copy to {} took {:.1} s",
        ssh.target(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Stops the workspace's sync, if one runs.
pub fn stop_sync(workspace: &Workspace) {
    if let Err(error) = sync::stop(&workspace.name()) {
        crate::log::debug(&format!(
            "stopping the sync of {}: {error:#}",
            workspace.name()
        ));
    }
}

/// Removes the workspace's mirror on `ssh`'s host (its clone, home and
/// logs there), after stopping its sync.
pub fn forget(ssh: &Ssh, workspace: &Workspace) -> anyhow::Result<()> {
    stop_sync(workspace);
    let base = mirror_base(ssh)?;
    let name = workspace.name();
    let paths = [
        workspace.path.clone(),
        crate::paths::workspace_home(&name),
        crate::workspace::services::logs_dir(&name),
    ];
    let mut quoted = Vec::new();
    for path in &paths {
        quoted.push(crate::process::quote(
            &mirror::mirrored(&base, path)?.display().to_string(),
        ));
    }
    ssh.command(&format!("rm -rf -- {}", quoted.join(" ")))
        .timeout(Duration::from_secs(120))
        .run()?;
    Ok(())
}
