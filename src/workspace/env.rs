//! The environment a workspace's config gives its container: `[env]` with
//! `${NAME}` expanded (and `path`, put first on PATH by the container's
//! start-up: see `identity::path_prefix`).
//!
//! A value names other `[env]` entries, dual's own variables (the
//! workspace's name, repo, branch, clone, host and URL) and the
//! container's `HOME` and `USER`: `${NAME}`, `${NAME:-default}` (where
//! NAME is unset or empty; the default may hold references itself), `$$`
//! for a `$`. Any other `$` is itself. Never the host's environment: a
//! repo that names `${AWS_SECRET_ACCESS_KEY}` gets a config error, not the
//! user's secret. Names nobody gives and entries that refer to each other
//! in a cycle are config errors too, found when the config is loaded.

use std::collections::BTreeMap;

use super::Workspace;
use super::config::{Config, ConfigError, ConfigOrigin};

/// The variables of dual's own a value may name, each saying what it is.
pub const DUAL_VARIABLES: [(&str, &str); 6] = [
    ("DUAL_WORKSPACE", "the workspace's name (`shop-feat-auth`)"),
    ("DUAL_REPO", "the repo's name"),
    ("DUAL_BRANCH", "the branch"),
    ("DUAL_CLONE", "the clone's path, the same inside and out"),
    (
        "DUAL_HOST",
        "the workspace's host name (`shop-feat-auth.localhost`)",
    ),
    (
        "DUAL_URL",
        "the URL of its first port (empty without `ports`)",
    ),
];

/// The container's own, as it has them (the user's HOME inside, its name).
const CONTAINER_VARIABLES: [&str; 2] = ["HOME", "USER"];

/// All the expanded values together: past this, a repo's config is a
/// memory bomb (`A = "${B}${B}"`, `B = "${C}${C}"`, …), not an environment.
const MAX_TOTAL: usize = 1024 * 1024;
/// References through references, deeper than anyone writes by hand.
const MAX_DEPTH: usize = 32;

/// `[env]` of `config`, as the container gets it: each value expanded
/// from the others, dual's variables, and `container` (the HOME and USER
/// the container is given). A config that `check` passed expands whole; a
/// value that cannot (a config made elsewhere) is given empty.
pub fn expanded(
    workspace: &Workspace,
    config: &Config,
    container: &[(String, String)],
) -> Vec<(String, String)> {
    let mut known = dual_variables(workspace, config);
    for name in CONTAINER_VARIABLES {
        let value = container
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str());
        known.insert(name.to_owned(), value.to_owned());
    }
    let mut expander = Expander::new(&config.env, &known);
    config
        .env
        .keys()
        .map(|name| {
            let value = expander.value_of(name, name).unwrap_or_else(|error| {
                crate::log::debug(&format!("env: {error}"));
                Some(String::new())
            });
            (name.clone(), value.unwrap_or_default())
        })
        .collect()
}

/// The directories of `config.path`, in the clone, as the start of PATH
/// (`/w/shop/a/.venv/bin:/w/shop/a/node_modules/.bin`); empty for none. A
/// directory whose path holds a `:` would split PATH: it is left out.
pub fn path_prefix(workspace: &Workspace, config: &Config) -> String {
    config
        .path
        .iter()
        .map(|dir| workspace.path.join(dir).display().to_string())
        .filter(|dir| !dir.contains([':', '\n']))
        .collect::<Vec<_>>()
        .join(":")
}

