//! The shell integration: a directory of PATH shims, one per routed command
//! (`npm`, `curl`, …). A shim asks dual whether the current directory is in a
//! workspace: if so the command runs in that workspace's container, else the
//! host's own program runs, unchanged. Shims work in non-interactive shells
//! too (an agent's `bash -c …` reads no rc file but inherits PATH), which is
//! why routing is decided per call rather than by shell functions.

pub mod policy;
pub mod session;
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
    std::fs::create_dir_all(dir)?;
    // Names were checked where they were read; a shim is still never `.`,
    // `..` or a path, whatever a caller passes.
    let commands: Vec<String> = commands
        .iter()
        .filter(|command| policy::is_plain(command))
        .cloned()
        .collect();
    for command in &commands {
        let script = shim_script(dual, command);
        crate::files::write_if_changed(&dir.join(command), script.as_bytes(), 0o755)?;
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && !commands.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The code `eval "$(dual shell-init)"` runs: the shims first on PATH,
/// now and at every prompt.
///
/// Version managers (pyenv, nvm, asdf, mise, rbenv, conda) prepend their own
/// shims from the same rc files, some at every prompt, and a routed command
/// that runs on the host's `python` instead of the container's is the
/// boundary failing silently. So the shims move to the front (not merely
/// "somewhere on PATH"), and a prompt hook moves them back whenever
/// something got ahead of them: bash's `PROMPT_COMMAND` (appended, so it
/// runs after hooks that prepend to it, as mise's and direnv's do), zsh's
/// `precmd` and `chpwd` hooks (mise also hooks `chpwd`, so `cd x && npm`
/// is covered), fish's PATH variable event (any change at all).
pub fn init_code(shell: Shell, shims: &Path) -> String {
    let header = "# dual shell integration: runtime commands run in the workspace's container.\n";
    match shell {
        Shell::Bash => format!(
            "{header}{}{}",
            posix_front(shims),
            r#"if [[ " ${PROMPT_COMMAND[*]-} " != *__dual_shims_first* ]]; then
  if (( BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 501 )); then
    PROMPT_COMMAND+=(__dual_shims_first)
  else
    PROMPT_COMMAND="${PROMPT_COMMAND:+$PROMPT_COMMAND
}__dual_shims_first"
  fi
fi
__dual_shims_first
"#
        ),
        Shell::Zsh => format!(
            "{header}{}{}",
            posix_front(shims),
            r#"(( ${precmd_functions[(I)__dual_shims_first]} )) || precmd_functions+=(__dual_shims_first)
(( ${chpwd_functions[(I)__dual_shims_first]} )) || chpwd_functions+=(__dual_shims_first)
__dual_shims_first
"#
        ),
        Shell::Fish => format!(
            "{header}set -g __dual_shims {}\n{}",
            fish_quote(&shims.to_string_lossy()),
            r#"function __dual_shims_first --on-variable PATH --on-event fish_prompt
    if test "$PATH[1]" = "$__dual_shims"; and not contains -- $__dual_shims $PATH[2..-1]
        return
    end
    set -l rest
    for dir in $PATH
        test "$dir" = "$__dual_shims"; or set -a rest $dir
    end
    set -gx PATH $__dual_shims $rest
end
__dual_shims_first
"#
        ),
    }
}

/// bash and zsh: `__dual_shims_first` puts the shims directory first on
/// PATH and drops its other places, without a fork (it runs at every
/// prompt), and assigns PATH only when that changes it (an assignment
/// empties the shell's table of found commands).
fn posix_front(shims: &Path) -> String {
    format!(
        "__dual_shims={}\n{}",
        quote(&shims.to_string_lossy()),
        r#"__dual_shims_first() {
  local rest=":$PATH:"
  while :; do
    case "$rest" in
      *:"$__dual_shims":*) rest="${rest%%:"$__dual_shims":*}:${rest#*:"$__dual_shims":}" ;;
      *) break ;;
    esac
  done
  rest="${rest#:}"
  rest="${rest%:}"
  rest="$__dual_shims${rest:+:$rest}"
  [ "$rest" = "$PATH" ] || export PATH="$rest"
}
"#
    )
}

