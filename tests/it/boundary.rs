//! The container is a boundary: hostile repos (their `.dual.toml`, their
//! `setup`, their files, their image) on each engine, and what must never
//! reach the host. Each test here failed on the dual before issue 16.

use std::process::Command;

use crate::support::{each_engine, ensure_test_image};
use crate::workspaces::TestEnv;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `anonymous_volumes = ["x,type=bind,source=/,target=/hostroot"]` used to
/// become extra `--mount` fields: the host's `/` inside, read-write.
#[test]
fn a_mount_option_in_a_volume_path_never_reaches_the_engine() {
    each_engine("mount_injection", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(
            Some(kind),
            &format!(
                "image = \"{image}\"\nanonymous_volumes = [\"x,type=bind,source=/,target=/hostroot\"]\n"
            ),
        );
        env.ok(&["create", "b"]);
        let error = env.fails(&["launch", "b"]);
        assert!(
            error.contains("anonymous_volumes") && error.contains("mount options"),
            "{error}"
        );
        assert!(env.containers().is_empty(), "no container was made");
        assert!(env.volumes().is_empty(), "no volume was made");
    });
}

/// An `image` that looks like an option reaches no engine.
#[test]
fn an_image_that_looks_like_an_option_is_a_config_error() {
    each_engine("image_option", |kind| {
        let env = TestEnv::new(Some(kind), "image = \"--privileged\"\n");
        env.ok(&["create", "b"]);
        let error = env.fails(&["launch", "b"]);
        assert!(error.contains("is not an image reference"), "{error}");
        assert!(error.contains(".dual.toml"), "names the file: {error}");
        assert!(env.containers().is_empty());
    });
}

/// `setup` plants links in the clone where `shared_files` will be written;
/// the source repo commits a link to a host secret. `dual sync` writes
/// nothing through a link, reads nothing through one, and says which path.
#[test]
fn sync_never_follows_a_link_planted_in_the_clone_or_committed() {
    each_engine("sync_links", |kind| {
        let image = ensure_test_image(kind);
        let victims = tempfile::tempdir().unwrap();
        let victim_file = victims.path().join("bashrc");
        std::fs::write(&victim_file, "the user's own\n").unwrap();
        let victim_dir = victims.path().join("ssh");
        std::fs::create_dir(&victim_dir).unwrap();
        let secret = victims.path().join("credentials");
        std::fs::write(&secret, "host secret\n").unwrap();
        let setup = format!(
            "ln -s {} .env.local && ln -s {} conf",
            victim_file.display(),
            victim_dir.display()
        );
        let env = TestEnv::new(
            Some(kind),
            &format!(
                "image = \"{image}\"\nsetup = \"{setup}\"\nshared_files = [\".env.local\", \"conf/authorized_keys\", \"secret.env\", \"plain.env\"]\n"
            ),
        );
        // The source's own shared files (untracked there, as `.env.local`
        // files are), and a committed link to a host secret.
        let source = env.source();
        std::fs::write(source.join(".env.local"), "SHARED=1\n").unwrap();
        std::fs::create_dir(source.join("conf")).unwrap();
        std::fs::write(
            source.join("conf/authorized_keys"),
            "ssh-ed25519 attacker\n",
        )
        .unwrap();
        std::fs::write(source.join("plain.env"), "PLAIN=1\n").unwrap();
        std::os::unix::fs::symlink(&secret, source.join("secret.env")).unwrap();
        env.git(&source, &["add", "secret.env"]);
        env.git(&source, &["commit", "-qm", "a link"]);
        env.ok(&["create", "b"]);
        env.ok(&["launch", "b"]);
        let clone = env.clone_path("b");
        assert!(
            clone.join(".env.local").is_symlink(),
            "setup planted its link"
        );

        let output = env.run(&["sync", &env.name("b")]);
        let said = stderr(&output);
        assert!(!output.status.success(), "refusals fail the sync: {said}");
        assert_eq!(
            std::fs::read_to_string(&victim_file).unwrap(),
            "the user's own\n",
            "nothing written through the planted file link"
        );
        assert_eq!(
            std::fs::read_dir(&victim_dir).unwrap().count(),
            0,
            "nothing created through the planted directory link"
        );
        assert!(
            said.contains(".env.local") && said.contains("is a symbolic link"),
            "{said}"
        );
        assert!(said.contains("conf"), "{said}");
        assert!(said.contains("secret.env"), "{said}");
        let store = env.dir.path().join("data/shared").join(&env.repo);
        assert!(
            !store.join("secret.env").exists(),
            "the committed link's target is not copied into the store"
        );
        assert!(
            clone.join("secret.env").is_symlink(),
            "nor into the clone (where git checked out the link itself)"
        );
        assert_eq!(
            std::fs::read_to_string(clone.join("plain.env")).unwrap(),
            "PLAIN=1\n",
            "real files still sync"
        );
    });
}

