//! A repo as it is, end to end: no config at all (detection, `dual init`,
//! a Django and a Node project launched as detected, on each engine), and
//! the `path` and `[env]` settings that such a config relies on.

use std::path::Path;
use std::time::Duration;

use crate::support::{EngineKind, each_engine, ensure_test_image, have_debian_images, wait_for};
use crate::workspaces::{TestEnv, text};

/// A registered repo holding `files` (a path ending in `bin/…` made
/// executable) and no `.dual.toml`.
fn repo_as_it_is(kind: Option<EngineKind>, files: &[(&str, &str)]) -> TestEnv {
    let env = TestEnv::new(kind, "");
    let source = env.source();
    env.git(&source, &["rm", "-q", ".dual.toml"]);
    add_files(&source, files);
    env.git(&source, &["add", "."]);
    env.git(&source, &["commit", "-qm", "a repo as it is"]);
    env
}

fn add_files(dir: &Path, files: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt as _;
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        if name.contains("bin/") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

const DJANGO: &[(&str, &str)] = &[
    (".python-version", "3.11\n"),
    ("requirements.txt", "Django>=4.2,<5.2\n"),
    (
        "manage.py",
        "import os, sys\n\nif __name__ == \"__main__\":\n    os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"hello.settings\")\n    from django.core.management import execute_from_command_line\n    execute_from_command_line(sys.argv)\n",
    ),
    ("hello/__init__.py", ""),
    (
        "hello/settings.py",
        "SECRET_KEY = \"test-only\"\nDEBUG = True\nALLOWED_HOSTS = []\nROOT_URLCONF = \"hello.urls\"\nINSTALLED_APPS = []\nDATABASES = {}\nUSE_TZ = True\n",
    ),
    (
        "hello/urls.py",
        "from django.http import HttpResponse\nfrom django.urls import path\n\nurlpatterns = [path(\"\", lambda request: HttpResponse(\"hello from django\"))]\n",
    ),
];

const NODE: &[(&str, &str)] = &[
    (".nvmrc", "18\n"),
    (
        "package.json",
        "{\"name\": \"hello\", \"private\": true, \"scripts\": {\"dev\": \"node server.js\"}}\n",
    ),
    (
        "server.js",
        "const http = require(\"http\");\nconst port = process.env.PORT || 3000;\nhttp.createServer((req, res) => res.end(\"hello from node\")).listen(port);\n",
    ),
];

#[test]
fn init_writes_the_guess_once_and_never_through_a_link() {
    let env = repo_as_it_is(None, DJANGO);
    let source = env.source();
    let file = source.join(".dual.toml");
    let printed = env
        .cmd(&["init", source.to_str().unwrap(), "--print"])
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    assert!(
        printed.contains("image = \"python:3.11-bookworm\"\n"),
        "{printed}"
    );
    assert!(
        printed.contains(
            "[services.web]\ncommand = \"python manage.py runserver 0.0.0.0:8000\"\nport = 8000\n"
        ),
        "{printed}"
    );
    assert!(!file.exists(), "--print writes nothing");

    // Without DIR: the repo around the current directory.
    let written = env
        .cmd(&["init"])
        .current_dir(source.join("hello"))
        .output()
        .unwrap();
    assert!(written.status.success(), "{written:?}");
    assert_eq!(String::from_utf8_lossy(&written.stdout), printed);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), printed);
    let said = String::from_utf8_lossy(&written.stderr);
    assert!(
        said.contains(&format!("wrote {}", file.display())),
        "{said}"
    );

    let again = env
        .cmd(&["init", source.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("has a .dual.toml already"), "{said}");
    assert!(
        said.contains("hint: `dual init --force` replaces it"),
        "{said}"
    );
    std::fs::write(&file, "# mine\n").unwrap();
    env.ok(&["init", source.to_str().unwrap(), "--force"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), printed);

    // A branch may commit `.dual.toml -> ~/.bashrc`: never written through.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("bashrc");
    std::fs::write(&target, "host file\n").unwrap();
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&target, &file).unwrap();
    let linked = env
        .cmd(&["init", source.to_str().unwrap(), "--force"])
        .output()
        .unwrap();
    assert_eq!(linked.status.code(), Some(1));
    let said = String::from_utf8_lossy(&linked.stderr);
    assert!(said.contains("is a symbolic link"), "{said}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "host file\n");

    let empty = tempfile::tempdir().unwrap();
    let nothing = env
        .cmd(&["init", empty.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(nothing.status.code(), Some(1));
    let said = String::from_utf8_lossy(&nothing.stderr);
    assert!(said.contains("says what it is"), "{said}");
    assert!(said.contains("hint: write a .dual.toml by hand"), "{said}");
}

#[test]
fn path_comes_first_and_env_expands_without_the_host_s_variables() {
    each_engine("path_and_env", |kind| {
        let config = format!(
            "image = \"{}\"\npath = [\"tools/bin\"]\nsetup = \"hello > setup-said\"\n\
             [env]\nGREETING = \"hi from ${{DUAL_WORKSPACE}} on ${{DUAL_BRANCH}}\"\nDATA = \"${{HOME}}/data\"\n\
             CLONE = \"${{DUAL_CLONE}}\"\nURL = \"${{DUAL_URL}}\"\nPRICE = \"$$5\"\n\
             LEAK = \"${{AWS_SECRET_ACCESS_KEY:-not passed}}\"\n\
             [services.greeter]\ncommand = \"hello > service-said; exec sleep 600\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        let source = env.source();
        add_files(
            &source,
            &[(
                "tools/bin/hello",
                "#!/bin/sh\necho \"hello from tools/bin: $GREETING\"\n",
            )],
        );
        env.git(&source, &["add", "."]);
        env.git(&source, &["commit", "-qm", "a tool"]);
        env.ok(&["create", "pe"]);
        let name = env.name("pe");
        // A proxy's URL with the user's credentials: podman would pass it
        // on by itself.
        let launched = env
            .cmd(&["launch", "pe"])
            .env("AWS_SECRET_ACCESS_KEY", "hunter2")
            .env("HTTPS_PROXY", "http://me:hunter2@proxy.invalid:3128")
            .env("http_proxy", "http://me:hunter2@proxy.invalid:3128")
            .output()
            .unwrap();
        assert!(launched.status.success(), "{launched:?}");
        let clone = env.clone_path("pe");
        let greeting = format!("hello from tools/bin: hi from {name} on pe\n");
        assert_eq!(
            std::fs::read_to_string(clone.join("setup-said")).unwrap(),
            greeting
        );
        wait_for(
            Duration::from_secs(10),
            "the service to run `hello`",
            || {
                std::fs::read_to_string(clone.join("service-said"))
                    .map_err(|e| e.to_string())
                    .and_then(|said| if said == greeting { Ok(()) } else { Err(said) })
            },
        );
        let run = env
            .cmd(&["run", "--", "hello"])
            .current_dir(&clone)
            .env("AWS_SECRET_ACCESS_KEY", "hunter2")
            .env("HTTPS_PROXY", "http://me:hunter2@proxy.invalid:3128")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout), greeting, "{run:?}");
        let seen = env.run_in("pe", "", &["env"]);
        let seen = String::from_utf8_lossy(&seen.stdout).into_owned();
        let var = |key: &str| {
            seen.lines()
                .find_map(|line| line.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key} in {seen}"))
                .to_owned()
        };
        let home = env.home().canonicalize().unwrap_or_else(|_| env.home());
        assert!(
            var("DATA") == format!("{}/data", env.home().display())
                || var("DATA") == format!("{}/data", home.display()),
            "{seen}"
        );
        assert_eq!(var("CLONE"), clone.display().to_string());
        assert_eq!(var("URL"), format!("http://{name}.localhost:3000"));
        assert_eq!(var("PRICE"), "$5");
        assert_eq!(var("LEAK"), "not passed");
        assert!(
            var("PATH").starts_with(&format!("{}/tools/bin:", clone.display())),
            "{seen}"
        );
        assert!(
            !seen.contains("hunter2") && !seen.contains("AWS_SECRET"),
            "{seen}"
        );
        let inspected = env.engine(&["inspect", &format!("dual-{name}")]);
        assert!(!String::from_utf8_lossy(&inspected.stdout).contains("hunter2"));
    });
}

#[test]
fn a_config_naming_a_host_variable_is_refused_before_anything_runs() {
    each_engine("host_variable_refused", |kind| {
        let config = format!(
            "image = \"{}\"\n[env]\nTOKEN = \"${{AWS_SECRET_ACCESS_KEY}}\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "leak"]);
        let launched = env
            .cmd(&["launch", "leak"])
            .env("AWS_SECRET_ACCESS_KEY", "hunter2")
            .output()
            .unwrap();
        assert_eq!(launched.status.code(), Some(1), "{launched:?}");
        let said = String::from_utf8_lossy(&launched.stderr);
        assert!(
            said.contains("`env.TOKEN` refers to `${AWS_SECRET_ACCESS_KEY}`, which is neither an `[env]` entry nor a variable dual gives the container"),
            "{said}"
        );
        assert!(
            said.contains(
                "hint: give it a value in `[env]`, or a default: `${AWS_SECRET_ACCESS_KEY:-}`"
            ),
            "{said}"
        );
        assert!(!said.contains("hunter2"));
        assert!(env.containers().is_empty(), "no container made");
    });
}

/// `GET /` at the container's own address, with the Host header the proxy
/// would send: status and body.
fn get_from_container(env: &TestEnv, name: &str, port: u16) -> Result<(u16, String), String> {
    let inspected = env.engine(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        &format!("dual-{name}"),
    ]);
    let address = text(&inspected);
    let ip = address.split_whitespace().next().ok_or("no address")?;
    let ip: std::net::IpAddr = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
    crate::support::http_get_at((ip, port).into(), &format!("{name}.localhost:{port}"), "/")
}

/// Launches the branch `main` of `env`'s repo as detected, and waits for
/// its page on `port`; returns what launch printed.
fn launch_and_get(env: &TestEnv, port: u16, page: &str) -> String {
    env.ok(&["create", "main"]);
    let started = std::time::Instant::now();
    let launched = env.ok(&["launch", "main"]);
    let name = env.name("main");
    let launch_took = started.elapsed();
    wait_for(
        Duration::from_secs(90),
        &format!("{name} to serve its page"),
        || match get_from_container(env, &name, port) {
            Ok((200, body)) if body.contains(page) => Ok(()),
            other => Err(other),
        },
    );
    eprintln!(
        "{name}: launch took {launch_took:.1?}, its page served {:.1?} after create",
        started.elapsed()
    );
    let urls = env.ok(&["urls", &name, "--json"]);
    assert!(
        urls.contains(&format!("http://{name}.localhost:{port}")),
        "{urls}"
    );
    // Routed: the page through dual's proxy, by name, on the detected port
    // (where that port is free on this host for the proxy to take).
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        let _proxy = crate::proxy::Proxy::start(env, port);
        let host = format!("{name}.localhost:{port}");
        wait_for(
            Duration::from_secs(15),
            &format!("{host} through the proxy"),
            || match crate::support::http_get(port, &host, "/") {
                Ok((200, body)) if body.contains(page) => Ok(()),
                other => Err(other),
            },
        );
    } else {
        eprintln!(
            "!!!!! port {port} is held on this host: {name}'s route was not tried through the proxy"
        );
    }
    launched
}