/// `text` as one fish word: single quotes, where fish reads `\\` and `\'`.
fn fish_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `path` (a PATH-style list) with `shims` first and nowhere else.
pub fn path_with_shims_first(shims: &Path, path: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut dirs = vec![shims.to_owned()];
    dirs.extend(std::env::split_paths(path).filter(|dir| dir != shims));
    std::env::join_paths(dirs).unwrap_or_else(|_| path.to_owned())
}

/// How to start the user's interactive shell for a workspace (its tmux
/// session, the browser's subshell) so that the shims come first however
/// the user's rc files set PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interactive {
    pub program: PathBuf,
    pub args: Vec<std::ffi::OsString>,
    /// Set for the shell (PATH with the shims first among them).
    pub env: Vec<(String, std::ffi::OsString)>,
}

impl Interactive {
    /// As one `sh -c` line: `K=V … exec PROGRAM ARGS…`.
    pub fn sh_line(&self) -> String {
        let mut line = String::new();
        for (key, value) in &self.env {
            line.push_str(&format!("{key}={} ", quote(&value.to_string_lossy())));
        }
        line.push_str("exec ");
        line.push_str(&quote(&self.program.to_string_lossy()));
        for arg in &self.args {
            line.push(' ');
            line.push_str(&quote(&arg.to_string_lossy()));
        }
        line
    }
}

/// The shell `program` (the user's `$SHELL`) started with dual's rc files,
/// written into `rc_dir`: each reads the user's own rc files first, as that
/// shell would, then runs [`init_code`]. bash gets `--rcfile`; zsh a
/// `ZDOTDIR` of dual's whose files read the user's from their own
/// `ZDOTDIR` (or HOME) and give it back; fish `--init-command`, which runs
/// after its config files. Any other shell gets PATH with the shims first,
/// and no hook.
pub fn interactive(program: &Path, shims: &Path, rc_dir: &Path) -> std::io::Result<Interactive> {
    let name = program
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let current = std::env::var_os("PATH").unwrap_or_default();
    // While the user's own rc files run, no shim is on PATH: they run
    // programs in the clone's directory and `eval` what some print (`pip
    // completion`, `zoxide init`); routed, that would be the image's
    // program choosing shell code for the host. dual's rc adds the shims
    // after them. A shell dual has no rc file for gets them at once.
    let path = if matches!(name.as_str(), "bash" | "zsh" | "fish") {
        crate::process::path_without_dir(&current, shims)
    } else {
        path_with_shims_first(shims, &current)
    };
    let mut started = Interactive {
        program: program.to_owned(),
        args: Vec::new(),
        env: vec![("PATH".to_owned(), path)],
    };
    match name.as_str() {
        "bash" => {
            let rc = rc_dir.join("bashrc");
            write_atomically(
                &rc,
                &format!("{BASHRC_HEADER}{}", init_code(Shell::Bash, shims)),
            )?;
            started.args = vec!["--rcfile".into(), rc.into()];
        }
        "zsh" => {
            let dir = rc_dir.join("zsh");
            write_atomically(&dir.join(".zshenv"), ZSHENV)?;
            write_atomically(
                &dir.join(".zshrc"),
                &format!("{ZSHRC_HEADER}{}", init_code(Shell::Zsh, shims)),
            )?;
            if let Some(own) = std::env::var_os("ZDOTDIR") {
                started
                    .env
                    .push((crate::settings::USER_ZDOTDIR.to_owned(), own));
            }
            started.env.push(("ZDOTDIR".to_owned(), dir.into()));
        }
        "fish" => {
            started.args = vec![
                "--init-command".into(),
                init_code(Shell::Fish, shims).into(),
            ];
        }
        _ => {}
    }
    Ok(started)
}

