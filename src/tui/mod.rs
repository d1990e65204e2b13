//! `dual` on a terminal: a live browser of repos and their workspaces. Enter
//! launches one if needed and attaches its tmux session (see `tmux`);
//! detaching comes back here. The rows are `dual list`'s, reloaded when an
//! engine reports a container event or dual's state or focus changes, never
//! on a timer of its own.

mod view;

use crate::error::HintExt as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::engine::{Engine, EngineKind};
use crate::ops::status::{WorkspaceStatus, skeleton, status};
use crate::printer::{Message, Printer, Verbosity};
use crate::workspace::{self, Store};

pub use view::draw;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    Filter,
    /// Typing the branch of a new workspace.
    Create(String),
    ConfirmDestroy(String),
    Logs {
        workspace: String,
        lines: Vec<String>,
    },
}

/// What the browser shows and where the cursor is.
pub struct App {
    pub rows: Vec<WorkspaceStatus>,
    /// Index into `visible()`.
    pub selected: usize,
    pub filter: String,
    pub mode: Mode,
    /// The last action's outcome: (is an error, text).
    pub message: Option<(bool, String)>,
    pub focus: Option<String>,
    /// Leave after this key or update (a popup's work is done).
    pub quit: bool,
}

impl App {
    pub fn new(rows: Vec<WorkspaceStatus>) -> App {
        App {
            focus: rows.iter().find(|r| r.focus).map(|r| r.name.clone()),
            rows,
            selected: 0,
            filter: String::new(),
            mode: Mode::Normal,
            message: None,
            quit: false,
        }
    }

    /// Indexes of the rows the filter lets through, grouped by repo.
    pub fn visible(&self) -> Vec<usize> {
        let filter = self.filter.to_lowercase();
        let mut visible: Vec<usize> = (0..self.rows.len())
            .filter(|&i| filter.is_empty() || self.rows[i].name.to_lowercase().contains(&filter))
            .collect();
        visible.sort_by(|&a, &b| {
            (&self.rows[a].repo, &self.rows[a].branch)
                .cmp(&(&self.rows[b].repo, &self.rows[b].branch))
        });
        visible
    }

    pub fn selected_row(&self) -> Option<&WorkspaceStatus> {
        self.visible().get(self.selected).map(|&i| &self.rows[i])
    }

    pub fn selected_repo(&self) -> Option<&str> {
        self.selected_row().map(|row| row.repo.as_str())
    }

    /// New rows, keeping the cursor on the same workspace.
    fn replace_rows(&mut self, rows: Vec<WorkspaceStatus>) {
        let name = self.selected_row().map(|row| row.name.clone());
        self.focus = rows.iter().find(|r| r.focus).map(|r| r.name.clone());
        self.rows = rows;
        let visible = self.visible();
        self.selected = name
            .and_then(|name| visible.iter().position(|&i| self.rows[i].name == name))
            .unwrap_or(0)
            .min(visible.len().saturating_sub(1));
    }

    fn move_by(&mut self, step: isize) {
        let count = self.visible().len();
        if count > 0 {
            self.selected = self.selected.saturating_add_signed(step).min(count - 1);
        }
    }
}

/// Messages from the background to the loop.
enum Update {
    Rows(Vec<WorkspaceStatus>),
    /// A line of an operation's progress (see `Work`).
    Progress(Message),
    Done {
        ok: bool,
        text: String,
        attach: Option<String>,
    },
    /// The last lines of a workspace's sidecars' logs (see `SidecarLogs`).
    SidecarLogs {
        workspace: String,
        lines: Vec<String>,
    },
}

/// An operation the browser runs on a thread of its own, as the command
/// line does (the same `ops`), its progress shown on the message line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    Create {
        branch: String,
        repo: Option<String>,
    },
    /// Launch, then attach its session.
    Launch(String),
    Stop(String),
    Restart(String),
    /// Its sidecars, each after what it depends on.
    RestartSidecars(String),
    Destroy(String),
    Open(String),
}

