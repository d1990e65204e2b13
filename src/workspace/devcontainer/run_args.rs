//! `runArgs` (options for `docker run`) and the keys that ask for
//! privileges (`privileged`, `capAdd`, `securityOpt`).
//!
//! dual passes none of them to the engine: it makes the workspace container
//! itself. Those that widen the container's privileges or reach the host
//! (its devices, its paths, its network, pid, ipc or user namespaces) are
//! refused, naming each, since the workspace would not work as the repo
//! expects and dual will not give them; every other one is a note.

use serde_json::Value;

use super::reader::{Reader, kind};

/// Long options that take a value (as `--name value` or `--name=value`);
/// any other long option is read as a switch.
const TAKES_VALUE: &[&str] = &[
    "add-host",
    "annotation",
    "attach",
    "blkio-weight",
    "cap-add",
    "cap-drop",
    "cgroup-parent",
    "cgroupns",
    "cidfile",
    "cpu-period",
    "cpu-quota",
    "cpu-shares",
    "cpus",
    "cpuset-cpus",
    "cpuset-mems",
    "device",
    "device-cgroup-rule",
    "dns",
    "dns-option",
    "dns-search",
    "domainname",
    "entrypoint",
    "env",
    "env-file",
    "expose",
    "gidmap",
    "gpus",
    "group-add",
    "health-cmd",
    "health-interval",
    "health-retries",
    "health-start-period",
    "health-timeout",
    "hooks-dir",
    "hostname",
    "ip",
    "ip6",
    "ipc",
    "isolation",
    "label",
    "label-file",
    "link",
    "log-driver",
    "log-opt",
    "mac-address",
    "memory",
    "memory-reservation",
    "memory-swap",
    "mount",
    "name",
    "net",
    "network",
    "network-alias",
    "oom-score-adj",
    "pid",
    "pids-limit",
    "platform",
    "publish",
    "pull",
    "restart",
    "runtime",
    "security-opt",
    "shm-size",
    "stop-signal",
    "stop-timeout",
    "storage-opt",
    "subgidname",
    "subuidname",
    "sysctl",
    "tmpfs",
    "uidmap",
    "ulimit",
    "user",
    "userns",
    "uts",
    "volume",
    "volume-driver",
    "volumes-from",
    "workdir",
];

/// Short options that take a value, with their long names. Any other
/// letter is a switch (`-i`, `-t`, `-d`, `-P`): `-itv/:/h` is `-i -t -v
/// /:/h`, as the engines read it.
const SHORT: &[(char, &str)] = &[
    ('a', "attach"),
    ('v', "volume"),
    ('e', "env"),
    ('p', "publish"),
    ('u', "user"),
    ('w', "workdir"),
    ('h', "hostname"),
    ('l', "label"),
    ('m', "memory"),
    ('c', "cpu-shares"),
];

/// Options that widen privileges or reach the host whatever their value,
/// and why.
const REFUSED: &[(&str, &str)] = &[
    (
        "privileged",
        "would give the container every privilege of the host",
    ),
    ("cap-add", "would give the container a capability"),
    ("device", "would give the container a device of the host"),
    (
        "device-cgroup-rule",
        "would let the container use devices of the host",
    ),
    ("gpus", "would give the container the host's GPUs"),
    ("security-opt", "would change the container's confinement"),
    ("userns", "would change the container's user namespace"),
    ("uidmap", "would change the container's user namespace"),
    ("gidmap", "would change the container's user namespace"),
    ("subuidname", "would change the container's user namespace"),
    ("subgidname", "would change the container's user namespace"),
    ("group-add", "would add groups to the container's processes"),
    ("volumes-from", "would mount another container's volumes"),
    (
        "volume-driver",
        "would mount through a volume plugin of the host",
    ),
    ("hooks-dir", "would run hooks of the host"),
    (
        "rootfs",
        "would run a directory of the host as the container's root",
    ),
    (
        "env-host",
        "would copy your environment, secrets and all, into the container",
    ),
    ("runtime", "would run the container with another runtime"),
    ("sysctl", "would change kernel settings"),
    (
        "cgroup-parent",
        "would place the container in another cgroup",
    ),
];

/// Namespaces whose `host` (or another container's) value is refused.
const NAMESPACES: &[&str] = &["network", "net", "pid", "ipc", "uts", "cgroupns"];

/// One option as written, split into its long name and value.
struct Option_ {
    written: String,
    name: String,
    value: Option<String>,
}

