//! `dual remote-sync WORKSPACE`: the process that keeps a workspace's pairs
//! in sync, one thread per pair, until `stop` sends it SIGTERM.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::unison::{self, Outcome, Scope};
use super::watch::{Report, Side, Watched, Watcher};
use super::{Config, Failure, Files, SyncPair, processes};
use crate::process::{Cmd, CommandError, quote};
use crate::remote::Ssh;

/// The log is emptied past this size (see `log::bound_stderr`).
const LOG_LIMIT: u64 = 1024 * 1024;
/// A batch of changes is synced once no other came for this long…
const QUIET: Duration = Duration::from_millis(20);
/// …or this long after its first, whichever is sooner.
const BATCH_AT_MOST: Duration = Duration::from_millis(150);
/// How long after a run its own writes, reported back by the watchers, are
/// taken for echoes…
const ECHO_WINDOW: Duration = Duration::from_secs(1);
/// …and how long such a path may wait before it is synced all the same.
const ECHO_DEFER: Duration = Duration::from_secs(1);
/// More put-off echoes than this are synced as one whole run.
const ECHO_PATHS_MOST: usize = 50;
/// More changed paths than this in one batch: one whole run is cheaper.
const MOST_PATHS: usize = 500;
/// How long a watcher may take to set its watches (a tree of 100,000
/// directories takes seconds).
const WATCH_SETUP: Duration = Duration::from_secs(300);
/// While the link is down, it is tried again at most this far apart, so
/// that the sync is back within seconds of the link.
const LINK_RETRY_MOST: Duration = Duration::from_secs(4);
/// A failure while the link is up (the engine's host refuses something) is
/// tried again less and less often, up to this.
const TOOL_RETRY_MOST: Duration = Duration::from_secs(60);
/// A session that lasted this long was healthy: the next failure starts the
/// backoff again from its shortest wait.
const HEALTHY: Duration = Duration::from_secs(60);

