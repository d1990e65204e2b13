//! The probes: the claims of the container-network-isolation research,
//! reproduced on each real engine through `dual verify --probes`.
//!
//! `DUAL_PROBE_COUNTS` sets the container counts to run (default `15`; CI runs
//! `15,50`). Every claim must be present and pass; the figures must be there.

// Tests watch the engine through its own CLI, apart from dual's runner, as an
// independent witness of what dual did.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/support.rs"]
mod support;

use support::{EngineKind, Sandbox, containers_with_label, dual_path, engines, heavy};

const CLAIMS: [&str; 9] = [
    "probe:bind-same-port",
    "probe:netns-distinct",
    "probe:localhost-private",
    "probe:host-localhost",
    "probe:container-to-container",
    "probe:host-to-container",
    "probe:network-host-conflict",
    "probe:same-container-conflict",
    "probe:publish-conflict",
];

fn counts() -> Vec<u16> {
    std::env::var("DUAL_PROBE_COUNTS")
        .unwrap_or_else(|_| "15".into())
        .split(',')
        .map(|n| n.trim().parse().expect("DUAL_PROBE_COUNTS holds numbers"))
        .collect()
}

fn probe(kind: EngineKind) {
    if !engines().contains(&kind) {
        eprintln!(
            "!!!!! SKIPPED probes on {kind}: it does not answer (DUAL_REQUIRE_ENGINE=1 makes this a failure)"
        );
        return;
    }
    for count in counts() {
        let _heavy = heavy();
        let report_path = std::env::temp_dir().join(format!(
            "dual-probes-{kind}-{count}-{}.md",
            std::process::id()
        ));
        // Spawned, for its pid: its probe containers carry it as a label,
        // so what it left behind is told apart from another run's.
        let sandbox = Sandbox::new();
        let child = sandbox
            .command(dual_path())
            .args([
                "--engine",
                kind.program(),
                "verify",
                "--probes",
                "--json",
                "--count",
                &count.to_string(),
            ])
            .arg("--report")
            .arg(&report_path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let own_containers = format!("dual.pid={}", child.id());
        let output = child.wait_with_output().unwrap();
        let report = support::json_report(&output);
        let checks = report["checks"].as_array().unwrap();
        for claim in CLAIMS {
            let check = checks
                .iter()
                .find(|c| c["name"] == claim)
                .unwrap_or_else(|| {
                    panic!("{kind} ×{count}: claim {claim} missing from {report:#}")
                });
            assert_eq!(check["status"], "pass", "{kind} ×{count}: {check:#}");
            eprintln!("{kind} ×{count}: {claim}: {}", check["detail"]);
        }
        let figures = &report["figures"];
        assert_eq!(figures["containers"], count, "{kind}: {figures}");
        assert!(
            figures["start_total_ms"].as_u64().is_some_and(|ms| ms > 0),
            "{kind}: {figures}"
        );
        assert!(
            figures["memory_mean_bytes"].as_u64().is_some_and(|b| b > 0),
            "{kind}: {figures}"
        );
        eprintln!("{kind} ×{count}: figures {figures}");
        assert_eq!(output.status.code(), Some(0), "{kind} ×{count}: {report:#}");

        let markdown = std::fs::read_to_string(&report_path).unwrap();
        assert!(
            markdown.contains(&format!("| containers at once on :3000 | {count} |")),
            "{markdown}"
        );
        assert!(
            markdown.contains("| probe:netns-distinct | pass |"),
            "{markdown}"
        );
        let _ = std::fs::remove_file(&report_path);

        let left = containers_with_label(kind, &own_containers);
        assert!(
            left.is_empty(),
            "{kind}: probe containers left behind: {left:?}"
        );
    }
}

#[test]
fn docker_reproduces_every_claim() {
    probe(EngineKind::Docker);
}

#[test]
fn podman_reproduces_every_claim() {
    probe(EngineKind::Podman);
}