impl Work {
    /// Runs it, its progress on `printer`; the line to show when it is done.
    fn run(&self, flag: Option<EngineKind>, printer: &Printer) -> anyhow::Result<String> {
        use crate::ops;
        Ok(match self {
            Work::Create { branch, repo } => {
                let created = ops::create::create(branch, repo.as_deref(), None, printer)?;
                let name = created.workspace.name();
                match created.branch_note() {
                    Some(note) => format!("created {name}: {note}"),
                    None => format!("created {name}"),
                }
            }
            Work::Launch(name) => {
                let launched = ops::launch::launch(flag, Some(name), false, printer)?;
                format!("launched {}", launched.workspace)
            }
            Work::Stop(name) => {
                let stopped = ops::stop::stop(flag, Some(name), printer)?;
                format!("stopped {}", stopped.workspace)
            }
            Work::Restart(name) => {
                let state = Store::open_default().load().hinted()?;
                let restarted = ops::services::restart(flag, &state, Some(name), None, printer)?;
                format!(
                    "restarted {} in {}",
                    restarted.services.join(", "),
                    restarted.workspace
                )
            }
            Work::RestartSidecars(name) => {
                let state = Store::open_default().load().hinted()?;
                let workspace = workspace::resolve(&state, Some(name)).hinted()?;
                let config = crate::workspace::config::Config::load(&workspace.path)?;
                let order = crate::workspace::sidecars::start_order(&config.sidecars)
                    .map_err(anyhow::Error::msg)?;
                if order.is_empty() {
                    anyhow::bail!(crate::error::Hinted {
                        message: format!("`{name}` has no sidecars to restart"),
                        hint: "sidecars are `[sidecars.NAME]` tables in .dual.toml, or the compose file's services".into(),
                    });
                }
                for sidecar in &order {
                    ops::services::restart(flag, &state, Some(name), Some(sidecar), printer)?;
                }
                format!("restarted {} in {name}", order.join(", "))
            }
            Work::Destroy(name) => {
                let destroyed = ops::destroy::destroy(
                    flag,
                    Some(name),
                    false,
                    ops::destroy::Consent::Nobody,
                    printer,
                )?;
                format!("destroyed {}", destroyed.workspace)
            }
            Work::Open(name) => match ops::urls::open(Some(name), printer)? {
                ops::urls::Opened::InBrowser(url) => format!("opened {url}"),
                ops::urls::Opened::NoOpener(url) => format!("no browser to open it here: {url}"),
                ops::urls::Opened::Nothing => format!("{name} has no URL"),
            },
        })
    }

    fn attach(&self) -> Option<String> {
        match self {
            Work::Launch(name) => Some(name.clone()),
            _ => None,
        }
    }
}

