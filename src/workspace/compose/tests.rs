//! Canned compose files, each read from a temporary clone.

use std::os::unix::fs::symlink;
use std::time::Duration;

use super::*;
use crate::workspace::config::{ComposeFile, Config};
use crate::workspace::sidecars::{Build, Check, Condition, Dependency, Ready, Volume};

/// A clone holding `files`.
fn clone_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// `compose.yaml` (with `others` beside it) read; an error as its text.
fn read_with(compose: &str, others: &[(&str, &str)]) -> Result<Stack, String> {
    let mut files = vec![("compose.yaml", compose)];
    files.extend_from_slice(others);
    let dir = clone_with(&files);
    load(dir.path(), "compose.yaml").map_err(|error| error.to_string())
}

fn read(compose: &str) -> Result<Stack, String> {
    read_with(compose, &[])
}

fn one(compose: &str) -> Sidecar {
    let stack = read(compose).unwrap();
    assert_eq!(stack.sidecars.len(), 1, "{stack:?}");
    stack.sidecars.into_values().next().unwrap()
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|word| (*word).to_owned()).collect()
}

fn has_note(stack: &Stack, says: &str) -> bool {
    stack.notes.iter().any(|note| note.contains(says))
}

#[test]
fn find_takes_compose_s_order_a_named_file_or_none() {
    let dir = clone_with(&[("docker-compose.yml", ""), ("compose.yml", "")]);
    assert_eq!(
        find(dir.path(), &ComposeFile::Usual).unwrap().as_deref(),
        Some("compose.yml")
    );
    assert_eq!(find(dir.path(), &ComposeFile::Off).unwrap(), None);
    let named = ComposeFile::Named("ops/dev.yaml".into());
    let error = find(dir.path(), &named).unwrap_err().to_string();
    assert!(error.contains("the clone has no `ops/dev.yaml`"), "{error}");
    std::fs::create_dir(dir.path().join("ops")).unwrap();
    std::fs::write(dir.path().join("ops/dev.yaml"), "").unwrap();
    assert_eq!(
        find(dir.path(), &named).unwrap().as_deref(),
        Some("ops/dev.yaml")
    );
    let empty = clone_with(&[]);
    assert_eq!(find(empty.path(), &ComposeFile::Usual).unwrap(), None);
}

#[test]
fn a_linked_compose_file_env_file_or_dot_env_is_refused() {
    let outside = clone_with(&[("secret", "services: {}\n")]);
    let secret = outside.path().join("secret");
    let dir = clone_with(&[]);
    symlink(&secret, dir.path().join("compose.yaml")).unwrap();
    assert_eq!(
        find(dir.path(), &ComposeFile::Usual).unwrap().as_deref(),
        Some("compose.yaml"),
        "found, not passed over for the next name"
    );
    let error = load(dir.path(), "compose.yaml").unwrap_err();
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(cause.contains("is a symbolic link"), "{cause}");
    let dir = clone_with(&[(
        "compose.yaml",
        "services:\n  db:\n    image: pg\n    env_file: [db.env]\n",
    )]);
    symlink(&secret, dir.path().join("db.env")).unwrap();
    let error = load(dir.path(), "compose.yaml").unwrap_err().to_string();
    assert!(error.contains("symbolic link"), "{error}");
    let dir = clone_with(&[("compose.yaml", "services: {}\n")]);
    symlink(&secret, dir.path().join(".env")).unwrap();
    assert!(load(dir.path(), "compose.yaml").is_err());
}

