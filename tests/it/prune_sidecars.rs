//! `dual prune` judges what is left over by labels, never by names: a live
//! workspace's sidecar data stays, and what dual made for a one-off job (a
//! volume's measurement, a copy of sidecar data) does not outlive a crash.

use dual::engine::Engine;

use crate::destroy_data::sidecar_labels;
use crate::support::{each_engine, ensure_test_image};
use crate::workspaces::{TestEnv, config, text};

#[test]
fn prune_keeps_live_sidecar_data_and_removes_what_is_left_over() {
    each_engine("prune_sidecars", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &config(image));
        env.ok(&["create", "feat/live"]);
        let engine = Engine::new(kind);
        let live = sidecar_labels(&env, "feat/live", "db");
        let gone = sidecar_labels(&env, "feat/gone", "db");
        let live_data = format!("dual-{}.db.pgdata", env.name("feat/live"));
        let gone_data = format!("dual-{}.db.pgdata", env.name("feat/gone"));
        engine
            .volume_create(&live_data, &live.volume_labels("pgdata"))
            .unwrap();
        engine
            .volume_create(&gone_data, &gone.volume_labels("pgdata"))
            .unwrap();
        let run = |name: &str, labels: &[(String, String)], command: &[&str]| {
            let mut args = vec!["run".to_owned(), "-d".into(), "--name".into(), name.into()];
            for (key, value) in labels {
                args.extend(["--label".into(), format!("{key}={value}")]);
            }
            args.push(image.into());
            args.extend(command.iter().map(|word| (*word).to_owned()));
            let started = env.engine(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(started.status.success(), "{started:?}");
        };
        // A live workspace's running sidecar, and a gone one's.
        let live_sidecar = format!("dual-{}.db", env.name("feat/live"));
        run(&live_sidecar, &to_vec(live.to_labels()), &["sleep", "300"]);
        let gone_sidecar = format!("dual-{}.db", env.name("feat/gone"));
        run(&gone_sidecar, &to_vec(gone.to_labels()), &["sleep", "300"]);
        // A copy of sidecar data a killed launch left, ended.
        let mut copy_labels = sidecar_labels(&env, "feat/live", "db.copy").to_labels();
        copy_labels.insert("dual.repo".into(), env.repo.clone());
        let copy = format!("{live_data}.copy");
        run(&copy, &to_vec(copy_labels), &["true"]);
        // A volume's measurement a killed destroy left (its pid is gone).
        let measuring = format!("{live_data}.size");
        let measure_labels = [
            ("dual.managed", "true"),
            ("dual.kind", "measure"),
            ("dual.pid", "999999999"),
            // For the test's own cleanup.
            ("dual.repo", env.repo.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        run(&measuring, &measure_labels, &["sleep", "300"]);
        // The copy has ended before prune looks.
        let ended = env.engine(&["wait", &copy]);
        assert!(ended.status.success(), "{ended:?}");

        let pruned = env.ok(&["prune", "--yes"]);
        let names = |list: &[&str]| -> Vec<String> {
            let output = env.engine(list);
            text(&output).lines().map(str::to_owned).collect()
        };
        let volumes = names(&["volume", "ls", "-q"]);
        assert!(volumes.contains(&live_data), "kept: {pruned}\n{volumes:?}");
        assert!(!volumes.contains(&gone_data), "removed: {pruned}");
        let containers = names(&["ps", "-a", "--format", "{{.Names}}"]);
        assert!(
            containers.contains(&live_sidecar),
            "{pruned}\n{containers:?}"
        );
        for removed in [&gone_sidecar, &copy, &measuring] {
            assert!(!containers.contains(removed), "{removed}: {pruned}");
        }
        assert!(
            pruned.contains(&format!("volume {gone_data}")),
            "named: {pruned}"
        );
        assert!(pruned.contains("made to measure a volume"), "{pruned}");
        assert!(pruned.contains("made to copy a sidecar's data"), "{pruned}");
    });
}

fn to_vec(labels: dual::engine::model::Labels) -> Vec<(String, String)> {
    labels.into_iter().collect()
}