/// A branch's `.dual.toml` names an untracked secret of the user's own
/// checkout as a shared file: `dual sync` copies only what the source's
/// own `.dual.toml` lists.
#[test]
fn sync_copies_only_what_the_user_s_checkout_lists() {
    each_engine("sync_allowlist", |kind| {
        let image = ensure_test_image(kind);
        let config = format!("image = \"{image}\"\nshared_files = [\".env.local\"]\n");
        let env = TestEnv::new(Some(kind), &config);
        let source = env.source();
        std::fs::write(source.join(".env.local"), "SHARED=1\n").unwrap();
        std::fs::create_dir(source.join("secrets")).unwrap();
        std::fs::write(source.join("secrets/master.key"), "PROD KEY\n").unwrap();
        env.git(&source, &["checkout", "-q", "-b", "pr"]);
        std::fs::write(
            source.join(".dual.toml"),
            format!(
                "image = \"{image}\"\nshared_files = [\".env.local\", \"secrets/master.key\"]\n"
            ),
        )
        .unwrap();
        env.git(&source, &["commit", "-qam", "share the key"]);
        env.git(&source, &["checkout", "-q", "main"]);
        env.ok(&["create", "pr"]);
        env.ok(&["launch", "pr"]);
        let output = env.run(&["sync", &env.name("pr")]);
        let said = stderr(&output);
        assert!(!output.status.success(), "{said}");
        assert!(
            said.contains("secrets/master.key") && said.contains("does not"),
            "{said}"
        );
        let clone = env.clone_path("pr");
        assert!(
            !clone.join("secrets/master.key").exists(),
            "the key stayed out"
        );
        assert_eq!(
            std::fs::read_to_string(clone.join(".env.local")).unwrap(),
            "SHARED=1\n",
            "what the checkout lists is synced"
        );
    });
}

/// The service logs directory is the container's to write: a log that a
/// container turned into a link to a host file shows nothing of that file.
#[test]
fn a_log_linked_to_a_host_file_is_not_read() {
    each_engine("log_link", |kind| {
        let image = ensure_test_image(kind);
        let marks = tempfile::tempdir().unwrap();
        let secret = marks.path().join("id_rsa");
        std::fs::write(&secret, "HOST PRIVATE KEY\n").unwrap();
        let env = TestEnv::new(
            Some(kind),
            &format!(
                "image = \"{image}\"\nsetup = \"ln -s {} /var/log/dual/web.log.1\"\n[services.web]\ncommand = \"echo serving; sleep 300\"\n",
                secret.display()
            ),
        );
        env.ok(&["create", "b"]);
        env.ok(&["launch", "b"]);
        let logs = env.dir.path().join("data/logs").join(env.name("b"));
        assert!(
            logs.join("web.log.1").is_symlink(),
            "setup planted the link"
        );
        crate::support::wait_until(
            std::time::Duration::from_secs(30),
            "the service's own output to show",
            || env.ok(&["logs", &env.name("b"), "web"]).contains("serving"),
        );
        let shown = env.ok(&["logs", &env.name("b"), "web"]);
        assert!(!shown.contains("HOST PRIVATE KEY"), "{shown}");
    });
}

