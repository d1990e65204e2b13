//! Sidecars end to end: a real Postgres and Redis (built from Debian's
//! packages by `scripts/sidecar-images`, tagged `postgres:16` and
//! `redis:7`) beside each workspace, read from the repo's compose file, on
//! each workspace's own localhost.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{EngineKind, each_engine, ensure_test_image};
use crate::workspaces::TestEnv;

const POSTGRES: &str = "postgres:16";
const REDIS: &str = "redis:7";
/// A workspace image with `psql` and `redis-cli` in it.
const STACK: &str = "dual-test-stack:latest";

/// A compose file as an app repo has it: a database with a healthcheck, a
/// default in `${…}` and a named volume, a cache, and the app itself
/// (built from the repo, which the workspace container runs instead).
const COMPOSE: &str = r#"
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${DB_PASSWORD:-devsecret}
      POSTGRES_DB: app
    volumes: [pgdata:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h localhost -U postgres -d app"]
      interval: 1s
      retries: 90
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

/// Whether the sidecar images are on `kind` (a loud skip when not).
fn have_stack_images(kind: EngineKind, test: &str) -> bool {
    crate::support::have_debian_images(kind, test, &[POSTGRES, REDIS, STACK])
}

/// A repo whose `.dual.toml` names only the workspace image, and whose
/// compose file is `COMPOSE`.
fn compose_env(kind: EngineKind) -> TestEnv {
    let env = TestEnv::new(
        Some(kind),
        &format!("image = \"{STACK}\"\nports = [3000]\n"),
    );
    let source = env.source();
    std::fs::write(source.join("compose.yaml"), COMPOSE).unwrap();
    env.git(&source, &["add", "compose.yaml"]);
    env.git(&source, &["commit", "-qm", "compose"]);
    env
}

/// `psql` in the workspace of `branch`, against its own localhost.
fn psql(env: &TestEnv, branch: &str, sql: &str) -> String {
    let output = env
        .cmd(&[
            "run",
            "--",
            "env",
            "PGPASSWORD=devsecret",
            "psql",
            "-h",
            "localhost",
            "-U",
            "postgres",
            "-d",
            "app",
            "-tAc",
            sql,
        ])
        .current_dir(env.clone_path(branch))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "psql `{sql}` in {branch}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn redis(env: &TestEnv, branch: &str, args: &[&str]) -> String {
    let mut all = vec!["redis-cli", "-h", "localhost"];
    all.extend_from_slice(args);
    let output = env.run_in(branch, "", &all);
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// What a Postgres client gets from `127.0.0.1:port` on the host within
/// `limit`: an answer, a close or a refusal; `None` for a hang.
fn postgres_client_outcome(port: u16, limit: Duration) -> Option<String> {
    let started = Instant::now();
    let mut stream = match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), limit) {
        Ok(stream) => stream,
        Err(error) => return Some(format!("refused: {error}")),
    };
    stream.set_read_timeout(Some(limit)).unwrap();
    // An SSLRequest: what psql sends first.
    stream.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).unwrap();
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => Some("closed".into()),
        Ok(n) => Some(format!("answered {:?}", &buffer[..n.min(12)])),
        Err(_) if started.elapsed() >= limit => None,
        Err(error) => Some(format!("reset: {error}")),
    }
}