#[test]
fn environment_in_both_forms_over_env_files() {
    let db = one(
        "services:\n  db:\n    image: pg\n    environment:\n      A: one\n      PORT: 5432\n      DEBUG: true\n      FROM_FILE: environment wins\n",
    );
    assert_eq!(db.env["A"], "one");
    assert_eq!(db.env["PORT"], "5432");
    assert_eq!(db.env["DEBUG"], "true");
    let stack = read_with(
        "services:\n  db:\n    image: pg\n    env_file:\n      - db.env\n      - path: missing.env\n        required: false\n      - path: more.env\n    environment: [A=x=y, FROM_FILE=environment, TOKEN]\n",
        &[
            ("db.env", "# db\nFROM_FILE=file\nQUOTED=\"a b\"\nHOST_ONLY\n"),
            ("more.env", "MORE='${NOT_EXPANDED}'\n"),
        ],
    )
    .unwrap();
    let db = &stack.sidecars["db"];
    assert_eq!(db.env["A"], "x=y");
    assert_eq!(db.env["FROM_FILE"], "environment");
    assert_eq!(db.env["QUOTED"], "a b");
    assert_eq!(db.env["MORE"], "${NOT_EXPANDED}");
    assert!(!db.env.contains_key("TOKEN") && !db.env.contains_key("HOST_ONLY"));
    assert!(
        has_note(&stack, "`environment` lists `TOKEN` without a value"),
        "{:?}",
        stack.notes
    );
    assert!(
        has_note(&stack, "`db.env` lists `HOST_ONLY` without a value"),
        "{:?}",
        stack.notes
    );
    let single = read_with(
        "services:\n  db:\n    image: pg\n    env_file: db.env\n",
        &[("db.env", "X=1\n")],
    )
    .unwrap();
    assert_eq!(single.sidecars["db"].env["X"], "1");
    for (compose, says) in [
        (
            "services:\n  db:\n    image: pg\n    env_file: absent.env\n",
            "`services.db.env_file`: the clone has no `absent.env`",
        ),
        (
            "services:\n  db:\n    image: pg\n    env_file: ../outside.env\n",
            "`services.db.env_file`: `../outside.env` is not a file inside the clone",
        ),
        (
            "services:\n  db:\n    image: pg\n    env_file: /etc/passwd\n",
            "is not a file inside the clone",
        ),
        (
            "services:\n  db:\n    image: pg\n    environment: {\"A B\": x}\n",
            "`services.db.environment`: `A B` is not an environment variable name",
        ),
    ] {
        let error = read(compose).unwrap_err();
        assert!(error.contains(says), "{compose}: {error}");
        assert!(
            error.starts_with('`') && error.contains("compose.yaml`: "),
            "{error}"
        );
    }
}

#[test]
fn commands_users_and_tmpfs() {
    let db = one(
        "services:\n  db:\n    image: pg\n    command: postgres -c 'fsync=off'\n    entrypoint: [\"/bin/run\", 2]\n    user: \"999:999\"\n    tmpfs: /run\n",
    );
    assert_eq!(db.command, Some(words(&["postgres", "-c", "fsync=off"])));
    assert_eq!(db.entrypoint, Some(words(&["/bin/run", "2"])));
    assert_eq!(db.user.as_deref(), Some("999:999"));
    assert_eq!(db.tmpfs, ["/run"]);
    let stack =
        read("services:\n  db:\n    image: pg\n    tmpfs: [\"/tmp:size=64m,mode=1777\", /cache]\n")
            .unwrap();
    assert_eq!(stack.sidecars["db"].tmpfs, ["/tmp", "/cache"]);
    assert!(has_note(
        &stack,
        "tmpfs `/tmp`: options `size=64m,mode=1777` are not kept"
    ));
    for (compose, says) in [
        (
            "services:\n  db:\n    image: pg\n    user: root\n",
            "runs nothing as root",
        ),
        (
            "services:\n  db:\n    image: pg\n    user: \"0:0\"\n",
            "runs nothing as root",
        ),
        (
            "services:\n  db:\n    image: pg\n    command: \"a 'b\"\n",
            "unclosed quote",
        ),
        (
            "services:\n  db:\n    image: pg\n    tmpfs: run\n",
            "`services.db.tmpfs`: `run` must be an absolute path",
        ),
        (
            "services:\n  db:\n    image: \"--privileged\"\n",
            "`services.db.image`: `--privileged` is not an image reference",
        ),
        (
            "services:\n  db:\n    environment: {A: b}\n",
            "has neither `image` nor `build`",
        ),
    ] {
        let error = read(compose).unwrap_err();
        assert!(error.contains(says), "{compose}: {error}");
    }
}

