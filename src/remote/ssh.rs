//! The SSH connection to an engine's host: one per host, multiplexed
//! (OpenSSH's control master), started by whichever dual command needs it
//! first and kept for a while after the last, so that sync, port forwards
//! and the port stream share one TCP connection and one authentication.
//!
//! The destination comes from the engine's own settings (`DOCKER_HOST`, a
//! docker context, a podman connection), which the user wrote; it is still
//! checked for ssh's syntax, so that no value can become an ssh option.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::process::{Cmd, CommandError, Output};

/// How long the shared connection outlives its last user.
const PERSIST: &str = "600";
/// A link that stops answering is given up after about this long
/// (interval × count), so that a dropped link is noticed and redialled.
const ALIVE_INTERVAL: &str = "2";
const ALIVE_COUNT: &str = "3";
/// How long dialling the host may take.
const CONNECT_TIMEOUT: &str = "5";
/// A quick request on the shared connection (check, forward, cancel).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);

/// `[user@]host[:port]`, from an `ssh://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("`{0}` is not an ssh:// URL")]
    NotSsh(String),
    #[error("the user in `{0}` is not a user name (letters, digits, `.`, `_`, `-`)")]
    BadUser(String),
    #[error("the host in `{0}` is not a host name or address")]
    BadHost(String),
    #[error("the port in `{0}` is not a port number")]
    BadPort(String),
}

impl SshTarget {
    /// `ssh://[user@]host[:port][/path]`: the path (podman's socket) is the
    /// engine's business and left out.
    pub fn parse(url: &str) -> Result<SshTarget, TargetError> {
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| TargetError::NotSsh(url.into()))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host_port)) => (Some(user), host_port),
            None => (None, authority),
        };
        let (host, port) = split_port(host_port).ok_or_else(|| TargetError::BadPort(url.into()))?;
        if let Some(user) = user
            && !is_user_name(user)
        {
            return Err(TargetError::BadUser(url.into()));
        }
        if !is_host_name(host) {
            return Err(TargetError::BadHost(url.into()));
        }
        Ok(SshTarget {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        })
    }

    /// `user@host` (or `host`), as ssh's destination argument.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.destination())?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// `host:port`, `[v6]:port`, `host` or `[v6]`; `None` when the port is not
/// a number.
fn split_port(host_port: &str) -> Option<(&str, Option<u16>)> {
    if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, Some(port.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((host_port, None)),
    }
}

fn is_user_name(user: &str) -> bool {
    !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A DNS name, an IPv4 address or an IPv6 address: never one that starts
/// with `-` (ssh would read an option).
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
}

/// The shared connection to one engine host.
#[derive(Debug, Clone)]
pub struct Ssh {
    target: SshTarget,
    /// A key the engine's settings name (a podman connection's identity).
    identity: Option<PathBuf>,
    control_path: PathBuf,
}

impl Ssh {
    pub fn new(target: SshTarget, identity: Option<PathBuf>) -> Ssh {
        let control_path = control_path(&target);
        Ssh {
            target,
            identity,
            control_path,
        }
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The key the engine's settings name, if any.
    pub fn identity(&self) -> Option<&Path> {
        self.identity.as_deref()
    }

    /// ssh's options for this host, before the destination: the shared
    /// connection, made on first use, and keep-alives that give up on a
    /// dead link within seconds.
    pub fn options(&self) -> Vec<OsString> {
        // Where the shared connection's socket goes (ssh would only say it
        // cannot bind it).
        if let Err(error) = ensure_control_dir() {
            crate::log::debug(&format!("{}: {error}", control_dir().display()));
        }
        let mut options: Vec<OsString> = Vec::new();
        let mut option = |key: &str, value: &OsString| {
            options.push("-o".into());
            let mut pair = OsString::from(format!("{key}="));
            pair.push(value);
            options.push(pair);
        };
        option("ControlMaster", &"auto".into());
        option("ControlPath", &self.control_path.clone().into_os_string());
        option("ControlPersist", &PERSIST.into());
        option("ServerAliveInterval", &ALIVE_INTERVAL.into());
        option("ServerAliveCountMax", &ALIVE_COUNT.into());
        option("ConnectTimeout", &CONNECT_TIMEOUT.into());
        // Never a password or passphrase prompt: dual runs unattended.
        option("BatchMode", &"yes".into());
        if let Some(port) = self.target.port {
            option("Port", &port.to_string().into());
        }
        if let Some(identity) = &self.identity {
            option("IdentityFile", &identity.clone().into_os_string());
        }
        options
    }

    /// `ssh OPTIONS -- DESTINATION` followed by `remote`, a command line
    /// the remote user's shell runs (so its words must be quoted by the
    /// caller: see `crate::process::quote`).
    pub fn command(&self, remote: &str) -> Cmd {
        let mut args = self.options();
        args.push("--".into());
        args.push(self.target.destination().into());
        args.push(remote.into());
        Cmd::new("ssh", args)
    }

    /// A request to the shared connection (`-O check`, `-O forward`, …).
    fn control(&self, request: &str, extra: &[OsString]) -> Cmd {
        let mut args = self.options();
        args.push("-O".into());
        args.push(request.into());
        args.extend(extra.iter().cloned());
        args.push("--".into());
        args.push(self.target.destination().into());
        Cmd::new("ssh", args).timeout(CONTROL_TIMEOUT)
    }

    /// Whether the shared connection is up.
    pub fn is_up(&self) -> bool {
        self.master_pid().is_some()
    }

    /// The process of the shared connection, while it is up: a new one
    /// (dialled again after the link dropped, by whichever user of it
    /// noticed first) has none of the old one's forwards.
    pub fn master_pid(&self) -> Option<u32> {
        let output = self.control("check", &[]).output().ok()?;
        if !output.success() {
            return None;
        }
        Some(master_pid_in(&output.stderr))
    }

    /// Makes sure the shared connection is up: dials the host if not. One
    /// dial at a time per host in this process: two at once (the proxy's
    /// tunnel and its port stream, after a link came back) would both
    /// become masters, and the second would connect apart, unshared.
    pub fn connect(&self) -> Result<(), CommandError> {
        let dialling = dial_lock(&self.control_path);
        let _dialling = dialling.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_up() {
            return Ok(());
        }
        self.command("true")
            .timeout(CONTROL_TIMEOUT)
            .run()
            .map(drop)
    }

    /// Forwards `local` (a port on this host's loopback) to `to`, an
    /// address as the engine's host sees it (a container's IP there).
    pub fn forward(&self, local: u16, to: SocketAddr) -> Result<Output, CommandError> {
        self.connect()?;
        self.control("forward", &[forward_spec(local, to)]).run()
    }

    /// Stops forwarding `local`.
    pub fn cancel(&self, local: u16, to: SocketAddr) -> Result<Output, CommandError> {
        self.control("cancel", &[forward_spec(local, to)]).run()
    }

    /// Closes the shared connection (and with it every forward on it).
    pub fn exit(&self) {
        let _ = self.control("exit", &[]).output();
    }

    pub fn control_path(&self) -> &Path {
        &self.control_path
    }
}

/// The pid in `-O check`'s "Master running (pid=1234)"; 0 where it says
/// otherwise (one is up all the same).
fn master_pid_in(said: &str) -> u32 {
    said.split_once("pid=")
        .and_then(|(_, rest)| rest.split(')').next()?.parse().ok())
        .unwrap_or(0)
}

/// The lock held while dialling the host whose control socket is `path`.
fn dial_lock(path: &Path) -> std::sync::Arc<std::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    Arc::clone(locks.entry(path.to_owned()).or_default())
}

