//! `dual forward` end to end on each engine: a raw TCP forward from the
//! host's 127.0.0.1 to a server in a workspace container that is not HTTP,
//! on a port nobody declared (busybox `nc`, greeting then echoing), run by
//! the background proxy that `dual forward` starts.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use crate::proxy::free_port;
use crate::support::{assert_transcript, each_engine, ensure_test_image, eventually, wait_for};
use crate::workspaces::TestEnv;

/// Stops the background proxy a test made `dual forward` start, however the
/// test ends.
pub struct StopsProxy<'a>(pub &'a TestEnv);

impl Drop for StopsProxy<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["proxy", "stop"]);
    }
}

fn connect(local: u16) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(("127.0.0.1", local)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Connects through 127.0.0.1:`local` and reads the server's greeting.
fn greeted(local: u16) -> Result<TcpStream, String> {
    let mut stream = connect(local)?;
    let mut greeting = [0; 6];
    stream
        .read_exact(&mut greeting)
        .map_err(|e| format!("no greeting: {e}"))?;
    if &greeting != b"hello\n" {
        return Err(format!("greeted with {greeting:?}"));
    }
    Ok(stream)
}

/// One whole session through 127.0.0.1:`local`: the server speaks first,
/// echoes a line, and still answers after the client stops sending (a
/// half-close), then ends the connection.
fn session(local: u16) -> Result<(), String> {
    let mut stream = greeted(local)?;
    let mut echo = [0; 5];
    stream
        .write_all(b"ping\n")
        .and_then(|()| stream.read_exact(&mut echo))
        .map_err(|e| format!("no echo: {e}"))?;
    if &echo != b"ping\n" {
        return Err(format!("echoed {echo:?}"));
    }
    stream
        .write_all(b"last words\n")
        .and_then(|()| stream.shutdown(Shutdown::Write))
        .map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .map_err(|e| format!("no reply after the half-close: {e}"))?;
    if rest != b"last words\n" {
        return Err(format!("after the half-close: {rest:?}"));
    }
    Ok(())
}

/// Whether a connection to 127.0.0.1:`local` is accepted and then closed at
/// once (neither left hanging nor served).
fn closed_at_once(local: u16) -> bool {
    let Ok(mut stream) = connect(local) else {
        return false;
    };
    ended(&mut stream)
}

/// Whether the other side closes `stream` (within 2 s).
fn ended(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut byte = [0; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// The local port in `forwarding 127.0.0.1:N to …`.
fn local_port_of(out: &str) -> u16 {
    let after = out
        .split("127.0.0.1:")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {out:?}"));
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

#[test]
fn a_forward_carries_raw_tcp_both_ways_and_follows_its_workspace() {
    each_engine("forward", |kind| {
        // Not HTTP, not declared: busybox nc greets, then echoes (`cat`).
        let port = free_port();
        let config = format!(
            "image = \"{}\"\n[services.db]\ncommand = \"nc -ll -p {port} -e sh -c 'echo hello; exec cat'\"\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "db"]);
        env.ok(&["create", "lazy"]);
        let name = env.name("db");
        env.ok(&["launch", "db"]);

        // `dual forward` starts the proxy when none runs.
        let _stops = StopsProxy(&env);
        let local = free_port();
        let (port_text, local_text) = (port.to_string(), local.to_string());
        let out = env
            .cmd(&["forward", &name, &port_text, "--local", &local_text])
            .env("DUAL_PROXY_AUTOSTART", "1")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(stderr.contains("proxy: started"), "{stderr}");
        assert_eq!(
            stdout,
            format!(
                "forwarding 127.0.0.1:{local} to {name}:{port} (until the proxy stops)\n  nc 127.0.0.1 {local}\n"
            )
        );

        // Both ways, a half-close, and again on a second connection.
        let took = std::time::Instant::now();
        wait_for(
            Duration::from_secs(20),
            "a session through the forward",
            || session(local),
        );
        eprintln!(
            "{kind}: the forward carried a session {:?} after it was added",
            took.elapsed()
        );
        session(local).unwrap();

        // Asked again, from the clone, with no workspace and no local port:
        // the same forward.
        let again = env
            .cmd(&["forward", &port_text])
            .current_dir(env.clone_path("db"))
            .output()
            .unwrap();
        let again_out = String::from_utf8_lossy(&again.stdout);
        assert!(
            again.status.success(),
            "{again_out}{}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert!(
            again_out.starts_with(&format!(
                "already forwarding 127.0.0.1:{local} to {name}:{port}"
            )),
            "{again_out}"
        );

        // Listed, with the one connection held open.
        let _held = greeted(local).unwrap();
        let listed = wait_for(
            Duration::from_secs(5),
            "one connection open in the list",
            || {
                let listed = env.run(&["forward", "--list"]);
                let text = String::from_utf8_lossy(&listed.stdout).into_owned();
                let row = text.lines().nth(1).unwrap_or_default().to_owned();
                if row.split_whitespace().nth(3) == Some("1") {
                    Ok(listed)
                } else {
                    Err(text)
                }
            },
        );
        assert_transcript!(
            "list",
            listed,
            env.dir.path(),
            [
                (format!(r"\b{local}\b"), "[LOCAL]"),
                (format!(r"\b{port}\b"), "[PORT]"),
            ]
        );

        // A local port someone holds: named, with its holder.
        let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let taken_port = taken.local_addr().unwrap().port().to_string();
        let error = env.fails(&["forward", &name, &port_text, "--local", &taken_port]);
        assert!(
            error.contains(&format!(
                "error: 127.0.0.1:{taken_port} is already taken by pid {} (",
                std::process::id()
            )) && error.contains("hint: choose another with `--local N`"),
            "{error}"
        );
        // Another forward's port: named as such.
        let error = env.fails(&["forward", &name, "6379", "--local", &local_text]);
        assert!(
            error.contains(&format!(
                "already taken by dual's forward to `{name}`:{port}"
            )),
            "{error}"
        );

        // Workspaces it cannot reach: errors that say what to do.
        let error = env.fails(&["forward", "nope", &port_text]);
        assert!(
            error.contains("`nope`") && error.contains("hint: `dual list`"),
            "{error}"
        );
        let lazy = env.name("lazy");
        let error = env.fails(&["forward", &lazy, &port_text]);
        assert!(
            error.contains(&format!("error: workspace `{lazy}` has no container"))
                && error.contains(&format!("hint: `dual launch {lazy}`")),
            "{error}"
        );

        // Stopped: its connections are closed at once, new forwards refused;
        // launched again, the forward reaches the new container.
        env.ok(&["stop", "db"]);
        assert!(
            eventually(Duration::from_secs(10), || closed_at_once(local)),
            "a connection to a stopped workspace was not closed at once"
        );
        // (The proxy hears of the stop from the engine's events, which
        // podman may tell a moment late.)
        let refused = std::time::Instant::now();
        let error = wait_for(Duration::from_secs(10), "a forward refused", || {
            let output = env.run(&[
                "forward",
                &name,
                &port_text,
                "--local",
                &free_port().to_string(),
            ]);
            if output.status.success() {
                let added = local_port_of(&String::from_utf8_lossy(&output.stdout));
                env.ok(&["forward", "--stop", &added.to_string()]);
                Err("added")
            } else {
                Ok(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        });
        eprintln!(
            "{kind}: a forward to a stopped workspace refused after {:?}",
            refused.elapsed()
        );
        assert!(
            error.contains(&format!("error: workspace `{name}` is not running"))
                && error.contains(&format!("hint: `dual launch {name}`")),
            "{error}"
        );
        env.ok(&["launch", "db"]);
        wait_for(
            Duration::from_secs(20),
            "a session after a relaunch",
            || session(local),
        );

        // Stopped by its port: it refuses, and its open connection ends.
        let mut held = greeted(local).unwrap();
        let stopped = env.ok(&["forward", "--stop", &local_text]);
        assert_eq!(
            stopped,
            format!("stopped forwarding 127.0.0.1:{local} to {name}:{port}\n")
        );
        assert!(
            TcpStream::connect(("127.0.0.1", local)).is_err(),
            "still accepting"
        );
        assert!(ended(&mut held), "a connection outlived its forward");
        let error = env.fails(&["forward", "--stop", &local_text]);
        assert!(
            error.contains(&format!("no forward on 127.0.0.1:{local}")),
            "{error}"
        );

        // One to a port nothing listens on: said so. Both stopped by
        // their workspace's branch.
        let out = env.ok(&["forward", &name, &port_text]);
        let other = local_port_of(&out);
        let idle = env.run(&["forward", &name, "6379"]);
        let idle_err = String::from_utf8_lossy(&idle.stderr);
        assert!(
            idle.status.success()
                && idle_err.contains(&format!(
                    "warning: nothing in `{name}` listens on port 6379 yet"
                )),
            "{idle_err}"
        );
        let idle_port = local_port_of(&String::from_utf8_lossy(&idle.stdout));
        assert!(
            String::from_utf8_lossy(&idle.stdout).contains(&format!("redis-cli -p {idle_port}")),
            "{idle:?}"
        );
        assert!(
            closed_at_once(idle_port),
            "a connection to nothing was left open"
        );
        let stopped = env.ok(&["forward", "--stop", "db"]);
        assert_eq!(stopped.lines().count(), 2, "{stopped}");
        assert!(TcpStream::connect(("127.0.0.1", other)).is_err());

        // Forwards end with the proxy.
        let out = env.ok(&["forward", &name, &port_text]);
        let other = local_port_of(&out);
        wait_for(
            Duration::from_secs(20),
            "a session on the default port",
            || session(other),
        );
        env.ok(&["proxy", "stop"]);
        assert!(
            TcpStream::connect(("127.0.0.1", other)).is_err(),
            "outlived the proxy"
        );
        assert_eq!(
            env.ok(&["forward", "--list"]),
            "no forwards (the proxy is not running)\n"
        );
    });
}

#[test]
fn without_a_proxy_and_autostart_off_forward_says_how_to_start_one() {
    let env = TestEnv::new(None, "");
    env.ok(&["create", "db"]);
    let error = env.fails(&["forward", &env.name("db"), "5432"]);
    assert!(
        error.contains("DUAL_PROXY_AUTOSTART=0") && error.contains("hint: `dual proxy start`"),
        "{error}"
    );
    assert_eq!(env.ok(&["forward", "--stop"]), "no forwards to stop\n");
}
