//! Why an image could not be prepared from a repo's Dockerfile, each with
//! what the user can do about it.

use std::path::PathBuf;

use super::{MAX_CONTEXT_BYTES, MAX_CONTEXT_FILES, Owner};
use crate::engine::{EngineError, EngineKind};
use crate::error::Hint;
use crate::files::Holder;
use crate::process::StatusText;

#[derive(Debug, thiserror::Error)]
pub enum ImageBuildError {
    #[error("{of}: the build context `{context}` {why}")]
    Context {
        of: Owner,
        context: String,
        why: String,
    },
    #[error(
        "{of}: the build context `{context}` is too large to build (over {} files or {} MiB: stopped at {files} files, {} MiB)",
        MAX_CONTEXT_FILES,
        MAX_CONTEXT_BYTES >> 20,
        .bytes >> 20
    )]
    TooLarge {
        of: Owner,
        context: String,
        files: u64,
        bytes: u64,
    },
    #[error(
        "{of}: matching the build context `{context}` against its `.dockerignore` ({patterns} patterns) and its Dockerfile's {sources} `COPY`/`ADD` sources takes more work than dual gives a build"
    )]
    TooCostly {
        of: Owner,
        context: String,
        patterns: usize,
        sources: usize,
    },
    #[error("{of}: interrupted while reading its build context")]
    Interrupted { of: Owner },
    #[error("{of}: could not read `{}` of its build context", .path.display())]
    Read {
        of: Owner,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{of}: {why}")]
    Invalid { of: Owner, why: String },
    /// A `COPY`/`ADD` source dual will not hand to the engine.
    #[error("{of}: line {line} of `{dockerfile}`: the `{instruction}` source `{}` {why}", shown(.path))]
    Source {
        of: Owner,
        dockerfile: String,
        line: usize,
        instruction: String,
        path: String,
        why: &'static str,
    },
    #[error("{of}: stopped waiting for {holder}, which is building `{image}`")]
    Waiting {
        of: Owner,
        image: String,
        holder: Holder,
        interrupted: bool,
    },
    #[error("{of}: could not build `{image}` with {kind}")]
    Engine {
        of: Owner,
        image: String,
        kind: EngineKind,
        #[source]
        source: Box<EngineError>,
    },
    #[error("{of}: building `{image}` with {kind} failed ({status}){}{}", step_text(.step), tail_text(.tail))]
    Failed {
        of: Owner,
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
pub(super) fn shown(line: &str) -> String {
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

/// Words a TLS client prints when it does not trust a server's
/// certificate (OpenSSL, Python, curl, Go, Node, npm).
const CERTIFICATE_ERRORS: &[&str] = &[
    "certificate_verify_failed",
    "certificate verify failed",
    "ssl certificate problem",
    "certificate signed by unknown authority",
    "unable to get local issuer certificate",
    "self signed certificate in certificate chain",
    "self-signed certificate in certificate chain",
    "unable_to_get_issuer_cert_locally",
    "self_signed_cert_in_chain",
];

/// Whether a failed build's last lines say a step did not trust a
/// server's certificate.
fn failed_on_a_certificate(tail: &[String]) -> bool {
    tail.iter().any(|line| {
        let line = line.to_ascii_lowercase();
        CERTIFICATE_ERRORS.iter().any(|words| line.contains(words))
    })
}

impl Hint for ImageBuildError {
    fn hint(&self) -> Option<String> {
        let fix = |of: &Owner| match of {
            Owner::Sidecar(_) => "fix `build:` in the compose file",
            Owner::Workspace => "fix `build` in .dual.toml (or in devcontainer.json)",
        };
        match self {
            ImageBuildError::Context { of, .. } => Some(match of {
                Owner::Sidecar(_) => "`build:` (or `build.context`) must name a real directory inside the repo, not a link".into(),
                Owner::Workspace => "`build.context` must name a real directory inside the repo, not a link".into(),
            }),
            ImageBuildError::TooLarge { context, .. } => Some(format!(
                "leave out what the image does not need with a `.dockerignore` in `{context}` (e.g. `node_modules`, `.git`, build output)"
            )),
            ImageBuildError::TooCostly { context, .. } => Some(format!(
                "a `.dockerignore` needs a few lines, each a path or a simple pattern: shorten the one in `{context}` (or the Dockerfile's list of sources), or narrow `build.context`"
            )),
            ImageBuildError::Read { .. } | ImageBuildError::Interrupted { .. } => None,
            ImageBuildError::Invalid { of, .. } => Some(fix(of).to_owned()),
            ImageBuildError::Source { why, .. } if why.contains("link") => Some(
                "dual reads the repo without following links: `COPY` the file itself (inside the context), not a link to it".into(),
            ),
            ImageBuildError::Source { .. } => Some(
                "a Dockerfile copies only from its context: move the file into the context, or widen `build.context`".into(),
            ),
            ImageBuildError::Waiting { .. } => Some(
                "another `dual launch` is building the same image: let it finish, then launch again".into(),
            ),
            ImageBuildError::Engine { source, .. } => source.hint(),
            ImageBuildError::Failed { of, tail, .. } => Some(match of {
                Owner::Sidecar(_) => "fix the Dockerfile and `dual launch` again; dual builds with `--network=none`, so a step that downloads (apt-get, pip, npm, curl) fails: keep what it needs in the context, or build the image yourself and name it with `image =` under `[sidecars.NAME]` in .dual.toml".into(),
                Owner::Workspace if failed_on_a_certificate(tail) => "a step did not trust a server's certificate: this host reaches the network through a TLS-inspecting proxy whose CA the build does not have, and neither engine can give a `RUN` step the host's CA bundle without a change to the Dockerfile; move the download into `setup` (it runs in the workspace, which gets the host's CA), or have the Dockerfile `COPY` a CA file from the context and point `SSL_CERT_FILE`/`PIP_CERT` at it, then `dual launch` again".into(),
                Owner::Workspace => "fix the Dockerfile (the step above) and `dual launch` again; the workspace stays as it was until a build succeeds".into(),
            }),
        }
    }

    fn interrupted(&self) -> bool {
        match self {
            ImageBuildError::Engine { source, .. } => source.is_interrupted(),
            ImageBuildError::Waiting { interrupted, .. } => *interrupted,
            ImageBuildError::Interrupted { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_failure_gets_its_own_hint() {
        let failed = |tail: &[&str]| ImageBuildError::Failed {
            of: Owner::Workspace,
            image: "dual-workspace/shop:0123456789abcdef".into(),
            kind: EngineKind::Docker,
            status: StatusText(std::os::unix::process::ExitStatusExt::from_raw(256)),
            step: Some("Step 3/4 : RUN pip install django".into()),
            tail: tail.iter().map(|line| (*line).to_owned()).collect(),
        };
        let pip = failed(&[
            "WARNING: Retrying ... SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)'))",
        ]);
        let hint = pip.hint().unwrap();
        assert!(hint.contains("CA") && hint.contains("setup"), "{hint}");
        let curl = failed(&[
            "curl: (60) SSL certificate problem: self-signed certificate in certificate chain",
        ]);
        assert!(curl.hint().unwrap().contains("CA"));
        let other = failed(&["make: *** [all] Error 2"]);
        assert!(!other.hint().unwrap().contains("CA"));
        let text = pip.to_string();
        assert!(
            text.contains("at `Step 3/4 : RUN pip install django`"),
            "{text}"
        );
        assert!(text.contains("CERTIFICATE_VERIFY_FAILED"), "{text}");
    }

    #[test]
    fn the_repo_s_words_reach_the_terminal_escaped() {
        let error = ImageBuildError::Source {
            of: Owner::Workspace,
            dockerfile: "Dockerfile".into(),
            line: 2,
            instruction: "COPY".into(),
            path: "a\u{1b}[2Jb".into(),
            why: "leaves the build context",
        };
        assert!(!error.to_string().contains('\u{1b}'));
    }
}
