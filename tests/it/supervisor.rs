//! The service supervisor inside real containers, as a user met it on NetBox:
//! what `ps` shows of it, and a service whose main process dies while a
//! process it started keeps serving.

use std::time::Duration;

use crate::proxy::free_port;
use crate::support::{each_engine, ensure_test_image, eventually};
use crate::workspaces::{TestEnv, text};

/// `ps -o pid,args` in the container: (pid, command line) of each process.
fn processes(env: &TestEnv, container: &str) -> Vec<(u32, String)> {
    let output = env.engine(&["exec", container, "ps", "-o", "pid,args"]);
    assert!(output.status.success(), "{output:?}");
    text(&output)
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (pid, args) = line.trim_start().split_once(char::is_whitespace)?;
            Some((pid.parse().ok()?, args.trim().to_owned()))
        })
        .collect()
}

/// The pids of the test servers named `name` in the container.
fn servers(env: &TestEnv, container: &str, name: &str) -> Vec<u32> {
    processes(env, container)
        .into_iter()
        .filter(|(_, args)| {
            args.starts_with("dual test-server") && args.contains(&format!("--name {name} "))
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// The one service's entry in `dual list --json`.
fn service(env: &TestEnv, name: &str) -> serde_json::Value {
    let list = env.list();
    let workspace = list
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list:?}"));
    workspace["services"][0].clone()
}

#[test]
fn ps_shows_each_supervisor_by_its_service_name_not_its_script() {
    each_engine("supervisor ps", |kind| {
        let config = format!(
            "image = \"{}\"\nports = []\n\
             [services.web]\ncommand = \"exec sleep 600\"\n\
             [services.worker]\ncommand = \"exec sleep 601\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "ps"]);
        let name = env.name("ps");
        env.ok(&["launch", "ps"]);
        let container = format!("dual-{name}");
        let mut seen = Vec::new();
        let both = eventually(Duration::from_secs(10), || {
            seen = processes(&env, &container);
            ["web", "worker"].iter().all(|service| {
                seen.iter()
                    .any(|(_, args)| args.ends_with(&format!("dual-supervise {service}")))
            })
        });
        assert!(both, "no `dual-supervise web` and `… worker` in {seen:#?}");
        assert!(
            seen.iter()
                .any(|(pid, args)| *pid == 1 && args.starts_with("sh /run/dual/dual-entry ")),
            "the container's main process runs its entry from a file: {seen:#?}"
        );
        for (pid, args) in &seen {
            assert!(
                args.len() < 120 && !args.contains('\n') && !args.contains("log_output"),
                "a process shows a script as its command line: {pid} {args:?}"
            );
        }
    });
}

#[test]
fn a_service_whose_parent_dies_is_ended_whole_counted_and_started_again() {
    each_engine("supervisor group", |kind| {
        let port = free_port();
        // The main process is a shell; the server is its child, holding the
        // service's output, as runserver's reloader child does.
        let config = format!(
            "image = \"{}\"\nports = []\n\
             [services.web]\ncommand = \"dual test-server --name $(hostname) --port {port} & wait\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "grp"]);
        let name = env.name("grp");
        env.ok(&["launch", "grp"]);
        let container = format!("dual-{name}");

        let mut first = Vec::new();
        assert!(
            eventually(Duration::from_secs(10), || {
                first = servers(&env, &container, &name);
                first.len() == 1
            }),
            "the server never started: {:#?}",
            processes(&env, &container)
        );
        let web = service(&env, &name);
        assert_eq!(
            (&web["state"], &web["restarts"]),
            (&"running".into(), &0.into())
        );

        // The main process: the test server's parent.
        let status = env.engine(&[
            "exec",
            &container,
            "cat",
            &format!("/proc/{}/stat", first[0]),
        ]);
        let stat = text(&status);
        let parent: u32 = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse().ok())
            .unwrap_or_else(|| panic!("no parent in {stat:?}"));
        let killed = env.engine(&["exec", &container, "kill", "-9", &parent.to_string()]);
        assert!(killed.status.success(), "{killed:?}");

        // Its child is ended with it, the restart counted, and a new server
        // started: never the old one serving under a `running` that
        // counts no restart.
        let mut now = Vec::new();
        let replaced = eventually(Duration::from_secs(15), || {
            now = servers(&env, &container, &name);
            now.len() == 1 && now[0] != first[0]
        });
        assert!(
            replaced,
            "servers before {first:?}, after {now:?}: {:#?}",
            processes(&env, &container)
        );
        let web = service(&env, &name);
        assert_eq!(web["restarts"], 1, "{web}");
        assert_eq!(web["state"], "running", "{web}");
        let logs = env.ok(&["logs", &name, "web", "--tail", "5"]);
        assert!(logs.contains("exited (137); restarting"), "{logs}");

        env.ok(&["stop", "grp"]);
    });
}
