//! The engine layer against the real engines: run, inspect, ps, exec, logs,
//! the events stream, missing objects and removal.

use std::sync::mpsc;
use std::time::Duration;

use dual::engine::spec::Publish;
use dual::engine::{Engine, EngineError, EventAction, Labels, RunSpec};

use crate::support::{EngineKind, each_engine, ensure_test_image};

/// Removes every container of one test on drop, pass or fail; set
/// DUAL_KEEP_CONTAINERS=1 to keep them for debugging.
struct Cleanup {
    engine: Engine,
    label: (String, String),
}

impl Cleanup {
    fn new(kind: EngineKind, test: &str) -> Self {
        let id = format!("{test}-{}-{}", std::process::id(), kind);
        Cleanup {
            engine: Engine::new(kind),
            label: ("dual.test".into(), id),
        }
    }

    fn labels(&self) -> Labels {
        Labels::from([
            ("dual.managed".into(), "true".into()),
            (self.label.0.clone(), self.label.1.clone()),
            // Kept when a test changes `dual.test`, so Drop still finds it.
            ("dual.test.owner".into(), self.label.1.clone()),
        ])
    }

    fn spec(&self, suffix: &str, image: &str, command: &[&str]) -> RunSpec {
        let mut spec = RunSpec::new(format!("{}-{suffix}", self.label.1), image);
        spec.labels = self.labels();
        spec.command = command.iter().map(|s| (*s).to_owned()).collect();
        spec
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::env::var("DUAL_KEEP_CONTAINERS").is_ok_and(|v| v == "1") {
            return;
        }
        let filter = [("dual.test.owner", self.label.1.as_str())];
        if let Ok(found) = self.engine.ps(&filter) {
            let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
            let _ = self.engine.remove(&ids);
        }
    }
}

#[test]
fn run_inspect_ps_exec_and_remove() {
    each_engine("run_inspect_ps_exec_and_remove", |kind| {
        let image = ensure_test_image(kind);
        let guard = Cleanup::new(kind, "lifecycle");
        let engine = &guard.engine;
        let mut spec = guard.spec("web", image, &["httpd", "-f", "-p", "3000", "-h", "/www"]);
        spec.publish.push(Publish::loopback(0, 3000));
        spec.hostname = Some("shop-feat-auth".into());
        let id = engine.run_detached(&spec).unwrap();
        assert_eq!(id.len(), 64, "run prints the full id: {id:?}");

        let container = engine.inspect_one(&id).unwrap();
        assert!(container.running);
        assert_eq!(container.name, spec.name);
        assert_eq!(container.labels["dual.test"], guard.label.1);
        assert!(
            container.ipv4().is_some(),
            "rootful engines give an address: {container:?}"
        );
        let published = container.published_port(3000).expect("port 3000 published");
        assert_eq!(published.host_ip, "127.0.0.1");
        assert_ne!(published.host_port, 0);

        let by_name = engine
            .inspect(&[&spec.name, "dual-test-no-such-container"])
            .unwrap();
        assert_eq!(
            by_name.len(),
            1,
            "a missing container is left out, not an error"
        );

        let listed = engine
            .ps(&[(guard.label.0.as_str(), guard.label.1.as_str())])
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert_eq!(
            listed[0].state,
            dual::engine::model::ContainerState::Running
        );
        assert_eq!(listed[0].labels["dual.managed"], "true");

        let output = engine.exec(&id, &["hostname"]).unwrap();
        assert_eq!(output.stdout.trim(), "shop-feat-auth");
        let failing = engine
            .exec(&id, &["sh", "-c", "echo out; echo err >&2; exit 7"])
            .unwrap();
        assert_eq!(
            failing.status.code(),
            Some(7),
            "the command's own status comes back"
        );
        assert_eq!(
            (failing.stdout.trim(), failing.stderr.as_str()),
            ("out", "err")
        );

        engine.remove(&[&id]).unwrap();
        assert!(engine.inspect(&[&id]).unwrap().is_empty());
        engine
            .remove(&[&id])
            .expect("removing twice is not an error");
    });
}

