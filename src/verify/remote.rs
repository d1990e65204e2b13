//! `dual verify` on an engine on another host: the SSH link dual shares for
//! files and ports (its round trip), the file sync's tool on both ends, a
//! port forwarded over the link, and the engine host's socket tables that
//! port discovery reads there.

use std::io::Read;
use std::time::{Duration, Instant};

use super::Check;
use crate::remote::Ssh;

/// Round trips timed for the `remote` check.
const ROUND_TRIPS: usize = 5;

pub fn checks(ssh: &Ssh) -> Vec<Check> {
    let link = round_trip(ssh);
    let linked = link.status == super::Status::Pass;
    let mut checks = vec![link];
    if !linked {
        for name in ["remote-sync", "remote-forward", "remote-ports"] {
            checks.push(Check::skip(name, "needs the ssh link"));
        }
        return checks;
    }
    checks.push(sync_tool(ssh));
    checks.push(forward(ssh));
    checks.push(socket_tables(ssh));
    checks
}

fn round_trip(ssh: &Ssh) -> Check {
    let fix = format!(
        "make `ssh {}` work without a prompt (a key in the host's authorized_keys, its host key known): dual runs ssh with BatchMode",
        ssh.target()
    );
    if let Err(error) = ssh.connect() {
        return Check::fail(
            "remote",
            format!("{} does not answer over ssh: {error}", ssh.target()),
            fix,
        );
    }
    let mut times = Vec::new();
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        match ssh.command("true").timeout(Duration::from_secs(15)).run() {
            Ok(_) => times.push(started.elapsed()),
            Err(error) => return Check::fail("remote", error.to_string(), fix),
        }
    }
    times.sort();
    Check::pass(
        "remote",
        format!(
            "{} over one shared ssh connection: a command's round trip {} ms (median of {ROUND_TRIPS})",
            ssh.target(),
            times[times.len() / 2].as_millis()
        ),
    )
}

/// The sync tool's version, here and there: unison talks only to its own.
fn sync_tool(ssh: &Ssh) -> Check {
    let here = crate::process::Cmd::new("unison", ["-version"]).run();
    let there = ssh
        .command("unison -version")
        .timeout(Duration::from_secs(15))
        .run();
    match (here, there) {
        (Ok(here), Ok(there)) if here.stdout.trim() == there.stdout.trim() => Check::pass(
            "remote-sync",
            format!("{} on both ends", here.stdout.trim()),
        ),
        (Ok(here), Ok(there)) => Check::fail(
            "remote-sync",
            format!(
                "`{}` here, `{}` on {}: unison syncs only with its own version",
                here.stdout.trim(),
                there.stdout.trim(),
                ssh.target()
            ),
            "install the same unison version on both (Debian: `apt-get install unison`)",
        ),
        (Err(_), _) => Check::fail(
            "remote-sync",
            "unison is not installed here",
            "install it (Debian: `apt-get install unison`)",
        ),
        (_, Err(_)) => Check::fail(
            "remote-sync",
            format!("unison is not installed on {}", ssh.target()),
            format!(
                "install it there (Debian: `ssh {} apt-get install unison`)",
                ssh.target()
            ),
        ),
    }
}

/// A loopback port here forwarded to the engine host's own ssh server,
/// which greets first: the path every routed request takes.
fn forward(ssh: &Ssh) -> Check {
    let fix = "allow TCP forwarding in the host's sshd (`AllowTcpForwarding yes`)";
    let Some(local) = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port())
    else {
        return Check::fail("remote-forward", "no loopback port free here", fix);
    };
    // The address its sshd took this connection on, as that host sees it.
    let there = ssh
        .command(r#"printf '%s' "$SSH_CONNECTION""#)
        .timeout(Duration::from_secs(15))
        .run()
        .ok()
        .and_then(|o| server_address(&o.stdout));
    let Some(there) = there else {
        return Check::fail(
            "remote-forward",
            "the host's sshd did not say its own address",
            fix,
        );
    };
    if let Err(error) = ssh.forward(local, there) {
        return Check::fail("remote-forward", error.to_string(), fix);
    }
    let started = Instant::now();
    let greeting = std::net::TcpStream::connect(("127.0.0.1", local)).and_then(|mut stream| {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut first = [0u8; 4];
        stream.read_exact(&mut first)?;
        Ok(first)
    });
    let _ = ssh.cancel(local, there);
    match greeting {
        Ok(first) if &first == b"SSH-" => Check::pass(
            "remote-forward",
            format!(
                "127.0.0.1:{local} here reached {there} there in {} ms",
                started.elapsed().as_millis()
            ),
        ),
        Ok(_) => Check::fail(
            "remote-forward",
            "the forward answered, not with sshd's greeting",
            fix,
        ),
        Err(error) => Check::fail(
            "remote-forward",
            format!("nothing came through: {error}"),
            fix,
        ),
    }
}

/// `SSH_CONNECTION`'s server address and port (its third and fourth words).
fn server_address(connection: &str) -> Option<std::net::SocketAddr> {
    let words: Vec<&str> = connection.split_whitespace().collect();
    let ip: std::net::IpAddr = words.get(2)?.parse().ok()?;
    Some(std::net::SocketAddr::new(ip, words.get(3)?.parse().ok()?))
}

/// Port discovery reads the containers' socket tables on the engine host.
fn socket_tables(ssh: &Ssh) -> Check {
    match ssh
        .command("head -n 1 /proc/self/net/tcp")
        .timeout(Duration::from_secs(15))
        .run()
    {
        Ok(output) if output.stdout.contains("local_address") => Check::pass(
            "remote-ports",
            "the engine host's /proc/PID/net/tcp is readable: ports are found there, not in this host's /proc",
        ),
        Ok(_) | Err(_) => Check::warn(
            "remote-ports",
            format!("{} has no readable /proc/net/tcp", ssh.target()),
            "only declared ports (`ports` in .dual.toml) are routed from this host",
        ),
    }
}
