//! Which commands may be routed into a workspace's container, and which may
//! run on the host for another workspace's URL.
//!
//! A repo's `.dual.toml` is hostile input (dual runs branches the user did
//! not write), and its `extra_commands` put shims on the user's PATH: a
//! repo that routed `sudo` got a fake `sudo` in its container, run in the
//! clone's directory, which read the user's password. So a repo may route
//! neither a command that handles secrets or the host's identity (the deny
//! list below) nor one a shell runs itself (a builtin or keyword: a shim
//! cannot stand in for it, and a file named `.` broke `shell-init` for every
//! workspace). The user may route more in their own config
//! ([`crate::shell::user_config`]), where the deny list does not apply but
//! the name rules do.

/// Where a routed name comes from: the rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A repo's `.dual.toml`: hostile input.
    Repo,
    /// The user's own config: they decide.
    User,
}

/// Why a name cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "`{0}` is not a command name: a letter, digit, `_` or `+`, then also `.` and `-`, at most {MAX_LEN} in all"
    )]
    NotAName(String),
    #[error(
        "`{name}` is a builtin or keyword of {shells}: the shell runs its own and never a shim, so it cannot be routed"
    )]
    Builtin { name: String, shells: String },
    #[error(
        "`{name}` {why}: a repo cannot route it, since a program of the repo's standing in for it in the container would get what you type and what it holds"
    )]
    Sensitive { name: String, why: &'static str },
}

pub const MAX_LEN: usize = 64;

/// Shells' own commands: builtins and reserved words of sh (dash), bash,
/// zsh and fish (from `compgen -b -k` in bash 5.2, `${(k)builtins}
/// ${(k)reswords}` in zsh 5.9, `builtin -n` in fish 3.6; names that fail
/// the name syntax anyway, like `[`, `{` or `[[`, left out).
const BUILTINS: &[(&str, &str)] = &[
    (".", "sh bash zsh fish"),
    ("_", "fish"),
    ("abbr", "fish"),
    ("alias", "sh bash zsh fish"),
    ("and", "fish"),
    ("argparse", "fish"),
    ("autoload", "zsh"),
    ("begin", "fish"),
    ("bg", "sh bash zsh fish"),
    ("bind", "bash fish"),
    ("bindkey", "zsh"),
    ("block", "fish"),
    ("break", "sh bash zsh fish"),
    ("breakpoint", "fish"),
    ("builtin", "bash zsh fish"),
    ("bye", "zsh"),
    ("caller", "bash"),
    ("case", "sh bash zsh fish"),
    ("cd", "sh bash zsh fish"),
    ("chdir", "sh zsh"),
    ("command", "sh bash zsh fish"),
    ("commandline", "fish"),
    ("compadd", "zsh"),
    ("comparguments", "zsh"),
    ("compcall", "zsh"),
    ("compctl", "zsh"),
    ("compdescribe", "zsh"),
    ("compfiles", "zsh"),
    ("compgen", "bash"),
    ("compgroups", "zsh"),
    ("complete", "bash fish"),
    ("compopt", "bash"),
    ("compquote", "zsh"),
    ("compset", "zsh"),
    ("comptags", "zsh"),
    ("comptry", "zsh"),
    ("compvalues", "zsh"),
    ("contains", "fish"),
    ("continue", "sh bash zsh fish"),
    ("coproc", "bash zsh"),
    ("count", "fish"),
    ("declare", "bash zsh"),
    ("dirs", "bash zsh"),
    ("disable", "zsh"),
    ("disown", "bash zsh fish"),
    ("do", "sh bash zsh"),
    ("done", "sh bash zsh"),
    ("echo", "sh bash zsh fish"),
    ("echotc", "zsh"),
    ("echoti", "zsh"),
    ("elif", "sh bash zsh"),
    ("else", "sh bash zsh fish"),
    ("emit", "fish"),
    ("emulate", "zsh"),
    ("enable", "bash zsh"),
    ("end", "zsh fish"),
    ("esac", "sh bash zsh"),
    ("eval", "sh bash zsh fish"),
    ("exec", "sh bash zsh fish"),
    ("exit", "sh bash zsh fish"),
    ("export", "sh bash zsh"),
    ("false", "sh bash zsh fish"),
    ("fc", "bash zsh"),
    ("fg", "sh bash zsh fish"),
    ("fi", "sh bash zsh"),
    ("float", "zsh"),
    ("for", "sh bash zsh fish"),
    ("foreach", "zsh"),
    ("function", "bash zsh fish"),
    ("functions", "zsh fish"),
    ("getln", "zsh"),
    ("getopts", "sh bash zsh"),
    ("hash", "sh bash zsh"),
    ("help", "bash"),
    ("history", "bash zsh fish"),
    ("if", "sh bash zsh fish"),
    ("in", "sh bash zsh"),
    ("integer", "zsh"),
    ("jobs", "sh bash zsh fish"),
    ("kill", "sh bash zsh"),
    ("let", "bash zsh"),
    ("limit", "zsh"),
    ("local", "sh bash zsh"),
    ("log", "zsh"),
    ("logout", "bash zsh"),
    ("mapfile", "bash"),
    ("math", "fish"),
    ("nocorrect", "zsh"),
    ("noglob", "zsh"),
    ("not", "fish"),
    ("or", "fish"),
    ("path", "fish"),
    ("popd", "bash zsh"),
    ("print", "zsh"),
    ("printf", "sh bash zsh fish"),
    ("private", "zsh"),
    ("pushd", "bash zsh"),
    ("pushln", "zsh"),
    ("pwd", "sh bash zsh fish"),
    ("r", "zsh"),
    ("random", "fish"),
    ("read", "sh bash zsh fish"),
    ("readarray", "bash"),
    ("readonly", "sh bash zsh"),
    ("realpath", "fish"),
    ("rehash", "zsh"),
    ("repeat", "zsh"),
    ("return", "sh bash zsh fish"),
    ("sched", "zsh"),
    ("select", "bash zsh"),
    ("set", "sh bash zsh fish"),
    ("set_color", "fish"),
    ("setopt", "zsh"),
    ("shift", "sh bash zsh"),
    ("shopt", "bash"),
    ("source", "bash zsh fish"),
    ("status", "fish"),
    ("string", "fish"),
    ("suspend", "bash zsh"),
    ("switch", "fish"),
    ("test", "sh bash zsh fish"),
    ("then", "sh bash zsh"),
    ("time", "bash zsh fish"),
    ("times", "sh bash zsh"),
    ("trap", "sh bash zsh"),
    ("true", "sh bash zsh fish"),
    ("ttyctl", "zsh"),
    ("type", "sh bash zsh fish"),
    ("typeset", "bash zsh"),
    ("ulimit", "sh bash zsh fish"),
    ("umask", "sh bash zsh"),
    ("unalias", "sh bash zsh"),
    ("unfunction", "zsh"),
    ("unhash", "zsh"),
    ("unlimit", "zsh"),
    ("unset", "sh bash zsh"),
    ("unsetopt", "zsh"),
    ("until", "sh bash zsh"),
    ("vared", "zsh"),
    ("wait", "sh bash zsh fish"),
    ("whence", "zsh"),
    ("where", "zsh"),
    ("which", "zsh"),
    ("while", "sh bash zsh fish"),
    ("zcompile", "zsh"),
    ("zformat", "zsh"),
    ("zle", "zsh"),
    ("zmodload", "zsh"),
    ("zparseopts", "zsh"),
    ("zregexparse", "zsh"),
    ("zstyle", "zsh"),
];