/// `setup` tries to plant an fsmonitor and a hook in the clone's `.git`;
/// host git (the user's `git status`, dual's own in `destroy`) must run
/// neither. The container cannot write `.git`; and dual's own git ignores
/// such settings even where they are there (a clone made by an older dual).
#[test]
fn the_clone_s_git_is_not_the_container_s_to_write() {
    each_engine("git_dir", |kind| {
        let image = ensure_test_image(kind);
        let marks = tempfile::tempdir().unwrap();
        let planted = marks.path().join("planted-ran");
        let env = TestEnv::new(
            Some(kind),
            &format!("image = \"{image}\"\nsetup = \"sh plant.sh; true\"\n"),
        );
        let plant = format!(
            "printf '[core]\\n\\tfsmonitor = \"touch {p}\"\\n' >> .git/config\n\
             printf '#!/bin/sh\\ntouch {p}\\n' > .git/hooks/post-checkout\n\
             chmod +x .git/hooks/post-checkout\n",
            p = planted.display()
        );
        std::fs::write(env.source().join("plant.sh"), plant).unwrap();
        env.git(&env.source(), &["add", "plant.sh"]);
        env.git(&env.source(), &["commit", "-qm", "plant"]);
        env.ok(&["create", "b"]);
        env.ok(&["launch", "b"]);
        let clone = env.clone_path("b");
        let config = std::fs::read_to_string(clone.join(".git/config")).unwrap();
        assert!(!config.contains("fsmonitor"), "{config}");
        assert!(!clone.join(".git/hooks/post-checkout").exists());
        let written = env.run_in("b", "", &["sh", "-c", "touch .git/x 2>/dev/null; echo $?"]);
        assert_eq!(stdout(&written).trim(), "1", "`.git` is read-only inside");
        // The user's own git in the clone, as the README sends them there.
        env.git(&clone, &["status", "--short"]);
        env.git(&clone, &["checkout", "-q", "-b", "other"]);
        assert!(!planted.exists(), "host git ran nothing planted");

        // A clone whose .git was written before (by an older dual's
        // container): dual's own git calls still run nothing.
        let earlier = marks.path().join("earlier-ran");
        let mut config = std::fs::OpenOptions::new()
            .append(true)
            .open(clone.join(".git/config"))
            .unwrap();
        use std::io::Write;
        writeln!(
            config,
            "[core]\n\tfsmonitor = \"touch {}\"",
            earlier.display()
        )
        .unwrap();
        drop(config);
        std::fs::write(clone.join("uncommitted"), "x").unwrap();
        let refused = env.fails(&["destroy", &env.name("b")]);
        assert!(refused.contains("not pushed"), "{refused}");
        assert!(!earlier.exists(), "dual's git status ran no fsmonitor");
    });
}

/// The branch commits a gitlink; its container fills that directory with
/// a repository whose config names a clean filter. dual's `git status`
/// (in `destroy`) must not look into it: the filter would run on the host.
#[test]
fn a_submodule_the_container_fills_runs_nothing_on_the_host() {
    each_engine("submodule_filter", |kind| {
        let image = ensure_test_image(kind);
        let marks = tempfile::tempdir().unwrap();
        let ran = marks.path().join("filter-ran");
        let env = TestEnv::new(
            Some(kind),
            &format!("image = \"{image}\"\nsetup = \"tar xf evil.tar && touch sub/f\"\n"),
        );
        // The repository the container will write, made here with git and
        // shipped in the branch as a tarball (the test image has no git).
        let evil = marks.path().join("build/sub");
        std::fs::create_dir_all(&evil).unwrap();
        env.git(&evil, &["init", "-q", "-b", "main"]);
        std::fs::write(evil.join(".gitattributes"), "* filter=x\n").unwrap();
        std::fs::write(evil.join("f"), "tracked\n").unwrap();
        env.git(&evil, &["add", "."]);
        env.git(&evil, &["commit", "-qm", "evil"]);
        env.git(
            &evil,
            &[
                "config",
                "filter.x.clean",
                &format!("touch {}; cat", ran.display()),
            ],
        );
        let head = env.git(&evil, &["rev-parse", "HEAD"]);
        let source = env.source();
        let tar = Command::new("tar")
            .arg("-C")
            .arg(marks.path().join("build"))
            .arg("-cf")
            .arg(source.join("evil.tar"))
            .arg("sub")
            .status()
            .unwrap();
        assert!(tar.success());
        env.git(&source, &["add", "evil.tar"]);
        env.git(
            &source,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{},sub", head.trim()),
            ],
        );
        env.git(&source, &["commit", "-qm", "a gitlink"]);
        assert!(!ran.exists(), "building the evil repo ran no filter");
        env.ok(&["create", "b"]);
        env.ok(&["launch", "b"]);
        assert!(
            env.clone_path("b").join("sub/.git/config").exists(),
            "the container filled the submodule"
        );
        env.ok(&["destroy", &env.name("b")]);
        assert!(
            !ran.exists(),
            "dual's git status ran the submodule's filter"
        );
    });
}