fn sidecar_states(env: &TestEnv, name: &str) -> Vec<(String, String)> {
    let list = env.list();
    let workspace = list
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {list:?}"));
    workspace["sidecars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn each_workspace_has_its_own_postgres_and_redis_from_the_compose_file() {
    each_engine("sidecars", |kind| {
        if !have_stack_images(kind, "sidecars") {
            return;
        }
        let env = compose_env(kind);
        let branches = ["main", "a", "b"];
        for branch in branches {
            env.ok(&["create", branch]);
        }
        // `-v`: each note of the compose file, not only how many.
        let launched = env.ok(&["launch", "-v", &env.name("main")]);
        // The app service is the workspace's job; ports stay inside.
        assert!(launched.contains("`app`"), "{launched}");
        assert!(launched.contains("dual forward"), "{launched}");
        assert!(launched.contains("sidecar `db`: created"), "{launched}");
        assert!(launched.contains("sidecar `cache`: created"), "{launched}");
        for branch in &branches[1..] {
            env.ok(&["launch", &env.name(branch)]);
        }
        for branch in branches {
            psql(&env, branch, "create table owner (name text)");
            psql(
                &env,
                branch,
                &format!("insert into owner values ('{branch}')"),
            );
            redis(&env, branch, &["set", "owner", branch]);
        }
        for branch in branches {
            assert_eq!(
                psql(&env, branch, "select string_agg(name, ',') from owner"),
                branch
            );
            assert_eq!(redis(&env, branch, &["get", "owner"]), branch);
            assert_eq!(
                sidecar_states(&env, &env.name(branch)),
                [
                    ("cache".to_owned(), "running".to_owned()),
                    ("db".to_owned(), "running".to_owned())
                ]
            );
        }
        // Compose's app reaches its database by the service's name: the
        // workspace's own one.
        let by_name = env.run_in(
            "b",
            "",
            &[
                "env",
                "PGPASSWORD=devsecret",
                "psql",
                "-h",
                "db",
                "-U",
                "postgres",
                "-d",
                "app",
                "-tAc",
                "select name from owner",
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&by_name.stdout).trim(),
            "b",
            "{by_name:?}"
        );
        // The host reaches one workspace's database through `dual forward`
        // (which starts the proxy), with the host's own psql.
        env.ok(&["proxy", "start"]);
        let _proxy = crate::forward::StopsProxy(&env);
        let local = crate::proxy::free_port();
        let forwarded = env.ok(&[
            "forward",
            &env.name("a"),
            "5432",
            "--local",
            &local.to_string(),
        ]);
        assert!(
            forwarded.contains(&format!("127.0.0.1:{local}")),
            "{forwarded}"
        );
        // Right after the forward, as a user would type it.
        let host_psql = || {
            std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-p", &local.to_string()])
                .args([
                    "-U",
                    "postgres",
                    "-d",
                    "app",
                    "-tAc",
                    "select name from owner",
                ])
                .env("PGPASSWORD", "devsecret")
                .env("PGCONNECT_TIMEOUT", "10")
                .output()
                .expect("psql on the host (scripts/setup-engines installs postgresql-client)")
        };
        let first = host_psql();
        assert_eq!(
            String::from_utf8_lossy(&first.stdout).trim(),
            "a",
            "{first:?}"
        );
        // With the proxy running, their ports are found, judged not HTTP,
        // and listed apart: never a URL, never bound on the host.
        let a = env.name("a");
        crate::support::wait_until(
            Duration::from_secs(20),
            "5432 and 6379 listed as tcp",
            || {
                let list = env.list();
                let tcp = &list.iter().find(|w| w["name"] == a.as_str()).unwrap()["tcp_ports"];
                *tcp == serde_json::json!([5432, 6379])
            },
        );
        // Nothing is published on the host for them, and no URL offers
        // them as web pages.
        // (A sidecar shares the workspace container's network namespace:
        // what would be published is the workspace container's.)
        for branch in branches {
            for container in [
                format!("dual-{}", env.name(branch)),
                format!("dual-{}.db", env.name(branch)),
            ] {
                let ports = env.engine(&["port", &container]);
                assert!(ports.status.success(), "{container}: {ports:?}");
                assert!(ports.stdout.is_empty(), "{container} publishes {ports:?}");
            }
        }
        let urls = env.ok(&["urls", &env.name("a")]);
        assert!(!urls.contains(":5432") && !urls.contains(":6379"), "{urls}");
        // A Postgres client on the host's 5432 never hangs.
        let outcome = postgres_client_outcome(5432, Duration::from_secs(3));
        assert!(outcome.is_some(), "a client on 127.0.0.1:5432 hung");
        // Postgres's own log, through dual.
        let logs = env.ok(&["logs", &env.name("a"), "db"]);
        assert!(logs.contains("ready to accept connections"), "{logs}");
    });
}

#[test]
fn data_is_branched_from_the_parent_and_survives_stop_recreate_and_an_image_change() {
    each_engine("sidecar data", |kind| {
        if !have_stack_images(kind, "sidecar data") {
            return;
        }
        let env = compose_env(kind);
        env.ok(&["create", "main"]);
        env.ok(&["launch", &env.name("main")]);
        psql(&env, "main", "create table rows (v text)");
        psql(&env, "main", "insert into rows values ('from-main')");

        let created = env.ok(&["create", "feat", "--from", &env.name("main")]);
        assert!(created.contains("copy of"), "{created}");
        let launched = env.ok(&["launch", &env.name("feat")]);
        assert!(launched.contains("copied from"), "{launched}");
        assert_eq!(
            psql(&env, "feat", "select string_agg(v, ',') from rows"),
            "from-main"
        );
        // The parent runs on, and the two diverge.
        psql(&env, "feat", "insert into rows values ('feat-only')");
        psql(&env, "main", "insert into rows values ('main-only')");
        let all = "select string_agg(v, ',' order by v) from rows";
        assert_eq!(psql(&env, "feat", all), "feat-only,from-main");
        assert_eq!(psql(&env, "main", all), "from-main,main-only");

        let feat = env.name("feat");
        env.ok(&["stop", &feat]);
        assert_eq!(sidecar_states(&env, &feat)[1].1, "exited");
        env.ok(&["launch", &feat]);
        assert_eq!(psql(&env, "feat", all), "feat-only,from-main");

        let recreated = env.ok(&["launch", &feat, "--recreate"]);
        assert!(recreated.contains("recreated"), "{recreated}");
        assert_eq!(psql(&env, "feat", all), "feat-only,from-main");

        // The same image under another name: the sidecar is made again,
        // its data volume kept.
        let other = format!("localhost/dual-sidecar-test-{}:16", env.repo);
        env.engine(&["tag", POSTGRES, &other]);
        let clone = env.clone_path("feat");
        let compose = COMPOSE.replace("image: postgres:16", &format!("image: {other}"));
        std::fs::write(clone.join("compose.yaml"), compose).unwrap();
        let changed = env.ok(&["launch", &feat]);
        assert!(changed.contains("sidecar `db`: recreated"), "{changed}");
        assert_eq!(psql(&env, "feat", all), "feat-only,from-main");
        env.engine(&["rmi", &other]);

        // Destroy leaves none of its containers or volumes.
        env.ok(&["destroy", &feat, "--force"]);
        let left: Vec<String> = env
            .containers()
            .into_iter()
            .chain(env.volumes())
            .filter(|name| name.contains(&feat))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        assert_eq!(psql(&env, "main", all), "from-main,main-only");
    });
}

#[test]
fn a_sidecar_that_never_gets_ready_fails_the_launch_with_its_log_and_leaves_nothing() {
    each_engine("sidecar not ready", |kind| {
        let image = ensure_test_image(kind);
        let config = format!(
            "image = \"{image}\"\n\
             [sidecars.broken]\nimage = \"{image}\"\nuser = \"1000:1000\"\n\
             command = [\"sh\", \"-c\", \"echo preparing the answer; sleep 600\"]\n\
             ready = 5999\nready_timeout = 3\nvolumes = [\"state:/tmp/state\"]\n\
             [sidecars.crashing]\nimage = \"{image}\"\nuser = \"1000:1000\"\n\
             command = [\"sh\", \"-c\", \"echo config file missing >&2; exit 3\"]\n\
             depends_on = [\"broken\"]\n"
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "main"]);
        let name = env.name("main");
        let error = env.fails(&["launch", &name]);
        assert!(
            error.contains("sidecar `broken` did not become ready"),
            "{error}"
        );
        assert!(error.contains("nothing listened on port 5999"), "{error}");
        assert!(error.contains("preparing the answer"), "{error}");
        assert!(
            error.contains(&format!("dual logs {name} broken")),
            "{error}"
        );
        let debris: Vec<String> = env
            .containers()
            .into_iter()
            .chain(env.volumes())
            .filter(|c| c.contains(".broken") || c.contains(".crashing"))
            .collect();
        assert!(debris.is_empty(), "left behind: {debris:?}");

        // With the first fixed, the second's crash is the error.
        let clone = env.clone_path("main");
        let fixed = config.replace("ready = 5999\nready_timeout = 3\n", "");
        std::fs::write(clone.join(".dual.toml"), fixed).unwrap();
        let error = env.fails(&["launch", &name]);
        assert!(
            error.contains("sidecar `crashing` did not become ready"),
            "{error}"
        );
        assert!(error.contains("exited with status 3"), "{error}");
        assert!(error.contains("config file missing"), "{error}");
    });
}

