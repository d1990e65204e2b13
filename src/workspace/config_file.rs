//! What every reader of a repo's config files shares (`.dual.toml`, the
//! compose file): the file's name, the error that names a file, and the
//! syntax its values are checked against before they reach an engine.

use std::path::{Component, Path, PathBuf};

pub const FILE_NAME: &str = ".dual.toml";

/// A config file that could not be read, or that says something dual
/// refuses: named, with the key and where it stands.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: crate::confined::ConfinedError,
    },
    #[error("`{}`: {message}", .path.display())]
    Invalid { path: PathBuf, message: String },
}

/// A service's or sidecar's name: it becomes part of file, container and
/// volume names, and a word of `dual logs`.
pub fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// An environment variable's name as a shell's: `--env=NAME=…` must not
/// read a `=` of the name as its end.
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An image reference as the engines read one:
/// `[host[:port]/]path[:tag][@algorithm:hex]`, path components lower-case.
/// Checked here so that a repo's `image` can only ever name an image (an
/// `image` starting with `-` would otherwise be an option to the engine).
pub fn check_image_reference(image: &str) -> Result<(), &'static str> {
    if image.len() > 512 {
        return Err("longer than 512 characters");
    }
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or("a digest is `algorithm:hex`")?;
        let algorithm_ok = algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
            && algorithm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-_".contains(c));
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("a digest is `algorithm:hex`");
        }
    }
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        let tag_ok = tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !tag_ok {
            return Err("a tag is letters, digits, `_`, `.` and `-`");
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        let is_host = first.contains(['.', ':']) || first == "localhost";
        if is_host {
            let (host, port) = match first.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (first, None),
            };
            let host_ok = host.starts_with(|c: char| c.is_ascii_alphanumeric())
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
            let port_ok =
                port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            if !host_ok || !port_ok {
                return Err("a registry is `host` or `host:port`");
            }
            components.remove(0);
        }
    }
    let component_ok = |part: &str| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes[bytes.len() - 1].is_ascii_lowercase() | bytes[bytes.len() - 1].is_ascii_digit()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    };
    if components.is_empty() || !components.iter().all(|part| component_ok(part)) {
        return Err(
            "a name is lower-case letters, digits and `.`, `_`, `-` between them, in parts separated by `/`",
        );
    }
    Ok(())
}

/// A relative path without `..`, of plain characters, no part starting
/// with `-` (it may become an argument): a build context or Dockerfile.
pub fn is_plain_relative(path: &str) -> bool {
    let components_ok = Path::new(path)
        .components()
        .all(|component| match component {
            Component::Normal(part) => !part.to_string_lossy().starts_with('-'),
            Component::CurDir => true,
            _ => false,
        });
    !path.is_empty()
        && components_ok
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
}

/// A Dockerfile stage's name (`--target=NAME`).
pub fn is_stage_name(target: &str) -> bool {
    !target.starts_with('-')
        && !target.is_empty()
        && target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// `path` with `.` and `..` resolved as written, when it stays below where
/// it starts: a relative path inside the clone, or `None`.
pub fn normalized_inside(path: &Path) -> Option<PathBuf> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(normal)
}