#[test]
fn volumes_named_anonymous_and_bind() {
    let stack = read(
        "services:\n  db:\n    image: pg\n    volumes:\n      - pgdata:/var/lib/postgresql/data\n      - /var/log/pg\n      - /other/pg\n      - type: volume\n        source: cache\n        target: /cache\n        read_only: true\n      - type: tmpfs\n        target: /scratch\n      - ./init:/docker-entrypoint-initdb.d:ro\n      - /etc:/host-etc\n      - type: bind\n        source: ~/.ssh\n        target: /keys\nvolumes:\n  pgdata: {}\n  cache:\n    external: true\n",
    )
    .unwrap();
    let db = &stack.sidecars["db"];
    let volume = |name: &str, target: &str| Volume {
        name: name.into(),
        target: target.into(),
    };
    assert_eq!(
        db.volumes,
        [
            volume("pgdata", "/var/lib/postgresql/data"),
            volume("db-pg", "/var/log/pg"),
            volume("db-pg-2", "/other/pg"),
            volume("cache", "/cache"),
        ]
    );
    assert_eq!(db.tmpfs, ["/scratch"]);
    for says in [
        "bind mount `./init:/docker-entrypoint-initdb.d` dropped",
        "bind mount `/etc:/host-etc` dropped",
        "bind mount `~/.ssh:/keys` dropped",
        "volume `cache` is mounted read-write",
        "volume `cache` is `external`: dual keeps one per workspace",
    ] {
        assert!(has_note(&stack, says), "{says}: {:?}", stack.notes);
    }
    for (compose, says) in [
        (
            "services:\n  db:\n    image: pg\n    volumes: [\"a:relative\"]\n",
            "must be an absolute path",
        ),
        (
            "services:\n  db:\n    image: pg\n    volumes: [\"a:/x,type=bind\"]\n",
            "must be an absolute path",
        ),
        (
            "services:\n  db:\n    image: pg\n    volumes: [\"-a:/x\"]\n",
            "is not a volume name",
        ),
        (
            "services:\n  db:\n    image: pg\n    volumes: [\"a:/x:ro:z\"]\n",
            "is not `[source:]target[:mode]`",
        ),
    ] {
        let error = read(compose).unwrap_err();
        assert!(error.contains(says), "{compose}: {error}");
    }
}

#[test]
fn healthchecks_become_ready_checks() {
    let ready = |healthcheck: &str| {
        one(&format!(
            "services:\n  db:\n    image: pg\n    healthcheck:\n{healthcheck}"
        ))
        .ready
    };
    let command = |test: &[&str]| Some(Ready::Command(Check::new(words(test))));
    assert_eq!(
        ready("      test: [\"CMD\", \"pg_isready\", \"-U\", \"postgres\"]\n"),
        command(&["pg_isready", "-U", "postgres"])
    );
    assert_eq!(
        ready("      test: [\"CMD-SHELL\", \"pg_isready || exit 1\"]\n"),
        command(&["sh", "-c", "pg_isready || exit 1"])
    );
    assert_eq!(
        ready("      test: redis-cli ping\n"),
        command(&["sh", "-c", "redis-cli ping"])
    );
    assert_eq!(ready("      test: [\"NONE\"]\n"), None);
    assert_eq!(
        ready("      test: [\"CMD\", \"x\"]\n      disable: true\n"),
        None
    );
    let Some(Ready::Command(check)) = ready(
        "      test: [\"CMD\", \"x\"]\n      interval: 1m30s\n      timeout: 500ms\n      start_period: 2s\n      retries: 30\n      start_interval: 1s\n",
    ) else {
        panic!("no check");
    };
    assert_eq!(check.interval, Duration::from_secs(90));
    assert_eq!(check.timeout, Duration::from_millis(500));
    assert_eq!(check.start_period, Duration::from_secs(2));
    assert_eq!(check.retries, 30);
    let stack =
        read("services:\n  db:\n    image: pg\n    healthcheck:\n      interval: 1s\n").unwrap();
    assert_eq!(stack.sidecars["db"].ready, None);
    assert!(has_note(&stack, "`healthcheck` without `test`"));
    for (healthcheck, says) in [
        (
            "      test: [\"CMD\", \"x\"]\n      interval: 5\n",
            "`services.db.healthcheck.interval`: `5` is not a duration",
        ),
        (
            "      test: [\"CMD\", \"x\"]\n      retries: many\n",
            "`services.db.healthcheck.retries` is not a count",
        ),
        ("      test: [\"RUN\", \"x\"]\n", "a list starts with `CMD`"),
        ("      test: [\"CMD\"]\n", "is an empty command"),
    ] {
        let error = read(&format!(
            "services:\n  db:\n    image: pg\n    healthcheck:\n{healthcheck}"
        ))
        .unwrap_err();
        assert!(error.contains(says), "{healthcheck}: {error}");
    }
}

