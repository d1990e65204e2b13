//! The probe image, built on the host without a registry: `FROM scratch` plus a
//! statically linked busybox (Debian's `busybox-static`), which gives the
//! probes `sh`, `httpd`, `wget`, `readlink` and `timeout`, plus dual's own
//! binary and its shared libraries, whose `dual test-server` the proxy check
//! talks to.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine::{Engine, EngineError, Labels};

/// Bump when the recipe below changes, so old images are not reused.
const RECIPE: &str = "3";

const DOCKERFILE: &str = "FROM scratch\n\
COPY busybox /bin/busybox\n\
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
RUN [\"/bin/busybox\", \"mkdir\", \"-p\", \"/tmp\"]\n\
COPY rootfs/ /\n";

/// The image for this dual binary: a new build of dual gets a new image.
pub fn probe_image() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stamp = std::fs::metadata(&exe)
        .map(|m| format!("{}-{:?}", m.len(), m.modified().ok()))
        .unwrap_or_default();
    let id = crate::workspace::names::short_hash(&format!("{}{stamp}", exe.display()));
    format!("dual-probe:{RECIPE}-{id}")
}

pub struct ImageOutcome {
    pub image: String,
    /// How long building took, when it had to be built.
    pub built_in: Option<std::time::Duration>,
}

impl ImageOutcome {
    pub fn describe(&self) -> String {
        match self.built_in {
            Some(took) => format!(
                "built {} from the host's busybox in {:.1}s",
                self.image,
                took.as_secs_f32()
            ),
            None => format!("{} is present", self.image),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no busybox found (looked at {})", .looked.join(", "))]
    NoBusybox { looked: Vec<String> },
    #[error("`{}` is dynamically linked: it cannot run in an empty image", .0.display())]
    NotStatic(PathBuf),
    #[error("could not prepare the build directory")]
    Io(#[from] std::io::Error),
    #[error("building the probe image failed")]
    Engine(#[from] EngineError),
}

impl ImageError {
    pub fn fix(&self) -> String {
        match self {
            ImageError::NoBusybox { .. } | ImageError::NotStatic(_) => {
                "install a static busybox (Debian: `apt-get install busybox-static`) or point DUAL_BUSYBOX at one".into()
            }
            ImageError::Io(_) => "check that the temporary directory is writable (TMPDIR)".into(),
            ImageError::Engine(error) => error
                .hint()
                .unwrap_or_else(|| "run `dual -v verify` to see the build's output".into()),
        }
    }
}

pub fn ensure_probe_image(engine: &Engine) -> Result<ImageOutcome, ImageError> {
    let image = probe_image();
    if engine.image_exists(&image)? {
        return Ok(ImageOutcome {
            image,
            built_in: None,
        });
    }
    let started = Instant::now();
    let busybox = find_busybox()?;
    let context = tempfile::Builder::new()
        .prefix("dual-probe-image")
        .tempdir()?;
    std::fs::copy(&busybox, context.path().join("busybox"))?;
    std::fs::write(context.path().join("Dockerfile"), DOCKERFILE)?;
    copy_self_with_libraries(&context.path().join("rootfs"))?;
    // Not `dual.managed`: an image's labels pass to every container made from
    // it, and dual must not mistake someone else's container for its own.
    let labels = Labels::from([("dual.image".to_owned(), "probe".to_owned())]);
    engine.build(&image, context.path(), &labels)?;
    Ok(ImageOutcome {
        image,
        built_in: Some(started.elapsed()),
    })
}

/// dual's binary at /usr/local/bin/dual, and the loader and libraries `ldd`
/// names at their own paths: enough for `dual test-server` in an empty image.
fn copy_self_with_libraries(rootfs: &Path) -> Result<(), ImageError> {
    let exe = std::env::current_exe()?;
    std::fs::create_dir_all(rootfs.join("usr/local/bin"))?;
    std::fs::copy(&exe, rootfs.join("usr/local/bin/dual"))?;
    let output = crate::process::Cmd::new("ldd", [exe.as_os_str()])
        .timeout(std::time::Duration::from_secs(10))
        .run()
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    for library in library_paths(&output.stdout) {
        let target = rootfs.join(library.strip_prefix("/").unwrap_or(&library));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&library, &target)?;
    }
    Ok(())
}

/// The absolute paths in `ldd` output (`libc.so.6 => /lib/…/libc.so.6 (0x…)`).
fn library_paths(ldd: &str) -> Vec<PathBuf> {
    ldd.split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

fn find_busybox() -> Result<PathBuf, ImageError> {
    let candidates: Vec<PathBuf> = match crate::settings::busybox() {
        Some(path) => vec![path],
        None => vec!["/bin/busybox".into(), "/usr/bin/busybox".into()],
    };
    let found = candidates
        .iter()
        .find(|path| path.is_file())
        .ok_or_else(|| ImageError::NoBusybox {
            looked: candidates.iter().map(|p| p.display().to_string()).collect(),
        })?;
    if is_dynamic_elf(found)? {
        return Err(ImageError::NotStatic(found.clone()));
    }
    Ok(found.clone())
}

/// True when an ELF file asks for a program interpreter (PT_INTERP), i.e. it
/// needs a dynamic loader that an empty image does not have.
fn is_dynamic_elf(path: &Path) -> std::io::Result<bool> {
    let bytes = std::fs::read(path)?;
    Ok(elf_has_interpreter(&bytes))
}

fn elf_has_interpreter(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let is_elf64_le =
        bytes.len() > 64 && bytes.starts_with(b"\x7fELF") && bytes[4] == 2 && bytes[5] == 1;
    if !is_elf64_le {
        return false;
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap_or_default()) as usize;
    let (entry_size, entries) = (u16_at(0x36), u16_at(0x38));
    (0..entries).any(|index| {
        let at = phoff + index * entry_size;
        bytes.get(at..at + 4).is_some_and(|p_type| {
            u32::from_le_bytes(p_type.try_into().unwrap_or_default()) == PT_INTERP
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            super::library_paths(ldd),
            [
                std::path::PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                std::path::PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn a_dynamic_binary_is_told_from_a_static_one() {
        // The test binary itself is dynamically linked against glibc.
        let me = std::env::current_exe().unwrap();
        assert!(super::is_dynamic_elf(&me).unwrap());
        assert!(!super::elf_has_interpreter(b"#!/bin/sh\necho not elf\n"));
    }
}
