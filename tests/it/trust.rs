//! The host's CA bundle in a workspace: behind this machine's
//! TLS-inspecting proxy, Python in a workspace reaches PyPI as the host's
//! does, and without the bundle it cannot.

use crate::support::{each_engine, ensure_test_image, have_debian_images};
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

/// A hostile clone holds `certs/ca.pem -> SECRET` (a key of the user's);
/// the user runs `dual launch` in it with a CA variable that names a
/// relative path. The variable is not read relative to where dual runs:
/// nothing of the secret reaches the workspace.
#[test]
fn a_relative_ca_variable_never_names_a_file_of_the_clone() {
    each_engine("host CA, relative", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &format!("image = \"{image}\"\nports = []\n"));
        let secret = env.home().join("id_rsa");
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nHOST-SECRET-KEY\n-----END OPENSSH PRIVATE KEY-----\n";
        std::fs::write(&secret, key).unwrap();
        let source = env.source();
        std::fs::create_dir_all(source.join("certs")).unwrap();
        std::os::unix::fs::symlink(&secret, source.join("certs/ca.pem")).unwrap();
        env.git(&source, &["add", "-A"]);
        env.git(&source, &["commit", "-qm", "a CA that is a link"]);
        env.ok(&["create", "main"]);
        let name = env.name("main");
        env.ok(&["launch", &name]);
        let clone = env.clone_path("main");
        let launched = env
            .cmd(&["launch", "--recreate"])
            .current_dir(&clone)
            .env("SSL_CERT_FILE", "certs/ca.pem")
            .env("PIP_CERT", "certs/ca.pem")
            .output()
            .unwrap();
        assert!(
            launched.status.success(),
            "{}",
            String::from_utf8_lossy(&launched.stderr)
        );
        let inside = env.run_in(
            "main",
            "",
            &[
                "sh",
                "-c",
                &format!("cat {} 2>/dev/null; env", dual::workspace::trust::MOUNT),
            ],
        );
        let inside = String::from_utf8_lossy(&inside.stdout);
        assert!(!inside.contains("HOST-SECRET-KEY"), "{inside}");
        assert!(!inside.contains("certs/ca.pem"), "{inside}");
    });
}
