//! A Rust package (`Cargo.toml`): the toolchain its `rust-toolchain.toml`
//! names (else the stable image), `cargo fetch`, and `cargo run` where it
//! has a binary at `src/main.rs`. The image's `CARGO_HOME` is kept (the
//! official image makes it writable by all, and the caches put cargo's
//! registry there).

use super::files::RepoFiles;
use super::version;
use super::{Plan, ports, service};

pub fn detect(files: &RepoFiles) -> Option<Plan> {
    if !files.exists("Cargo.toml") {
        return None;
    }
    let pinned = files
        .toml("rust-toolchain.toml")
        .and_then(|t| {
            t.get("toolchain")?
                .get("channel")?
                .as_str()
                .map(str::to_owned)
        })
        .or_else(|| files.text("rust-toolchain").map(|t| t.trim().to_owned()))
        .and_then(|channel| version::line_of(&channel, true).filter(|l| l.minor.is_some()));
    let (image, image_why) = match pinned {
        Some(line) => (
            format!("rust:{line}-bookworm"),
            format!("Rust {line}, from rust-toolchain"),
        ),
        None => ("rust:1-bookworm".to_owned(), "Rust stable".to_owned()),
    };
    let mut plan = Plan {
        what: "a Rust project".to_owned(),
        marker: "Cargo.toml",
        image,
        image_why,
        setup: Some("cargo fetch".to_owned()),
        setup_why: "cargo, from Cargo.toml".to_owned(),
        ..Plan::default()
    };
    if let Some(source) = files.text("src/main.rs") {
        plan.port = ports::in_address(&source);
        plan.service_why = "a binary, from src/main.rs".to_owned();
        plan.service = Some(service("cargo run".to_owned(), plan.port));
    }
    Some(plan)
}