#[test]
fn missing_objects_are_values_not_crashes() {
    each_engine("missing_objects_are_values_not_crashes", |kind| {
        let engine = Engine::new(kind);
        match engine.inspect_one("dual-test-no-such-container") {
            Err(EngineError::NotFound {
                what: "container",
                name,
            }) => assert_eq!(name, "dual-test-no-such-container"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert!(!engine.image_exists("dual-test-no-such-image:1").unwrap());
        let error = engine
            .run_detached(&RunSpec::new(
                "dual-test-no-image",
                "dual-test-no-such-image:1",
            ))
            .unwrap_err();
        let hint = error.hint().expect("a missing image has a hint");
        assert!(hint.contains("cannot be pulled"), "{hint}");
        assert!(
            error.engine_stderr().is_some(),
            "the engine's stderr is kept: {error:?}"
        );
        let _ = engine.remove(&["dual-test-no-image"]);
    });
}

#[test]
fn events_stream_reports_start_die_and_destroy_for_labelled_containers_only() {
    each_engine("events_stream", |kind| {
        let image = ensure_test_image(kind);
        let guard = Cleanup::new(kind, "events");
        let engine = guard.engine.clone();
        let filter = guard.label.clone();
        let (sender, receiver) = mpsc::channel();
        let reader_engine = engine.clone();
        std::thread::spawn(move || {
            let stream = reader_engine
                .events(&[(filter.0.as_str(), filter.1.as_str())])
                .unwrap();
            for event in stream {
                if sender.send(event).is_err() {
                    break;
                }
            }
        });
        // The stream is attached once it shows a container started after
        // it: markers, one at a time, until one of them is seen.
        let mut markers = 0;
        crate::support::wait_for(
            Duration::from_secs(30),
            "the events stream to attach",
            || {
                markers += 1;
                let marker = engine
                    .run_detached(&guard.spec(&format!("marker{markers}"), image, &["true"]))
                    .unwrap();
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                    match receiver.recv_timeout(left) {
                        Ok(Ok(event)) if event.id == marker => return Ok(()),
                        Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            panic!("the events stream ended before it showed anything")
                        }
                    }
                }
                Err(format!("no event of marker {markers}"))
            },
        );
        let mut other = guard.spec("other", image, &["true"]);
        other
            .labels
            .insert("dual.test".into(), "someone-else".into());
        let other_id = engine.run_detached(&other).unwrap();
        let id = engine
            .run_detached(&guard.spec("short", image, &["sh", "-c", "sleep 0.2"]))
            .unwrap();

        // Its own exit first (a die of its own, not of the removal), then
        // the removal.
        let mut seen = Vec::new();
        let mut removed = false;
        while let Ok(event) = receiver.recv_timeout(Duration::from_secs(30)) {
            let event = event.unwrap();
            assert_ne!(
                event.id, other_id,
                "another label's container leaked into the stream"
            );
            if event.id == id {
                seen.push(event.action.clone());
                if event.action == EventAction::Die && !removed {
                    engine.remove(&[&id, &other_id]).unwrap();
                    removed = true;
                }
                if event.action == EventAction::Destroy {
                    break;
                }
            }
        }
        for wanted in [EventAction::Start, EventAction::Die, EventAction::Destroy] {
            assert!(seen.contains(&wanted), "{kind}: no {wanted:?} in {seen:?}");
        }
    });
}

#[test]
fn a_containers_log_is_read_again_from_a_cursor_only_for_what_is_new() {
    each_engine("logs_cursor", |kind| {
        let image = ensure_test_image(kind);
        let guard = Cleanup::new(kind, "logs-cursor");
        let engine = &guard.engine;
        // One line on each stream, then one more on each once told.
        let script = "echo out-one; echo err-one >&2; \
                      while [ ! -e /tmp/go ]; do sleep 0.1; done; \
                      echo out-two; echo err-two >&2; sleep 300";
        let spec = guard.spec("talker", image, &["sh", "-c", script]);
        let id = engine.run_detached(&spec).unwrap();
        let read = |since: Option<&str>| {
            dual::ops::logs::read_container(engine, &id, None, since).unwrap()
        };
        crate::support::wait_until(Duration::from_secs(10), "the first lines", || {
            read(None).text.contains("err-one")
        });
        let first = read(None);
        assert_eq!(first.text, "out-one\nerr-one\n");
        assert!(first.next.starts_with('t') && !first.lost, "{first:?}");
        // Nothing new: nothing, and the same cursor.
        let again = read(Some(&first.next));
        assert_eq!((again.text.as_str(), &again.next), ("", &first.next));
        let told = engine.exec(&id, &["touch", "/tmp/go"]).unwrap();
        assert!(told.success(), "{told:?}");
        crate::support::wait_until(Duration::from_secs(10), "the second lines", || {
            read(Some(&first.next)).text.contains("err-two")
        });
        let second = read(Some(&first.next));
        assert_eq!(second.text, "out-two\nerr-two\n");
        assert_eq!(read(Some(&second.next)).text, "");
        // The whole log still reads (stdout then stderr, as each engine
        // splits them), and a tail is the last lines of both together.
        let mut whole: Vec<String> = read(None).text.lines().map(str::to_owned).collect();
        whole.sort();
        assert_eq!(whole, ["err-one", "err-two", "out-one", "out-two"]);
        let tail = dual::ops::logs::read_container(engine, &id, Some(1), None).unwrap();
        assert!(
            ["out-two\n", "err-two\n"].contains(&tail.text.as_str()),
            "{tail:?}"
        );
    });
}
