//! The host's CA bundle in a workspace: behind this machine's
//! TLS-inspecting proxy, Python in a workspace reaches PyPI as the host's
//! does, and without the bundle it cannot.

use crate::support::{each_engine, have_debian_images};
use crate::workspaces::TestEnv;

const PYTHON: &str = "python:3.11-bookworm";

/// What `urlopen` of PyPI's index page gives inside: the status, or the error.
const FETCH: &str = "import urllib.request as r\n\
try:\n    print(r.urlopen('https://pypi.org/simple/six/', timeout=60).status)\n\
except Exception as e:\n    print('failed:', e)\n";

#[test]
fn a_workspace_trusts_what_the_host_trusts() {
    each_engine("host CA", |kind| {
        if !have_debian_images(kind, "host CA", &[PYTHON]) {
            return;
        }
        let env = TestEnv::new(Some(kind), &format!("image = \"{PYTHON}\"\n"));
        env.ok(&["create", "main"]);
        let name = env.name("main");
        env.ok(&["launch", &name]);
        let variables = env.ok(&["run", "-w", &name, "env"]);
        for variable in dual::workspace::trust::VARIABLES {
            assert!(
                variables.contains(&format!("{variable}={}", dual::workspace::trust::MOUNT)),
                "{variable} not passed: {variables}"
            );
        }
        let fetched = env.ok(&["run", "-w", &name, "python3", "-c", FETCH]);
        assert_eq!(fetched.trim(), "200", "with the host's CAs");
        // The image's own CAs alone do not know the proxy's: the bundle is
        // what made the difference.
        let without = env.ok(&[
            "run",
            "-w",
            &name,
            "env",
            "-u",
            "SSL_CERT_FILE",
            "python3",
            "-c",
            FETCH,
        ]);
        assert!(
            without.contains("CERTIFICATE_VERIFY_FAILED"),
            "without the bundle: {without}"
        );
        let verify = env.ok(&["verify", "--json"]);
        assert!(verify.contains("ca-bundle"), "{verify}");
    });
}