fn forward_spec(local: u16, to: SocketAddr) -> OsString {
    let host = match to.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("-L127.0.0.1:{local}:{host}:{}", to.port()).into()
}

/// Where the shared connection's socket lives: short (a unix socket's path
/// has ~100 bytes), private to the user, one per dual home and host.
fn control_path(target: &SshTarget) -> PathBuf {
    let mut hash = Sha256::new();
    hash.update(crate::paths::data_dir().as_os_str().as_encoded_bytes());
    hash.update(target.to_string().as_bytes());
    let digest = hash.finalize();
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    control_dir().join(name)
}

/// `$XDG_RUNTIME_DIR/dual-ssh`, else `/tmp/dual-ssh-{uid}`.
pub fn control_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("dual-ssh"),
        None => {
            std::env::temp_dir().join(format!("dual-ssh-{}", rustix::process::getuid().as_raw()))
        }
    }
}

/// Makes the control directory, readable by the user alone (ssh refuses a
/// control socket others could reach, and so should we).
pub fn ensure_control_dir() -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let dir = control_dir();
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != rustix::process::getuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of this user's: remove it",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ssh_url_gives_user_host_and_port() {
        assert_eq!(
            SshTarget::parse("ssh://root@10.0.0.2").unwrap(),
            SshTarget {
                user: Some("root".into()),
                host: "10.0.0.2".into(),
                port: None
            }
        );
        let podman =
            SshTarget::parse("ssh://core@build.example:2222/run/podman/podman.sock").unwrap();
        assert_eq!(podman.to_string(), "core@build.example:2222");
        let v6 = SshTarget::parse("ssh://[fd00::2]:22").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("fd00::2", Some(22)));
        assert_eq!(SshTarget::parse("ssh://box").unwrap().destination(), "box");
    }

    #[test]
    fn nothing_in_the_url_becomes_an_ssh_option() {
        for url in [
            "ssh://-oProxyCommand=touch%20x",
            "ssh://root@-oProxyCommand=x",
            "ssh://-l@host",
            "ssh://a b@host",
            "ssh://host:22x",
            "ssh://ho;st",
            "ssh://",
            "tcp://host:2375",
        ] {
            assert!(SshTarget::parse(url).is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn every_call_shares_one_connection_that_gives_up_on_a_dead_link() {
        let ssh = Ssh::new(SshTarget::parse("ssh://root@10.0.0.2:2222").unwrap(), None);
        let cmd = ssh.command("true");
        let argv: Vec<String> = cmd
            .argv()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(argv.contains(&"ControlMaster=auto".into()), "{argv:?}");
        assert!(argv.contains(&"Port=2222".into()), "{argv:?}");
        assert!(argv.contains(&"BatchMode=yes".into()), "{argv:?}");
        let dash = argv.iter().position(|a| a == "--").unwrap();
        assert_eq!(&argv[dash + 1..], ["root@10.0.0.2", "true"]);
        assert!(ssh.control_path().as_os_str().len() < 100);
    }

    #[test]
    fn a_check_names_the_connection_s_process() {
        assert_eq!(master_pid_in("Master running (pid=26802)\r\n"), 26802);
        assert_eq!(master_pid_in("Master running"), 0);
    }

    #[test]
    fn a_forward_names_the_loopback_and_the_remote_address() {
        assert_eq!(
            forward_spec(41000, "172.17.0.2:3000".parse().unwrap()),
            "-L127.0.0.1:41000:172.17.0.2:3000"
        );
    }
}