#[test]
fn depends_on_in_both_forms() {
    let stack = read(
        "services:\n  db:\n    image: pg\n  cache:\n    image: redis\n  migrate:\n    image: pg\n  worker:\n    image: w\n    depends_on: [db]\n  api:\n    image: a\n    depends_on:\n      db: { condition: service_healthy }\n      cache:\n      migrate: { condition: service_completed_successfully }\n      app: { condition: service_started }\n      gone: { required: false }\n  app:\n    build: .\n",
    )
    .unwrap();
    let dependency = |name: &str, condition| Dependency {
        name: name.into(),
        condition,
    };
    assert_eq!(
        stack.sidecars["worker"].depends_on,
        [dependency("db", Condition::Started)]
    );
    assert_eq!(
        stack.sidecars["api"].depends_on,
        [
            dependency("db", Condition::Ready),
            dependency("cache", Condition::Started),
            dependency("migrate", Condition::CompletedSuccessfully),
        ]
    );
    assert!(has_note(
        &stack,
        "service `api`: depends on `app`, which is not started as a sidecar"
    ));
    for (compose, says) in [
        (
            "services:\n  a:\n    image: x\n    depends_on: [nope]\n",
            "`services.a.depends_on`: `nope` is not a service of this file",
        ),
        (
            "services:\n  a:\n    image: x\n    depends_on: {b: {condition: healthy}}\n  b:\n    image: x\n",
            "`healthy` is not `service_started`",
        ),
    ] {
        let error = read(compose).unwrap_err();
        assert!(error.contains(says), "{compose}: {error}");
    }
}

#[test]
fn ports_are_the_container_side_with_one_note() {
    let stack = read(
        "services:\n  db:\n    image: pg\n    ports: [\"5432:5432\", \"127.0.0.1:15433:5433/tcp\", 6000, \"7000-7002:8000-8002\", \"9000/udp\", {target: 9100, published: 19100}]\n  cache:\n    image: redis\n    ports: [\"6379\"]\n",
    )
    .unwrap();
    assert_eq!(
        stack.sidecars["db"].ports,
        [5432, 5433, 6000, 8000, 8001, 8002, 9100]
    );
    assert_eq!(stack.sidecars["cache"].ports, [6379]);
    let port_notes: Vec<&String> = stack
        .notes
        .iter()
        .filter(|n| n.contains("`ports` are not published"))
        .collect();
    assert_eq!(port_notes.len(), 1, "{:?}", stack.notes);
    assert!(
        port_notes[0].contains("`dual forward`"),
        "{}",
        port_notes[0]
    );
    assert!(has_note(&stack, "port `9000` is not udp"));
    for ports in ["[\"0\"]", "[\"a:b\"]", "[\"1-1000\"]", "[70000]"] {
        let error = read(&format!(
            "services:\n  db:\n    image: pg\n    ports: {ports}\n"
        ))
        .unwrap_err();
        assert!(error.contains("`services.db.ports`"), "{ports}: {error}");
    }
}

#[test]
fn builds_keep_a_context_inside_the_clone() {
    let stack = read_with(
        "services:\n  db:\n    build: ./docker/db\n  search:\n    image: search:dev\n    build:\n      context: docker/search\n      dockerfile: Dockerfile.dev\n      args: {VERSION: \"8\"}\n      target: dev\n      network: host\n",
        &[],
    )
    .unwrap();
    let db = &stack.sidecars["db"];
    assert_eq!(db.image, "dual-build-db");
    assert_eq!(
        db.build,
        Some(Build {
            context: "docker/db".into(),
            dockerfile: None,
            args: BTreeMap::new(),
            target: None,
        })
    );
    let search = &stack.sidecars["search"];
    assert_eq!(search.image, "search:dev");
    let build = search.build.as_ref().unwrap();
    assert_eq!(build.context, "docker/search");
    assert_eq!(build.dockerfile.as_deref(), Some("Dockerfile.dev"));
    assert_eq!(build.args["VERSION"], "8");
    assert_eq!(build.target.as_deref(), Some("dev"));
    assert!(has_note(&stack, "`build.network` is not passed on"));
    // From a compose file in a subdirectory, `..` that stays inside.
    let dir = clone_with(&[(
        "ops/compose.yaml",
        "services:\n  db:\n    build: ../docker/db\n",
    )]);
    let stack = load(dir.path(), "ops/compose.yaml").unwrap();
    assert_eq!(
        stack.sidecars["db"].build.as_ref().unwrap().context,
        "docker/db"
    );
    for build in [
        "../outside",
        "/abs/path",
        "https://github.com/x/y.git",
        "git@github.com:x/y.git",
        "docker/-x",
    ] {
        let error = read(&format!("services:\n  db:\n    build: {build}\n")).unwrap_err();
        assert!(error.contains("`services.db.build`"), "{build}: {error}");
    }
    let error = read("services:\n  db:\n    build: {context: docker, dockerfile: ../Dockerfile}\n")
        .unwrap_err();
    assert!(error.contains("`services.db.build.dockerfile`"), "{error}");
}

