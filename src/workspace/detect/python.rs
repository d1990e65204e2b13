//! A Python project (`uv.lock`, `poetry.lock`, `requirements*.txt`,
//! `pyproject.toml`, `setup.py` or `manage.py`): the installer, the
//! Python version, a virtualenv in `.venv` made by `setup`, and a Django,
//! FastAPI or Flask dev server listening on every address.

use std::collections::BTreeSet;

use super::files::RepoFiles;
use super::version::{self, Line, Syntax};
use super::{Plan, is_identifier, service};

const DEFAULT_PYTHON: Line = Line {
    major: 3,
    minor: Some(12),
};
/// Lines with official images (`python:3.N-bookworm`), oldest first.
const PYTHON_LINES: [Line; 5] = [
    Line {
        major: 3,
        minor: Some(9),
    },
    Line {
        major: 3,
        minor: Some(10),
    },
    Line {
        major: 3,
        minor: Some(11),
    },
    DEFAULT_PYTHON,
    Line {
        major: 3,
        minor: Some(13),
    },
];

/// Requirements files, in the order they are installed; the names are
/// dual's, so none of the repo's text reaches the command.
const REQUIREMENTS: [&str; 4] = [
    "requirements.txt",
    "requirements-dev.txt",
    "requirements/dev.txt",
    "requirements/base.txt",
];

/// Where the tools that install (uv, poetry) are put: a virtualenv in the
/// workspace's home, apart from the project's.
const TOOLS: &str = "~/.local/dual-tools";

pub fn detect(files: &RepoFiles) -> Option<Plan> {
    let markers = [
        "uv.lock",
        "poetry.lock",
        "pyproject.toml",
        "requirements.txt",
        "requirements",
        "setup.py",
        "manage.py",
    ];
    let marker = files.first_of(&markers)?;
    let mut notes = Vec::new();
    let pyproject = files.toml("pyproject.toml");
    let (line, version_why) = python_version(files, pyproject.as_ref(), &mut notes);
    let requirements: Vec<&str> = REQUIREMENTS
        .iter()
        .copied()
        .filter(|file| files.exists(file))
        .collect();
    // `requirements/dev.txt` usually includes `base.txt` itself.
    let requirements: Vec<&str> = if requirements.contains(&"requirements/dev.txt") {
        requirements
            .into_iter()
            .filter(|file| *file != "requirements/base.txt")
            .collect()
    } else {
        requirements
    };
    let table = |key: &str| pyproject.as_ref().and_then(|p| p.get(key)?.as_table());
    let poetry_project =
        table("tool").and_then(|tool| tool.get("poetry")).is_some() && table("project").is_none();
    // A seeded .venv is kept: `venv` over it would reinstall pip into it.
    let venv = "[ -d .venv ] || python3 -m venv .venv";
    let (setup, setup_why) = if files.exists("uv.lock") {
        (
            format!(
                "python3 -m venv {TOOLS} && {TOOLS}/bin/pip install -q uv && {TOOLS}/bin/uv sync"
            ),
            "uv, from uv.lock".to_owned(),
        )
    } else if files.exists("poetry.lock") || poetry_project {
        let from = if files.exists("poetry.lock") {
            "poetry.lock"
        } else {
            "pyproject.toml"
        };
        (
            format!(
                "python3 -m venv {TOOLS} && {TOOLS}/bin/pip install -q poetry && {TOOLS}/bin/poetry install"
            ),
            format!("poetry, from {from}"),
        )
    } else if !requirements.is_empty() {
        let args: Vec<String> = requirements
            .iter()
            .map(|file| format!("-r {file}"))
            .collect();
        (
            format!("{venv} && .venv/bin/pip install {}", args.join(" ")),
            format!("pip, from {}", requirements.join(" and ")),
        )
    } else if table("project").is_some() || files.exists("setup.py") {
        let has_dev_extra = table("project")
            .and_then(|project| project.get("optional-dependencies")?.as_table())
            .is_some_and(|extras| extras.contains_key("dev"));
        let target = if has_dev_extra { "'.[dev]'" } else { "." };
        let from = if table("project").is_some() {
            "pyproject.toml"
        } else {
            "setup.py"
        };
        (
            format!("{venv} && .venv/bin/pip install -e {target}"),
            format!("pip, installing the project from {from}"),
        )
    } else {
        (
            venv.to_owned(),
            "a virtualenv: nothing lists dependencies".to_owned(),
        )
    };
    let mut plan = Plan {
        what: "a Python project".to_owned(),
        marker,
        image: format!("python:{line}-bookworm"),
        image_why: format!("Python {line}, {version_why}"),
        setup: Some(setup),
        setup_why,
        path: vec![".venv/bin".to_owned()],
        seed: vec![".venv".to_owned()],
        ..Plan::default()
    };
    if setup_uses_poetry(&plan) {
        // Its virtualenv where `path` and `seed` expect it.
        plan.env
            .insert("POETRY_VIRTUALENVS_IN_PROJECT".into(), "true".into());
    }
    let dependencies = dependency_names(files, pyproject.as_ref(), &requirements);
    if let Some((framework, from, command, port)) = server(files, &dependencies) {
        plan.what = super::a_project(framework);
        plan.service_why = format!("{framework}, from {from}");
        plan.service = Some(service(command, Some(port)));
        plan.port = Some(port);
    }
    plan.notes = notes;
    Some(plan)
}