/// What a repo may not route, by why. Names are compared in lower case: on
/// a case-insensitive file system (macOS) a shim `SUDO` is `sudo`.
const SENSITIVE: &[(&str, &[&str])] = &[
    (
        "raises privileges or asks for your password",
        &[
            "sudo",
            "sudo-rs",
            "sudoedit",
            "su",
            "doas",
            "pkexec",
            "run0",
            "runuser",
            "setpriv",
            "login",
            "passwd",
            "chsh",
            "chfn",
            "gpasswd",
            "newgrp",
            "sg",
            "visudo",
            "polkit-agent-helper-1",
        ],
    ),
    (
        "uses your SSH keys and passwords",
        &[
            "ssh", "scp", "sftp", "sshfs", "sshpass", "autossh", "mosh", "rsync", "slogin",
        ],
    ),
    (
        "acts with your git identity and credentials",
        &["git", "gh", "glab", "hub", "tea", "git-lfs"],
    ),
    (
        "handles your signing keys and their passphrases",
        &[
            "gpg",
            "gpg2",
            "gpg-agent",
            "gpgsm",
            "gpgconf",
            "age",
            "sops",
            "minisign",
            "signify",
        ],
    ),
    (
        "reads or stores your secrets",
        &[
            "pass",
            "gopass",
            "passage",
            "op",
            "bw",
            "rbw",
            "lpass",
            "vault",
            "secret-tool",
            "security",
            "keychain",
            "keyctl",
            "kinit",
            "klist",
            "kdestroy",
            "keepassxc-cli",
            "kwallet-query",
            "ykman",
        ],
    ),
    (
        "holds your cloud and cluster credentials",
        &[
            "aws",
            "gcloud",
            "gsutil",
            "bq",
            "az",
            "kubectl",
            "helm",
            "oc",
            "eksctl",
            "doctl",
            "flyctl",
            "fly",
            "heroku",
            "terraform",
            "tofu",
            "pulumi",
        ],
    ),
    (
        "drives the host's containers or dual itself",
        &[
            "docker", "podman", "nerdctl", "buildah", "skopeo", "ctr", "crictl", "dual",
        ],
    ),
    (
        "is a shell or runs the commands it is given, so it would route those too",
        &[
            "sh",
            "bash",
            "zsh",
            "fish",
            "dash",
            "ksh",
            "mksh",
            "pdksh",
            "oksh",
            "yash",
            "tcsh",
            "csh",
            "ash",
            "busybox",
            "nu",
            "pwsh",
            "elvish",
            "xonsh",
            "env",
            "xargs",
            "nohup",
            "nice",
            "ionice",
            "timeout",
            "setsid",
            "stdbuf",
            "chroot",
            "nsenter",
            "unshare",
            "script",
            "watch",
            "flock",
            "systemd-run",
        ],
    ),
    (
        "is run by dual itself on the host, which must get the host's answer",
        &["ldd", "ip", "xdg-open", "open", "wslview"],
    ),
    (
        "holds your terminal sessions and everything typed in them",
        &["tmux", "screen", "zellij", "byobu"],
    ),
    (
        "manages the host",
        &["systemctl", "loginctl", "machinectl", "mount", "umount"],
    ),
    (
        "prints shell code that rc files `eval` on the host",
        &[
            "zoxide",
            "starship",
            "atuin",
            "fzf",
            "thefuck",
            "direnv",
            "pyenv",
            "rbenv",
            "nodenv",
            "goenv",
            "jenv",
            "plenv",
            "mise",
            "rtx",
            "asdf",
            "fnm",
            "conda",
            "mamba",
            "micromamba",
            "oh-my-posh",
            "mcfly",
            "navi",
            "broot",
            "carapace",
            "register-python-argcomplete",
        ],
    ),
    (
        "reads or fills your clipboard",
        &[
            "pbcopy", "pbpaste", "xclip", "xsel", "wl-copy", "wl-paste", "clip.exe",
        ],
    ),
    (
        "holds credentials of a service you deploy to",
        &[
            "aws-vault",
            "saml2aws",
            "awsume",
            "aws-sso",
            "ansible-vault",
            "kubectx",
            "kubens",
            "k9s",
            "terragrunt",
            "vercel",
            "netlify",
            "wrangler",
            "firebase",
            "heroku",
            "fly",
            "flyctl",
            "doctl",
        ],
    ),
    (
        "acts on your repositories with your git identity",
        &["lazygit", "tig", "gitui", "git-town"],
    ),
    (
        "runs the commands it is given",
        &[
            "parallel", "strace", "ltrace", "gdb", "lldb", "rlwrap", "expect", "unbuffer",
            "firejail", "bwrap", "fakeroot", "proot", "script", "watch",
        ],
    ),
];