#[test]
fn the_service_running_the_repo_s_code_is_the_workspace_container() {
    for app in [
        "    image: node:22\n    volumes: [\".:/app\"]\n",
        "    image: node:22\n    volumes: [\"./:/app:cached\"]\n",
        "    image: node:22\n    volumes: [{type: bind, source: ., target: /app}]\n",
        "    build: .\n",
        "    build: {dockerfile: Dockerfile.dev}\n",
        "    build: {context: ./}\n    image: app:dev\n",
    ] {
        let stack = read(&format!("services:\n  web:\n{app}  db:\n    image: pg\n")).unwrap();
        assert_eq!(stack.sidecars.keys().collect::<Vec<_>>(), ["db"], "{app}");
        assert!(
            has_note(
                &stack,
                "service `web` runs the repo's own code: the workspace container does that; not started as a sidecar"
            ),
            "{app}: {:?}",
            stack.notes
        );
    }
    let dir = clone_with(&[(
        "ops/compose.yaml",
        "services:\n  web:\n    image: node\n    volumes: [\"..:/app\"]\n  tools:\n    image: t\n    volumes: [\".:/ops\"]\n",
    )]);
    let stack = load(dir.path(), "ops/compose.yaml").unwrap();
    assert_eq!(stack.sidecars.keys().collect::<Vec<_>>(), ["tools"]);
    assert!(has_note(&stack, "bind mount `.:/ops` dropped"));
}

#[test]
fn keys_dual_cannot_honour_are_one_note_each() {
    let stack = read(
        "version: \"3.8\"\nname: proj\nx-common: &common\n  restart: always\nservices:\n  db:\n    <<: *common\n    image: pg\n    privileged: true\n    cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    network_mode: host\n    pid: host\n    ipc: host\n    devices: [\"/dev/kvm\"]\n    security_opt: [\"seccomp=unconfined\"]\n    volumes_from: [other]\n    networks: [back]\n    extra_hosts: [\"h:1.2.3.4\"]\n    deploy: {replicas: 2}\n    container_name: pg\n    hostname: pg\n    labels: {a: b}\n    ulimits: {nofile: 1024}\n    sysctls: {a: b}\n    secrets: [s]\n    configs: [c]\n    expose: [\"5432\"]\n    links: [x]\n    platform: linux/amd64\n    init: true\n    stop_grace_period: 1s\n    working_dir: /x\n    logging: {driver: none}\n    x-mine: 1\n    frobnicate: yes\n  later:\n    image: x\n    profiles: [debug]\nnetworks:\n  back: {}\nsecrets:\n  s: {file: ./s}\nsurprise: 1\nx-top: 2\n",
    )
    .unwrap();
    assert_eq!(stack.sidecars.keys().collect::<Vec<_>>(), ["db"]);
    for key in [
        "privileged",
        "cap_add",
        "network_mode",
        "pid",
        "ipc",
        "devices",
        "security_opt",
        "volumes_from",
    ] {
        let refused = format!("compose.yaml, service `db`: `{key}` refused");
        assert!(has_note(&stack, &refused), "{key}: {:?}", stack.notes);
    }
    for key in [
        "restart",
        "networks",
        "extra_hosts",
        "deploy",
        "container_name",
        "hostname",
        "labels",
        "ulimits",
        "sysctls",
        "secrets",
        "configs",
        "expose",
        "links",
        "platform",
        "init",
        "stop_grace_period",
        "working_dir",
        "logging",
    ] {
        let ignored = format!("compose.yaml, service `db`: `{key}` is not used");
        assert!(has_note(&stack, &ignored), "{key}: {:?}", stack.notes);
    }
    for says in [
        "`frobnicate` is not a compose key dual knows",
        "service `later` is not started: it is in profile `debug`",
        "top-level `networks` are not used",
        "top-level `secrets` are not supported",
        "top-level `surprise` is not a compose key dual knows",
    ] {
        assert!(has_note(&stack, says), "{says}: {:?}", stack.notes);
    }
    for quiet in [
        "cap_drop", "x-mine", "x-top", "x-common", "version", "`name`",
    ] {
        assert!(!has_note(&stack, quiet), "{quiet}: {:?}", stack.notes);
    }
    let refusals = stack
        .notes
        .iter()
        .filter(|note| note.contains("`restart`"))
        .count();
    assert_eq!(refusals, 1, "one line per key: {:?}", stack.notes);
}