fn setup_uses_poetry(plan: &Plan) -> bool {
    plan.setup_why.starts_with("poetry")
}

/// The Python line to run, and where it came from.
fn python_version(
    files: &RepoFiles,
    pyproject: Option<&toml::Table>,
    notes: &mut Vec<String>,
) -> (Line, String) {
    if let Some(text) = files.text(".python-version")
        && let Some(written) = super::first_line(&text)
    {
        if let Some(line) = version::line_of(written, true).filter(|l| l.major == 3) {
            return (line, "from .python-version".to_owned());
        }
        notes.push(format!(
            ".python-version says `{}`, not a CPython 3 version dual reads (`3.11`, `3.12.4`): Python {DEFAULT_PYTHON}",
            crate::untrusted::shown_line(&written.chars().take(40).collect::<String>())
        ));
        return (
            DEFAULT_PYTHON,
            ".python-version unread, the default".to_owned(),
        );
    }
    if let Some(text) = files.text(".tool-versions")
        && let Some(written) = super::tool_version(&text, &["python"])
        && let Some(line) = version::line_of(written, true).filter(|l| l.major == 3)
    {
        return (line, "from .tool-versions".to_owned());
    }
    if let Some(text) = files.text("runtime.txt")
        && let Some(written) = super::first_line(&text).and_then(|l| l.strip_prefix("python-"))
        && let Some(line) = version::line_of(written, true).filter(|l| l.major == 3)
    {
        return (line, "from runtime.txt".to_owned());
    }
    let requires = pyproject
        .and_then(|p| {
            p.get("project")?
                .get("requires-python")?
                .as_str()
                .map(|r| (r, Syntax::Pep440))
        })
        .or_else(|| {
            // Poetry writes the range npm's way (`^3.10`).
            let python = pyproject?
                .get("tool")?
                .get("poetry")?
                .get("dependencies")?
                .get("python")?;
            python.as_str().map(|r| (r, Syntax::Npm))
        });
    if let Some((range, syntax)) = requires
        && let Some(line) = version::choose(range, syntax, &PYTHON_LINES, DEFAULT_PYTHON)
            .filter(|l| l.major == 3 && l.minor.is_some())
    {
        return (line, "from requires-python".to_owned());
    }
    (DEFAULT_PYTHON, "the default".to_owned())
}