const BASHRC_HEADER: &str = r#"# Written by dual for the shells it starts in a workspace (its tmux session,
# the browser's subshell), which read this instead of ~/.bashrc: the user's
# own ~/.bashrc first, as bash would read it, then dual's shell integration,
# which puts the shims first on PATH whatever that prepended, and keeps them
# there at every prompt.
if [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
"#;

/// zsh reads `.zshenv` and then `.zshrc` from `$ZDOTDIR`, which dual points
/// here; each reads the user's own from their `ZDOTDIR` (else HOME), and
/// `.zshrc` gives theirs back before it does, so that nothing after sees
/// dual's.
const ZSHENV: &str = r#"# Written by dual (see .zshrc beside it): the user's own .zshenv.
__dual_zdotdir=$ZDOTDIR
if [[ -n ${DUAL_USER_ZDOTDIR+x} ]]; then ZDOTDIR=$DUAL_USER_ZDOTDIR; else unset ZDOTDIR; fi
unset DUAL_USER_ZDOTDIR
[[ -f ${ZDOTDIR:-$HOME}/.zshenv ]] && source "${ZDOTDIR:-$HOME}/.zshenv"
__dual_user_zdotdir=${ZDOTDIR-}
__dual_user_zdotdir_set=${ZDOTDIR+x}
ZDOTDIR=$__dual_zdotdir
"#;

const ZSHRC_HEADER: &str = r#"# Written by dual for the shells it starts in a workspace (its tmux session,
# the browser's subshell): the user's own .zshrc first, then dual's shell
# integration, which puts the shims first on PATH whatever that prepended,
# and keeps them there at every prompt.
if [[ -n $__dual_user_zdotdir_set ]]; then export ZDOTDIR=$__dual_user_zdotdir; else unset ZDOTDIR; fi
unset __dual_zdotdir __dual_user_zdotdir __dual_user_zdotdir_set
[[ -f ${ZDOTDIR:-$HOME}/.zshrc ]] && source "${ZDOTDIR:-$HOME}/.zshrc"
"#;

/// Writes `text` to `path` unless it holds it already, by a rename, so
/// that a shell starting at the same time never reads half a file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    crate::files::write_if_changed(path, text.as_bytes(), 0o644)
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

    /// PATH after `init` then `then` in `shell` (skipped, loudly, where
    /// that shell is not installed).
    fn path_after(shell: Shell, program: &str, then: &str, path: &str) -> Option<String> {
        if crate::process::find_on_path(program).is_none() {
            eprintln!("!!!!! SKIPPED the {program} part: no {program} on PATH");
            return None;
        }
        let init = init_code(shell, Path::new("/d/my shims"));
        let script = format!("{init}\n{then}\necho \"$PATH\"");
        let output = crate::process::Cmd::new(program, ["-c", script.as_str()])
            .env("PATH", path)
            .run()
            .unwrap();
        Some(output.stdout.trim_end().to_owned())
    }

    #[test]
    fn init_code_puts_the_shims_first_once() {
        let system = std::env::var("PATH").unwrap();
        for (shell, program) in [(Shell::Bash, "bash"), (Shell::Zsh, "zsh")] {
            for (before, after) in [
                (format!("/a:{system}"), format!("/d/my shims:/a:{system}")),
                (
                    format!("/a:/d/my shims:{system}:/d/my shims"),
                    format!("/d/my shims:/a:{system}"),
                ),
                (
                    format!("/d/my shims:{system}"),
                    format!("/d/my shims:{system}"),
                ),
            ] {
                let Some(path) = path_after(shell, program, "", &before) else {
                    continue;
                };
                assert_eq!(path, after, "{program} from {before}");
            }
        }
        // fish: its PATH is a list; the test prints it joined with `:`.
        let fish = init_code(Shell::Fish, Path::new("/d/my shims"));
        assert!(fish.contains("set -g __dual_shims '/d/my shims'"), "{fish}");
        assert_eq!(fish_quote(r"it's a \ dir"), r"'it\'s a \\ dir'");
    }

    #[test]
    fn the_prompt_hook_undoes_a_later_prepend() {
        let system = std::env::var("PATH").unwrap();
        // bash: what PROMPT_COMMAND runs before the next prompt.
        let then = "export PATH=/pyenv/shims:$PATH; for c in \"${PROMPT_COMMAND[@]}\"; do eval \"$c\"; done";
        if let Some(path) = path_after(Shell::Bash, "bash", then, &system) {
            assert_eq!(path, format!("/d/my shims:/pyenv/shims:{system}"));
        }
        let then = "export PATH=/pyenv/shims:$PATH; for f in $precmd_functions; do $f; done";
        if let Some(path) = path_after(Shell::Zsh, "zsh", then, &system) {
            assert_eq!(path, format!("/d/my shims:/pyenv/shims:{system}"));
        }
        // fish: the PATH event fires on the change itself.
        if crate::process::find_on_path("fish").is_some() {
            let init = init_code(Shell::Fish, Path::new("/d/my shims"));
            let script = format!("{init}\nset -gx PATH /pyenv/shims $PATH\nstring join : $PATH");
            let output = crate::process::Cmd::new("fish", ["--no-config", "-c", script.as_str()])
                .env("PATH", &system)
                .run()
                .unwrap();
            assert_eq!(
                output.stdout.trim_end(),
                format!("/d/my shims:/pyenv/shims:{system}")
            );
        }
        // Registered once, however often the code runs.
        let init = init_code(Shell::Bash, Path::new("/d"));
        if crate::process::find_on_path("bash").is_some() {
            let script = format!("{init}\n{init}\necho \"${{PROMPT_COMMAND[*]}}\"");
            let output = crate::process::Cmd::new("bash", ["-c", script.as_str()])
                .env("PROMPT_COMMAND", "mine")
                .run()
                .unwrap();
            assert_eq!(output.stdout.trim_end(), "mine __dual_shims_first");
        }
    }

    #[test]
    fn path_with_shims_first_moves_them_and_drops_duplicates() {
        let shims = Path::new("/d/shims");
        let path = path_with_shims_first(shims, std::ffi::OsStr::new("/a:/d/shims:/b:/d/shims"));
        assert_eq!(path, "/d/shims:/a:/b");
    }

    #[test]
    fn shells_start_with_dual_s_rc_after_the_user_s() {
        let dir = tempfile::tempdir().unwrap();
        let shims = Path::new("/d/shims");
        let bash = interactive(Path::new("/bin/bash"), shims, dir.path()).unwrap();
        let rc = dir.path().join("bashrc");
        assert_eq!(
            bash.args,
            [std::ffi::OsString::from("--rcfile"), rc.clone().into()]
        );
        let text = std::fs::read_to_string(&rc).unwrap();
        let own = text.find(". \"$HOME/.bashrc\"").unwrap();
        assert!(own < text.find("__dual_shims_first").unwrap(), "{text}");
        assert_eq!(bash.env[0].0, "PATH");
        assert!(
            !bash.env[0].1.to_string_lossy().contains("/d/shims"),
            "no shim while the user's rc runs: its evals would run the image's programs"
        );
        let zsh = interactive(Path::new("/usr/bin/zsh"), shims, dir.path()).unwrap();
        assert!(
            zsh.env
                .iter()
                .any(|(k, v)| k == "ZDOTDIR" && *v == *dir.path().join("zsh"))
        );
        assert!(dir.path().join("zsh/.zshenv").is_file());
        let fish = interactive(Path::new("/usr/bin/fish"), shims, dir.path()).unwrap();
        assert_eq!(fish.args[0], "--init-command");
        let sh = interactive(Path::new("/bin/sh"), shims, dir.path()).unwrap();
        assert!(sh.args.is_empty());
        assert!(
            sh.sh_line().starts_with("PATH=/d/shims:"),
            "{}",
            sh.sh_line()
        );
        assert!(sh.sh_line().ends_with(" exec /bin/sh"), "{}", sh.sh_line());
    }

    #[test]
    fn the_shims_are_left_out_of_the_host_s_path_however_they_are_spelt() {
        let dir = tempfile::tempdir().unwrap();
        let shims = dir.path().join("shims");
        std::fs::create_dir(&shims).unwrap();
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&shims, &linked).unwrap();
        let path =
            std::env::join_paths([shims.join(""), linked.clone(), PathBuf::from("/usr/bin")])
                .unwrap();
        assert_eq!(
            crate::process::path_without_dir(&path, &shims),
            "/usr/bin",
            "a shim would run itself"
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