#[test]
fn service_names_dual_cannot_use() {
    let stack = read(
        "services:\n  db.local:\n    image: pg\n  api:\n    image: a\n    depends_on: [db.local]\n",
    )
    .unwrap();
    assert!(stack.sidecars.contains_key("db-local"));
    assert_eq!(stack.sidecars["api"].depends_on[0].name, "db-local");
    assert!(has_note(&stack, "service `db.local` is sidecar `db-local`"));
    let long = "x".repeat(41);
    let error = read(&format!("services:\n  {long}:\n    image: pg\n")).unwrap_err();
    assert!(
        error.contains(&format!("service `{long}` cannot be a sidecar's name")),
        "{error}"
    );
    let error = read("services:\n  a.b:\n    image: pg\n  a-b:\n    image: pg\n").unwrap_err();
    assert!(error.contains("would both be sidecar `a-b`"), "{error}");
}

#[test]
fn variables_come_from_dot_env_never_from_the_host() {
    // HOME and PATH are set in every test's environment.
    assert!(std::env::var_os("HOME").is_some() && std::env::var_os("PATH").is_some());
    let stack = read_with(
        "services:\n  db:\n    image: pg:${PG_VERSION:-15}\n    environment:\n      STOLEN: \"${HOME}$PATH\"\n      FROM_DOT_ENV: ${PASSWORD}\n      PRICE: \"5$$\"\n      NESTED: ${UNSET:-${ALSO_UNSET:-fallback}}\n      ALT: ${PASSWORD:+set}\n      ESCAPED: $${NOT_A_VARIABLE}\n",
        &[(".env", "PG_VERSION=16\nPASSWORD=from-dot-env\n")],
    )
    .unwrap();
    let db = &stack.sidecars["db"];
    assert_eq!(db.image, "pg:16");
    assert_eq!(db.env["STOLEN"], "");
    assert_eq!(db.env["FROM_DOT_ENV"], "from-dot-env");
    assert_eq!(db.env["PRICE"], "5$");
    assert_eq!(db.env["NESTED"], "fallback");
    assert_eq!(db.env["ALT"], "set");
    assert_eq!(db.env["ESCAPED"], "${NOT_A_VARIABLE}");
    let unset: Vec<&String> = stack
        .notes
        .iter()
        .filter(|note| note.contains("not set in"))
        .collect();
    assert_eq!(unset.len(), 1, "{:?}", stack.notes);
    assert!(
        unset[0].contains("`$HOME`, `$PATH` not set in `.env`"),
        "{}",
        unset[0]
    );
    assert!(
        unset[0].contains("never from your shell's environment"),
        "{}",
        unset[0]
    );
    let error = read("services:\n  db:\n    image: pg\n    environment:\n      URL: ${DATABASE_URL:?put DATABASE_URL in .env}\n").unwrap_err();
    assert!(error.contains("compose.yaml`: `services.db.environment.URL`: the variable `DATABASE_URL` is not set: put DATABASE_URL in .env"), "{error}");
    let error = read("services:\n  db:\n    image: pg\n    command: echo $1\n").unwrap_err();
    assert!(
        error.contains("`services.db.command`: `echo $1` is not a valid interpolation"),
        "{error}"
    );
    // Keys are not interpolated (and `$$KEY` is no variable name).
    let error =
        read("services:\n  db:\n    image: pg\n    environment:\n      $$KEY: x\n").unwrap_err();
    assert!(
        error.contains("`$$KEY` is not an environment variable name"),
        "{error}"
    );
}

