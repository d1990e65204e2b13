//! The host user as the container should see it. Processes inside run with
//! the host's uid and gid, but an image does not know that uid: `whoami`
//! fails, `$USER` is empty and Python's `getpass.getuser()` raises. dual
//! gives the container passwd and group entries for the user, first in the
//! file so that the host's name wins over an image user with the same uid.
//! The container's main process does it as root when it starts (no extra
//! `exec`, ~150 ms on podman), then marks itself ready.

use std::ffi::CStr;

/// Who runs dual on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub group: String,
}

impl HostUser {
    /// The user with `ids`, named from the host's passwd and group
    /// databases; `None` where the host itself has no name for the uid.
    pub fn lookup(ids: (u32, u32)) -> Option<HostUser> {
        let (uid, gid) = ids;
        let name = user_name(uid)?;
        let group = group_name(gid).unwrap_or_else(|| name.clone());
        Some(HostUser {
            name,
            uid,
            gid,
            group,
        })
    }
}

/// Run as root when the container starts, before anything else: adds the
/// entries where the uid's first entry is not the host's name and home
/// (none where no name is given), then gives the listed directories (fresh
/// volumes) to the user. The values arrive as arguments, never as shell
/// code. A failure is told on the container's log; the container still runs
/// (hence `true > file`, never `: > file`: a failed redirection of the
/// special built-in `:` ends the shell).
const IDENTITY_SCRIPT: &str = r#"name=$1 uid=$2 gid=$3 group=$4 home=$5
shift 5
# The name (and home, for passwd) of the first entry with id $2 in file $1.
first_entry() {
  [ -f "$1" ] || return 0
  while IFS=: read -r entry _ id _ _ dir _; do
    if [ "$id" = "$2" ]; then echo "$entry:$dir"; return 0; fi
  done < "$1"
}
prepend() {
  mkdir -p /etc && { [ -f "$1" ] || true > "$1"; } &&
    { printf '%s\n' "$2"; cat "$1"; } > "$1.dual-new" &&
    cat "$1.dual-new" > "$1" && rm -f "$1.dual-new"
}
ok=true
if [ "$uid" != 0 ]; then
  # (podman's keep-id adds an entry of its own, with the workdir as home.)
  if [ -n "$name" ] && [ "$(first_entry /etc/passwd "$uid")" != "$name:$home" ]; then
    prepend /etc/passwd "$name:x:$uid:$gid::$home:/bin/sh" || ok=false
  fi
  if [ -n "$group" ] && [ "$(first_entry /etc/group "$gid")" != "$group:" ]; then
    prepend /etc/group "$group:x:$gid:" || ok=false
  fi
  if [ "$#" -gt 0 ]; then chown "$uid:$gid" "$@" || ok=false; fi
fi
$ok || echo "dual: could not make uid $uid known in this container, or give it its volumes" >&2
"#;

/// After the identity work and the ready mark: idle; on SIGTERM (`dual
/// stop`, the engine shutting down) stop the services, then exit.
const IDLE: &str = "trap 'stop_services; exit 0' TERM INT; sleep infinity & wait\n";

/// Exists once the container's start-up work is done (in a tmpfs: a new one
/// each start).
pub const READY_FILE: &str = "/run/dual/ready";

/// A shell fragment that waits (up to 3 s) for the file named by `$ready`,
/// where it names one: commands exec'd into the container run after its
/// start-up work, never racing it.
pub const WAIT_READY: &str = r#"i=0; while [ -n "$ready" ] && [ ! -e "$ready" ] && [ "$i" -lt 300 ]; do sleep 0.01; i=$((i+1)); done"#;

/// The container's main process, as root: the identity work, then the ready
/// mark that `dual run` and `setup` wait for, then idle.
fn main_script() -> String {
    format!(
        "{IDENTITY_SCRIPT}{}true > {READY_FILE}\n{}{IDLE}",
        super::services::on_start_script(),
        super::services::stop_all_script()
    )
}