#[test]
fn a_sidecar_never_runs_as_root() {
    each_engine("sidecar root", |kind| {
        // The test image names no user: it would run as root.
        let image = ensure_test_image(kind);
        let config = format!(
            "image = \"{image}\"\n[sidecars.db]\nimage = \"{image}\"\ncommand = [\"sleep\", \"600\"]\n"
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "main"]);
        let error = env.fails(&["launch", &env.name("main")]);
        assert!(error.contains("would run as root"), "{error}");
        assert!(error.contains("user = "), "{error}");
        assert!(
            !env.containers().iter().any(|c| c.ends_with(".db")),
            "a root sidecar was made"
        );
        // Nor when asked to, in so many words.
        let clone = env.clone_path("main");
        let text = std::fs::read_to_string(clone.join(".dual.toml")).unwrap();
        std::fs::write(
            clone.join(".dual.toml"),
            text.replace("[sidecars.db]\n", "[sidecars.db]\nuser = \"root\"\n"),
        )
        .unwrap();
        let error = env.fails(&["launch", &env.name("main")]);
        assert!(error.contains("root"), "{error}");
    });
}

/// The compose file the bar names is read as a person would write it: the
/// unit tests cover each key; this one the whole file from a clone.
#[test]
fn the_compose_file_gives_two_sidecars_and_skips_the_app() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), COMPOSE).unwrap();
    let config = dual::workspace::config::Config::load(Path::new(dir.path())).unwrap();
    let names: Vec<&String> = config.sidecars.keys().collect();
    assert_eq!(names, ["cache", "db"]);
    assert_eq!(
        config.sidecars["db"].env["POSTGRES_PASSWORD"], "devsecret",
        "the default of ${{DB_PASSWORD:-devsecret}}"
    );
    assert!(
        config.notes.iter().any(|note| note.contains("`app`")),
        "{:?}",
        config.notes
    );
}