/// Families of the above: every `ssh-*` (ssh-add, ssh-agent, ssh-keygen,
/// ssh-copy-id), `git-*` (git-credential-*, git-upload-pack), `gpg*`,
/// `pinentry*`, and the password managers' helpers.
const SENSITIVE_PREFIXES: &[(&str, &str)] = &[
    ("ssh-", "uses your SSH keys and passwords"),
    ("git-", "acts with your git identity and credentials"),
    ("gpg", "handles your signing keys and their passphrases"),
    ("pinentry", "asks for your passphrases"),
    ("keepass", "reads or stores your secrets"),
    ("kwallet", "reads or stores your secrets"),
    ("gnome-keyring", "reads or stores your secrets"),
    ("1password", "reads or stores your secrets"),
    ("bitwarden", "reads or stores your secrets"),
];

/// Whether `name` is a plain command name: `[A-Za-z0-9_+][A-Za-z0-9._+-]*`,
/// at most [`MAX_LEN`] (never `.`, `..`, a path or an option).
pub fn is_plain(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '+')
        && chars.all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        && name.len() <= MAX_LEN
}

/// Whether `name`, from `origin`, may be routed into a container.
pub fn check(name: &str, origin: Origin) -> Result<(), Refusal> {
    let lower = name.to_ascii_lowercase();
    if let Some((_, shells)) = BUILTINS.iter().find(|(builtin, _)| *builtin == lower) {
        return Err(Refusal::Builtin {
            name: name.to_owned(),
            shells: (*shells).to_owned(),
        });
    }
    if !is_plain(name) {
        return Err(Refusal::NotAName(name.to_owned()));
    }
    if origin == Origin::User {
        return Ok(());
    }
    let why = SENSITIVE
        .iter()
        .find(|(_, names)| names.contains(&lower.as_str()))
        .map(|(why, _)| *why)
        .or_else(|| {
            SENSITIVE_PREFIXES
                .iter()
                .find(|(prefix, _)| lower.starts_with(prefix))
                .map(|(_, why)| *why)
        });
    match why {
        Some(why) => Err(Refusal::Sensitive {
            name: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

impl Refusal {
    /// What to do, for a name found in `origin`'s `extra_commands`.
    pub fn advice(&self, origin: Origin) -> String {
        match (self, origin) {
            (Refusal::Sensitive { name, .. }, Origin::Repo) => format!(
                "remove it from `extra_commands`; to route `{name}` anyway (your decision, not the repo's), list it in your own config, `{}`: extra_commands = [\"{name}\"]",
                crate::paths::user_config_file().display()
            ),
            _ => "remove it from `extra_commands`".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_others_say_why() {
        for name in [
            "just",
            "python3.12",
            "g++",
            "c++filt",
            "_x",
            "node-gyp",
            "7z",
        ] {
            assert_eq!(check(name, Origin::Repo), Ok(()), "{name}");
        }
        for name in [
            "", ".", "..", "-rf", ".hidden", "a/b", "a b", "ü", "x;y", "[", "[[",
        ] {
            assert!(
                matches!(
                    check(name, Origin::User),
                    Err(Refusal::NotAName(_) | Refusal::Builtin { .. })
                ),
                "{name:?}"
            );
        }
        assert!(check(&"a".repeat(MAX_LEN + 1), Origin::User).is_err());
        let dot = check(".", Origin::Repo).unwrap_err().to_string();
        assert!(dot.contains("builtin"), "{dot}");
    }

    #[test]
    fn builtins_are_refused_from_both_origins() {
        for name in [
            "cd",
            "source",
            "exec",
            "eval",
            "command",
            "export",
            "test",
            "set",
            "builtin",
            "alias",
            "type",
            "hash",
            "setopt",
            "string",
            "functions",
            "CD",
        ] {
            for origin in [Origin::Repo, Origin::User] {
                let refusal = check(name, origin).unwrap_err();
                assert!(matches!(refusal, Refusal::Builtin { .. }), "{name}");
                assert!(refusal.to_string().contains("never a shim"), "{refusal}");
            }
        }
    }

    #[test]
    fn a_repo_cannot_route_what_handles_secrets_and_the_user_can() {
        for name in [
            "sudo",
            "su",
            "doas",
            "pkexec",
            "ssh",
            "scp",
            "sftp",
            "ssh-add",
            "ssh-agent",
            "ssh-keygen",
            "ssh-copy-id",
            "git",
            "git-credential-store",
            "gpg",
            "gpg2",
            "gpg-agent",
            "pass",
            "op",
            "security",
            "gh",
            "glab",
            "aws",
            "gcloud",
            "az",
            "kubectl",
            "docker",
            "podman",
            "dual",
            "login",
            "passwd",
            "secret-tool",
            "keychain",
            "bw",
            "rbw",
            "vault",
            "kinit",
            "pinentry",
            "pinentry-curses",
            "sh",
            "bash",
            "zsh",
            "fish",
            "dash",
            "ksh",
            "env",
            "tmux",
            "screen",
            "xargs",
            "Sudo",
            "SSH",
            "busybox",
            "ldd",
            "ip",
            "xdg-open",
        ] {
            let refusal = check(name, Origin::Repo).unwrap_err();
            assert!(matches!(refusal, Refusal::Sensitive { .. }), "{name}");
            let advice = refusal.advice(Origin::Repo);
            assert!(advice.contains("config.toml"), "{advice}");
            assert_eq!(check(name, Origin::User), Ok(()), "{name}");
        }
        let message = check("sudo", Origin::Repo).unwrap_err().to_string();
        assert_eq!(
            message,
            "`sudo` raises privileges or asks for your password: a repo cannot route it, since a program of the repo's standing in for it in the container would get what you type and what it holds"
        );
    }

    #[test]
    fn tools_whose_output_rc_files_eval_are_refused() {
        for name in [
            "zoxide",
            "starship",
            "pyenv",
            "pbcopy",
            "aws-vault",
            "strace",
        ] {
            assert!(
                matches!(check(name, Origin::Repo), Err(Refusal::Sensitive { .. })),
                "{name}"
            );
            assert_eq!(
                check(name, Origin::User),
                Ok(()),
                "{name}: the user decides"
            );
        }
    }

    #[test]
    fn the_defaults_and_the_host_list_pass_the_repo_rules() {
        for name in crate::workspace::DEFAULT_ROUTED {
            assert_eq!(check(name, Origin::Repo), Ok(()), "{name}");
        }
    }
}
