//! The git operations behind workspaces, through the one runner. Git never
//! prompts (GIT_TERMINAL_PROMPT=0): a credential problem is an error to show,
//! not a hang.
//!
//! Every call is hardened: a clone is a tree its container can write, and
//! git runs programs that a repository's config names (`core.fsmonitor`,
//! hooks, `ext::` transports, an `--upload-pack` smuggled in as a URL). The
//! container cannot write `.git` (it is mounted read-only there), and dual's
//! own calls ignore those settings anyway: see `HARDENING`. Sources and
//! URLs always come after `--`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RepoSource;
use crate::process::{Cmd, CommandError, Output};

const QUICK: Duration = Duration::from_secs(30);
/// A clone of a big repository over a slow link still ends.
const CLONE: Duration = Duration::from_secs(1800);

/// Settings given on every call, over whatever a repository's config says:
/// no fsmonitor or hook program runs, no `ext::` transport, no signature
/// program for `log`, no bare repository found by discovery (one could be
/// planted inside a clone), and no submodule looked into: a branch can
/// commit a gitlink whose directory its container then fills with a
/// repository of its own, and `git status` would run that repository's
/// config (a clean filter) on the host.
const HARDENING: [&str; 18] = [
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "log.showSignature=false",
    "-c",
    "safe.bareRepository=explicit",
    "-c",
    "diff.ignoreSubmodules=all",
    "-c",
    "submodule.recurse=false",
    "-c",
    "status.submoduleSummary=false",
    "-c",
    "fetch.recurseSubmodules=false",
];

fn git<I, S>(dir: Option<&Path>, args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut argv: Vec<OsString> = HARDENING.iter().map(OsString::from).collect();
    if let Some(dir) = dir {
        argv.push("-C".into());
        argv.push(dir.into());
    }
    argv.extend(args.into_iter().map(Into::into));
    Cmd::new("git", argv)
        .timeout(QUICK)
        .env("GIT_TERMINAL_PROMPT", "0")
}

fn stdout_line(cmd: &Cmd) -> Result<String, CommandError> {
    Ok(cmd.run()?.stdout.trim().to_owned())
}

/// The top of the work tree holding `dir`.
pub fn toplevel(dir: &Path) -> Result<PathBuf, CommandError> {
    stdout_line(&git(Some(dir), ["rev-parse", "--show-toplevel"])).map(PathBuf::from)
}