/// A clone's `origin` set to `--upload-pack=…` (as a container could once
/// write it): `recover` registers nothing that git would read as an option,
/// and `prune` runs nothing.
#[test]
fn a_planted_origin_url_runs_nothing_on_the_host() {
    each_engine("origin_url", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &format!("image = \"{image}\"\n"));
        env.ok(&["create", "b"]);
        env.ok(&["launch", "b"]);
        let marks = tempfile::tempdir().unwrap();
        let ran = marks.path().join("upload-pack-ran");
        let clone = env.clone_path("b");
        env.git(
            &clone,
            &[
                "config",
                "remote.origin.url",
                &format!("--upload-pack=touch {};false", ran.display()),
            ],
        );
        std::fs::remove_file(env.dir.path().join("data/state.json")).unwrap();
        let recovered = env.run(&["recover"]);
        let _ = env.run(&["prune", "--yes"]);
        let _ = env.run(&["list"]);
        assert!(
            !ran.exists(),
            "git ran the planted upload-pack: {}",
            stderr(&recovered)
        );
    });
}

/// Every process dual starts in a workspace (the main one, `setup`, a
/// service, `dual run`) has no capabilities and cannot gain privileges.
#[test]
fn processes_in_a_workspace_have_no_privileges_to_gain() {
    each_engine("no_privileges", |kind| {
        let image = ensure_test_image(kind);
        let report = "grep -E '^(Uid|CapEff|NoNewPrivs):' /proc/self/status";
        let env = TestEnv::new(
            Some(kind),
            &format!(
                "image = \"{image}\"\nsetup = \"{report} > setup-status\"\n[services.probe]\ncommand = \"{report} > service-status; sleep 300\"\n"
            ),
        );
        env.ok(&["create", "b"]);
        env.ok(&["launch", "b"]);
        let clone = env.clone_path("b");
        let run = env.run_in("b", "", &["sh", "-c", report]);
        let main = env.run_in(
            "b",
            "",
            &["sh", "-c", "grep -E '^(CapEff|NoNewPrivs):' /proc/1/status"],
        );
        crate::support::wait_until(
            std::time::Duration::from_secs(30),
            "the service to run",
            || clone.join("service-status").exists(),
        );
        for (what, text) in [
            ("dual run", stdout(&run)),
            ("the main process", stdout(&main)),
            (
                "setup",
                std::fs::read_to_string(clone.join("setup-status")).unwrap(),
            ),
            (
                "a service",
                std::fs::read_to_string(clone.join("service-status")).unwrap(),
            ),
        ] {
            assert!(text.contains("NoNewPrivs:\t1"), "{what}: {text}");
            assert!(text.contains("CapEff:\t0000000000000000"), "{what}: {text}");
        }
    });
}