/// The message line for an operation that failed: what failed and, where
/// its error has one, the hint.
pub fn failure_line(error: &anyhow::Error) -> String {
    // Several lines (the work `destroy` refuses to lose) on the one line
    // there is.
    let one_line = |text: &str| {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let what = one_line(&error.to_string()).replace(":;", ":");
    match crate::error::hint_of(error) {
        Some(hint) => format!("{what} — hint: {}", one_line(&hint)),
        None => what,
    }
}

/// The message line for a line of progress.
fn progress_line(message: Message) -> (bool, String) {
    match message {
        Message::Progress(text) | Message::Out(text) => (false, text),
        Message::Warning(text) => (true, format!("warning: {text}")),
    }
}

pub fn run(flag: Option<EngineKind>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let state = Store::open_default().load().hinted()?;
    // First what dual's own state says (no engine call), at once; the
    // states follow as soon as the engines answer.
    let mut app = App::new(skeleton(&state));
    let mut terminal = ratatui::init();
    end_when_the_terminal_hangs_up();
    terminal.draw(|frame| draw(frame, &app))?;
    let first = started.elapsed();
    let (updates_tx, updates) = mpsc::channel();
    // An engine that does not answer is said on the message line.
    let (warnings_tx, warnings) = mpsc::channel();
    let rows = status(flag, &state, &Printer::channel(warnings_tx));
    let _ = updates_tx.send(Update::Rows(rows));
    for warning in warnings.try_iter() {
        let _ = updates_tx.send(Update::Progress(warning));
    }
    watch_for_changes(flag, updates_tx.clone());
    if let Some(path) = crate::settings::tui_timing_file() {
        // For scripts/bench-discovery: when the first frame was drawn.
        let _ = std::fs::write(path, format!("{}\n", first.as_micros()));
    }
    let result = run_loop(&mut terminal, &mut app, flag, &updates, &updates_tx);
    ratatui::restore();
    result?;
    Ok(ExitCode::SUCCESS)
}

/// A terminal that hung up (its tmux server killed, its window closed)
/// reads as end-of-file forever, and crossterm's reader spins on that inside
/// one call, at a core's worth of CPU, never back in `run_loop`. A thread
/// that looks twice a second ends the browser then: there is no screen left
/// to restore.
fn end_when_the_terminal_hangs_up() {
    std::thread::spawn(|| {
        while std::io::stdin().is_terminal() {
            std::thread::sleep(Duration::from_millis(500));
        }
        std::process::exit(129);
    });
}

fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    flag: Option<EngineKind>,
    updates: &mpsc::Receiver<Update>,
    updates_tx: &mpsc::Sender<Update>,
) -> anyhow::Result<()> {
    let mut dirty = true;
    let mut sidecar_logs: Option<SidecarLogs> = None;
    loop {
        // The sidecars' logs are followed while the logs pane is open.
        let wanted = match &app.mode {
            Mode::Logs { workspace, .. } => Some(workspace.as_str()),
            _ => None,
        };
        if wanted != sidecar_logs.as_ref().map(|f| f.workspace.as_str()) {
            sidecar_logs = wanted.map(|name| SidecarLogs::follow(flag, name, updates_tx.clone()));
        }
        if dirty {
            terminal.draw(|frame| draw(frame, app))?;
            dirty = false;
        }
        if crate::interrupt::requested() || app.quit {
            return Ok(());
        }
        while let Ok(update) = updates.try_recv() {
            dirty = true;
            match update {
                Update::Rows(rows) => app.replace_rows(rows),
                Update::Progress(line) => app.message = Some(progress_line(line)),
                Update::SidecarLogs { workspace, lines } => {
                    if let Some(following) =
                        sidecar_logs.as_mut().filter(|f| f.workspace == workspace)
                    {
                        following.lines = lines;
                    }
                }
                Update::Done { ok, text, attach } => {
                    app.message = Some((!ok, text));
                    if let (true, Some(name)) = (ok, attach) {
                        enter(terminal, app, &name)?;
                    }
                }
            }
        }
        if let Mode::Logs { workspace, lines } = &mut app.mode {
            let sidecars = sidecar_logs.as_ref().map_or(&[][..], |f| &f.lines[..]);
            let fresh = all_log_lines(workspace, log_lines(workspace), sidecars);
            if fresh != *lines {
                *lines = fresh;
                dirty = true;
            }
        }
        // Something new to show: draw it before waiting for keys.
        if dirty || !event::poll(Duration::from_millis(150))? {
            continue;
        }
        match event::read()? {
            Event::Key(key) if key.kind == KeyEventKind::Press => {
                dirty = true;
                if handle_key(terminal, app, key, flag, updates_tx)? {
                    return Ok(());
                }
            }
            Event::Resize(..) => dirty = true,
            _ => {}
        }
    }
}

