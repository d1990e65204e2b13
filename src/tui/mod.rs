//! `dual` on a terminal: a live browser of repos and their workspaces. Enter
//! launches one if needed and attaches its tmux session (see `tmux`);
//! detaching comes back here. The rows are `dual list`'s, reloaded when an
//! engine reports a container event or dual's state or focus changes, never
//! on a timer of its own.

mod view;

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::commands::list::Listed;
use crate::engine::{Engine, EngineKind};
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
    pub rows: Vec<Listed>,
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
    pub fn new(rows: Vec<Listed>) -> App {
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

    pub fn selected_row(&self) -> Option<&Listed> {
        self.visible().get(self.selected).map(|&i| &self.rows[i])
    }

    pub fn selected_repo(&self) -> Option<&str> {
        self.selected_row().map(|row| row.repo.as_str())
    }

    /// New rows, keeping the cursor on the same workspace.
    fn replace_rows(&mut self, rows: Vec<Listed>) {
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

/// The rows as dual's state file has them, states not yet known.
fn skeleton(state: &workspace::State) -> Vec<Listed> {
    let focus = workspace::focus::read();
    state
        .workspaces
        .iter()
        .map(|w| Listed {
            name: w.name(),
            repo: w.repo.clone(),
            branch: w.branch.clone(),
            state: if w.path.exists() { "…" } else { "lazy" },
            path: w.path.display().to_string(),
            urls: workspace::urls(w, &workspace::declared_ports(state, w)),
            engine: w.engine,
            services: Vec::new(),
            listening: Vec::new(),
            loopback_only: Vec::new(),
            focus: focus.as_deref() == Some(w.name().as_str()),
        })
        .collect()
}

/// Messages from the background to the loop.
enum Update {
    Rows(Vec<Listed>),
    Done {
        ok: bool,
        text: String,
        attach: Option<String>,
    },
}

pub fn run(flag: Option<EngineKind>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let state = Store::open_default().load()?;
    // First what dual's own state says (no engine call), at once; the
    // states follow as soon as the engines answer.
    let mut app = App::new(skeleton(&state));
    let mut terminal = ratatui::init();
    terminal.draw(|frame| draw(frame, &app))?;
    let first = started.elapsed();
    let (updates_tx, updates) = mpsc::channel();
    let _ = updates_tx.send(Update::Rows(crate::commands::list::list(flag, &state)));
    watch_for_changes(flag, updates_tx.clone());
    if let Some(path) = std::env::var_os("DUAL_TUI_TIMING") {
        // For scripts/bench-discovery: when the first frame was drawn.
        let _ = std::fs::write(path, format!("{}\n", first.as_micros()));
    }
    let result = run_loop(&mut terminal, &mut app, flag, &updates, &updates_tx);
    ratatui::restore();
    result?;
    Ok(ExitCode::SUCCESS)
}

fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    flag: Option<EngineKind>,
    updates: &mpsc::Receiver<Update>,
    updates_tx: &mpsc::Sender<Update>,
) -> anyhow::Result<()> {
    let mut dirty = true;
    loop {
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
                Update::Done { ok, text, attach } => {
                    app.message = Some((!ok, text));
                    if let (true, Some(name)) = (ok, attach) {
                        enter(terminal, app, &name)?;
                    }
                }
            }
        }
        if let Mode::Logs { workspace, lines } = &mut app.mode {
            let fresh = log_lines(workspace);
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
                let mut args = vec!["create".to_owned(), branch];
                if let Some(repo) = app.selected_repo() {
                    args.extend(["--repo".to_owned(), repo.to_owned()]);
                }
                background(flag, args, None, "created", updates);
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
                crate::tmux::end_session(&name);
                background(
                    flag,
                    vec!["destroy".into(), name],
                    None,
                    "destroyed",
                    updates,
                );
            } else {
                app.message = Some((false, "not destroyed".into()));
            }
        }
        Mode::Normal => {
            let selected = app.selected_row().map(|row| (row.name.clone(), row.state));
            match (key.code, selected) {
                (KeyCode::Char('q') | KeyCode::Esc, _) => return Ok(true),
                (KeyCode::Down | KeyCode::Char('j'), _) => app.move_by(1),
                (KeyCode::Up | KeyCode::Char('k'), _) => app.move_by(-1),
                (KeyCode::Char('?'), _) => app.mode = Mode::Help,
                (KeyCode::Char('/'), _) => app.mode = Mode::Filter,
                (KeyCode::Char('c'), _) => app.mode = Mode::Create(String::new()),
                (KeyCode::Enter, Some((name, "running"))) => enter(terminal, app, &name)?,
                (KeyCode::Enter, Some((name, _))) => {
                    app.message = Some((false, format!("launching {name}…")));
                    background(
                        flag,
                        vec!["launch".into(), name.clone()],
                        Some(name),
                        "launched",
                        updates,
                    );
                }
                (KeyCode::Char('s'), Some((name, _))) => {
                    crate::tmux::end_session(&name);
                    background(flag, vec!["stop".into(), name], None, "stopped", updates);
                }
                (KeyCode::Char('r'), Some((name, _))) => {
                    background(
                        flag,
                        vec!["restart".into(), name],
                        None,
                        "restarted",
                        updates,
                    );
                }
                (KeyCode::Char('o'), Some((name, _))) => {
                    background(flag, vec!["open".into(), name], None, "opened", updates);
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
                        lines: log_lines(&name),
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

/// Runs `dual ARGS` on a thread (its output captured, never on the
/// screen); its outcome comes back as an update.
fn background(
    flag: Option<EngineKind>,
    args: Vec<String>,
    attach: Option<String>,
    done: &'static str,
    updates: &mpsc::Sender<Update>,
) {
    let updates = updates.clone();
    std::thread::spawn(move || {
        let mut argv: Vec<String> = Vec::new();
        if let Some(kind) = flag {
            argv.extend(["--engine".into(), kind.program().into()]);
        }
        argv.extend(args.iter().cloned());
        let dual = std::env::current_exe().unwrap_or_else(|_| "dual".into());
        let outcome = crate::process::Cmd::new(dual, &argv)
            .timeout(Duration::from_secs(600))
            .output();
        let (ok, text) = match outcome {
            Ok(output) if output.status.success() => {
                (true, format!("{done} {}", args[1..].join(" ")))
            }
            Ok(output) => (
                false,
                output
                    .stderr
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("failed")
                    .trim_start_matches("error: ")
                    .to_owned(),
            ),
            Err(error) => (false, error.to_string()),
        };
        let _ = updates.send(Update::Done { ok, text, attach });
    });
}

/// Into the workspace: its tmux session, or without tmux a subshell in its
/// clone with routing on; back to the browser when the user leaves it.
fn enter(terminal: &mut ratatui::DefaultTerminal, app: &mut App, name: &str) -> anyhow::Result<()> {
    let state = Store::open_default().load()?;
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
            app.quit = std::env::var_os("DUAL_POPUP").is_some();
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
        app.replace_rows(crate::commands::list::list(None, &state));
    }
    Ok(())
}

fn subshell(workspace: &workspace::Workspace) -> anyhow::Result<()> {
    // The user's shell with dual's rc file after theirs: the shims first.
    let shell = crate::shell::session::interactive_shell()?;
    eprintln!(
        "dual: a shell in {} (runtime commands run in its container); exit returns to the browser",
        workspace.name()
    );
    let mut command = crate::process::Cmd::new(&shell.program, &shell.args).dir(&workspace.path);
    for (key, value) in &shell.env {
        command = command.env(key, value);
    }
    command.run_attached(false, |_| {})?;
    Ok(())
}

/// The last lines of every service log of a workspace.
fn log_lines(name: &str) -> Vec<String> {
    let dir = workspace::services::logs_dir(name);
    let mut lines = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![format!("no logs: `{name}` has no services")];
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
                .send(Update::Rows(crate::commands::list::list(flag, &state)))
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
                .send(Update::Rows(crate::commands::list::list(flag, &state)))
                .is_err()
            {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests;