/// As an ordinary user on rootful docker (and on rootless podman): no
/// process in the workspace's container runs as uid 0, and a setuid file
/// planted in the clone belongs to the user, not to root.
#[test]
fn an_ordinary_user_s_workspace_has_no_root_inside() {
    let Some(user) = crate::support::rootless_user("no_root_inside") else {
        return;
    };
    each_engine("no_root_inside", |kind| {
        // An image whose group file puts the user in `root` and `shadow`.
        let script = r#"img=dual-hostile-groups-$(id -u)-$$
printf 'FROM dual-test:latest\nCOPY group /etc/group\n' > "$T/Dockerfile"
printf 'root:x:0:root,%s\nshadow:x:42:%s\n' "$(id -un)" "$(id -un)" > "$T/group"
DOCKER_BUILDKIT=0 "$DUAL_ENGINE" build -q -t "$img" "$T" >/dev/null 2>&1 || { echo "could not build $img"; exit 1; }
printf 'image = "%s"\nsetup = "cp /bin/busybox suid-box; chmod 4755 suid-box; true"\n' "$img" > .dual.toml
git -c user.email=t@t -c user.name=t commit -qam setup
# The default layout: clones under ~/dual, inside the home each workspace mounts.
export DUAL_WORKSPACE_ROOT="$HOME/dual"
"$DUAL" add --name nr >/dev/null && "$DUAL" create b >/dev/null && "$DUAL" launch b >/dev/null
cd "$HOME/dual/nr/b"
"$DUAL" run sh -c 'for s in /proc/[0-9]*/status; do grep "^Uid:" "$s"; done' | sed 's/^/proc /'
"$DUAL" run sh -c 'for s in /proc/[0-9]*/status; do grep "^Groups:" "$s"; done' | sed 's/^/groups /'
"$DUAL" run sh -c 'for s in /proc/[0-9]*/status; do grep -E "^(CapEff|NoNewPrivs):" "$s"; done' | sed 's/^/privs /'
echo "suid-owner=$(stat -c %u suid-box)"
echo "not-mine=$(find "$DUAL_HOME/homes" ! -user "$(id -u)" | wc -l)"
cd / && "$DUAL" destroy nr-b --force >/dev/null && echo destroyed
[ -e "$DUAL_HOME/homes/nr-b" ] || echo home-removed
"$DUAL_ENGINE" rmi -f "$img" >/dev/null 2>&1
"#;
        let (output, _dir) = crate::support::as_user(&user, kind, script);
        let (out, err) = (stdout(&output), stderr(&output));
        if crate::support::docker_refused(kind, "no_root_inside", &user, &err) {
            return;
        }
        assert!(output.status.success(), "{out}\n{err}");
        let uid = user_id(&user);
        let procs: Vec<&str> = out.lines().filter(|l| l.starts_with("proc ")).collect();
        assert!(
            procs.len() >= 3,
            "the main process, its idler and the run: {out}"
        );
        for line in &procs {
            let ids: Vec<&str> = line.split_whitespace().skip(2).collect();
            assert!(
                ids.iter().all(|id| *id == uid),
                "a process runs as another uid than {uid}: {line}\n{out}"
            );
        }
        let groups: Vec<&str> = out.lines().filter(|l| l.starts_with("groups ")).collect();
        assert!(groups.len() >= 3, "{out}");
        for line in &groups {
            let ids: Vec<&str> = line.split_whitespace().skip(2).collect();
            assert!(
                !ids.contains(&"0") && !ids.contains(&"42"),
                "a process has a group the image gave it: {line}\n{out}"
            );
        }
        let privileges: Vec<&str> = out.lines().filter(|l| l.starts_with("privs ")).collect();
        assert!(privileges.len() >= 6, "{out}");
        for line in &privileges {
            assert!(
                line.ends_with("CapEff:\t0000000000000000") || line.ends_with("NoNewPrivs:\t1"),
                "a process can gain privileges: {line}\n{out}"
            );
        }
        assert!(out.contains(&format!("suid-owner={uid}\n")), "{out}");
        assert!(out.contains("destroyed"), "{out}");
        assert!(
            out.contains("not-mine=0\n") && out.contains("home-removed"),
            "the workspace's home holds nothing of root's, and goes with it: {out}"
        );
    });
}

fn user_id(user: &str) -> String {
    let output = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A container made to read an image's accounts, left by a `dual launch`
/// killed before it removed it: `dual prune` removes it.
#[test]
fn prune_removes_an_accounts_container_a_killed_launch_left() {
    each_engine("accounts_leftover", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(Some(kind), &format!("image = \"{image}\"\n"));
        // Created and never started, as dual makes it; its creator (pid
        // 2^22, above Linux's pid limit) is certainly gone.
        let name = format!("dual-accounts-test-{}", env.repo);
        let repo_label = env.repo_label();
        let made = env.engine(&[
            "create",
            "--name",
            &name,
            "--label",
            "dual.managed=true",
            "--label",
            "dual.kind=accounts",
            "--label",
            "dual.pid=4194304",
            "--label",
            &repo_label,
            image,
            "true",
        ]);
        assert!(made.status.success(), "{}", stderr(&made));
        let pruned = env.ok(&["prune", "--yes"]);
        assert!(pruned.contains("accounts"), "{pruned}");
        let left = env.engine(&["ps", "-aq", "--filter", &format!("name={name}")]);
        assert_eq!(stdout(&left).trim(), "", "the leftover is gone");
    });
}