/// The supervisor: runs until SIGTERM (or a failure nothing can retry).
pub fn run(workspace: &str) -> anyhow::Result<ExitCode> {
    super::check_workspace_name(workspace)?;
    let files = Files::of(workspace);
    let _lock = crate::files::Lock::try_exclusive(&files.lock())
        .map_err(|error| anyhow::anyhow!("the sync of {workspace} already runs ({error})"))?;
    crate::log::bound_stderr(LOG_LIMIT);
    let (shared, pairs) = match prepare(workspace, files) {
        Ok((shared, pairs)) => (Arc::new(shared), pairs),
        Err((files, failure)) => {
            say(&format!(
                "cannot start: {} ({})",
                failure.message, failure.hint
            ));
            if let Ok(bytes) = serde_json::to_vec(&failure) {
                let _ = crate::files::write_atomic(&files.failure(), &bytes);
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    say(&format!(
        "sync of {workspace} started (pid {}), {} pair(s) with {}",
        std::process::id(),
        pairs.len(),
        shared.ssh.target()
    ));
    let threads: Vec<_> = pairs
        .into_iter()
        .enumerate()
        .map(|(index, pair)| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || pair_loop(&shared, index, &pair))
        })
        .collect();
    while !shared.stopping() {
        std::thread::sleep(Duration::from_millis(250));
        crate::log::bound_stderr(LOG_LIMIT);
    }
    shared.stop.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    for thread in threads {
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    processes::kill_here(&processes::workspace_marker(workspace));
    let failure = shared.failure.lock().map(|f| f.clone()).unwrap_or(None);
    match failure {
        Some(failure) => {
            say(&format!("stopped: {} ({})", failure.message, failure.hint));
            Ok(ExitCode::FAILURE)
        }
        None => {
            say("stopped");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What the pairs share, once this host is ready: the config read, the
/// ssh wrapper written, this host's unison found.
fn prepare(workspace: &str, files: Files) -> Result<(Shared, Vec<SyncPair>), (Files, Failure)> {
    let failed = |files: Files, message: String, hint: &str| {
        Err((
            files,
            Failure {
                message,
                hint: hint.to_owned(),
            },
        ))
    };
    let config = match read_config(&files) {
        Ok(config) => config,
        Err(failure) => return Err((files, failure)),
    };
    let ssh = config.ssh();
    let restart = "`dual launch` the workspace again";
    if let Err(error) = crate::remote::ssh::ensure_control_dir() {
        return failed(files, format!("ssh's control directory: {error}"), restart);
    }
    let wrapper = match unison::ssh_wrapper(&ssh) {
        Ok(wrapper) => wrapper,
        Err(error) => return failed(files, error, restart),
    };
    let written =
        crate::files::write_atomic_with_mode(&files.ssh_wrapper(), wrapper.as_bytes(), 0o700)
            .and_then(|()| std::fs::create_dir_all(files.archives()));
    if let Err(error) = written {
        let message = format!("could not write in `{}`: {error}", files.dir.display());
        return failed(files, message, restart);
    }
    let answer = Cmd::new("unison", ["-version"])
        .timeout(Duration::from_secs(30))
        .output()
        .map(|output| output.stdout)
        .unwrap_or_default();
    let Some(minor) = unison::version(&answer).and_then(minor_of) else {
        return failed(
            files,
            "unison does not run on this host: a workspace on a remote engine syncs its clone with it".into(),
            "install unison 2.52 (Debian/Ubuntu: apt-get install unison)",
        );
    };
    let shared = Shared {
        workspace: workspace.to_owned(),
        files,
        ssh,
        unison_minor: minor,
        done: Mutex::new(vec![false; config.pairs.len()]),
        failure: Mutex::new(None),
        stop: AtomicBool::new(false),
        started: Instant::now(),
    };
    Ok((shared, config.pairs))
}

fn read_config(files: &Files) -> Result<Config, Failure> {
    let path = files.config();
    std::fs::read(&path)
        .map_err(|error| error.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|error| error.to_string()))
        .map_err(|error| Failure {
            message: format!(
                "could not read the sync's config `{}`: {error}",
                path.display()
            ),
            hint: "`dual launch` the workspace again".into(),
        })
}

/// `X.Y` of `X.Y.Z`.
fn minor_of(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    Some(format!("{major}.{minor}"))
}

struct Shared {
    workspace: String,
    /// This host's unison's `X.Y`: the engine's host must run the same.
    unison_minor: String,
    files: Files,
    ssh: Ssh,
    /// Which pairs finished their first whole sync.
    done: Mutex<Vec<bool>>,
    failure: Mutex<Option<Failure>>,
    stop: AtomicBool,
    started: Instant,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || crate::interrupt::requested()
    }

    /// A failure nothing can retry: written for `wait_initial`, and the
    /// supervisor stops.
    fn fail(&self, failure: Failure) {
        if let Ok(bytes) = serde_json::to_vec(&failure) {
            let _ = crate::files::write_atomic(&self.files.failure(), &bytes);
        }
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(failure);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    fn first_sync_done(&self, index: usize) {
        let Ok(mut done) = self.done.lock() else {
            return;
        };
        if done[index] {
            return;
        }
        done[index] = true;
        if done.iter().all(|&d| d) {
            let _ = crate::files::write_atomic(&self.files.ready(), b"");
            say(&format!(
                "first copy of every pair done in {:.1} s",
                self.started.elapsed().as_secs_f64()
            ));
        }
    }

    /// Sleeps `wait`, or less when told to stop.
    fn sleep(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while !self.stopping() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }
}

/// Why a session ended.
enum End {
    /// The supervisor is stopping.
    Stopping,
    /// Something that a later try may not meet (the link, a tool's death).
    Retry(String),
    /// Something only the user can fix.
    Fatal(Failure),
}

fn pair_loop(shared: &Shared, index: usize, pair: &SyncPair) {
    let mut link_backoff = Backoff::new(Duration::from_millis(500), LINK_RETRY_MOST);
    let mut tool_backoff = Backoff::new(Duration::from_secs(2), TOOL_RETRY_MOST);
    let mut failed_since = None;
    let mut watch = PairWatch::new();
    loop {
        if shared.stopping() {
            return;
        }
        let began = Instant::now();
        let mut session = Session {
            shared,
            index,
            pair,
            marker: processes::pair_marker(&shared.workspace, index),
            last_skipped: Vec::new(),
            echoes: Echoes::default(),
            failed_since,
            watch: &mut watch,
            there_ready: false,
        };
        match session.run() {
            End::Stopping => return,
            End::Fatal(failure) => {
                session.say(&format!("{} ({})", failure.message, failure.hint));
                shared.fail(failure);
                return;
            }
            End::Retry(why) => {
                failed_since = session.failed_since.or_else(|| Some(Instant::now()));
                if began.elapsed() >= HEALTHY {
                    link_backoff.reset();
                    tool_backoff.reset();
                }
                let link_up = shared.ssh.is_up();
                let wait = if link_up {
                    tool_backoff.next()
                } else {
                    link_backoff.next()
                };
                session.say(&format!(
                    "{why}; {}trying again in {:.1} s",
                    if link_up { "" } else { "the link is down; " },
                    wait.as_secs_f64()
                ));
                shared.sleep(wait);
            }
        }
    }
}

/// What outlives a pair's sessions: the watcher here, so that what changes
/// here while the link is down is still reported (and synced by content,
/// not only by the next whole run's sizes and times), the reports, and the
/// paths a failed session had not synced.
struct PairWatch {
    sender: Sender<(u64, Report)>,
    received: Receiver<(u64, Report)>,
    here: Option<Watcher>,
    here_generation: u64,
    here_ready: bool,
    there_generation: u64,
    next_generation: u64,
    pending: BTreeSet<OsString>,
}

impl PairWatch {
    fn new() -> PairWatch {
        let (sender, received) = std::sync::mpsc::channel();
        PairWatch {
            sender,
            received,
            here: None,
            here_generation: 0,
            here_ready: false,
            there_generation: 0,
            next_generation: 1,
            pending: BTreeSet::new(),
        }
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

/// Waits that double from `first` up to `most`.
struct Backoff {
    first: Duration,
    most: Duration,
    next: Duration,
}

impl Backoff {
    fn new(first: Duration, most: Duration) -> Backoff {
        Backoff {
            first,
            most,
            next: first,
        }
    }

    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.most);
        wait
    }

    fn reset(&mut self) {
        self.next = self.first;
    }
}

/// One connection's worth of syncing a pair: the checks there, the
/// watchers, the first whole run, then a run per batch of changes.
struct Session<'a> {
    shared: &'a Shared,
    index: usize,
    pair: &'a SyncPair,
    marker: String,
    /// What the last run skipped, said once rather than at every run.
    last_skipped: Vec<String>,
    echoes: Echoes,
    /// When the sync last stopped working, until a session syncs again.
    failed_since: Option<Instant>,
    watch: &'a mut PairWatch,
    /// The watcher there of this session has set its watches.
    there_ready: bool,
}

/// The paths the last run wrote on each side: the watcher there reports
/// them back right after (unison's own writes). Syncing them again at once
/// would find nothing to do, yet cost a run that a real edit would wait
/// behind; so for a while they are put off (never dropped: a real edit of
/// such a path is synced within `ECHO_DEFER`, or sooner with other changes).
#[derive(Default)]
struct Echoes {
    here: BTreeSet<OsString>,
    there: BTreeSet<OsString>,
    until: Option<Instant>,
    deferred: BTreeSet<OsString>,
    deferred_since: Option<Instant>,
}

impl Echoes {
    fn expect(&mut self, written: unison::Written) {
        self.here = written.here.into_iter().map(OsString::from).collect();
        self.there = written.there.into_iter().map(OsString::from).collect();
        self.until = Some(Instant::now() + ECHO_WINDOW);
    }

    /// The path the last run wrote on `side` that `path` is or is under
    /// (a directory it copied: its files are reported one by one), while
    /// such reports are taken for echoes.
    fn written_over(&self, side: Side, path: &OsString) -> Option<OsString> {
        if self.until.is_none_or(|until| Instant::now() >= until) {
            return None;
        }
        let written = match side {
            Side::Here => &self.here,
            Side::There => &self.there,
        };
        let bytes = path.as_bytes();
        let ancestors = bytes
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(|(at, _)| &bytes[..at]);
        std::iter::once(bytes)
            .chain(ancestors)
            .map(std::ffi::OsStr::from_bytes)
            .find(|candidate| written.contains(*candidate))
            .map(std::ffi::OsStr::to_owned)
    }

    fn defer(&mut self, path: OsString) {
        self.deferred.insert(path);
        self.deferred_since.get_or_insert_with(Instant::now);
    }
}

impl Session<'_> {
    fn say(&self, message: &str) {
        say(&format!(
            "[{} {} {}] {message}",
            self.pair.local.display(),
            match self.pair.direction {
                super::Direction::Both => "<->",
                super::Direction::ToRemote => "->",
                super::Direction::FromRemote => "<-",
            },
            self.pair.remote.display()
        ));
    }

    fn run(&mut self) -> End {
        let end = match self.session() {
            Ok(()) => End::Stopping,
            Err(end) => end,
        };
        // Put off, never synced: first thing in the next session.
        let deferred = std::mem::take(&mut self.echoes.deferred);
        self.watch.pending.extend(deferred);
        end
    }

    fn session(&mut self) -> Result<(), End> {
        let ssh = &self.shared.ssh;
        super::check_local_root(&self.pair.local).map_err(|error| {
            End::Fatal(Failure {
                message: format!("{error:#}"),
                hint: "`dual launch` the workspace again".into(),
            })
        })?;
        // The watcher here first: it needs no link.
        let marker = self.marker.clone();
        if self.pair.direction.watches_here() && self.watch.here.is_none() {
            let generation = self.watch.generation();
            let watched = Watched {
                root: self.pair.local.as_os_str(),
                ignore: &self.pair.ignore,
                marker: &marker,
            };
            let watcher = Watcher::start(
                Side::Here,
                ssh,
                watched,
                generation,
                self.watch.sender.clone(),
            )
            .map_err(|error| self.command_end(error))?;
            self.watch.here = Some(watcher);
            self.watch.here_generation = generation;
            self.watch.here_ready = false;
        }
        ssh.connect().map_err(|error| self.command_end(error))?;
        self.prepare_there()?;
        let _there = if self.pair.direction.watches_there() {
            let generation = self.watch.generation();
            let watched = Watched {
                root: self.pair.remote.as_os_str(),
                ignore: &self.pair.ignore,
                marker: &marker,
            };
            let watcher = Watcher::start(
                Side::There,
                ssh,
                watched,
                generation,
                self.watch.sender.clone(),
            )
            .map_err(|error| self.command_end(error))?;
            self.watch.there_generation = generation;
            Some(watcher)
        } else {
            None
        };
        self.wait_ready()?;
        self.sync(Scope::Whole)?;
        self.shared.first_sync_done(self.index);
        if let Some(since) = self.failed_since.take() {
            self.say(&format!(
                "in sync again, {:.1} s after it stopped",
                since.elapsed().as_secs_f64()
            ));
        }
        loop {
            if self.shared.stopping() {
                return Err(End::Stopping);
            }
            // What a failed session left, or what changed while the
            // watchers were being set: by content, as any change.
            let batch = if self.watch.pending.is_empty() {
                self.collect()?
            } else {
                Changes {
                    whole: false,
                    paths: std::mem::take(&mut self.watch.pending),
                }
                .batch()
            };
            match batch {
                None => {}
                Some(Batch::Whole) => self.sync(Scope::Whole)?,
                Some(Batch::Paths(paths)) => {
                    if let Err(end) = self.sync(Scope::Paths(&paths)) {
                        self.watch.pending.extend(paths);
                        return Err(end);
                    }
                }
            }
        }
    }

    /// On the engine's host: the tools, their versions, the directories,
    /// and the end of what an earlier session of this pair left there.
    fn prepare_there(&self) -> Result<(), End> {
        let host = self.shared.ssh.target().host.clone();
        let archives = format!("{}/unison", super::remote_state_dir(&self.shared.workspace));
        let line = format!(
            "mkdir -p {root} \"$HOME\"/{archives} || exit 1; {kill}; \
             echo \"unison: $(unison -version 2>&1)\"; \
             echo \"inotifywait: $(command -v inotifywait)\"; \
             echo \"bwrap: $(command -v bwrap)\"",
            root = quote(&self.pair.remote.to_string_lossy()),
            archives = quote(&archives),
            kill = processes::kill_there_line(&self.marker),
        );
        let output = self
            .shared
            .ssh
            .command(&line)
            .timeout(Duration::from_secs(60))
            .output()
            .map_err(|error| self.command_end(error))?;
        if output.status.code() == Some(255) {
            return Err(End::Retry(format!(
                "ssh to {} failed: {}",
                self.shared.ssh.target(),
                output.stderr
            )));
        }
        if !output.success() {
            return Err(End::Fatal(Failure {
                message: format!(
                    "could not create `{}` on {host}: {}",
                    self.pair.remote.display(),
                    output.stderr
                ),
                hint: format!(
                    "make sure {} can write there",
                    self.shared.ssh.target().destination()
                ),
            }));
        }
        let mut remote_version = None;
        let mut has_inotifywait = false;
        let mut has_bwrap = false;
        for line in output.stdout.lines() {
            if let Some(path) = line.strip_prefix("bwrap: ") {
                has_bwrap = !path.trim().is_empty();
            }
            if let Some(answer) = line.strip_prefix("unison: ") {
                remote_version = unison::version(answer).map(str::to_owned);
            }
            if let Some(path) = line.strip_prefix("inotifywait: ") {
                has_inotifywait = !path.trim().is_empty();
            }
        }
        let minor = &self.shared.unison_minor;
        match remote_version {
            None => {
                return Err(End::Fatal(Failure {
                    message: format!(
                        "the engine's host {host} has no unison: a workspace on it syncs its clone with unison"
                    ),
                    hint: format!(
                        "install unison {minor} on {host} (Debian 12, Ubuntu 24.04: apt-get install unison)"
                    ),
                }));
            }
            Some(version) if !same_minor(&version, minor) => {
                return Err(End::Fatal(Failure {
                    message: format!(
                        "the engine's host {host} has unison {version}; this host's speaks {minor}, and both sides must run the same (their archives and protocol differ)"
                    ),
                    hint: format!("install unison {minor} on {host}"),
                }));
            }
            Some(_) => {}
        }
        if !has_bwrap {
            return Err(End::Fatal(Failure {
                message: format!(
                    "the engine's host {host} has no bwrap: dual confines the sync there to the workspace's copy, which the container writes"
                ),
                hint: format!(
                    "install bubblewrap on {host} (Debian/Ubuntu: apt-get install bubblewrap)"
                ),
            }));
        }
        if self.pair.direction.watches_there() && !has_inotifywait {
            return Err(End::Fatal(Failure {
                message: format!(
                    "the engine's host {host} has no inotifywait: dual watches the copy there for the container's changes"
                ),
                hint: format!(
                    "install inotify-tools on {host} (Debian/Ubuntu: apt-get install inotify-tools)"
                ),
            }));
        }
        Ok(())
    }

    /// Waits until the watchers have set their watches; what they report
    /// meanwhile is kept for after the first whole run.
    fn wait_ready(&mut self) -> Result<(), End> {
        let deadline = Instant::now() + WATCH_SETUP;
        let mut changes = Changes::default();
        let ready = |session: &Self| {
            (!session.pair.direction.watches_here() || session.watch.here_ready)
                && (!session.pair.direction.watches_there() || session.there_ready)
        };
        self.there_ready = false;
        while !ready(self) {
            if self.shared.stopping() {
                return Err(End::Stopping);
            }
            if Instant::now() >= deadline {
                return Err(End::Retry(format!(
                    "the watchers did not set their watches within {} s",
                    WATCH_SETUP.as_secs()
                )));
            }
            match self.watch.received.recv_timeout(Duration::from_millis(100)) {
                Ok((generation, report)) => self.take(generation, report, &mut changes)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(End::Retry("the watchers ended".into()));
                }
            }
        }
        // The first whole run covers what changed before it.
        self.watch.pending.append(&mut changes.paths);
        Ok(())
    }

    /// The next batch of changes: `None` when none came for a while (so
    /// that a stop is seen).
    fn collect(&mut self) -> Result<Option<Batch>, End> {
        let mut wait = Duration::from_millis(500);
        if let Some(since) = self.echoes.deferred_since {
            wait = wait.min((since + ECHO_DEFER).saturating_duration_since(Instant::now()));
        }
        let mut changes = Changes::default();
        match self.watch.received.recv_timeout(wait) {
            Ok((generation, report)) => self.take(generation, report, &mut changes)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(End::Retry("the watchers ended".into()));
            }
        }
        let began = Instant::now();
        while !changes.is_empty() {
            let left = BATCH_AT_MOST.saturating_sub(began.elapsed());
            if left.is_zero() {
                break;
            }
            match self.watch.received.recv_timeout(QUIET.min(left)) {
                Ok((generation, report)) => self.take(generation, report, &mut changes)?,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(End::Retry("the watchers ended".into()));
                }
            }
        }
        // What was put off as a likely echo goes with a batch of changes,
        // and on its own once it has waited long enough: as paths when
        // they are few, else as one whole run (which compares sizes and
        // times, not contents: a run wrote them all a moment ago).
        let due = self
            .echoes
            .deferred_since
            .is_some_and(|since| since.elapsed() >= ECHO_DEFER);
        let few = self.echoes.deferred.len() <= ECHO_PATHS_MOST;
        if few && (due || !changes.is_empty()) {
            changes.paths.append(&mut self.echoes.deferred);
            self.echoes.deferred_since = None;
        } else if due && changes.is_empty() {
            self.echoes.deferred.clear();
            self.echoes.deferred_since = None;
            changes.whole = true;
        }
        Ok(changes.batch())
    }

    /// One report: a change goes into `changes` (whichever watcher saw
    /// it); readiness and ends count only from the watchers of now.
    fn take(&mut self, generation: u64, report: Report, changes: &mut Changes) -> Result<(), End> {
        let current = |side| match side {
            Side::Here => generation == self.watch.here_generation,
            Side::There => generation == self.watch.there_generation,
        };
        match report {
            Report::Ready(side) if current(side) => match side {
                Side::Here => self.watch.here_ready = true,
                Side::There => self.there_ready = true,
            },
            Report::Ready(_) => {}
            Report::Changed(side, path) => {
                if path.is_empty() {
                    changes.whole = true;
                } else if super::watch::is_ignored(&path, &self.pair.ignore) {
                } else if let Some(written) = self.echoes.written_over(side, &path) {
                    self.echoes.defer(written);
                } else {
                    changes.paths.insert(path);
                }
            }
            Report::Overflow(side) => {
                self.say(&format!(
                    "the watcher {} lost events: syncing all",
                    side.name()
                ));
                changes.whole = true;
            }
            Report::Ended(side, why) if current(side) => {
                if side == Side::Here {
                    self.watch.here = None;
                }
                return Err(watcher_end(side, &why, &self.shared.ssh.target().host));
            }
            Report::Ended(..) => {}
        }
        Ok(())
    }

    /// One unison run.
    fn sync(&mut self, scope: Scope<'_>) -> Result<(), End> {
        let files = &self.shared.files;
        let server = unison::server_command(
            &format!("{}/unison", super::remote_state_dir(&self.shared.workspace)),
            &self.pair.remote,
            &self.marker,
        );
        let args = unison::args(self.pair, &files.ssh_wrapper(), &server, scope);
        let timeout = match scope {
            Scope::Paths(_) => Duration::from_secs(30 * 60),
            Scope::Whole | Scope::Afresh => Duration::from_secs(6 * 3600),
        };
        let began = Instant::now();
        let output = Cmd::new("unison", args)
            .env("UNISON", files.archives())
            .env(processes::MARKER_VAR, &self.marker)
            .timeout(timeout)
            .output()
            .map_err(|error| self.command_end(error))?;
        if self.shared.stopping() {
            return Err(End::Stopping);
        }
        self.echoes.expect(unison::written(&output.stdout));
        if self.pair.direction == super::Direction::Both {
            for path in unison::conflicts(&output.stdout) {
                self.say(&format!(
                    "conflict: `{path}` changed on both sides; both kept: the newer under its name, the other beside it as `{}`",
                    conflict_copy_name(&path)
                ));
                super::record_conflict(
                    &self.shared.workspace,
                    &format!("{} {}", utc_time(), path.escape_debug()),
                );
            }
        }
        if let Some(summary) = transferred(&output.stderr) {
            self.say(&format!(
                "{} ({:.2} s{})",
                summary,
                began.elapsed().as_secs_f64(),
                match scope {
                    Scope::Paths(paths) => format!(", {} path(s)", paths.len()),
                    Scope::Whole => ", whole".into(),
                    Scope::Afresh => ", afresh".into(),
                }
            ));
        }
        match unison::outcome(output.status.code(), &output.stdout, &output.stderr) {
            Outcome::Done => {
                self.last_skipped.clear();
                Ok(())
            }
            Outcome::Skipped(skipped) => {
                if skipped != self.last_skipped {
                    self.say(&format!("not synced: {}", skipped.join("; ")));
                    self.last_skipped = skipped;
                }
                Ok(())
            }
            Outcome::NeedsWhole => match scope {
                Scope::Paths(_) => self.sync(Scope::Whole),
                _ => Ok(()),
            },
            Outcome::Emptied => match scope {
                Scope::Whole => {
                    self.say(
                        "one copy is empty while the last sync had files there (the copy on the engine's host was lost?): \
                         copying afresh, deleting nothing",
                    );
                    self.sync(Scope::Afresh)
                }
                _ => Err(End::Retry("unison refused to empty a copy".into())),
            },
            Outcome::ArchiveLost if scope != Scope::Afresh => {
                self.say(
                    "unison's record of the last sync is missing on one side (that side was reset?): \
                     syncing afresh, deleting nothing",
                );
                self.sync(Scope::Afresh)
            }
            Outcome::ArchiveLost => Err(End::Retry("unison's archives are missing".into())),
            Outcome::Failed(why) => Err(End::Retry(format!("unison failed: {why}"))),
        }
    }

    /// How a command that could not run ends the session.
    fn command_end(&self, error: CommandError) -> End {
        match error {
            CommandError::Interrupted { .. } => End::Stopping,
            CommandError::ProgramNotFound { program } => End::Fatal(Failure {
                message: format!("`{program}` is not installed on this host"),
                hint: "install unison, inotify-tools and openssh-client (Debian/Ubuntu: apt-get install unison inotify-tools openssh-client)".into(),
            }),
            other if self.shared.stopping() => {
                let _ = other;
                End::Stopping
            }
            CommandError::Failed { stderr, .. } if !stderr.is_empty() => {
                End::Retry(format!("{}: {stderr}", self.shared.ssh.target()))
            }
            other => End::Retry(other.to_string()),
        }
    }
}