#[test]
fn a_django_project_with_no_config_launches_as_detected() {
    each_engine("django_detected", |kind| {
        if !have_debian_images(kind, "django_detected", &["python:3.11-bookworm"]) {
            return;
        }
        let env = repo_as_it_is(Some(kind), DJANGO);
        let launched = launch_and_get(&env, 8000, "hello from django");
        assert!(
            launched.contains("detected a Django project (Python 3.11, from .python-version; pip, from requirements.txt; `python manage.py runserver 0.0.0.0:8000` on :8000); `dual init` in the repo writes this to .dual.toml"),
            "{launched}"
        );
        assert!(
            launched.contains(
                "running setup: [ -d .venv ] || python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
            ),
            "{launched}"
        );
        // `path`: the venv's python, for `dual run` as for the service.
        let clone = env.clone_path("main");
        let prefix = env.run_in(
            "main",
            "",
            &["python", "-c", "import sys, django; print(sys.prefix)"],
        );
        assert_eq!(
            String::from_utf8_lossy(&prefix.stdout).trim(),
            clone.join(".venv").display().to_string(),
            "{prefix:?}"
        );
        let node_modules = format!(
            "dual-{}-v{}",
            env.name("main"),
            dual::workspace::names::short_hash("node_modules")
        );
        assert!(
            !env.volumes().contains(&node_modules),
            "no node_modules volume for Python"
        );
    });
}

#[test]
fn a_node_project_with_no_config_launches_as_detected() {
    each_engine("node_detected", |kind| {
        if !have_debian_images(kind, "node_detected", &["node:18-bookworm"]) {
            return;
        }
        let env = repo_as_it_is(Some(kind), NODE);
        let launched = launch_and_get(&env, 3000, "hello from node");
        assert!(
            launched.contains(
                "detected a Node project (Node 18, from .nvmrc; `node server.js` on :3000)"
            ),
            "{launched}"
        );
        assert!(
            !launched.contains("running setup"),
            "no dependencies, nothing installed: {launched}"
        );
        let node_modules = format!(
            "dual-{}-v{}",
            env.name("main"),
            dual::workspace::names::short_hash("node_modules")
        );
        assert!(env.volumes().contains(&node_modules), "{:?}", env.volumes());
    });
}
