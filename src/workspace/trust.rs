//! The host's trusted certificate authorities, passed into workspaces so
//! that installs behind a TLS-inspecting proxy work as on the host: a
//! container trusts only its image's CAs, so `pip install` there fails with
//! `CERTIFICATE_VERIFY_FAILED` where the host's pip, told of the proxy's CA,
//! succeeds.
//!
//! The bundle is the host's: the first of the variables the host's tools
//! read (`SSL_CERT_FILE`, …) that names a readable file, else the system
//! bundle where the host added CAs of its own to it (Debian's
//! `/usr/local/share/ca-certificates`, Red Hat's `ca-trust/source/anchors`).
//! `DUAL_CA_BUNDLE` (the user's environment, never the repo's) names another
//! file, or `none` to pass nothing. It is mounted read-only and every usual
//! variable points at it, except those the repo's config sets itself.
//! Certificates are public: passing them reveals nothing; a host that adds
//! no CA passes nothing, and the image's own trust is left alone.

use std::path::{Path, PathBuf};

use crate::engine::spec::{BindMount, RunSpec};

/// Where the host's bundle is, inside.
pub const MOUNT: &str = "/etc/ssl/dual-host-ca-certificates.crt";

/// The variables tools read a CA bundle from: OpenSSL (and Python's ssl,
/// uv), pip, requests, Node (added to its own), curl, git.
pub const VARIABLES: [&str; 6] = [
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
];

/// A bundle larger than this is no CA bundle (Debian's is ~220 KB).
const MAX_BUNDLE_BYTES: u64 = 16 * 1024 * 1024;

/// The system bundles, each with the directory where a host adds its own
/// CAs to it.
const SYSTEM_BUNDLES: [(&str, &str); 2] = [
    (
        "/etc/ssl/certs/ca-certificates.crt",
        "/usr/local/share/ca-certificates",
    ),
    (
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/pki/ca-trust/source/anchors",
    ),
];

/// The host's bundle that workspaces get, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTrust {
    /// The file itself (links resolved: the engine mounts a file).
    pub bundle: PathBuf,
    pub why: String,
}

/// The host's bundle to pass, if the host has one: see the module's doc.
pub fn host_trust() -> Option<HostTrust> {
    host_trust_from(
        crate::settings::ca_bundle(),
        &|name| std::env::var_os(name),
        &SYSTEM_BUNDLES,
    )
}

/// `chosen`: the user's `DUAL_CA_BUNDLE`; `var`: the host's environment.
fn host_trust_from(
    chosen: Option<std::ffi::OsString>,
    var: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    system: &[(&str, &str)],
) -> Option<HostTrust> {
    if let Some(chosen) = chosen.filter(|value| !value.is_empty()) {
        if chosen == "none" {
            return None;
        }
        return usable(Path::new(&chosen)).map(|bundle| HostTrust {
            bundle,
            why: "DUAL_CA_BUNDLE names it".into(),
        });
    }
    for name in VARIABLES {
        if let Some(bundle) = var(name).and_then(|value| usable(Path::new(&value))) {
            return Some(HostTrust {
                bundle,
                why: format!("the host sets {name}"),
            });
        }
    }
    system.iter().find_map(|(bundle, added)| {
        let has_added =
            std::fs::read_dir(added).is_ok_and(|mut entries| entries.any(|entry| entry.is_ok()));
        let bundle = usable(Path::new(bundle)).filter(|_| has_added)?;
        Some(HostTrust {
            bundle,
            why: format!("the host added CAs in {added}"),
        })
    })
}

/// `path` resolved to a regular file of bundle size that `--mount` can
/// name and that holds certificates, nothing secret.
///
/// Only an absolute path: a relative one names a file relative to wherever
/// dual runs, which is often a workspace's clone, where the repo could
/// have put `ca.pem -> ~/.ssh/id_rsa` (and a tool inside would not read it
/// from there anyway). A file with a private key in it is not a CA bundle:
/// it is not handed to a container the repo controls.
fn usable(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let real = std::fs::canonicalize(path).ok()?;
    let metadata = std::fs::metadata(&real).ok()?;
    let fits = metadata.is_file() && metadata.len() > 0 && metadata.len() <= MAX_BUNDLE_BYTES;
    let plain = crate::engine::spec::check_mount_field("CA bundle", &real).is_ok();
    (fits && plain && holds_only_certificates(&real)).then_some(real)
}

/// Whether the PEM file at `path` holds a certificate and no private key.
fn holds_only_certificates(path: &Path) -> bool {
    use std::io::Read as _;
    let mut text = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|file| file.take(MAX_BUNDLE_BYTES).read_to_end(&mut text));
    if read.is_err() {
        return false;
    }
    let holds = |words: &[u8]| text.windows(words.len()).any(|window| window == words);
    holds(b"-----BEGIN CERTIFICATE-----") && !holds(b"PRIVATE KEY-----")
}

/// Mounts the host's CA bundle read-only into `spec` and points the usual
/// variables at it, where the host has one to pass.
pub fn apply(spec: &mut RunSpec) {
    if let Some(trust) = host_trust() {
        apply_bundle(spec, &trust);
    }
}