/// A service's state line is the container's to write: a `code` holding a
/// terminal's escape sequence (OSC 52 sets the clipboard the user pastes
/// into a host shell) must never reach the user's terminal from `dual list`.
#[test]
fn a_service_state_cannot_put_escape_sequences_in_the_listing() {
    each_engine("state_escape", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(
            Some(kind),
            &format!(
                "image = \"{image}\"\n[services.web]\ncommand = \"sleep 1; printf 'state=restarting restarts=1 since=1 code=\\\\033]52;c;ZWNobyBwd25lZAo=\\\\007\\\\n' > /var/log/dual/web.state; sleep 300\"\n"
            ),
        );
        env.ok(&["create", "b"]);
        env.ok(&["launch", "b"]);
        let state = env
            .dir
            .path()
            .join("data/logs")
            .join(env.name("b"))
            .join("web.state");
        crate::support::wait_until(
            std::time::Duration::from_secs(30),
            "the service to write its own state line",
            || std::fs::read(&state).is_ok_and(|text| text.contains(&0x1b)),
        );
        let listed = env.ok(&["list"]);
        assert!(listed.contains("web restarting"), "{listed}");
        assert!(!listed.contains('\u{1b}'), "{listed:?}");
    });
}

/// `dual repo remove` left the repo's shared store behind: a repo added
/// later under the same name (a URL's last part, which its author picks)
/// got the removed repo's `.env.local` by listing it in `shared_files`.
#[test]
fn a_repo_added_under_a_removed_repo_s_name_gets_none_of_its_shared_files() {
    each_engine("shared_store_reuse", |kind| {
        let image = ensure_test_image(kind);
        let config = format!("image = \"{image}\"\nshared_files = [\".env.local\"]\n");
        let env = TestEnv::new(Some(kind), &config);
        std::fs::write(
            env.source().join(".env.local"),
            "SECRET OF THE USER'S REPO\n",
        )
        .unwrap();
        env.ok(&["create", "a"]);
        env.ok(&["launch", "a"]);
        env.ok(&["sync", &env.name("a")]);
        env.ok(&["destroy", "--force", &env.name("a")]);
        env.ok(&["repo", "remove", &env.repo]);
        // Another repo, somebody else's, with the same name.
        let other = env.dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        env.git(&other, &["init", "-q", "-b", "main"]);
        std::fs::write(other.join(".dual.toml"), &config).unwrap();
        env.git(&other, &["add", "."]);
        env.git(&other, &["commit", "-qm", "hostile"]);
        let url = format!("file://{}", other.display());
        env.ok(&["add", &url, "--name", &env.repo]);
        env.ok(&["create", "b"]);
        env.ok(&["launch", "b"]);
        let _ = env.run(&["sync", &env.name("b")]);
        let leaked = env.clone_path("b").join(".env.local");
        assert!(
            !leaked.exists(),
            "{}",
            std::fs::read_to_string(&leaked).unwrap_or_default()
        );
    });
}

/// A `.dual.toml` whose unknown key is an escape sequence (a quoted key may
/// hold any character): `dual launch`'s error quoted it to the user's
/// terminal as it was.
#[test]
fn a_config_error_quotes_no_escape_sequence_of_the_branch() {
    each_engine("config_escape", |kind| {
        let image = ensure_test_image(kind);
        let env = TestEnv::new(
            Some(kind),
            &format!("image = \"{image}\"\n\"\\u001b]52;c;ZWNobyBwd25lZAo=\\u0007\" = 1\n"),
        );
        env.ok(&["create", "a"]);
        let output = env.run(&["launch", "a"]);
        let said = stderr(&output);
        assert!(!output.status.success(), "{said}");
        assert!(said.contains("unknown field"), "{said}");
        assert!(
            !said.contains('\u{1b}') && !said.contains('\u{7}'),
            "{said:?}"
        );
    });
}