/// Returns true to quit.
fn handle_key(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    key: KeyEvent,
    flag: Option<EngineKind>,
    updates: &mpsc::Sender<Update>,
) -> anyhow::Result<bool> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Ok(true);
    }
    match app.mode.clone() {
        Mode::Help => app.mode = Mode::Normal,
        Mode::Logs { .. } => match key.code {
            KeyCode::Char('q') => return Ok(true),
            KeyCode::Esc | KeyCode::Char('l') => app.mode = Mode::Normal,
            _ => {}
        },
        Mode::Filter => match key.code {
            KeyCode::Enter | KeyCode::Esc => app.mode = Mode::Normal,
            KeyCode::Backspace => {
                app.filter.pop();
                app.selected = 0;
            }
            KeyCode::Char(c) => {
                app.filter.push(c);
                app.selected = 0;
            }
            _ => {}
        },
        Mode::Create(mut branch) => match key.code {
            KeyCode::Esc => app.mode = Mode::Normal,
            KeyCode::Enter => {
                app.mode = Mode::Normal;
                let repo = app.selected_repo().map(str::to_owned);
                background(flag, Work::Create { branch, repo }, updates);
            }
            KeyCode::Backspace => {
                branch.pop();
                app.mode = Mode::Create(branch);
            }
            KeyCode::Char(c) => {
                branch.push(c);
                app.mode = Mode::Create(branch);
            }
            _ => {}
        },
        Mode::ConfirmDestroy(name) => {
            app.mode = Mode::Normal;
            if key.code == KeyCode::Char('y') {
                app.message = Some((false, format!("destroying {name}…")));
                background(flag, Work::Destroy(name), updates);
            } else {
                app.message = Some((false, "not destroyed".into()));
            }
        }
        Mode::Normal => {
            let selected = app
                .selected_row()
                .map(|row| (row.name.clone(), row.state.is_running()));
            match (key.code, selected) {
                (KeyCode::Char('q') | KeyCode::Esc, _) => return Ok(true),
                (KeyCode::Down | KeyCode::Char('j'), _) => app.move_by(1),
                (KeyCode::Up | KeyCode::Char('k'), _) => app.move_by(-1),
                (KeyCode::Char('?'), _) => app.mode = Mode::Help,
                (KeyCode::Char('/'), _) => app.mode = Mode::Filter,
                (KeyCode::Char('c'), _) => app.mode = Mode::Create(String::new()),
                (KeyCode::Enter, Some((name, true))) => enter(terminal, app, &name)?,
                (KeyCode::Enter, Some((name, _))) => {
                    app.message = Some((false, format!("launching {name}…")));
                    background(flag, Work::Launch(name), updates);
                }
                (KeyCode::Char('s'), Some((name, _))) => {
                    app.message = Some((false, format!("stopping {name}…")));
                    background(flag, Work::Stop(name), updates);
                }
                (KeyCode::Char('r'), Some((name, _))) => {
                    background(flag, Work::Restart(name), updates);
                }
                (KeyCode::Char('R'), Some((name, _))) => {
                    app.message = Some((false, format!("restarting the sidecars of {name}…")));
                    background(flag, Work::RestartSidecars(name), updates);
                }
                (KeyCode::Char('o'), Some((name, _))) => {
                    background(flag, Work::Open(name), updates);
                }
                (KeyCode::Char('f'), Some((name, _))) => match workspace::focus::set(&name) {
                    Ok(()) => {
                        app.focus = Some(name.clone());
                        for row in &mut app.rows {
                            row.focus = row.name == name;
                        }
                        app.message =
                            Some((false, format!("focus: {name}: plain localhost goes to it")));
                    }
                    Err(error) => app.message = Some((true, format!("focus: {error}"))),
                },
                (KeyCode::Char('l'), Some((name, _))) => {
                    app.mode = Mode::Logs {
                        lines: all_log_lines(&name, log_lines(&name), &[]),
                        workspace: name,
                    };
                }
                (KeyCode::Char('d'), Some((name, _))) => app.mode = Mode::ConfirmDestroy(name),
                _ => {}
            }
        }
    }
    Ok(false)
}

/// Runs `work` on a thread: its progress and its outcome come back as
/// updates. No `dual` subprocess: the same operations as the command line.
fn background(flag: Option<EngineKind>, work: Work, updates: &mpsc::Sender<Update>) {
    let updates = updates.clone();
    std::thread::spawn(move || {
        let (lines_tx, lines) = mpsc::channel();
        let relay = {
            let updates = updates.clone();
            std::thread::spawn(move || {
                for line in lines {
                    if updates.send(Update::Progress(line)).is_err() {
                        return;
                    }
                }
            })
        };
        let outcome = work.run(flag, &Printer::channel(lines_tx));
        // Every line of progress before the outcome.
        let _ = relay.join();
        let (ok, text) = match outcome {
            Ok(text) => (true, text),
            Err(error) => (false, failure_line(&error)),
        };
        let _ = updates.send(Update::Done {
            ok,
            text,
            attach: work.attach(),
        });
    });
}

