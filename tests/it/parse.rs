//! The parsers against real output captured from docker 28.2/20.10 and
//! podman 4.3 (tests/fixtures/*), snapshotted whole.

use dual::engine::EngineKind::{Docker, Podman};
use dual::engine::model::{self, EventAction};

fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

#[test]
fn version_from_both_engines() {
    let docker = model::parse_version(&fixture("docker/version.json")).unwrap();
    assert_eq!(docker.client.as_deref(), Some("28.2.2"));
    assert_eq!(docker.server.as_deref(), Some("20.10.24+dfsg1"));
    let podman = model::parse_version(&fixture("podman/version.json")).unwrap();
    assert_eq!(podman.client.as_deref(), Some("4.3.1"));
    assert_eq!(podman.server, None, "local podman has no separate server");
}

#[test]
fn info_from_both_engines() {
    insta::assert_json_snapshot!(
        "info-docker",
        model::parse_info(Docker, &fixture("docker/info.json")).unwrap()
    );
    insta::assert_json_snapshot!(
        "info-podman",
        model::parse_info(Podman, &fixture("podman/info.json")).unwrap()
    );
}

#[test]
fn inspect_from_both_engines() {
    for kind in ["docker", "podman"] {
        let containers = model::parse_inspect(&fixture(&format!("{kind}/inspect.json"))).unwrap();
        assert_eq!(containers.len(), 2, "{kind}");
        let running = &containers[0];
        assert!(
            running.running && running.status == "running",
            "{kind}: {running:?}"
        );
        assert!(
            !running.name.starts_with('/'),
            "docker's leading slash is dropped"
        );
        assert_eq!(running.labels["dual.kind"], "fixture");
        assert!(
            running.ipv4().is_some(),
            "{kind}: a running container has an address"
        );
        let published = running.published_port(3000).expect("3000 is published");
        assert_eq!(published.host_ip, "127.0.0.1");
        let created = &containers[1];
        assert_eq!(created.status, "created");
        assert_eq!(
            created.ipv4(),
            None,
            "{kind}: a created container has no address yet"
        );
        insta::assert_json_snapshot!(format!("inspect-{kind}"), containers);
    }
}

#[test]
fn ps_json_lines_and_json_array() {
    let docker = model::parse_ps(Docker, &fixture("docker/ps.jsonl")).unwrap();
    let podman = model::parse_ps(Podman, &fixture("podman/ps.json")).unwrap();
    for (kind, list) in [("docker", &docker), ("podman", &podman)] {
        assert_eq!(list.len(), 3, "{kind}");
        let states: Vec<&str> = list.iter().map(|c| c.state.as_str()).collect();
        assert!(
            states.contains(&"created") && states.contains(&"running"),
            "{kind}: {states:?}"
        );
        assert!(
            list.iter()
                .all(|c| c.labels.get("dual.managed").map(String::as_str) == Some("true"))
        );
    }
    insta::assert_json_snapshot!("ps-docker", docker);
    insta::assert_json_snapshot!("ps-podman", podman);
    assert!(model::parse_ps(Podman, "").unwrap().is_empty());
    assert!(model::parse_ps(Docker, "").unwrap().is_empty());
}

#[test]
fn events_in_one_vocabulary() {
    let parse_all = |kind, path: &str| -> Vec<model::Event> {
        fixture(path)
            .lines()
            .map(|line| model::parse_event(kind, line).unwrap())
            .collect()
    };
    let docker = parse_all(Docker, "docker/events.jsonl");
    let podman = parse_all(Podman, "podman/events.jsonl");
    for (kind, events) in [("docker", &docker), ("podman", &podman)] {
        let actions: Vec<&EventAction> = events.iter().map(|e| &e.action).collect();
        assert!(
            actions.contains(&&EventAction::Start),
            "{kind}: {actions:?}"
        );
        assert!(actions.contains(&&EventAction::Die), "{kind}: {actions:?}");
        assert!(
            actions.contains(&&EventAction::Destroy),
            "{kind}: {actions:?}"
        );
        assert!(
            events
                .iter()
                .all(|e| e.kind == "container" && e.id.len() == 64 && !e.name.is_empty())
        );
        assert!(
            events
                .iter()
                .all(|e| e.attributes["dual.managed"] == "true"),
            "{kind}: labels ride along"
        );
    }
    insta::assert_json_snapshot!("events-docker", docker);
    insta::assert_json_snapshot!("events-podman", podman);
}

#[test]
fn stats_in_both_unit_systems() {
    let docker = model::parse_stats(Docker, &fixture("docker/stats.jsonl")).unwrap();
    assert_eq!(docker[0].memory_bytes, 516 * 1024);
    let podman = model::parse_stats(Podman, &fixture("podman/stats.json")).unwrap();
    assert_eq!(podman[0].memory_bytes, 716_800);
}

#[test]
fn malformed_output_is_an_error_not_a_panic() {
    for raw in ["", "not json", "{\"Id\": 3}", "[{\"Id\": \"x\"}]"] {
        assert!(model::parse_inspect(raw).is_err(), "{raw:?}");
    }
    assert!(model::parse_ps(Docker, "{\"ID\": \"x\"").is_err());
    assert!(model::parse_event(Podman, "{}").is_err());
    let error = model::parse_stats(Docker, r#"{"Name":"a","MemUsage":"lots / 1GiB"}"#).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("bad memory figure `lots / 1GiB`"),
        "{error}"
    );
}

#[test]
fn network_interfaces_from_podman() {
    let interfaces =
        model::parse_network_interfaces(&fixture("podman/network-inspect.json")).unwrap();
    assert_eq!(interfaces, ["podman0"]);
    assert!(model::parse_network_interfaces("{").is_err());
}