/// The names of the packages the project depends on, normalised
/// (lower-case, `-` for `_`): from its requirements files, pyproject.toml
/// and lock files.
fn dependency_names(
    files: &RepoFiles,
    pyproject: Option<&toml::Table>,
    requirements: &[&str],
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut add = |spec: &str| {
        let name: String = spec
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if !name.is_empty() {
            names.insert(name.to_ascii_lowercase().replace('_', "-"));
        }
    };
    for file in requirements {
        for line in files.text(file).unwrap_or_default().lines() {
            add(line);
        }
    }
    if let Some(pyproject) = pyproject {
        let project = pyproject.get("project");
        let lists = project
            .and_then(|p| p.get("dependencies")?.as_array())
            .into_iter()
            .chain(
                project
                    .and_then(|p| p.get("optional-dependencies")?.as_table())
                    .into_iter()
                    .flat_map(|extras| extras.values().filter_map(|v| v.as_array())),
            );
        for list in lists {
            for spec in list.iter().filter_map(|v| v.as_str()) {
                add(spec);
            }
        }
        let poetry = pyproject
            .get("tool")
            .and_then(|t| t.get("poetry")?.get("dependencies")?.as_table());
        for name in poetry.into_iter().flat_map(|deps| deps.keys()) {
            add(name);
        }
    }
    for lock in ["uv.lock", "poetry.lock"] {
        for line in files.lock_text(lock).unwrap_or_default().lines() {
            if let Some(name) = line.strip_prefix("name = \"") {
                add(name);
            }
        }
    }
    names
}

/// The dev server: the framework, the file that told, its command and
/// port. Module and variable names reach the command only as identifiers.
fn server(
    files: &RepoFiles,
    dependencies: &BTreeSet<String>,
) -> Option<(&'static str, String, String, u16)> {
    if files.exists("manage.py") {
        return Some((
            "Django",
            "manage.py".to_owned(),
            "python manage.py runserver 0.0.0.0:8000".to_owned(),
            8000,
        ));
    }
    let candidates = [
        "main.py",
        "app.py",
        "app/main.py",
        "api/main.py",
        "server.py",
        "wsgi.py",
        "application.py",
        "app/__init__.py",
    ];
    if dependencies.contains("fastapi") {
        for file in candidates {
            if let Some(variable) = files.text(file).and_then(|s| assigned("FastAPI(", &s)) {
                let module = module_of(file)?;
                return Some((
                    "FastAPI",
                    file.to_owned(),
                    format!("uvicorn {module}:{variable} --host 0.0.0.0 --port 8000"),
                    8000,
                ));
            }
        }
    }
    if dependencies.contains("flask") {
        for file in candidates {
            if files
                .text(file)
                .and_then(|s| assigned("Flask(", &s))
                .is_some()
            {
                // `flask run` finds `app.py` and `wsgi.py` by itself.
                let command = match file {
                    "app.py" | "wsgi.py" => "flask run --host 0.0.0.0 --port 5000".to_owned(),
                    _ => format!(
                        "flask --app {} run --host 0.0.0.0 --port 5000",
                        module_of(file)?
                    ),
                };
                return Some(("Flask", file.to_owned(), command, 5000));
            }
        }
    }
    None
}

/// The name a line of `source` assigns a call of `call` to (`app =
/// FastAPI(` gives `app`), where it is an identifier.
fn assigned(call: &str, source: &str) -> Option<String> {
    source.lines().find_map(|line| {
        let (left, right) = line.split_once('=')?;
        let name = left.trim().split(':').next()?.trim();
        (right.trim_start().starts_with(call) && is_identifier(name)).then(|| name.to_owned())
    })
}

/// `app/main.py` as `app.main` (`app/__init__.py` as `app`).
fn module_of(file: &str) -> Option<String> {
    let path = file.strip_suffix(".py")?;
    let path = path.strip_suffix("/__init__").unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    parts
        .iter()
        .all(|part| is_identifier(part))
        .then(|| parts.join("."))
}
