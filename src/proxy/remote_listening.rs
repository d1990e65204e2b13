//! Which ports the workspace containers on another engine host listen on.
//! Their pids are that host's, so this host's `/proc` says nothing of them:
//! a small sh loop there (`remote_listening.sh`) reads their socket tables,
//! and prints them only when they changed, to a long-running `ssh` on the
//! host's shared connection (see `remote::ssh`).
//!
//! One stream per engine host, not a command per look or per container: a
//! command costs a new channel on the connection (a round trip or more, and
//! a login shell there) every look, so latency, bytes and the host's load
//! would grow with the workspaces and with the link's distance. The one
//! loop reads every workspace container of the host in one pass twice a
//! second, and sends nothing while nothing changes (an idle link carries
//! nothing of it): a port opened there is known here within the loop's
//! interval plus one trip.
//!
//! The loop is given the pids when it starts: when they change (a container
//! started or stopped) the stream is started again. When it ends by itself
//! (the link dropped) it is dialled again, backing off to `LONGEST_REDIAL`,
//! and the last snapshot stays meanwhile, as the last routes stay while an
//! engine is away. It ends on the host when its session does: the loop
//! there stops at the end of its stdin, a pipe this process holds.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::log;
use crate::remote::Ssh;
use crate::sockets::{Listening, listening_from_tables};

/// The loop run on the engine's host (see its header for what it prints).
const SCRIPT: &str = include_str!("remote_listening.sh");
/// How often the loop there reads the tables: as often as discovery looks
/// at local containers (its `DISCOVERY_INTERVAL`), so that a port shows as
/// soon on another host as on this one.
const INTERVAL: Duration = Duration::from_millis(500);
/// After a stream that ended without a snapshot, the first pause before
/// dialling again, doubling to the longest: a link that came back is used
/// again within the longest pause plus one dial (ssh gives a dial 5 s).
const FIRST_REDIAL: Duration = Duration::from_millis(500);
const LONGEST_REDIAL: Duration = Duration::from_secs(3);
/// The most of one snapshot's socket lines kept (about 40 bytes each): a
/// container listening on every port must not fill the proxy's memory.
const MAX_SNAPSHOT_BYTES: usize = 4 << 20;

/// What the processes of one host listen on, by pid; a pid missing was not
/// found there (gone).
pub(super) type Snapshot = HashMap<u32, Listening>;

/// A snapshot from the stream of host number `host`.
pub(super) struct HostSnapshot {
    pub host: usize,
    pub snapshot: Snapshot,
}

/// The stream of one engine host, as its owner holds it.
pub(super) struct RemoteListening {
    pids: watch::Sender<BTreeSet<u32>>,
}

impl RemoteListening {
    /// Starts following host number `host`, reached by `ssh`: its snapshots
    /// go to `snapshots`. It follows no process until `follow` is called.
    pub(super) fn start(
        host: usize,
        ssh: Ssh,
        snapshots: mpsc::UnboundedSender<HostSnapshot>,
    ) -> RemoteListening {
        let (pids, following) = watch::channel(BTreeSet::new());
        tokio::spawn(keep(host, ssh, following, snapshots));
        RemoteListening { pids }
    }

    /// The processes to follow now (the running workspace containers'):
    /// a change starts the stream again.
    pub(super) fn follow(&self, pids: BTreeSet<u32>) {
        self.pids.send_if_modified(|following| {
            let changed = *following != pids;
            *following = pids;
            changed
        });
    }
}