/// dual's own variables for `workspace` (see `DUAL_VARIABLES`).
pub fn dual_variables(workspace: &Workspace, config: &Config) -> BTreeMap<String, String> {
    let name = workspace.name();
    let url = super::urls(workspace, &config.ports)
        .first()
        .map_or(String::new(), ToString::to_string);
    [
        ("DUAL_WORKSPACE", name.clone()),
        ("DUAL_REPO", workspace.repo.clone()),
        ("DUAL_BRANCH", workspace.branch.clone()),
        ("DUAL_CLONE", workspace.path.display().to_string()),
        ("DUAL_HOST", format!("{name}.localhost")),
        ("DUAL_URL", url),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// Whether every value of `env` expands: its syntax, the names it refers
/// to, no cycle, no bomb. dual's and the container's variables stand in
/// with values as long as real ones get.
pub fn check(env: &BTreeMap<String, String>) -> Result<(), EnvError> {
    let stand_in = "x".repeat(256);
    let known: BTreeMap<String, String> = DUAL_VARIABLES
        .iter()
        .map(|(name, _)| *name)
        .chain(CONTAINER_VARIABLES)
        .map(|name| (name.to_owned(), stand_in.clone()))
        .collect();
    let mut expander = Expander::new(env, &known);
    for name in env.keys() {
        expander.value_of(name, name)?;
    }
    Ok(())
}

/// `check` for a loaded config: the error names the file its `[env]` came
/// from, with the hint.
pub fn check_loaded(dir: &std::path::Path, config: &Config) -> Result<(), ConfigError> {
    check(&config.env).map_err(|error| {
        use crate::error::Hint as _;
        let file = match &config.origin {
            ConfigOrigin::Devcontainer(file) => file.as_str(),
            _ => super::config::FILE_NAME,
        };
        let hint = error
            .hint()
            .map_or(String::new(), |hint| format!("\nhint: {hint}"));
        ConfigError::Invalid {
            path: dir.join(file),
            message: format!("{error}{hint}"),
        }
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error(
        "`env.{entry}` refers to `${{{name}}}`, which is neither an `[env]` entry nor a variable dual gives the container; dual never passes the host's environment in"
    )]
    Unknown { entry: String, name: String },
    #[error("`env` entries refer to each other in a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
    #[error("`env.{entry}`: {why}")]
    Syntax { entry: String, why: String },
    #[error("`env.{entry}` refers through more than {MAX_DEPTH} entries")]
    TooDeep { entry: String },
    #[error("`env` expands to more than {MAX_TOTAL} bytes (at `env.{entry}`)")]
    TooLong { entry: String },
}

impl crate::error::Hint for EnvError {
    fn hint(&self) -> Option<String> {
        match self {
            EnvError::Unknown { name, .. } if name == "PATH" => Some(
                "`path = [\"bin\"]` in .dual.toml puts directories of the clone first on PATH inside".into(),
            ),
            EnvError::Unknown { name, .. } => Some(format!(
                "give it a value in `[env]`, or a default: `${{{name}:-}}`; a value may name {}, HOME and USER",
                DUAL_VARIABLES
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            EnvError::Cycle(names) if names.iter().any(|name| name == "PATH") => Some(
                "`path = [\"bin\"]` in .dual.toml puts directories of the clone first on PATH inside".into(),
            ),
            EnvError::Syntax { .. } => {
                Some("write `${NAME}` or `${NAME:-default}`, and `$$` for a `$`".into())
            }
            EnvError::Cycle(_) | EnvError::TooDeep { .. } | EnvError::TooLong { .. } => None,
        }
    }
}

/// A value, read: text, `$$`, and references.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'v> {
    Text(&'v str),
    Dollar,
    Reference {
        name: &'v str,
        default: Option<Vec<Piece<'v>>>,
    },
}

/// `value` read into pieces; a `}` ends it where `nested` (a default).
/// Returns the pieces and the bytes read.
fn parse(value: &str, nested: usize) -> Result<(Vec<Piece<'_>>, usize), String> {
    if nested > MAX_DEPTH {
        return Err(format!("defaults nest more than {MAX_DEPTH} deep"));
    }
    let bytes = value.as_bytes();
    let mut pieces = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'}' if nested > 0 => {
                if text_start < i {
                    pieces.push(Piece::Text(&value[text_start..i]));
                }
                return Ok((pieces, i));
            }
            b'$' if bytes.get(i + 1) == Some(&b'$') => {
                if text_start < i {
                    pieces.push(Piece::Text(&value[text_start..i]));
                }
                pieces.push(Piece::Dollar);
                i += 2;
                text_start = i;
            }
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                if text_start < i {
                    pieces.push(Piece::Text(&value[text_start..i]));
                }
                let start = i + 2;
                let name_len = value[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(value.len() - start);
                let name = &value[start..start + name_len];
                if !super::config_file::is_env_name(name) {
                    return Err(format!(
                        "`${{` at byte {i} is not followed by a variable's name (letters, digits and `_`)"
                    ));
                }
                let after = start + name_len;
                let (default, end) = if value[after..].starts_with('}') {
                    (None, after)
                } else if value[after..].starts_with(":-") {
                    let (default, read) = parse(&value[after + 2..], nested + 1)?;
                    (Some(default), after + 2 + read)
                } else {
                    return Err(format!(
                        "`${{{name}` at byte {i} is not closed by `}}` (or `:-default}}`)"
                    ));
                };
                if bytes.get(end) != Some(&b'}') {
                    return Err(format!("`${{{name}:-` at byte {i} is never closed by `}}`"));
                }
                pieces.push(Piece::Reference { name, default });
                i = end + 1;
                text_start = i;
            }
            _ => i += 1,
        }
    }
    if nested > 0 {
        return Err("a default is never closed by `}`".into());
    }
    if text_start < bytes.len() {
        pieces.push(Piece::Text(&value[text_start..]));
    }
    Ok((pieces, bytes.len()))
}

/// Expands `[env]` values on demand, each once.
struct Expander<'e> {
    env: &'e BTreeMap<String, String>,
    known: &'e BTreeMap<String, String>,
    done: BTreeMap<String, String>,
    /// The entries being expanded, outermost first.
    expanding: Vec<String>,
    /// Bytes written so far, all values together.
    written: usize,
}

impl<'e> Expander<'e> {
    fn new(env: &'e BTreeMap<String, String>, known: &'e BTreeMap<String, String>) -> Self {
        Expander {
            env,
            known,
            done: BTreeMap::new(),
            expanding: Vec::new(),
            written: 0,
        }
    }

    /// The value of `name` (`None`: nobody gives it), read from the value
    /// of `entry`.
    fn value_of(&mut self, name: &str, entry: &str) -> Result<Option<String>, EnvError> {
        let Some(raw) = self.env.get(name) else {
            return Ok(self.known.get(name).cloned());
        };
        if let Some(done) = self.done.get(name) {
            return Ok(Some(done.clone()));
        }
        if let Some(start) = self.expanding.iter().position(|e| e == name) {
            let mut cycle = self.expanding[start..].to_vec();
            cycle.push(name.to_owned());
            return Err(EnvError::Cycle(cycle));
        }
        if self.expanding.len() >= MAX_DEPTH {
            return Err(EnvError::TooDeep {
                entry: entry.to_owned(),
            });
        }
        let (pieces, _) = parse(raw, 0).map_err(|why| EnvError::Syntax {
            entry: name.to_owned(),
            why,
        })?;
        self.expanding.push(name.to_owned());
        let mut value = String::new();
        let rendered = self.render(&pieces, name, &mut value);
        self.expanding.pop();
        rendered?;
        self.done.insert(name.to_owned(), value.clone());
        Ok(Some(value))
    }

    fn render(&mut self, pieces: &[Piece], entry: &str, out: &mut String) -> Result<(), EnvError> {
        for piece in pieces {
            match piece {
                Piece::Text(text) => self.push(out, text, entry)?,
                Piece::Dollar => self.push(out, "$", entry)?,
                Piece::Reference { name, default } => {
                    let value = self.value_of(name, entry)?;
                    match (value, default) {
                        (Some(value), Some(default)) if value.is_empty() => {
                            self.render(default, entry, out)?;
                        }
                        (Some(value), _) => self.push(out, &value, entry)?,
                        (None, Some(default)) => self.render(default, entry, out)?,
                        (None, None) => {
                            return Err(EnvError::Unknown {
                                entry: entry.to_owned(),
                                name: (*name).to_owned(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, out: &mut String, text: &str, entry: &str) -> Result<(), EnvError> {
        self.written += text.len();
        if self.written > MAX_TOTAL {
            return Err(EnvError::TooLong {
                entry: entry.to_owned(),
            });
        }
        out.push_str(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> Workspace {
        Workspace::for_test("shop", "feat/auth", "/home/u/dual/shop/feat-auth")
    }

    fn env(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expand(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        let config = Config {
            env: env(entries),
            ports: vec![8000, 5173],
            ..Config::default()
        };
        check(&config.env).unwrap();
        let container = [
            ("HOME".to_owned(), "/home/u".to_owned()),
            ("USER".to_owned(), "u".to_owned()),
        ];
        expanded(&workspace(), &config, &container)
            .into_iter()
            .collect()
    }

    #[test]
    fn values_name_each_other_dual_s_variables_and_the_container_s() {
        let got = expand(&[
            ("DATABASE_URL", "postgres://${DB_USER}@db/${DB_NAME}"),
            ("DB_USER", "${USER}"),
            ("DB_NAME", "app_${DUAL_WORKSPACE}"),
            ("ALLOWED_HOSTS", "${DUAL_HOST},localhost"),
            ("PUBLIC_URL", "${DUAL_URL}/"),
            ("CACHE", "${HOME}/.cache/app"),
            ("GEMS", "${DUAL_CLONE}/vendor/bundle"),
            ("WHERE", "${DUAL_REPO}@${DUAL_BRANCH}"),
        ]);
        assert_eq!(got["DATABASE_URL"], "postgres://u@db/app_shop-feat-auth");
        assert_eq!(got["ALLOWED_HOSTS"], "shop-feat-auth.localhost,localhost");
        assert_eq!(got["PUBLIC_URL"], "http://shop-feat-auth.localhost:8000/");
        assert_eq!(got["CACHE"], "/home/u/.cache/app");
        assert_eq!(got["GEMS"], "/home/u/dual/shop/feat-auth/vendor/bundle");
        assert_eq!(got["WHERE"], "shop@feat/auth");
    }

    #[test]
    fn defaults_dollars_and_plain_text() {
        let got = expand(&[
            ("A", "${UNSET:-fallback}"),
            ("B", "${EMPTY:-was empty}"),
            ("EMPTY", ""),
            ("C", "${UNSET:-${DUAL_REPO:-no}-x}"),
            ("D", "cost: $$5, $HOME and $ alone, ${UNSET:-}"),
            ("E", "${A:-not used}"),
            ("F", "{}} $}"),
            ("G", "${EMPTY}"),
        ]);
        assert_eq!(got["A"], "fallback");
        assert_eq!(got["B"], "was empty");
        assert_eq!(got["C"], "shop-x");
        assert_eq!(got["D"], "cost: $5, $HOME and $ alone, ");
        assert_eq!(got["E"], "fallback");
        assert_eq!(got["F"], "{}} $}");
        assert_eq!(got["G"], "");
    }

    #[test]
    fn the_host_s_environment_never_fills_a_value() {
        // PATH and HOME are set in every test process: the values are the
        // container's, or the default, never the host's.
        assert!(std::env::var_os("PATH").is_some());
        let got = expand(&[("LEAK", "${PATH:-none}"), ("MINE", "${HOME}")]);
        assert_eq!(got["LEAK"], "none");
        assert_eq!(got["MINE"], "/home/u");
        let error = check(&env(&[("LEAK", "${AWS_SECRET_ACCESS_KEY}")])).unwrap_err();
        assert_eq!(
            error,
            EnvError::Unknown {
                entry: "LEAK".into(),
                name: "AWS_SECRET_ACCESS_KEY".into()
            }
        );
        use crate::error::Hint as _;
        assert!(
            error
                .hint()
                .unwrap()
                .contains("`${AWS_SECRET_ACCESS_KEY:-}`")
        );
        let path = check(&env(&[("PATH", "${PATH}:/x")])).unwrap_err();
        assert_eq!(path, EnvError::Cycle(vec!["PATH".into(), "PATH".into()]));
        assert!(path.hint().unwrap().contains("`path = ["), "{path:?}");
        let path = check(&env(&[("P", "${PATH}:/x")])).unwrap_err();
        assert!(path.hint().unwrap().contains("`path = ["), "{path:?}");
    }

    #[test]
    fn cycles_unknown_names_and_bad_syntax_are_errors() {
        assert_eq!(
            check(&env(&[("A", "${B}"), ("B", "x${C}"), ("C", "${A}")])),
            Err(EnvError::Cycle(vec![
                "A".into(),
                "B".into(),
                "C".into(),
                "A".into()
            ]))
        );
        assert_eq!(
            check(&env(&[("A", "${A:-x}")])),
            Err(EnvError::Cycle(vec!["A".into(), "A".into()]))
        );
        assert_eq!(
            check(&env(&[("A", "${B}"), ("B", "${NOPE}")])),
            Err(EnvError::Unknown {
                entry: "B".into(),
                name: "NOPE".into()
            })
        );
        for (value, says) in [
            ("${}", "is not followed by a variable's name"),
            ("${1X}", "is not followed by a variable's name"),
            ("${A B}", "is not closed by `}`"),
            ("${A", "is not closed by `}`"),
            ("${A:-x", "never closed"),
            ("${A:x}", "is not closed by `}`"),
            ("${A-x}", "is not closed by `}`"),
            ("${A:-${B}", "never closed"),
        ] {
            match check(&env(&[("V", value)])) {
                Err(EnvError::Syntax { entry, why }) => {
                    assert_eq!(entry, "V");
                    assert!(why.contains(says), "{value}: {why}");
                }
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn bombs_are_refused_quickly() {
        // Each entry twice the last: 2^40 bytes if expanded.
        let mut entries: Vec<(String, String)> = vec![("V0".into(), "x".repeat(64))];
        for i in 1..=40 {
            entries.push((format!("V{i}"), format!("${{V{p}}}${{V{p}}}", p = i - 1)));
        }
        let bomb: BTreeMap<String, String> = entries.into_iter().collect();
        let started = std::time::Instant::now();
        assert!(matches!(check(&bomb), Err(EnvError::TooLong { .. })));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // A chain longer than anyone writes.
        let chain: BTreeMap<String, String> = (0..10_000)
            .map(|i| (format!("C{i}"), format!("${{C{}}}", i + 1)))
            .collect();
        assert!(matches!(check(&chain), Err(EnvError::TooDeep { .. })));
        // Defaults nested deep.
        let nested = format!("{}x{}", "${U:-".repeat(5_000), "}".repeat(5_000));
        assert!(matches!(
            check(&env(&[("N", &nested)])),
            Err(EnvError::Syntax { .. })
        ));
    }

    #[test]
    fn path_entries_are_in_the_clone_in_order() {
        let config = Config {
            path: vec![".venv/bin".into(), "node_modules/.bin".into()],
            ..Config::default()
        };
        assert_eq!(
            path_prefix(&workspace(), &config),
            "/home/u/dual/shop/feat-auth/.venv/bin:/home/u/dual/shop/feat-auth/node_modules/.bin"
        );
        assert_eq!(path_prefix(&workspace(), &Config::default()), "");
        let colon = Workspace {
            path: "/home/u/a:b".into(),
            ..workspace()
        };
        assert_eq!(path_prefix(&colon, &config), "");
    }

    #[test]
    fn loading_a_config_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".dual.toml");
        std::fs::write(&file, "[env]\nKEY = \"${AWS_SECRET_ACCESS_KEY}\"\n").unwrap();
        let error = Config::load(dir.path()).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "`{}`: `env.KEY` refers to `${{AWS_SECRET_ACCESS_KEY}}`, which is neither an `[env]` entry nor a variable dual gives the container; dual never passes the host's environment in\nhint: give it a value in `[env]`, or a default: `${{AWS_SECRET_ACCESS_KEY:-}}`; a value may name DUAL_WORKSPACE, DUAL_REPO, DUAL_BRANCH, DUAL_CLONE, DUAL_HOST, DUAL_URL, HOME and USER",
                file.display()
            )
        );
        std::fs::write(&file, "[env]\nA = \"${B}\"\nB = \"${A}\"\n").unwrap();
        let error = Config::load(dir.path()).unwrap_err().to_string();
        assert!(
            error.ends_with("`env` entries refer to each other in a cycle: A → B → A"),
            "{error}"
        );
        std::fs::write(&file, "[env]\nA = \"${DUAL_URL:-none}$$\"\n").unwrap();
        assert!(Config::load(dir.path()).is_ok());
    }

    #[test]
    fn an_unchecked_config_expands_what_it_can() {
        let config = Config {
            env: env(&[("OK", "${DUAL_REPO}"), ("BAD", "${NOPE}")]),
            ..Config::default()
        };
        let got: BTreeMap<String, String> =
            expanded(&workspace(), &config, &[]).into_iter().collect();
        assert_eq!(got["OK"], "shop");
        assert_eq!(got["BAD"], "");
    }
}