fn watcher_end(side: Side, why: &str, host: &str) -> End {
    if why.contains("upper limit on inotify") {
        let (place, sysctl) = match side {
            Side::Here => ("this host".to_owned(), "sysctl"),
            Side::There => (host.to_owned(), "sysctl (on it)"),
        };
        return End::Fatal(Failure {
            message: format!("{place} has no more inotify watches for the sync: {why}"),
            hint: format!(
                "raise the limit on {place}: {sysctl} fs.inotify.max_user_watches=1048576 fs.inotify.max_user_instances=1024"
            ),
        });
    }
    End::Retry(format!("the watcher {} ended: {why}", side.name()))
}

/// How unison names the copy it keeps of the losing side: `src/app
/// (conflict_on_DATE).js` (with `#N` when there are several).
fn conflict_copy_name(path: &str) -> String {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), path),
    };
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    format!("{dir}{stem} (conflict_on_DATE){extension}")
}

/// `X.Y.Z` is of minor version `X.Y`.
fn same_minor(version: &str, minor: &str) -> bool {
    version == minor
        || version
            .strip_prefix(minor)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[derive(Default)]
struct Changes {
    whole: bool,
    paths: BTreeSet<OsString>,
}

enum Batch {
    Whole,
    Paths(Vec<OsString>),
}

impl Changes {
    fn is_empty(&self) -> bool {
        !self.whole && self.paths.is_empty()
    }

    fn batch(self) -> Option<Batch> {
        if self.whole {
            return Some(Batch::Whole);
        }
        if self.paths.is_empty() {
            return None;
        }
        let paths = outermost(&self.paths);
        if paths.len() > MOST_PATHS {
            return Some(Batch::Whole);
        }
        Some(Batch::Paths(paths))
    }
}

/// The paths none of whose parents is in the set (unison syncs a
/// directory's path with all that is under it).
fn outermost(paths: &BTreeSet<OsString>) -> Vec<OsString> {
    paths
        .iter()
        .filter(|path| {
            let bytes = path.as_bytes();
            !bytes.iter().enumerate().any(|(at, &b)| {
                b == b'/' && paths.contains(std::ffi::OsStr::from_bytes(&bytes[..at]))
            })
        })
        .cloned()
        .collect()
}

/// `N items transferred, …` from unison's last line, when it did anything.
fn transferred(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.contains("Synchronization complete"))?;
    let counts = line.split_once('(')?.1.trim_end_matches(')');
    if counts.starts_with("0 items transferred, 0 skipped, 0 failed") {
        return None;
    }
    Some(counts.to_owned())
}

