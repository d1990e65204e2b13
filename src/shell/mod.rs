//! The shell integration: a directory of PATH shims, one per routed command
//! (`npm`, `curl`, …). A shim asks dual whether the current directory is in a
//! workspace: if so the command runs in that workspace's container, else the
//! host's own program runs, unchanged. Shims work in non-interactive shells
//! too (an agent's `bash -c …` reads no rc file but inherits PATH), which is
//! why routing is decided per call rather than by shell functions.

pub mod policy;
pub mod user_config;

use std::path::{Path, PathBuf};

use crate::process::quote;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    /// From `$SHELL`, defaulting to bash.
    pub fn detect() -> Shell {
        let shell = std::env::var("SHELL").unwrap_or_default();
        match shell.rsplit('/').next() {
            Some("zsh") => Shell::Zsh,
            Some("fish") => Shell::Fish,
            _ => Shell::Bash,
        }
    }
}

/// The text of one shim.
pub fn shim_script(dual: &Path, command: &str) -> String {
    format!(
        "#!/bin/sh\n# Written by `dual shell-init`: runs `{command}` in the workspace's container when\n# the current directory is in a workspace, else the host's own `{command}`.\nexec {} shim {} \"$@\"\n",
        quote(&dual.to_string_lossy()),
        quote(command)
    )
}

/// (Re)writes the shims for `commands` into `dir`, atomically each, and
/// removes shims for commands no longer routed.
pub fn write_shims(dir: &Path, dual: &Path, commands: &[String]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    // Names were checked where they were read; a shim is still never `.`,
    // `..` or a path, whatever a caller passes.
    let commands: Vec<String> = commands
        .iter()
        .filter(|command| policy::is_plain(command))
        .cloned()
        .collect();
    for command in &commands {
        let path = dir.join(command);
        let script = shim_script(dual, command);
        if std::fs::read_to_string(&path).is_ok_and(|existing| existing == script) {
            continue;
        }
        let temporary = dir.join(format!(".{command}.{}.tmp", std::process::id()));
        std::fs::write(&temporary, script)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&temporary, &path)?;
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && !commands.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The code `eval "$(dual shell-init)"` runs: the shims first on PATH, once.
pub fn init_code(shell: Shell, shims: &Path) -> String {
    let dir = quote(&shims.to_string_lossy());
    match shell {
        Shell::Bash | Shell::Zsh => format!(
            "# dual shell integration: runtime commands run in the workspace's container.\n\
             case \":$PATH:\" in\n  *:{dir}:*) ;;\n  *) export PATH={dir}:\"$PATH\" ;;\nesac\n"
        ),
        Shell::Fish => format!(
            "# dual shell integration: runtime commands run in the workspace's container.\n\
             if not contains -- {dir} $PATH\n    set -gx PATH {dir} $PATH\nend\n"
        ),
    }
}

/// PATH without the shims directory: where the host's own programs are.
pub fn path_without(shims: &Path) -> Option<std::ffi::OsString> {
    let path = std::env::var_os("PATH")?;
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| dir != shims)
        .collect();
    std::env::join_paths(kept).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shims_quote_paths_and_pass_arguments_untouched() {
        let script = shim_script(Path::new("/opt/my tools/dual"), "npm");
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(
            script.ends_with("exec '/opt/my tools/dual' shim npm \"$@\"\n"),
            "{script}"
        );
    }

    #[test]
    fn init_code_adds_the_shims_once() {
        let code = init_code(Shell::Bash, Path::new("/d/shims"));
        assert!(code.contains("*:/d/shims:*) ;;"));
        assert!(code.contains("export PATH=/d/shims:\"$PATH\""));
        assert!(
            init_code(Shell::Fish, Path::new("/d/shims")).contains("set -gx PATH /d/shims $PATH")
        );
    }

    #[test]
    fn write_shims_is_idempotent_and_drops_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let dual = Path::new("/usr/bin/dual");
        write_shims(dir.path(), dual, &["npm".into(), "just".into()]).unwrap();
        write_shims(dir.path(), dual, &["npm".into()]).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["npm"]);
    }
}