/// Keeps a stream running for the pids wanted, until the owner is gone.
async fn keep(
    host: usize,
    ssh: Ssh,
    mut pids: watch::Receiver<BTreeSet<u32>>,
    snapshots: mpsc::UnboundedSender<HostSnapshot>,
) {
    let mut redial = FIRST_REDIAL;
    let mut lost = false;
    loop {
        let following = pids.borrow_and_update().clone();
        if following.is_empty() {
            let nothing = HostSnapshot {
                host,
                snapshot: Snapshot::new(),
            };
            if snapshots.send(nothing).is_err() || pids.changed().await.is_err() {
                return;
            }
            continue;
        }
        let (started_tx, started) = oneshot::channel();
        let mut streaming = {
            let (ssh, snapshots) = (ssh.clone(), snapshots.clone());
            tokio::task::spawn_blocking(move || {
                stream(host, &ssh, &following, lost, started_tx, &snapshots)
            })
        };
        let running = started.await.ok();
        let ended = tokio::select! {
            ended = &mut streaming => ended,
            changed = pids.changed() => {
                if let Some(running) = running {
                    running.stop();
                }
                let _ = streaming.await;
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let Ok(ended) = ended else { return };
        if ended.receiver_gone {
            return;
        }
        // A stream that worked ends a spell of failed dials: its end is
        // told, and the next dial is soon.
        if ended.snapshots > 0 {
            redial = FIRST_REDIAL;
            lost = false;
        }
        let told = format!("port discovery on {}: {}", ssh.target(), ended.why);
        if lost {
            crate::log::debug(&told);
        } else {
            lost = true;
            log(&format!("{told}; dialling again"));
        }
        tokio::select! {
            () = tokio::time::sleep(redial) => {}
            changed = pids.changed() => if changed.is_err() { return },
        }
        redial = (redial * 2).min(LONGEST_REDIAL);
    }
}

/// A stream that runs: its ssh, and its stdin, whose end ends the loop on
/// the host.
struct Running {
    child: Arc<duct::ReaderHandle>,
    stdin: std::io::PipeWriter,
}

impl Running {
    fn stop(self) {
        drop(self.stdin);
        let _ = self.child.kill();
    }
}

/// How a stream ended.
struct Ended {
    /// Snapshots it delivered.
    snapshots: usize,
    why: String,
    /// Nobody takes snapshots any more: the proxy is stopping.
    receiver_gone: bool,
}

/// Runs one stream until it ends (on a blocking thread: `ssh`'s output is
/// read as it comes), handing its child to `started` so that it can be
/// stopped, and each snapshot to `snapshots`.
fn stream(
    host: usize,
    ssh: &Ssh,
    pids: &BTreeSet<u32>,
    was_lost: bool,
    started: oneshot::Sender<Running>,
    snapshots: &mpsc::UnboundedSender<HostSnapshot>,
) -> Ended {
    let ended = |snapshots, why: String| Ended {
        snapshots,
        why,
        receiver_gone: false,
    };
    // The shared connection first: one dial for the stream and the tunnel.
    if let Err(error) = ssh.connect() {
        return ended(0, format!("cannot connect ({error})"));
    }
    let command = ssh.command(&remote_command(INTERVAL, pids));
    let (child, stdin) = match command.stream_holding_stdin() {
        Ok(started) => started,
        Err(error) => return ended(0, error.to_string()),
    };
    let child = Arc::new(child);
    let _ = started.send(Running {
        child: Arc::clone(&child),
        stdin,
    });
    let started_at = Instant::now();
    let mut parser = Parser::default();
    let mut delivered = 0;
    for line in std::io::BufReader::new(&*child).lines() {
        let Ok(line) = line else { break };
        let Some(snapshot) = parser.line(&line) else {
            continue;
        };
        if delivered == 0 {
            crate::log::debug(&format!(
                "port discovery on {}: first snapshot in {:.0?}",
                ssh.target(),
                started_at.elapsed()
            ));
            if was_lost {
                log(&format!("port discovery on {} is back", ssh.target()));
            }
        }
        delivered += 1;
        if snapshots.send(HostSnapshot { host, snapshot }).is_err() {
            let _ = child.kill();
            return Ended {
                snapshots: delivered,
                why: "stopping".into(),
                receiver_gone: true,
            };
        }
    }
    let why = match child.try_wait() {
        Ok(Some(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let status = crate::process::StatusText(output.status);
            match stderr.trim().lines().last() {
                Some(said) => format!("the stream ended ({status}: {said})"),
                None => format!("the stream ended ({status})"),
            }
        }
        _ => "the stream ended".into(),
    };
    ended(delivered, why)
}

/// The command line the ssh user's shell runs on the host: the script
/// (without its comments, which need not cross the link), how often it
/// reads the tables, and the pids.
fn remote_command(interval: Duration, pids: &BTreeSet<u32>) -> String {
    let script: String = SCRIPT
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    let mut command = format!(
        "sh -c {} sh {}",
        crate::process::quote(&script),
        interval.as_secs_f64()
    );
    for pid in pids {
        command.push_str(&format!(" {pid}"));
    }
    command
}

/// Reads the loop's output a line at a time (see `remote_listening.sh`):
/// `PID: LOCAL REMOTE 0A` lines, then `. PID…`, which ends a snapshot.
/// Anything else (a line a login script printed) is no socket and is
/// passed over.
#[derive(Default)]
pub(super) struct Parser {
    /// The snapshot being read: socket lines (a table's) by pid.
    tables: HashMap<u32, String>,
    bytes: usize,
}

impl Parser {
    /// Takes one line; returns the snapshot it ends, if it does.
    pub(super) fn line(&mut self, line: &str) -> Option<Snapshot> {
        if let Some(read) = line.strip_prefix('.') {
            let pids: Option<Vec<u32>> = read.split_whitespace().map(|p| p.parse().ok()).collect();
            let pids = pids?;
            let mut tables = std::mem::take(&mut self.tables);
            self.bytes = 0;
            return Some(
                pids.into_iter()
                    .map(|pid| {
                        let table = tables.remove(&pid).unwrap_or_default();
                        (pid, listening_from_tables(&table))
                    })
                    .collect(),
            );
        }
        let (pid, _) = line.split_once(':')?;
        let pid: u32 = pid.parse().ok()?;
        if self.bytes + line.len() >= MAX_SNAPSHOT_BYTES {
            return None;
        }
        self.bytes += line.len() + 1;
        let table = self.tables.entry(pid).or_default();
        table.push_str(line);
        table.push('\n');
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_each_pid_s_listeners_and_ends_with_the_pids_read() {
        let mut parser = Parser::default();
        let lines = [
            // Output of a login script: not a socket.
            "Welcome!",
            "10: 00000000:0BB8 00000000:0000 0A",
            "10: 0100007F:2382 00000000:0000 0A",
            "10: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A",
            "20: 0100007F:1538 00000000:0000 0A",
            // Not in LISTEN state: never printed by the loop, never counted.
            "20: 00000000:0050 00000000:0000 01",
        ];
        for line in lines {
            assert!(parser.line(line).is_none(), "{line}");
        }
        let snapshot = parser.line(". 10 20 30").expect("the end of a snapshot");
        assert_eq!(
            snapshot[&10],
            Listening {
                reachable: BTreeSet::from([3000, 8000]),
                loopback_only: BTreeSet::from([9090]),
            }
        );
        assert_eq!(
            snapshot[&20],
            Listening {
                reachable: BTreeSet::new(),
                loopback_only: BTreeSet::from([5432]),
            }
        );
        assert_eq!(
            snapshot[&30],
            Listening::default(),
            "read, listening on nothing"
        );
        assert_eq!(snapshot.len(), 3);
        // The next snapshot starts afresh: nothing of the last is kept.
        assert_eq!(parser.line(".").unwrap(), Snapshot::new());
        // A line that only starts like the end is not one.
        assert!(parser.line(".profile read").is_none());
    }

    /// The loop as the engine's host runs it, run by this host's `sh`: its
    /// snapshots with when each came, and the pipe whose end ends it.
    fn run_loop(
        interval: Duration,
        pids: &[u32],
    ) -> (
        std::sync::mpsc::Receiver<(Instant, Snapshot)>,
        std::io::PipeWriter,
    ) {
        let line = remote_command(interval, &pids.iter().copied().collect());
        let (child, stdin) = crate::process::Cmd::new("sh", ["-c", line.as_str()])
            .stream_holding_stdin()
            .expect("sh runs");
        let (sender, snapshots) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut parser = Parser::default();
            for line in std::io::BufReader::new(&child).lines() {
                let Ok(line) = line else { break };
                if let Some(snapshot) = parser.line(&line)
                    && sender.send((Instant::now(), snapshot)).is_err()
                {
                    break;
                }
            }
        });
        (snapshots, stdin)
    }

    /// Waits up to `within` for a snapshot that `wanted` accepts.
    fn wait_for(
        snapshots: &std::sync::mpsc::Receiver<(Instant, Snapshot)>,
        within: Duration,
        wanted: impl Fn(&Snapshot) -> bool,
    ) -> Option<Instant> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match snapshots.recv_timeout(left) {
                Ok((at, snapshot)) if wanted(&snapshot) => return Some(at),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    #[test]
    fn the_loop_prints_at_once_and_then_only_what_changed() {
        // A pid above any pid_max: never a process, so nothing ever changes.
        let (snapshots, _stdin) = run_loop(Duration::from_millis(100), &[4_000_000_000]);
        let first = snapshots.recv_timeout(Duration::from_secs(2));
        assert_eq!(first.map(|(_, s)| s).ok(), Some(Snapshot::new()));
        // Ten more passes of the loop: silence.
        assert!(snapshots.recv_timeout(Duration::from_secs(1)).is_err());
    }

    #[test]
    fn the_loop_sees_a_port_open_and_close_within_its_interval() {
        let me = std::process::id();
        let (snapshots, _stdin) = run_loop(INTERVAL, &[me]);
        let listens_on = |port: u16| {
            move |snapshot: &Snapshot| {
                snapshot
                    .get(&me)
                    .is_some_and(|l| l.reachable.contains(&port))
            }
        };
        // This host's namespace: others' ports may come and go meanwhile.
        assert!(wait_for(&snapshots, Duration::from_secs(2), |s| s.contains_key(&me)).is_some());
        let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let opened = Instant::now();
        let seen = wait_for(&snapshots, Duration::from_secs(1), listens_on(port));
        let seen = seen.expect("the port opened was reported within 1 s");
        eprintln!("open seen after {:?}", seen - opened);
        drop(listener);
        let closed = Instant::now();
        let gone = wait_for(&snapshots, Duration::from_secs(1), |s| !listens_on(port)(s));
        let gone = gone.expect("the port closed was reported gone within 1 s");
        eprintln!("close seen after {:?}", gone - closed);
    }

    #[test]
    fn the_loop_ends_with_its_stdin() {
        let (snapshots, stdin) = run_loop(Duration::from_millis(100), &[std::process::id()]);
        assert!(snapshots.recv_timeout(Duration::from_secs(2)).is_ok());
        drop(stdin);
        // Its output closes once the loop and every child of it are gone.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match snapshots.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(_) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the loop still runs 2 s after its stdin ended")
                }
            }
        }
    }

    #[test]
    fn the_script_crosses_the_link_without_its_comments() {
        let line = remote_command(INTERVAL, &BTreeSet::from([12, 345]));
        assert!(line.starts_with("sh -c '"), "{line}");
        assert!(line.ends_with("' sh 0.5 12 345"), "{line}");
        assert!(
            !line.contains("\n#") && !line.contains("shellcheck"),
            "{line}"
        );
        assert!(line.len() < SCRIPT.len() / 2, "{} bytes", line.len());
    }

    #[test]
    fn a_huge_snapshot_is_cut_short_not_kept_whole() {
        let mut parser = Parser::default();
        // Two processes listening on every port: about 5 MB of lines.
        for pid in [7, 8] {
            for port in 1..=u16::MAX {
                parser.line(&format!("{pid}: 00000000:{port:04X} 00000000:0000 0A"));
            }
        }
        assert!(parser.bytes < MAX_SNAPSHOT_BYTES);
        let snapshot = parser.line(". 7 8").unwrap();
        assert_eq!(snapshot[&7].reachable.len(), usize::from(u16::MAX));
        let cut = snapshot[&8].reachable.len();
        assert!(cut > 0 && cut < usize::from(u16::MAX), "{cut}");
    }
}