pub(super) fn run_args(reader: &mut Reader, value: &Value) -> Result<(), String> {
    let Value::Array(items) = value else {
        return Err(format!("`runArgs` is {}, not an array", kind(value)));
    };
    let mut args = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(arg) = item else {
            return Err(format!(
                "`runArgs`: an argument is {}, not a string",
                kind(item)
            ));
        };
        args.push(arg.clone());
    }
    let mut refused = Vec::new();
    for option in options(&args) {
        match judge(&option) {
            Verdict::Refused(why) => {
                refused.push(format!("`{}` {why}", option.written.escape_debug()))
            }
            Verdict::Note(why) => reader.note(&format!(
                "`runArgs`: `{}` is not passed on: {why}",
                option.written.escape_debug()
            )),
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(format!(
        "`runArgs`: {}; a workspace runs as you, with no capabilities and nothing of the host's but its clone\nhint: remove {} from `runArgs`, or write `devcontainer = false` in .dual.toml to launch without the devcontainer.json",
        refused.join("; "),
        if refused.len() == 1 { "it" } else { "them" }
    ))
}

/// `privileged`, `capAdd`, `securityOpt`: refused when they ask for
/// anything.
pub(super) fn privileges(key: &str, value: &Value) -> Result<(), String> {
    let asks = match value {
        Value::Bool(on) => *on,
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        other => {
            return Err(format!(
                "`{key}` is {}, not what the spec allows",
                kind(other)
            ));
        }
    };
    if !asks {
        return Ok(());
    }
    let why = match key {
        "privileged" => "would give the container every privilege of the host",
        "capAdd" => "would give the container capabilities",
        _ => "would change the container's confinement",
    };
    Err(format!(
        "`{key}` {why}; a workspace runs as you, with no capabilities and no new privileges\nhint: remove `{key}` from the devcontainer.json, or write `devcontainer = false` in .dual.toml to launch without it"
    ))
}

/// The options of `args`, each with its value where it takes one.
fn options(args: &[String]) -> Vec<Option_> {
    let mut options = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (long.to_owned(), None),
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            // Switches (`-it`), then at most one letter that takes a value:
            // the rest of the word, or the next one (`-itv/:/h`).
            let taking = short.char_indices().find_map(|(at, letter)| {
                SHORT
                    .iter()
                    .find(|(c, _)| *c == letter)
                    .map(|(_, long)| (*long, &short[at + letter.len_utf8()..]))
            });
            match taking {
                Some((long, attached)) => {
                    let attached = attached.strip_prefix('=').unwrap_or(attached);
                    (
                        long.to_owned(),
                        (!attached.is_empty()).then(|| attached.to_owned()),
                    )
                }
                // Switches alone, such as `-it`, `-d`.
                None => (short.to_owned(), None),
            }
        } else {
            // A word that belongs to no option dual knows: shown as it is.
            options.push(Option_ {
                written: arg.clone(),
                name: String::new(),
                value: None,
            });
            continue;
        };
        let value = match inline {
            Some(value) => Some(value),
            None if TAKES_VALUE.contains(&name.as_str()) => rest.next().cloned(),
            None => None,
        };
        let written = match (&value, arg.contains('=')) {
            (Some(value), false) => format!("{arg} {value}"),
            _ => arg.clone(),
        };
        options.push(Option_ {
            written,
            name,
            value,
        });
    }
    options
}

enum Verdict {
    Refused(String),
    Note(String),
}

fn judge(option: &Option_) -> Verdict {
    let name = option.name.as_str();
    let value = option.value.as_deref().unwrap_or_default();
    // Asking for what dual does anyway, or for less.
    if name == "userns" && (value == "keep-id" || value.starts_with("keep-id:")) {
        return Verdict::Note("dual maps your uid into the workspace itself".into());
    }
    if name == "security-opt" && matches!(value, "no-new-privileges" | "no-new-privileges:true") {
        return Verdict::Note("every workspace runs with no new privileges".into());
    }
    if let Some((_, why)) = REFUSED.iter().find(|(refused, _)| *refused == name) {
        // `--privileged=false` asks for nothing.
        if value != "false" {
            return Verdict::Refused((*why).to_owned());
        }
        return Verdict::Note("it asks for nothing".into());
    }
    if NAMESPACES.contains(&name) {
        if value == "host" || value.starts_with("container:") || value.starts_with("ns:") {
            return Verdict::Refused(format!(
                "would share the {} namespace of the host or of another container",
                if name == "net" { "network" } else { name }
            ));
        }
        return Verdict::Note(format!(
            "the workspace has its own {} namespace",
            if name == "net" { "network" } else { name }
        ));
    }
    match name {
        "volume" => {
            let source = value.split(':').next().unwrap_or_default();
            if is_host_path(source) {
                Verdict::Refused("would mount a path of the host".into())
            } else {
                Verdict::Note("declare a named volume in `mounts` instead".into())
            }
        }
        "mount" => {
            if mount_reaches_the_host(value) {
                Verdict::Refused("would mount a path of the host".into())
            } else {
                Verdict::Note("declare a named volume in `mounts` instead".into())
            }
        }
        "env" | "env-file" => Verdict::Note("set variables in `containerEnv` instead".into()),
        "publish" | "expose" | "publish-all" | "P" => {
            Verdict::Note("dual routes the ports a workspace listens on itself".into())
        }
        "user" => Verdict::Note("every process of a workspace runs as you".into()),
        "name" | "hostname" => Verdict::Note("dual names the container after the workspace".into()),
        "workdir" => Verdict::Note("commands start in the clone".into()),
        "init" => Verdict::Note("dual's own first process reaps orphans".into()),
        "" => Verdict::Note("not an option dual knows".into()),
        _ => Verdict::Note("dual makes the workspace container with its own options".into()),
    }
}

/// Whether `--mount VALUE` may mount something of the host: anything but
/// a plain volume or a tmpfs. Its fields are read as the engines read them:
/// a CSV line (so `"type=bind"` in quotes is `type=bind`), keys and the
/// type in any case (`TYPE=BIND`), the type `volume` where none is given.
fn mount_reaches_the_host(value: &str) -> bool {
    let mut kind = String::from("volume");
    for field in value.split(',') {
        let field = field.trim().trim_matches(['"', '\'']).trim();
        let (key, field_value) = field.split_once('=').unwrap_or((field, ""));
        let key = key.trim().to_ascii_lowercase();
        if key == "type" {
            kind = field_value.trim().to_ascii_lowercase();
        } else if key.starts_with("volume-opt") || key.starts_with("volume-driver") {
            return true;
        }
    }
    !matches!(kind.as_str(), "volume" | "tmpfs")
}

/// A volume source that names a host path rather than a volume (as the
/// engines tell them apart).
fn is_host_path(source: &str) -> bool {
    source.starts_with(['/', '.', '~', '$']) || source.contains('/')
}