/// The branch new workspaces start from: origin's HEAD if the repo has one,
/// else its current branch; for a URL, the remote's HEAD.
pub fn default_branch(source: &RepoSource) -> Result<String, CommandError> {
    if let RepoSource::Path(dir) = source {
        let origin_head = git(
            Some(dir),
            [
                "symbolic-ref",
                "--quiet",
                "--short",
                "refs/remotes/origin/HEAD",
            ],
        );
        if let Ok(name) = stdout_line(&origin_head) {
            return Ok(name.trim_start_matches("origin/").to_owned());
        }
        return stdout_line(&git(
            Some(dir),
            ["symbolic-ref", "--quiet", "--short", "HEAD"],
        ));
    }
    let source = source.to_string();
    check_source(&source)?;
    let output = git(None, ["ls-remote", "--symref", "--", &source, "HEAD"]).run()?;
    Ok(output
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("ref: refs/heads/"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("main")
        .to_owned())
}

/// Clones `source` into `dest` (which must not exist) and checks out `branch`,
/// creating it from `default_branch` when the source has no such branch. A
/// local source is cloned with `--local`: hard links, fast and small.
pub fn clone(
    source: &RepoSource,
    dest: &Path,
    branch: &str,
    default_branch: &str,
) -> Result<(), CommandError> {
    check_source(&source.to_string())?;
    let mut args: Vec<OsString> = vec!["clone".into(), "--quiet".into()];
    if source.local_path().is_some() {
        args.push("--local".into());
    }
    args.push("--".into());
    args.push(source.as_os_str().into());
    args.push(dest.into());
    git(None, args).timeout(CLONE).run()?;
    if tracks_remote_branch(dest, branch) {
        git(Some(dest), ["checkout", "--quiet", branch, "--"]).run()?;
    } else {
        let start = format!("origin/{default_branch}");
        git(
            Some(dest),
            [
                "checkout",
                "--quiet",
                "--no-track",
                "-b",
                branch,
                &start,
                "--",
            ],
        )
        .run()?;
    }
    Ok(())
}

/// A source that git could read as an option, or that names a transport
/// running a program (`ext::`), is refused before git sees it.
pub fn check_source(source: &str) -> Result<(), CommandError> {
    let lower = source.to_ascii_lowercase();
    if source.starts_with('-') || lower.starts_with("ext::") || source.contains(['\n', '\0']) {
        return Err(CommandError::Refused {
            what: format!("`{}` as a git source", source.escape_debug()),
            why: "it would be read as an option or run a program",
        });
    }
    Ok(())
}

/// The branch checked out in `dir`.
pub fn current_branch(dir: &Path) -> Result<String, CommandError> {
    stdout_line(&git(
        Some(dir),
        ["symbolic-ref", "--quiet", "--short", "HEAD"],
    ))
}

/// Where `origin` points: a path or a URL.
pub fn origin(dir: &Path) -> Result<String, CommandError> {
    stdout_line(&git(Some(dir), ["remote", "get-url", "origin"]))
}

/// The default branch of `origin` as a clone recorded it.
pub fn origin_head(dir: &Path) -> Result<String, CommandError> {
    let name = stdout_line(&git(
        Some(dir),
        [
            "symbolic-ref",
            "--quiet",
            "--short",
            "refs/remotes/origin/HEAD",
        ],
    ))?;
    Ok(name.trim_start_matches("origin/").to_owned())
}

/// Uncommitted changes, one `git status --porcelain` line each.
pub fn uncommitted(dir: &Path) -> Result<Vec<String>, CommandError> {
    let output = git(
        Some(dir),
        ["status", "--porcelain", "--ignore-submodules=all"],
    )
    .run()?;
    Ok(output.stdout.lines().map(str::to_owned).collect())
}

/// Commits on local branches that no remote branch has.
pub fn unpushed(dir: &Path) -> Result<Vec<String>, CommandError> {
    let output = git(
        Some(dir),
        ["log", "--oneline", "--branches", "--not", "--remotes"],
    )
    .run()?;
    Ok(output.stdout.lines().map(str::to_owned).collect())
}

/// Whether the source repository still has `branch`, and whether it is
/// merged into the default branch there (its tip is contained in it, as
/// after a merge commit or a fast-forward). `None` when the source cannot be
/// asked (a URL that does not answer). `clone` is the workspace's clone: it
/// tells a fast-forwarded branch from a new one that never moved.
pub fn upstream_status(
    source: &RepoSource,
    branch: &str,
    default_branch: &str,
    clone: &Path,
) -> Option<Upstream> {
    let dir = match source {
        RepoSource::Path(dir) => dir.as_path(),
        RepoSource::Url(url) => {
            return Some(if remote_has_branch(url, branch)? {
                Upstream::Present
            } else {
                Upstream::Deleted
            });
        }
    };
    let branch_ref = format!("refs/heads/{branch}");
    if !git(Some(dir), ["rev-parse", "--verify", "--quiet", &branch_ref])
        .output()
        .ok()?
        .success()
    {
        return Some(Upstream::Deleted);
    }
    let default_ref = format!("refs/heads/{default_branch}");
    let merged = git(
        Some(dir),
        ["merge-base", "--is-ancestor", &branch_ref, &default_ref],
    )
    .output()
    .ok()?
    .success();
    // A branch that the default branch already contained when the workspace
    // was cloned had no work of its own: new, not finished. One whose tip
    // arrived later (a merge commit or a fast-forward) is merged.
    let tip = stdout_line(&git(Some(dir), ["rev-parse", &branch_ref])).ok()?;
    let never_moved = default_when_cloned(clone, default_branch).is_some_and(|start| {
        git(Some(clone), ["merge-base", "--is-ancestor", &tip, &start])
            .output()
            .is_ok_and(|output| output.success())
    });
    Some(if merged && !never_moved {
        Upstream::Merged
    } else {
        Upstream::Present
    })
}

/// The default branch's commit when `clone` was made: the oldest entry of
/// its remote-tracking ref's reflog (a later `git pull` moves the ref, not
/// that entry), else the ref itself.
fn default_when_cloned(clone: &Path, default_branch: &str) -> Option<String> {
    let tracking = format!("refs/remotes/origin/{default_branch}");
    let reflog = git(Some(clone), ["reflog", "show", "--format=%H", &tracking])
        .output()
        .ok()
        .filter(Output::success)
        .and_then(|output| output.stdout.lines().last().map(str::to_owned));
    reflog.or_else(|| {
        stdout_line(&git(
            Some(clone),
            ["rev-parse", "--verify", "--quiet", &tracking],
        ))
        .ok()
    })
}

/// Where `branch` is in a repo's source, as a new clone of it would find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchAt {
    /// A branch of the source: the clone checks it out.
    Source,
    /// Only on the local source's own `origin`: the clone does not get it.
    SourceRemoteOnly,
    /// Nowhere: the clone creates it from the default branch.
    Nowhere,
}

/// Whether the repo at `url` has `branch` (exactly: `ls-remote` would also
/// match `x/branch`); `None` where it cannot be asked.
fn remote_has_branch(url: &str, branch: &str) -> Option<bool> {
    check_source(url).ok()?;
    let output = git(None, ["ls-remote", "--heads", "--", url, branch])
        .output()
        .ok()
        .filter(Output::success)?;
    let wanted = format!("refs/heads/{branch}");
    Some(
        output
            .stdout
            .lines()
            .any(|line| line.split_whitespace().nth(1) == Some(wanted.as_str())),
    )
}

/// Where `branch` is in `source` (a local path or a URL); `None` where the
/// source cannot be asked.
pub fn branch_at(source: &RepoSource, branch: &str) -> Option<BranchAt> {
    let dir = match source {
        RepoSource::Path(dir) => dir.as_path(),
        RepoSource::Url(url) => {
            return Some(if remote_has_branch(url, branch)? {
                BranchAt::Source
            } else {
                BranchAt::Nowhere
            });
        }
    };
    let has = |reference: String| {
        git(Some(dir), ["rev-parse", "--verify", "--quiet", &reference])
            .output()
            .ok()
            .map(|output| output.success())
    };
    if has(format!("refs/heads/{branch}"))? {
        return Some(BranchAt::Source);
    }
    Some(if has(format!("refs/remotes/origin/{branch}"))? {
        BranchAt::SourceRemoteOnly
    } else {
        BranchAt::Nowhere
    })
}

/// Whether the clone has a remote-tracking ref for `branch`.
pub fn tracks_remote_branch(dir: &Path, branch: &str) -> bool {
    let remote_branch = format!("refs/remotes/origin/{branch}");
    git(
        Some(dir),
        ["rev-parse", "--verify", "--quiet", &remote_branch],
    )
    .output()
    .is_ok_and(|output| output.success())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Present,
    Merged,
    Deleted,
}