/// The images a rootless user needs, in that user's own storage (where
/// `scripts/sidecar-images` did not put them): copied from root's podman.
fn load_for(user: &str) {
    let id = |as_user: bool, image: &str| {
        let inspect = format!("cd / && podman image inspect --format '{{{{.Id}}}}' {image}");
        let output = if as_user {
            std::process::Command::new("su")
                .args([user, "-s", "/bin/sh", "-c", &inspect])
                .output()
        } else {
            std::process::Command::new("sh")
                .args(["-c", &inspect])
                .output()
        };
        output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // The same images, by id: a copy of older images (or one archive's
    // first image under every name) would run the wrong program.
    let current = [POSTGRES, REDIS, STACK]
        .iter()
        .all(|image| matches!((id(false, image), id(true, image)), (Ok(a), Ok(b)) if !a.is_empty() && a == b));
    if current {
        return;
    }
    // `-m`: each name is an image of its own (without it, podman writes the
    // first image under every name).
    let script = format!(
        "podman save -m {POSTGRES} {REDIS} {STACK} | su {user} -s /bin/sh -c 'cd / && podman load -q'"
    );
    let loaded = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
}

/// What the rootless test's user runs: `.dual.toml` with a Postgres and a
/// Redis, two workspaces, the second branched from the first.
const ROOTLESS_SCRIPT: &str = r#"export XDG_DATA_HOME=$(getent passwd "$(id -un)" | cut -d: -f6)/.local/share
cd "$T/src"
printf '%s\n' 'image = "dual-test-stack:latest"' '[sidecars.db]' 'image = "postgres:16"' \
  'env = { POSTGRES_PASSWORD = "dev", POSTGRES_DB = "app" }' \
  'volumes = ["pgdata:/var/lib/postgresql/data"]' 'ready = "pg_isready -h localhost -U postgres"' 'ports = [5432]' \
  '[sidecars.cache]' 'image = "redis:7"' 'ready = 6379' > .dual.toml
git -c user.email=t@t -c user.name=t commit -qam sidecars
"$DUAL" add --name rl >/dev/null && "$DUAL" create main >/dev/null && "$DUAL" launch rl-main >/dev/null
cd "$T/root/rl/main"
"$DUAL" run -- env PGPASSWORD=dev psql -h localhost -U postgres -d app -tAc "create table t (v text); insert into t values ('from-main')" >/dev/null
echo "redis=$("$DUAL" run -- redis-cli -h cache ping)"
echo "db-dir=$("$DUAL" run -- env PGPASSWORD=dev psql -h localhost -U postgres -d app -tAc "select current_setting('data_directory')")"
"$DUAL" proxy start >/dev/null && "$DUAL" forward rl-main 5432 --local "$FORWARD_PORT" >/dev/null
echo "forwarded=$(PGPASSWORD=dev PGCONNECT_TIMEOUT=10 psql -h 127.0.0.1 -p "$FORWARD_PORT" -U postgres -d app -tAc "select v from t")"
"$DUAL" proxy stop >/dev/null
cd / && "$DUAL" create feat --from rl-main >/dev/null && "$DUAL" launch rl-feat
cd "$T/root/rl/feat"
echo "feat=$("$DUAL" run -- env PGPASSWORD=dev psql -h db -U postgres -d app -tAc "select v from t")"
cd / && "$DUAL" destroy rl-feat --force >/dev/null && "$DUAL" destroy rl-main --force >/dev/null && echo destroyed
# The repo's package cache outlives its workspaces; it goes with the repo.
"$DUAL" repo remove rl >/dev/null && "$DUAL" prune --yes >/dev/null
echo "left=$(podman ps -aq --filter label=dual.repo=rl | wc -l)/$(podman volume ls -q --filter label=dual.repo=rl | wc -l)"
"#;

/// Sidecars as an ordinary user on rootless podman: each runs as its image's
/// user, the workspace reaches both on localhost and by name, the host
/// reaches the database through `dual forward` (its port published on
/// loopback, the only way in there), and a branch
/// starts with a copy of its parent's data (the parent's sidecar stopped for
/// the copy where rootless podman cannot pause it).
#[test]
fn rootless_podman_runs_sidecars_and_branches_their_data() {
    let Some(user) = crate::support::rootless_user("rootless_podman_sidecars") else {
        return;
    };
    if !have_stack_images(EngineKind::Podman, "rootless_podman_sidecars") {
        return;
    }
    load_for(&user);
    // The host reaches a rootless sidecar only where it is published.
    let script = format!(
        "FORWARD_PORT={}\n{ROOTLESS_SCRIPT}",
        crate::proxy::free_port()
    );
    let (output, _dir) = crate::support::as_user(&user, EngineKind::Podman, &script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "redis=PONG\n",
        "db-dir=/var/lib/postgresql/data\n",
        "forwarded=from-main\n",
        "copied from `rl-main`",
        "feat=from-main\n",
        "destroyed\n",
        "left=0/0\n",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
}