/// A line of the supervisor's log (its stderr, a file).
fn say(message: &str) {
    eprintln!("{} {}", utc_time(), crate::untrusted::shown(message));
}

/// `HH:MM:SS` UTC, for the log.
fn utc_time() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!(
        "{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str]) -> BTreeSet<OsString> {
        paths.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_directory_covers_what_is_under_it() {
        let paths = set(&["a", "a-b", "a/c", "a/c/d", "b/x", "b/y", "bb/z"]);
        assert_eq!(outermost(&paths), ["a", "a-b", "b/x", "b/y", "bb/z"]);
    }

    #[test]
    fn too_many_paths_or_the_root_make_a_whole_run() {
        let many = Changes {
            whole: false,
            paths: (0..=MOST_PATHS)
                .map(|i| OsString::from(format!("f{i}")))
                .collect(),
        };
        assert!(matches!(many.batch(), Some(Batch::Whole)));
        let root = Changes {
            whole: true,
            paths: set(&["a"]),
        };
        assert!(matches!(root.batch(), Some(Batch::Whole)));
        assert!(Changes::default().batch().is_none());
    }

    #[test]
    fn a_run_s_own_writes_reported_back_are_echoes_on_their_side_only() {
        let mut echoes = Echoes::default();
        echoes.expect(unison::Written {
            here: vec!["from-there.lock".into()],
            there: vec!["src/a.rs".into()],
        });
        let path = |p: &str| OsString::from(p);
        let echo = |echoes: &Echoes, side, p: &str| echoes.written_over(side, &path(p));
        assert_eq!(
            echo(&echoes, Side::There, "src/a.rs"),
            Some(path("src/a.rs"))
        );
        assert_eq!(
            echo(&echoes, Side::Here, "from-there.lock"),
            Some(path("from-there.lock"))
        );
        // The side that was read, not written: a real edit there.
        assert_eq!(echo(&echoes, Side::Here, "src/a.rs"), None);
        assert_eq!(echo(&echoes, Side::There, "src/b.rs"), None);
        // A directory the run copied: what is under it.
        echoes.expect(unison::Written {
            here: vec![],
            there: vec!["vendor/lib".into()],
        });
        assert_eq!(
            echo(&echoes, Side::There, "vendor/lib/x/y.c"),
            Some(path("vendor/lib"))
        );
        assert_eq!(echo(&echoes, Side::There, "vendor/library"), None);
        echoes.until = Some(Instant::now());
        assert_eq!(echo(&echoes, Side::There, "vendor/lib"), None);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_starts_again() {
        let mut backoff = Backoff::new(Duration::from_millis(500), LINK_RETRY_MOST);
        let waits: Vec<u128> = (0..6).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 4000, 4000]);
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_millis(500));
    }

    #[test]
    fn the_conflict_copy_is_named_as_unison_names_it() {
        assert_eq!(
            conflict_copy_name("src/app.js"),
            "src/app (conflict_on_DATE).js"
        );
        assert_eq!(
            conflict_copy_name("Makefile"),
            "Makefile (conflict_on_DATE)"
        );
        assert_eq!(conflict_copy_name(".env"), ".env (conflict_on_DATE)");
    }

    #[test]
    fn versions_match_by_minor() {
        assert!(same_minor("2.52.1", "2.52"));
        assert!(same_minor("2.52", "2.52"));
        assert!(!same_minor("2.521", "2.52"));
        assert!(!same_minor("2.53.0", "2.52"));
    }

    #[test]
    fn the_summary_is_said_only_when_something_moved() {
        assert_eq!(
            transferred(
                "Synchronization complete at 14:22:26  (2 items transferred, 0 skipped, 0 failed)"
            ),
            Some("2 items transferred, 0 skipped, 0 failed".into())
        );
        assert_eq!(
            transferred(
                "Synchronization complete at 14:22:26  (0 items transferred, 0 skipped, 0 failed)"
            ),
            None
        );
    }
}
