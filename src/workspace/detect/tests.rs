//! Detection on fixture repos: each stack, its managers, versions,
//! frameworks and ports, and hostile files whose text must never reach an
//! image reference or a command.

use super::*;

/// What `detect` makes of a clone holding `files`.
fn detect_in(files: &[(&str, &str)]) -> Option<Detected> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    detect(dir.path())
}

fn found(files: &[(&str, &str)]) -> Detected {
    let detected = detect_in(files).expect("something is detected");
    assert_commands_are_clean(&detected);
    detected
}

/// Image, setup and service of a detection, for comparing at a glance.
fn essentials(detected: &Detected) -> (String, Option<String>, Option<String>, Vec<u16>) {
    let layer = &detected.layer;
    (
        layer.image.clone().unwrap(),
        layer.setup.clone(),
        layer.services.get(SERVICE).map(|s| s.command.clone()),
        layer.ports.clone().unwrap(),
    )
}

/// Nothing a repo wrote beyond what was checked reaches the image or a
/// command: the image is a reference, commands hold no shell syntax but
/// dual's own `&&` and `[ -d .venv ] ||`, and no control character anywhere.
fn assert_commands_are_clean(detected: &Detected) {
    let layer = &detected.layer;
    let image = layer.image.as_deref().unwrap();
    assert_eq!(
        crate::workspace::config::check_image_reference(image),
        Ok(()),
        "{image}"
    );
    let commands = layer
        .setup
        .iter()
        .chain(layer.services.values().map(|s| &s.command));
    for command in commands {
        let without_ours = command.replace("[ -d .venv ] || ", "").replace(" && ", " ");
        assert!(
            !without_ours.contains([';', '&', '|', '`', '$', '<', '>', '\n']),
            "{command}"
        );
        assert!(!command.contains("rm -rf"), "{command}");
        assert!(!command.contains("--privileged"), "{command}");
    }
    for text in [&detected.summary]
        .into_iter()
        .chain(&layer.notes)
        .chain(layer.env.values())
    {
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
}

const VITE: &str =
    r#"{"scripts": {"dev": "vite", "build": "vite build"}, "devDependencies": {"vite": "^5"}}"#;

#[test]
fn node_package_managers_from_package_manager_or_the_lock_file() {
    let npm = found(&[("package.json", VITE), ("package-lock.json", "{}")]);
    assert_eq!(
        essentials(&npm),
        (
            "node:22-bookworm".into(),
            Some("npm ci".into()),
            Some("npm run dev -- --host 0.0.0.0".into()),
            vec![5173]
        )
    );
    assert_eq!(
        npm.layer.path.as_deref(),
        Some(&["node_modules/.bin".to_owned()][..])
    );
    assert_eq!(
        npm.layer.seed.as_deref(),
        Some(&["node_modules".to_owned()][..])
    );
    assert_eq!(
        npm.layer.anonymous_volumes.as_deref(),
        Some(&["node_modules".to_owned()][..])
    );
    assert_eq!(
        npm.summary,
        "a Vite project (Node 22, the default; npm, from package-lock.json; `npm run dev -- --host 0.0.0.0` on :5173)"
    );
    let no_lock = found(&[("package.json", VITE)]);
    assert_eq!(no_lock.layer.setup.as_deref(), Some("npm install"));

    let pnpm = found(&[(
        "package.json",
        r#"{"packageManager": "pnpm@9.1.0+sha512.abcdef", "scripts": {"dev": "next dev"}, "dependencies": {"next": "14"}}"#,
    )]);
    assert_eq!(
        essentials(&pnpm),
        (
            "node:22-bookworm".into(),
            Some("corepack pnpm install".into()),
            Some("corepack pnpm run dev".into()),
            vec![3000]
        )
    );
    assert_eq!(pnpm.layer.env["COREPACK_ENABLE_DOWNLOAD_PROMPT"], "0");
    let pnpm_lock = found(&[("package.json", VITE), ("pnpm-lock.yaml", "")]);
    assert_eq!(
        essentials(&pnpm_lock).1.as_deref(),
        Some("corepack pnpm install --frozen-lockfile")
    );
    assert_eq!(
        essentials(&pnpm_lock).2.as_deref(),
        Some("corepack pnpm run dev --host 0.0.0.0")
    );

    let pinned_and_locked = found(&[
        (
            "package.json",
            r#"{"packageManager": "pnpm@9.1.0", "dependencies": {"a": "1"}}"#,
        ),
        ("pnpm-lock.yaml", ""),
    ]);
    assert_eq!(
        pinned_and_locked.reasons[1],
        (
            "setup",
            "pnpm, from packageManager, locked by pnpm-lock.yaml".into()
        )
    );

    let yarn = found(&[("package.json", VITE), ("yarn.lock", "")]);
    assert_eq!(
        (essentials(&yarn).1, essentials(&yarn).2),
        (
            Some("yarn install --frozen-lockfile".into()),
            Some("yarn run dev --host 0.0.0.0".into())
        )
    );
    assert!(
        !yarn
            .layer
            .env
            .contains_key("COREPACK_ENABLE_DOWNLOAD_PROMPT")
    );
    let berry = found(&[
        ("package.json", VITE),
        ("yarn.lock", ""),
        (".yarnrc.yml", ""),
    ]);
    assert_eq!(
        essentials(&berry).1.as_deref(),
        Some("corepack yarn install --immutable")
    );
    let berry_by_field = found(&[(
        "package.json",
        r#"{"packageManager": "yarn@4.1.0", "dependencies": {"a": "1"}}"#,
    )]);
    assert_eq!(
        essentials(&berry_by_field).1.as_deref(),
        Some("corepack yarn install")
    );
    let classic_by_field = found(&[(
        "package.json",
        r#"{"packageManager": "yarn@1.22.19", "dependencies": {"a": "1"}}"#,
    )]);
    assert_eq!(
        essentials(&classic_by_field).1.as_deref(),
        Some("yarn install")
    );

    let bun = found(&[("package.json", VITE), ("bun.lockb", "\0\0")]);
    assert_eq!(
        essentials(&bun),
        (
            "oven/bun:1".into(),
            Some("bun install --frozen-lockfile".into()),
            Some("bun run dev --host 0.0.0.0".into()),
            vec![5173]
        )
    );
    let bun_pinned = found(&[(
        "package.json",
        r#"{"packageManager": "bun@1.1.20", "scripts": {"dev": "bun --hot src/index.ts"}}"#,
    )]);
    assert_eq!(
        essentials(&bun_pinned),
        (
            "oven/bun:1.1".into(),
            None,
            Some("bun run dev".into()),
            vec![]
        ),
        "no dependencies: nothing to install; no port known"
    );
    assert!(bun_pinned.summary.contains("its port found as it listens"));
}

#[test]
fn node_versions_from_each_file_in_order() {
    let package = |engines: &str| {
        format!(r#"{{"engines": {{"node": "{engines}"}}, "dependencies": {{"a": "1"}}}}"#)
    };
    for (files, image, why) in [
        (
            vec![(".nvmrc", "v20.11.1\n")],
            "node:20-bookworm",
            "from .nvmrc",
        ),
        (
            vec![(".nvmrc", "lts/hydrogen")],
            "node:18-bookworm",
            "from .nvmrc",
        ),
        (
            vec![(".nvmrc", "# pinned\n\n24\n")],
            "node:24-bookworm",
            "from .nvmrc",
        ),
        (
            vec![(".node-version", "18")],
            "node:18-bookworm",
            "from .node-version",
        ),
        (
            vec![(".tool-versions", "python 3.11.4\nnodejs 20.1.0\n")],
            "node:20-bookworm",
            "from .tool-versions",
        ),
        (vec![], "node:20-bookworm", "from engines.node"),
    ] {
        // Each file wins over `engines.node`, which allows 18 to 20.
        let mut all = files.clone();
        let text = package(">=18 <21");
        all.push(("package.json", &text));
        let detected = found(&all);
        assert_eq!(detected.layer.image.as_deref(), Some(image), "{files:?}");
        assert!(
            detected.reasons[0].1.ends_with(why),
            "{:?}",
            detected.reasons
        );
    }
    let plain = found(&[("package.json", r#"{"dependencies": {"a": "1"}}"#)]);
    assert_eq!(plain.layer.image.as_deref(), Some("node:22-bookworm"));
    assert_eq!(plain.reasons[0].1, "Node 22, the default");
}

#[test]
fn node_frameworks_and_their_ports() {
    let with = |dev: &str, deps: &str| {
        format!(r#"{{"scripts": {{"dev": "{dev}"}}, "devDependencies": {{{deps}}}}}"#)
    };
    for (dev, deps, what, command, port) in [
        (
            "vite dev",
            r#""@sveltejs/kit": "2""#,
            "a SvelteKit project",
            "npm run dev -- --host 0.0.0.0",
            Some(5173),
        ),
        (
            "vite",
            r#""@remix-run/dev": "2""#,
            "a Remix project",
            "npm run dev -- --host 0.0.0.0",
            Some(5173),
        ),
        (
            "remix vite:dev",
            "",
            "a Remix project",
            "npm run dev -- --host 0.0.0.0",
            Some(5173),
        ),
        (
            "remix dev",
            "",
            "a Remix project",
            "npm run dev",
            Some(3000),
        ),
        (
            "next dev",
            "",
            "a Next.js project",
            "npm run dev",
            Some(3000),
        ),
        (
            "next dev -p 3001",
            "",
            "a Next.js project",
            "npm run dev",
            Some(3001),
        ),
        (
            "astro dev",
            "",
            "an Astro project",
            "npm run dev -- --host 0.0.0.0",
            Some(4321),
        ),
        (
            "nuxt dev",
            "",
            "a Nuxt project",
            "npm run dev -- --host 0.0.0.0",
            Some(3000),
        ),
        (
            "nuxi dev --port 4000",
            "",
            "a Nuxt project",
            "npm run dev -- --host 0.0.0.0",
            Some(4000),
        ),
        (
            "ng serve",
            "",
            "an Angular project",
            "npm run dev -- --host 0.0.0.0",
            Some(4200),
        ),
        (
            "vite --host",
            "",
            "a Vite project",
            "npm run dev",
            Some(5173),
        ),
        (
            "NODE_ENV=development vite --port=4444",
            "",
            "a Vite project",
            "npm run dev -- --host 0.0.0.0",
            Some(4444),
        ),
        (
            "cross-env PORT=5555 vite",
            "",
            "a Vite project",
            "npm run dev -- --host 0.0.0.0",
            Some(5555),
        ),
        (
            "react-scripts start",
            "",
            "a Create React App project",
            "npm run dev",
            Some(3000),
        ),
        ("webpack serve", "", "a Node project", "npm run dev", None),
        (
            "node --watch server.js",
            "",
            "a Node project",
            "npm run dev",
            Some(3000),
        ),
    ] {
        let text = with(dev, deps);
        let detected = found(&[("package.json", &text)]);
        assert_eq!(detected.summary.split(" (").next(), Some(what), "{dev}");
        let service = &detected.layer.services[SERVICE];
        assert_eq!(service.command, command, "{dev}");
        assert_eq!(service.port, port, "{dev}");
        assert_eq!(
            detected.layer.ports.clone().unwrap(),
            Vec::from_iter(port),
            "{dev}"
        );
    }
}

#[test]
fn a_plain_node_server_runs_as_its_script_says_on_the_port_its_source_names() {
    let express = found(&[
        (
            "package.json",
            r#"{"scripts": {"dev": "node server.js"}, "dependencies": {"express": "4"}}"#,
        ),
        (
            "server.js",
            "const port = process.env.PORT || 4000;\napp.listen(port);\n",
        ),
    ]);
    assert_eq!(
        essentials(&express),
        (
            "node:22-bookworm".into(),
            Some("npm install".into()),
            Some("node server.js".into()),
            vec![4000]
        )
    );
    assert!(
        express.summary.starts_with("an Express project"),
        "{}",
        express.summary
    );
    // No dependencies: no install, no registry; Debian's `node` is enough.
    let plain = found(&[
        (
            "package.json",
            r#"{"scripts": {"start": "node src/index.mjs"}}"#,
        ),
        ("src/index.mjs", "http.createServer(h).listen(8081)\n"),
    ]);
    assert_eq!(
        essentials(&plain),
        (
            "node:22-bookworm".into(),
            None,
            Some("node src/index.mjs".into()),
            vec![8081]
        )
    );
    let unknown_port = found(&[("package.json", r#"{"scripts": {"dev": "node app.js"}}"#)]);
    assert_eq!(essentials(&unknown_port).3, [3000], "node's usual default");
}

#[test]
fn hostile_package_json_values_never_reach_a_command_or_the_image() {
    let cases: [(&str, &[(&str, &str)]); 8] = [
        ("a version with a command", &[(".nvmrc", "22; rm -rf /")]),
        (
            "a version that is an option",
            &[(".node-version", "--privileged")],
        ),
        ("escape sequences", &[(".nvmrc", "\u{1b}]0;pwned\u{7}")]),
        ("engines as an option", &[]),
        ("a script reading outside", &[]),
        ("a script with a command", &[]),
        ("a package manager with a command", &[]),
        ("a compound script", &[]),
    ];
    let packages = [
        r#"{"dependencies": {"a": "1"}}"#,
        r#"{"dependencies": {"a": "1"}}"#,
        r#"{"dependencies": {"a": "1"}}"#,
        r#"{"engines": {"node": "--privileged"}, "dependencies": {"a": "1"}}"#,
        r#"{"scripts": {"dev": "node ../../../etc/passwd.js"}}"#,
        r#"{"scripts": {"dev": "node x.js; rm -rf /"}}"#,
        r#"{"packageManager": "pnpm; rm -rf /@1", "dependencies": {"a": "1"}}"#,
        r#"{"scripts": {"dev": "vite & rm -rf / --privileged"}}"#,
    ];
    for ((what, files), package) in cases.iter().zip(packages) {
        let mut all = files.to_vec();
        all.push(("package.json", package));
        let detected = found(&all);
        assert_eq!(
            detected.layer.image.as_deref(),
            Some("node:22-bookworm"),
            "{what}"
        );
        let commands: Vec<&String> = detected
            .layer
            .setup
            .iter()
            .chain(detected.layer.services.values().map(|s| &s.command))
            .collect();
        for command in commands {
            assert!(
                ["npm install", "npm run dev"].contains(&command.as_str()),
                "{what}: {command}"
            );
        }
    }
    let noted = found(&[(".nvmrc", "22; rm -rf /"), ("package.json", "{}")]);
    assert_eq!(
        noted.layer.notes,
        [
            ".nvmrc says `22; rm -rf /`, not a Node version dual reads (`22`, `v20.11.1`, `lts/iron`): Node 22"
        ]
    );
    let escaped = found(&[(".nvmrc", "\u{1b}]0;pwned\u{7}"), ("package.json", "{}")]);
    assert!(
        escaped.layer.notes[0].contains("\\u{1b}"),
        "{:?}",
        escaped.layer.notes
    );
    let manager = found(&[(
        "package.json",
        r#"{"packageManager": "\u001b[2Jevil@1", "dependencies": {"a": "1"}}"#,
    )]);
    assert!(
        manager.layer.notes[0].contains("names none of npm"),
        "{:?}",
        manager.layer.notes
    );
    let compound = found(&[("package.json", r#"{"scripts": {"dev": "vite & tsc -w"}}"#)]);
    assert_eq!(compound.layer.services[SERVICE].command, "npm run dev");
    assert!(compound.layer.notes[0].contains("more than one command"));
}

#[test]
fn unreadable_manifests_are_passed_over() {
    assert_eq!(detect_in(&[("package.json", "{ not json")]), None);
    assert_eq!(detect_in(&[("package.json", "[1, 2]")]), None);
    assert_eq!(detect_in(&[("README.md", "hello")]), None);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(detect_in(&[("package.json", &deep)]), None);
    let deep_toml = format!("a = {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
    let python = found(&[("pyproject.toml", &deep_toml)]);
    assert_eq!(python.layer.image.as_deref(), Some("python:3.12-bookworm"));
    assert!(python.layer.notes[0].starts_with("`pyproject.toml` does not parse as TOML"));
    let huge = format!(r#"{{"description": "{}"}}"#, "x".repeat(600 * 1024));
    assert_eq!(detect_in(&[("package.json", &huge)]), None);

    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("server.js"), "listen(7777)").unwrap();
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"scripts": {"dev": "node server.js"}}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("server.js"),
        dir.path().join("server.js"),
    )
    .unwrap();
    let linked = detect(dir.path()).unwrap();
    assert_eq!(linked.layer.ports, Some(vec![3000]), "the link is not read");
    assert_eq!(
        linked.layer.notes,
        ["`server.js` was not read: a symbolic link"]
    );
    let lock = tempfile::tempdir().unwrap();
    std::fs::write(lock.path().join("package.json"), VITE).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", lock.path().join("pnpm-lock.yaml")).unwrap();
    assert_eq!(
        detect(lock.path()).unwrap().layer.setup.as_deref(),
        Some("corepack pnpm install --frozen-lockfile"),
        "a lock file is only looked at, never read"
    );
}

#[test]
fn python_installers_versions_and_frameworks() {
    let django = found(&[
        ("manage.py", "#!/usr/bin/env python\n"),
        ("requirements.txt", "Django>=4.2,<5\n"),
        (".python-version", "3.11\n"),
    ]);
    assert_eq!(
        essentials(&django),
        (
            "python:3.11-bookworm".into(),
            Some("[ -d .venv ] || python3 -m venv .venv && .venv/bin/pip install -r requirements.txt".into()),
            Some("python manage.py runserver 0.0.0.0:8000".into()),
            vec![8000]
        )
    );
    assert_eq!(
        django.layer.path.as_deref(),
        Some(&[".venv/bin".to_owned()][..])
    );
    assert_eq!(
        django.layer.seed.as_deref(),
        Some(&[".venv".to_owned()][..])
    );
    assert_eq!(django.layer.anonymous_volumes.as_deref(), Some(&[][..]));
    assert_eq!(
        django.summary,
        "a Django project (Python 3.11, from .python-version; pip, from requirements.txt; `python manage.py runserver 0.0.0.0:8000` on :8000)"
    );

    let fastapi = found(&[
        ("uv.lock", "version = 1\n[[package]]\nname = \"fastapi\"\n"),
        (
            "pyproject.toml",
            "[project]\nname = \"x\"\nrequires-python = \">=3.10,<3.12\"\n",
        ),
        (
            "app/main.py",
            "from fastapi import FastAPI\n\napi: FastAPI = FastAPI(title='x')\n",
        ),
    ]);
    assert_eq!(
        essentials(&fastapi),
        (
            "python:3.11-bookworm".into(),
            Some("python3 -m venv ~/.local/dual-tools && ~/.local/dual-tools/bin/pip install -q uv && ~/.local/dual-tools/bin/uv sync".into()),
            Some("uvicorn app.main:api --host 0.0.0.0 --port 8000".into()),
            vec![8000]
        )
    );
    assert!(fastapi.summary.starts_with("a FastAPI project"));

    let flask = found(&[
        ("poetry.lock", "[[package]]\nname = \"flask\"\n"),
        (
            "pyproject.toml",
            "[tool.poetry.dependencies]\npython = \"^3.10\"\nflask = \"^3\"\n",
        ),
        ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
    ]);
    assert_eq!(
        essentials(&flask),
        (
            "python:3.12-bookworm".into(),
            Some("python3 -m venv ~/.local/dual-tools && ~/.local/dual-tools/bin/pip install -q poetry && ~/.local/dual-tools/bin/poetry install".into()),
            Some("flask run --host 0.0.0.0 --port 5000".into()),
            vec![5000]
        )
    );
    assert_eq!(flask.layer.env["POETRY_VIRTUALENVS_IN_PROJECT"], "true");
    let flask_elsewhere = found(&[
        ("requirements.txt", "flask==3.0\n"),
        ("server.py", "app = Flask(__name__)\n"),
    ]);
    assert_eq!(
        essentials(&flask_elsewhere).2.as_deref(),
        Some("flask --app server run --host 0.0.0.0 --port 5000")
    );

    let project = found(&[(
        "pyproject.toml",
        "[project]\nname = \"x\"\n[project.optional-dependencies]\ndev = [\"pytest\"]\n",
    )]);
    assert_eq!(
        essentials(&project),
        (
            "python:3.12-bookworm".into(),
            Some(
                "[ -d .venv ] || python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'".into()
            ),
            None,
            vec![]
        )
    );
    let both = found(&[
        ("requirements.txt", "django\n"),
        ("requirements-dev.txt", "-r requirements.txt\npytest\n"),
        ("runtime.txt", "python-3.10.4\n"),
    ]);
    assert_eq!(both.layer.image.as_deref(), Some("python:3.10-bookworm"));
    assert_eq!(
        both.layer.setup.as_deref(),
        Some(
            "[ -d .venv ] || python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -r requirements-dev.txt"
        )
    );
    let nested = found(&[
        ("requirements/base.txt", "django\n"),
        ("requirements/dev.txt", "-r base.txt\n"),
    ]);
    assert_eq!(
        nested.layer.setup.as_deref(),
        Some(
            "[ -d .venv ] || python3 -m venv .venv && .venv/bin/pip install -r requirements/dev.txt"
        )
    );
}

#[test]
fn hostile_python_values_never_reach_a_command_or_the_image() {
    for version in [
        "3.11 --privileged",
        "pypy3.10",
        "3.11; rm -rf /",
        "system",
        "2.7",
    ] {
        let detected = found(&[(".python-version", version), ("requirements.txt", "")]);
        assert_eq!(
            detected.layer.image.as_deref(),
            Some("python:3.12-bookworm"),
            "{version}"
        );
        assert!(detected.layer.notes[0].starts_with(".python-version says"));
    }
    let requires = found(&[(
        "pyproject.toml",
        "[project]\nname = \"x\"\nrequires-python = \"--privileged\"\n",
    )]);
    assert_eq!(
        requires.layer.image.as_deref(),
        Some("python:3.12-bookworm")
    );
    // A variable or module that is not an identifier is not a server.
    for main in [
        "app;rm -rf / = FastAPI()\n",
        "$(touch /pwned) = FastAPI()\n",
        "app = FastAPIx\n",
    ] {
        let detected = found(&[("requirements.txt", "fastapi\n"), ("main.py", main)]);
        assert_eq!(detected.layer.services.get(SERVICE), None, "{main}");
    }
    let bad_module = found(&[
        ("requirements.txt", "fastapi\n"),
        ("app/main.py", "app = FastAPI()\n"),
    ]);
    assert_eq!(
        essentials(&bad_module).2.as_deref(),
        Some("uvicorn app.main:app --host 0.0.0.0 --port 8000")
    );
}

#[test]
fn ruby_go_and_rust() {
    let rails = found(&[
        (
            "Gemfile",
            "source 'https://rubygems.org'\nruby '3.2.2'\ngem 'rails'\n",
        ),
        ("bin/rails", "#!/usr/bin/env ruby\n"),
    ]);
    assert_eq!(
        essentials(&rails),
        (
            "ruby:3.2-bookworm".into(),
            Some("bundle install".into()),
            Some("bin/rails server -b 0.0.0.0 -p 3000".into()),
            vec![3000]
        )
    );
    assert_eq!(
        rails.layer.env["BUNDLE_PATH"],
        "${DUAL_CLONE}/vendor/bundle"
    );
    assert_eq!(
        rails.layer.seed.as_deref(),
        Some(&["vendor/bundle".to_owned()][..])
    );
    assert_eq!(
        rails.layer.path.as_deref(),
        Some(&["vendor/bin".to_owned()][..])
    );
    let pinned = found(&[
        ("Gemfile", ""),
        (".ruby-version", "ruby-3.4.1\n"),
        ("config.ru", ""),
    ]);
    assert_eq!(
        essentials(&pinned),
        (
            "ruby:3.4-bookworm".into(),
            Some("bundle install".into()),
            Some("bundle exec rackup -o 0.0.0.0 -p 9292".into()),
            vec![9292]
        )
    );
    let hostile_ruby = found(&[("Gemfile", ""), (".ruby-version", "3.3 --privileged")]);
    assert_eq!(
        hostile_ruby.layer.image.as_deref(),
        Some("ruby:3.3-bookworm")
    );

    let go = found(&[
        (
            "go.mod",
            "module example.com/x\n\ngo 1.22.1\n\ntoolchain go1.23.4\n",
        ),
        (
            "main.go",
            "package main\n\nfunc main() { http.ListenAndServe(\":8080\", nil) }\n",
        ),
    ]);
    assert_eq!(
        essentials(&go),
        (
            "golang:1.23-bookworm".into(),
            Some("go mod download".into()),
            Some("go run .".into()),
            vec![8080]
        )
    );
    let library = found(&[("go.mod", "module x\ngo 1.21\n")]);
    assert_eq!(
        essentials(&library),
        (
            "golang:1.21-bookworm".into(),
            Some("go mod download".into()),
            None,
            vec![]
        )
    );
    let hostile_go = found(&[("go.mod", "module x\ngo 1.21;rm\n")]);
    assert_eq!(
        hostile_go.layer.image.as_deref(),
        Some("golang:1.23-bookworm")
    );

    let rust = found(&[
        ("Cargo.toml", "[package]\nname = \"x\"\n"),
        (
            "src/main.rs",
            "let listener = TcpListener::bind(\"0.0.0.0:3000\").await?;\n",
        ),
    ]);
    assert_eq!(
        essentials(&rust),
        (
            "rust:1-bookworm".into(),
            Some("cargo fetch".into()),
            Some("cargo run".into()),
            vec![3000]
        )
    );
    assert!(rust.layer.env.is_empty(), "the image's CARGO_HOME is kept");
    let toolchain = found(&[
        ("Cargo.toml", ""),
        ("rust-toolchain.toml", "[toolchain]\nchannel = \"1.79.0\"\n"),
    ]);
    assert_eq!(toolchain.layer.image.as_deref(), Some("rust:1.79-bookworm"));
    let hostile_rust = found(&[
        ("Cargo.toml", ""),
        ("rust-toolchain", "1.79 --privileged\n"),
    ]);
    assert_eq!(hostile_rust.layer.image.as_deref(), Some("rust:1-bookworm"));
}

#[test]
fn one_stack_is_chosen_the_one_with_a_dev_server_and_the_others_said() {
    let django_with_assets = found(&[
        ("manage.py", ""),
        ("requirements.txt", "django\n"),
        ("package.json", VITE),
    ]);
    assert!(django_with_assets.summary.starts_with("a Django project"));
    assert_eq!(
        django_with_assets.layer.notes,
        [
            "this is also a Vite project (package.json): dual sets up one stack; `dual init` writes the guess to .dual.toml, where `setup` can do both"
        ]
    );
    let vite_with_scripts = found(&[("requirements.txt", "black\n"), ("package.json", VITE)]);
    assert!(vite_with_scripts.summary.starts_with("a Vite project"));
    assert!(vite_with_scripts.layer.notes[0].starts_with("this is also a Python project"));
}

#[test]
fn an_image_that_cannot_be_pulled_says_it_was_guessed_and_from_what() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package.json"), "{}").unwrap();
    std::fs::write(dir.path().join(".nvmrc"), "20").unwrap();
    assert_eq!(
        crate::workspace::sources::origin_of("image", dir.path()),
        "guessed from the repo's files: Node 20, from .nvmrc; `dual init` writes it to .dual.toml"
    );
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        crate::workspace::sources::origin_of("image", empty.path()),
        "the default: the clone has no .dual.toml"
    );
}