#[test]
fn deeply_nested_variables_are_an_error_naming_file_and_key() {
    let value = format!("{}x{}", "${A:-".repeat(5000), "}".repeat(5000));
    let error = read(&format!(
        "services:\n  db:\n    image: pg\n    environment:\n      X: '{value}'\n"
    ))
    .unwrap_err();
    assert!(error.contains("compose.yaml"), "{error}");
    assert!(
        error.contains("`services.db.environment.X`: `${…}` nests deeper than 10 levels"),
        "{error}"
    );
    let error = read_with("services: {}\n", &[(".env", &format!("X={value}\n"))]).unwrap_err();
    assert!(
        error.contains(".env") && error.contains("line 1: "),
        "{error}"
    );
}

#[test]
fn hostile_files_are_bounded_and_shown_safely() {
    let big = format!("x-pad: \"{}\"\nservices: {{}}\n", "a".repeat(1024 * 1024));
    let error = read(&big).unwrap_err();
    assert!(error.contains("compose.yaml"), "{error}");
    let error = read("services:\n  db:\n    image: \"\\e]0;pwned\\a\"\n").unwrap_err();
    assert!(
        !error.chars().any(|c| c.is_control() && c != '\n'),
        "{error:?}"
    );
    let stack = read("services:\n  db:\n    image: pg\n    \"\\e[31mkey\": 1\n").unwrap();
    assert!(
        stack
            .notes
            .iter()
            .all(|note| !note.chars().any(char::is_control)),
        "{:?}",
        stack.notes
    );
    let error = read("services: [a, b]\n").unwrap_err();
    assert!(
        error.contains("`services` is a list, not a mapping"),
        "{error}"
    );
    assert!(
        read("a: [\n")
            .unwrap_err()
            .contains("not a compose file compose reads")
    );
    let stack = read("").unwrap();
    assert!(stack.sidecars.is_empty() && has_note(&stack, "no services"));
}

const REALISTIC: &str = r#"services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${DB_PASSWORD:-dev}
      POSTGRES_DB: app
    env_file: [.env.db]
    volumes: [pgdata:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
      interval: 1s
      retries: 30
    ports: ["5432:5432"]
  cache:
    image: redis:7
    depends_on:
      db: { condition: service_healthy }
  app:
    build: .
    volumes: [.:/app]
    ports: ["3000:3000"]
    depends_on: [db, cache]
volumes:
  pgdata: {}
"#;

#[test]
fn a_realistic_file_through_config_load() {
    let dir = clone_with(&[
        ("compose.yaml", REALISTIC),
        (".env.db", "POSTGRES_USER=postgres\nHOME_COPY=${HOME}\n"),
    ]);
    let config = Config::load(dir.path()).unwrap();
    assert_eq!(config.sidecars.keys().collect::<Vec<_>>(), ["cache", "db"]);
    let db = &config.sidecars["db"];
    assert_eq!(db.image, "postgres:16");
    assert_eq!(db.env["POSTGRES_PASSWORD"], "dev");
    assert_eq!(db.env["POSTGRES_DB"], "app");
    assert_eq!(db.env["POSTGRES_USER"], "postgres");
    assert_eq!(db.env["HOME_COPY"], "", "no host environment");
    assert_eq!(
        db.volumes,
        [Volume {
            name: "pgdata".into(),
            target: "/var/lib/postgresql/data".into()
        }]
    );
    let Some(Ready::Command(check)) = &db.ready else {
        panic!("{:?}", db.ready);
    };
    assert_eq!(check.test, words(&["sh", "-c", "pg_isready -U postgres"]));
    assert_eq!(
        (check.interval, check.retries),
        (Duration::from_secs(1), 30)
    );
    assert_eq!(db.ports, [5432]);
    assert_eq!(
        db.origin,
        crate::workspace::sidecars::Origin::Compose {
            file: "compose.yaml".into(),
            service: "db".into()
        }
    );
    assert_eq!(
        config.sidecars["cache"].depends_on,
        [Dependency {
            name: "db".into(),
            condition: Condition::Ready
        }]
    );
    let notes = config.notes.join("\n");
    assert!(notes.contains("compose.yaml: service `app` runs the repo's own code: the workspace container does that; not started as a sidecar"), "{notes}");
    assert!(notes.contains("compose.yaml: `ports` are not published: sidecars listen on each workspace's own localhost (5432 for `db`); reach one from the host with `dual forward`"), "{notes}");
    assert!(notes.contains("`$HOME` not set in `.env`"), "{notes}");
    assert_eq!(config.notes.len(), 3, "{notes}");
}