fn apply_bundle(spec: &mut RunSpec, trust: &HostTrust) {
    spec.bind_mounts
        .push(BindMount::new(&trust.bundle, MOUNT).readonly());
    for name in VARIABLES {
        if !spec.env.iter().any(|(set, _)| set == name) {
            spec.env.push((name.to_owned(), MOUNT.to_owned()));
        }
    }
}

/// What a container made now gets, for the settings hash: a host that
/// starts (or stops) passing a bundle recreates its workspaces.
pub fn fingerprint() -> Option<String> {
    host_trust().map(|trust| trust.bundle.display().to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsString;

    use super::*;

    fn env(pairs: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
        let map: BTreeMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_os_str().to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_host_s_variables_then_added_cas_choose_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle.crt");
        std::fs::write(&bundle, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let link = dir.path().join("link.crt");
        std::os::unix::fs::symlink(&bundle, &link).unwrap();
        let added = dir.path().join("added");
        std::fs::create_dir(&added).unwrap();
        let system = [(bundle.to_str().unwrap(), added.to_str().unwrap())];

        // A variable naming a link: the file it names is mounted.
        let found = host_trust_from(None, &env(&[("PIP_CERT", &link)]), &system).unwrap();
        assert_eq!(found.bundle, bundle.canonicalize().unwrap());
        assert_eq!(found.why, "the host sets PIP_CERT");
        // A variable naming nothing, an empty or oversized file: skipped.
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "").unwrap();
        let missing = dir.path().join("missing.crt");
        assert_eq!(
            host_trust_from(
                None,
                &env(&[("SSL_CERT_FILE", &missing), ("CURL_CA_BUNDLE", &empty)]),
                &system
            ),
            None,
            "no added CAs either"
        );
        // No variable, but CAs added to the system's bundle.
        std::fs::write(added.join("proxy.crt"), "x").unwrap();
        let found = host_trust_from(None, &env(&[]), &system).unwrap();
        assert!(found.why.contains("added CAs"), "{found:?}");
        // The user's own choice wins; `none` passes nothing.
        let chosen = host_trust_from(Some(link.clone().into()), &env(&[]), &system).unwrap();
        assert_eq!(chosen.why, "DUAL_CA_BUNDLE names it");
        assert_eq!(
            host_trust_from(Some("none".into()), &env(&[]), &system),
            None
        );
    }

    #[test]
    fn a_bundle_whose_path_would_add_mount_fields_is_not_passed() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("a,type=bind,source=.crt");
        std::fs::write(&bundle, "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert_eq!(
            host_trust_from(None, &env(&[("SSL_CERT_FILE", &bundle)]), &[]),
            None
        );
    }

    #[test]
    fn a_relative_path_or_a_file_with_a_key_is_never_passed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("id_rsa");
        std::fs::write(
            &secret,
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        let bundle = dir.path().join("bundle.crt");
        std::fs::write(&bundle, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        // A clone's `certs/ca.pem -> ~/.ssh/id_rsa`, named relative to
        // where dual runs (a variable set to `certs/ca.pem`, dual run in
        // the clone): relative to this process's directory, whatever it is,
        // it names the file.
        let up = "../".repeat(std::env::current_dir().unwrap().components().count());
        let relative = |file: &Path| PathBuf::from(&up).join(file.strip_prefix("/").unwrap());
        assert!(relative(&bundle).canonicalize().is_ok());
        for variable in ["SSL_CERT_FILE", "PIP_CERT"] {
            assert_eq!(
                host_trust_from(None, &env(&[(variable, &relative(&bundle))]), &[]),
                None,
                "a relative {variable}"
            );
        }
        assert_eq!(
            host_trust_from(Some(relative(&bundle).into()), &env(&[]), &[]),
            None,
            "a relative DUAL_CA_BUNDLE"
        );
        // A key, or a bundle with one, named absolutely: not passed either.
        let mixed = dir.path().join("mixed.pem");
        std::fs::write(
            &mixed,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIIE\n",
        )
        .unwrap();
        for file in [&secret, &mixed] {
            assert_eq!(
                host_trust_from(None, &env(&[("SSL_CERT_FILE", file)]), &[]),
                None,
                "{file:?}"
            );
        }
        let chosen = host_trust_from(None, &env(&[("SSL_CERT_FILE", &bundle)]), &[]).unwrap();
        assert_eq!(chosen.bundle, bundle.canonicalize().unwrap());
    }

    #[test]
    fn the_repo_s_own_setting_of_a_variable_is_kept() {
        let mut spec = RunSpec::new("c", "i");
        spec.env.push(("PIP_CERT".into(), "/repo/ca.pem".into()));
        let trust = HostTrust {
            bundle: "/etc/ssl/certs/ca-certificates.crt".into(),
            why: String::new(),
        };
        apply_bundle(&mut spec, &trust);
        let values: Vec<&str> = spec
            .env
            .iter()
            .filter(|(name, _)| name == "PIP_CERT")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(values, ["/repo/ca.pem"]);
        assert!(
            spec.env
                .contains(&("SSL_CERT_FILE".to_owned(), MOUNT.to_owned()))
        );
        assert!(spec.bind_mounts.iter().any(|m| m.readonly
            && m.target == Path::new(MOUNT)
            && m.source == Path::new("/etc/ssl/certs/ca-certificates.crt")));
    }
}