/// The main command of a workspace container: makes `user` known inside
/// (when the host names it), hands `dirs` to `ids`, marks itself ready, idles.
pub fn entry_command(
    ids: (u32, u32),
    user: Option<&HostUser>,
    home: &str,
    dirs: &[String],
) -> Vec<String> {
    let (name, group) = user.map_or((String::new(), String::new()), |user| {
        (user.name.clone(), user.group.clone())
    });
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        main_script(),
        "dual-entry".to_owned(),
        name,
        ids.0.to_string(),
        ids.1.to_string(),
        group,
        home.to_owned(),
    ];
    argv.extend(dirs.iter().cloned());
    argv
}

fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data, zeroed is a valid value for it.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the buffer outlives the read below.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r filled pw_name with a NUL-terminated string in `buffer`.
    let name = unsafe { CStr::from_ptr(entry.pw_name) };
    name.to_str().ok().map(str::to_owned)
}

fn group_name(gid: u32) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: group is plain data, zeroed is a valid value for it.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in user_name.
    let status = unsafe {
        libc::getgrgid_r(
            gid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() || entry.gr_name.is_null() {
        return None;
    }
    // SAFETY: getgrgid_r filled gr_name with a NUL-terminated string in `buffer`.
    let name = unsafe { CStr::from_ptr(entry.gr_name) };
    name.to_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_by_uid() {
        let root = HostUser::lookup((0, 0)).expect("uid 0 has a name");
        assert_eq!(root.name, "root");
        assert_eq!(root.group, "root");
    }

    #[test]
    fn names_travel_as_arguments_not_code() {
        let user = HostUser {
            name: "$(touch /pwned)".into(),
            uid: 1000,
            gid: 1000,
            group: "g;rm".into(),
        };
        let argv = entry_command(
            (user.uid, user.gid),
            Some(&user),
            "/home/u",
            &["/w/node_modules".into()],
        );
        assert_eq!(argv[2], main_script(), "the script is fixed text");
        assert_eq!(argv[4], "$(touch /pwned)");
        assert_eq!(argv[7], "g;rm");
        assert_eq!(argv.last().unwrap(), "/w/node_modules");
    }

    /// The script itself, run by the host's sh on files in a temp dir.
    #[test]
    fn the_script_puts_the_user_first_once() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
        )
        .unwrap();
        let script = IDENTITY_SCRIPT
            .replace("/etc/passwd", passwd.to_str().unwrap())
            .replace("/etc/group", dir.path().join("group").to_str().unwrap())
            .replace("mkdir -p /etc", "true");
        let run = || {
            let output = run_script(&script, &["alice", "1000", "1000", "alice", "/home/alice"]);
            assert!(output.status.success());
            assert_eq!(
                String::from_utf8_lossy(&output.stderr),
                "",
                "no failure told"
            );
        };
        run();
        run();
        let text = std::fs::read_to_string(&passwd).unwrap();
        assert_eq!(
            text,
            "alice:x:1000:1000::/home/alice:/bin/sh\nroot:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("group")).unwrap(),
            "alice:x:1000:\n"
        );
    }

    #[test]
    fn a_failure_is_told_and_the_script_goes_on() {
        let script = IDENTITY_SCRIPT
            .replace("/etc/passwd", "/nonexistent/dual/passwd")
            .replace("/etc/group", "/nonexistent/dual/group")
            .replace("mkdir -p /etc", "true");
        let output = run_script(&script, &["alice", "1000", "1000", "alice", "/home/alice"]);
        assert!(output.status.success(), "the container still starts");
        assert!(
            String::from_utf8_lossy(&output.stderr)
                .contains("dual: could not make uid 1000 known in this container"),
            "{output:?}"
        );
    }

    fn run_script(script: &str, args: &[&str]) -> std::process::Output {
        #[allow(clippy::disallowed_methods)]
        std::process::Command::new("sh")
            .args(["-c", script, "x"])
            .args(args)
            .output()
            .unwrap()
    }
}