/// Into the workspace: its tmux session, or without tmux a subshell in its
/// clone with routing on; back to the browser when the user leaves it.
fn enter(terminal: &mut ratatui::DefaultTerminal, app: &mut App, name: &str) -> anyhow::Result<()> {
    let state = Store::open_default().load().hinted()?;
    let Some(workspace) = state.workspace(name).cloned() else {
        app.message = Some((true, format!("no workspace `{name}`")));
        return Ok(());
    };
    if crate::tmux::available() {
        if let Err(error) = crate::tmux::ensure_session(&workspace) {
            app.message = Some((true, format!("tmux: {error:#}")));
            return Ok(());
        }
        if crate::tmux::inside() {
            // Switching the client leaves this browser running in its own
            // session; opened in a popup (DUAL_POPUP), it has done its job.
            crate::tmux::attach(name)?;
            app.quit = crate::settings::popup();
            return Ok(());
        }
    }
    ratatui::restore();
    let outcome = if crate::tmux::available() {
        crate::tmux::attach(name)
    } else {
        subshell(&workspace)
    };
    *terminal = ratatui::init();
    terminal.clear()?;
    app.message = Some(match outcome {
        Ok(()) => (false, format!("back from {name}")),
        Err(error) => (true, format!("{error:#}")),
    });
    if let Ok(state) = Store::open_default().load() {
        app.replace_rows(status(None, &state, &Printer::silent()));
    }
    Ok(())
}

fn subshell(workspace: &workspace::Workspace) -> anyhow::Result<()> {
    // The user's shell with dual's rc file after theirs: the shims first.
    let shell = crate::shell::session::interactive_shell()?;
    // The browser's screen is gone meanwhile: a plain line on the terminal.
    Printer::terminal(Verbosity::Normal).progress(format!(
        "dual: a shell in {} (runtime commands run in its container); exit returns to the browser",
        workspace.name()
    ));
    let mut command = crate::process::Cmd::new(&shell.program, &shell.args).dir(&workspace.path);
    for (key, value) in &shell.env {
        command = command.env(key, value);
    }
    command.run_attached(false, |_| {})?;
    Ok(())
}

/// What the logs pane shows: its services' lines, then its sidecars'.
pub fn all_log_lines(name: &str, services: Vec<String>, sidecars: &[String]) -> Vec<String> {
    if services.is_empty() && sidecars.is_empty() {
        return vec![format!(
            "no logs yet: `{name}`'s services and sidecars printed nothing (or it has none)"
        )];
    }
    let mut lines = services;
    lines.extend_from_slice(sidecars);
    lines
}

/// The last lines of every service log of a workspace.
fn log_lines(name: &str) -> Vec<String> {
    let dir = workspace::services::logs_dir(name);
    let mut lines = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return lines;
    };
    let mut logs: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    for log in logs {
        let service = log
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text =
            String::from_utf8_lossy(&workspace::services::read_log_from(&log, 0)).into_owned();
        let all: Vec<&str> = text.lines().collect();
        for line in &all[all.len().saturating_sub(200)..] {
            lines.push(format!("{service} | {line}"));
        }
    }
    lines
}

/// Lines of a sidecar's log the logs pane keeps.
const SIDECAR_LOG_LINES: usize = 200;

/// A workspace's sidecars' logs, followed on a thread of their own: they
/// are the engine's (`logs`, one call per sidecar), too slow to ask on
/// every turn of the loop. Dropped, it stops.
struct SidecarLogs {
    workspace: String,
    lines: Vec<String>,
    /// Its thread ends once this is gone.
    _stop: mpsc::Sender<()>,
}

impl SidecarLogs {
    fn follow(flag: Option<EngineKind>, name: &str, updates: mpsc::Sender<Update>) -> SidecarLogs {
        let (stop_tx, stop) = mpsc::channel::<()>();
        let workspace = name.to_owned();
        std::thread::spawn(move || {
            loop {
                let lines = sidecar_log_lines(flag, &workspace);
                let update = Update::SidecarLogs {
                    workspace: workspace.clone(),
                    lines,
                };
                if updates.send(update).is_err() {
                    return;
                }
                // Once a second, until the pane closes.
                if stop.recv_timeout(Duration::from_secs(1)) != Err(mpsc::RecvTimeoutError::Timeout)
                {
                    return;
                }
            }
        });
        SidecarLogs {
            workspace: name.to_owned(),
            lines: Vec::new(),
            _stop: stop_tx,
        }
    }
}

