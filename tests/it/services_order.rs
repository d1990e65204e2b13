//! Services' `depends_on` and `ready`, end to end on each engine: the
//! supervisors in the container hold a service back until what it depends
//! on is ready, and `dual list` says `starting` until a service's own check
//! passes.

use std::time::Duration;

use crate::support::{each_engine, ensure_test_image, wait_for};
use crate::workspaces::TestEnv;

/// `a` listens on 3001 once the test creates /tmp/go in the container (so
/// the test, not a sleep, decides when); `b` depends on `a` and records, as
/// it starts, whether `a` answered then. `c`'s check never passes; `d`
/// depends on `c`.
fn config(image: &str) -> String {
    format!(
        r#"image = "{image}"
ports = []
[services.a]
command = "while [ ! -e /tmp/go ]; do sleep 0.2; done; exec httpd -f -p 3001 -h /tmp"
ready = 3001
[services.b]
command = "if nc 127.0.0.1 3001 < /dev/null; then echo b started at $(date +%s): a answered; else echo b started before a answered; fi; exec sleep 300"
depends_on = ["a"]
[services.c]
command = "exec sleep 300"
ready = "test -e /tmp/never"
[services.d]
command = "echo d started; exec sleep 300"
depends_on = ["c"]
"#
    )
}

/// Each service's state as `dual list --json` gives it: (name, state, `on`).
fn states(env: &TestEnv, name: &str) -> Vec<(String, String, String)> {
    let list = env.list();
    let workspace = list
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list:?}"));
    workspace["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |key: &str| s[key].as_str().unwrap_or("").to_owned();
            (text("name"), text("state"), text("on"))
        })
        .collect()
}

fn state_of(states: &[(String, String, String)], service: &str) -> (String, String) {
    let (_, state, on) = states
        .iter()
        .find(|(name, _, _)| name == service)
        .unwrap_or_else(|| panic!("no service {service} in {states:?}"));
    (state.clone(), on.clone())
}

#[test]
fn services_wait_for_what_they_depend_on_and_are_starting_until_ready() {
    each_engine("services_order", |kind| {
        let env = TestEnv::new(Some(kind), &config(ensure_test_image(kind)));
        env.ok(&["create", "order"]);
        let name = env.name("order");
        let container = format!("dual-{name}");
        env.ok(&["launch", "order"]);

        // Before the gate: `a` started but not ready, `b` not started.
        let before = wait_for(Duration::from_secs(10), "a starting, b waiting", || {
            let states = states(&env, &name);
            let (a, b) = (state_of(&states, "a"), state_of(&states, "b"));
            if a.0 == "starting" && b == ("waiting".into(), "a".into()) {
                Ok(states)
            } else {
                Err(states)
            }
        });
        eprintln!("{kind}: before the gate: {before:?}");
        let log = env.ok(&["logs", &name, "b"]);
        assert!(!log.contains("b started"), "{log}");

        let opened = env.engine(&["exec", &container, "touch", "/tmp/go"]);
        assert!(opened.status.success(), "{opened:?}");
        wait_for(Duration::from_secs(15), "a and b running", || {
            let states = states(&env, &name);
            let ready =
                state_of(&states, "a").0 == "running" && state_of(&states, "b").0 == "running";
            if ready { Ok(()) } else { Err(states) }
        });
        let log = wait_for(Duration::from_secs(5), "b's first line", || {
            let log = env.ok(&["logs", &name, "b"]);
            if log.contains("b started") {
                Ok(log)
            } else {
                Err(log)
            }
        });
        // The order, from what `b` saw as it started: `a` answered.
        assert!(log.contains(": a answered"), "{log}");
        assert!(log.contains("waiting for service a"), "{log}");
        assert_eq!(log.matches("start: ").count(), 1, "{log}");
        let a_log = env.ok(&["logs", &name, "a"]);
        assert!(a_log.contains("ready after"), "{a_log}");

        // A check that never passes: `c` stays starting, says so once per
        // ~10 s, and `d` never starts.
        let c_log = wait_for(Duration::from_secs(20), "c's not-ready line", || {
            let log = env.ok(&["logs", &name, "c"]);
            if log.contains("not ready after") {
                Ok(log)
            } else {
                Err(log)
            }
        });
        assert!(
            c_log.contains("`test -e /tmp/never` exited 1; still starting"),
            "{c_log}"
        );
        assert_eq!(c_log.matches("not ready after").count(), 1, "{c_log}");
        let states = states(&env, &name);
        assert_eq!(state_of(&states, "c").0, "starting", "{states:?}");
        assert_eq!(
            state_of(&states, "d"),
            ("waiting".into(), "c".into()),
            "{states:?}"
        );
        let d_log = env.ok(&["logs", &name, "d"]);
        assert!(!d_log.contains("d started"), "{d_log}");
        assert!(d_log.contains("waiting for service c"), "{d_log}");
        let shown = env.ok(&["list"]);
        assert!(
            shown.contains("c starting") && shown.contains("d waiting for c"),
            "{shown}"
        );
    });
}