/// The last lines of each sidecar's log of workspace `name`, marked as a
/// sidecar's (as the table shows them).
fn sidecar_log_lines(flag: Option<EngineKind>, name: &str) -> Vec<String> {
    let Ok(state) = Store::open_default().load() else {
        return Vec::new();
    };
    let Some(workspace) = state.workspace(name) else {
        return Vec::new();
    };
    let config = workspace::config_for_listing(&state, workspace);
    let mut lines = Vec::new();
    for sidecar in config.sidecars.keys() {
        match crate::ops::services::sidecar_log(flag, workspace, sidecar, Some(SIDECAR_LOG_LINES)) {
            Ok(text) => lines.extend(
                text.lines()
                    .map(|line| format!("{sidecar} (sidecar) | {line}")),
            ),
            Err(error) => lines.push(format!(
                "{sidecar} (sidecar) | no log: {}",
                failure_line(&error)
            )),
        }
    }
    lines
}

/// Reloads the rows when something changes: a container event on any
/// engine in use, or dual's state or focus file. Checks the files every
/// half second (two `stat`s); each engine's events arrive as they happen.
fn watch_for_changes(flag: Option<EngineKind>, updates: mpsc::Sender<Update>) {
    /// Reloads the rows each time `changed` fires (several at once: one
    /// reload); whether the browser is still there to take them.
    fn reload_on(
        changed: &mpsc::Receiver<()>,
        flag: Option<EngineKind>,
        updates: &mpsc::Sender<Update>,
    ) -> bool {
        while changed.recv().is_ok() {
            // A launch is several events in a few milliseconds: one reload.
            while changed.recv_timeout(Duration::from_millis(20)).is_ok() {}
            let Ok(state) = Store::open_default().load() else {
                continue;
            };
            if updates
                .send(Update::Rows(status(flag, &state, &Printer::silent())))
                .is_err()
            {
                return false;
            }
        }
        true
    }

    // While a proxy runs, its event stream says what changed (routes, ports,
    // container and service states, dual's state file), as it happens.
    if let Ok(subscription) = crate::proxy::control::subscribe() {
        let updates = updates.clone();
        std::thread::spawn(move || {
            let (changed_tx, changed) = mpsc::channel::<()>();
            std::thread::spawn(move || {
                for _event in subscription {
                    if changed_tx.send(()).is_err() {
                        return;
                    }
                }
            });
            // The stream ended: the proxy stopped. Rows stay as they were;
            // the engines are followed directly from here on.
            if reload_on(&changed, flag, &updates) {
                watch_for_changes(flag, updates);
            }
        });
        return;
    }

    // No proxy: the engines' events, and the state and focus files' stamps.
    let (changed_tx, changed) = mpsc::channel::<()>();
    let owner = workspace::owner_id();
    for kind in EngineKind::chosen_or_installed(flag) {
        let changed_tx = changed_tx.clone();
        let owner = owner.clone();
        std::thread::spawn(move || {
            let filters = crate::engine::labels::workspace_filters(Some(&owner));
            while let Ok(stream) = Engine::new(kind).events(&filters) {
                for _event in stream.flatten() {
                    if changed_tx.send(()).is_err() {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_secs(3));
            }
        });
    }
    let files = [
        crate::paths::state_file(),
        crate::paths::data_dir().join("focus"),
    ];
    std::thread::spawn(move || {
        // Held here, so that `changed` never disconnects (no engine thread
        // would otherwise leave it waking up at once, in a loop).
        let _held = changed_tx;
        let stamp = |files: &[std::path::PathBuf]| -> Vec<Option<SystemTime>> {
            files
                .iter()
                .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
                .collect()
        };
        let mut last = stamp(&files);
        loop {
            let event = changed.recv_timeout(Duration::from_millis(500));
            let now = stamp(&files);
            if event.is_err() && now == last {
                continue;
            }
            last = now;
            // Several events at once (a start is several): one reload.
            while changed.try_recv().is_ok() {}
            let Ok(state) = Store::open_default().load() else {
                continue;
            };
            if updates
                .send(Update::Rows(status(flag, &state, &Printer::silent())))
                .is_err()
            {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests;
