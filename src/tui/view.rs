//! Drawing the workspace browser: a pure function of `App`, so that each
//! state renders the same in tests (ratatui's `TestBackend`) as on a terminal.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Wrap};

use super::{App, Mode};
use crate::ops::status::{WorkspaceState, WorkspaceStatus};

/// Below this width the URL column gives way.
const NARROW: u16 = 80;

pub const KEYS: &[(&str, &str)] = &[
    ("↑↓ j k", "move"),
    ("Enter", "launch if needed, then its tmux session"),
    ("o", "open its first URL"),
    ("s", "stop"),
    ("r", "restart its services"),
    ("R", "restart its sidecars"),
    ("l", "its logs and its sidecars', following"),
    ("f", "focus: plain localhost goes to it"),
    ("c", "create a workspace (asks for the branch)"),
    ("d", "destroy (asks first; refuses unpushed work)"),
    ("/", "filter"),
    ("?", "this help"),
    ("q Esc", "quit"),
];

pub fn draw(frame: &mut Frame, app: &App) {
    let [body, status, footer] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    match &app.mode {
        Mode::Logs { workspace, lines } => draw_logs(frame, body, workspace, lines),
        _ => draw_table(frame, body, app),
    }
    frame.render_widget(status_line(app), status);
    frame.render_widget(footer_line(app, footer.width), footer);
    if matches!(app.mode, Mode::Help) {
        draw_help(frame, body);
    }
}

fn state_style(state: &WorkspaceState) -> Style {
    match state {
        WorkspaceState::Running => Style::default().fg(Color::Green),
        WorkspaceState::Down | WorkspaceState::Unknown | WorkspaceState::SetupFailed { .. } => {
            Style::default().fg(Color::Red)
        }
        WorkspaceState::Stopped | WorkspaceState::SettingUp => Style::default().fg(Color::Yellow),
        WorkspaceState::Lazy | WorkspaceState::Checking => Style::default().fg(Color::DarkGray),
    }
}

/// The state in the browser's narrow column (the status line and `dual
/// list` give the whole text).
fn state_text(state: &WorkspaceState) -> String {
    match state {
        WorkspaceState::SettingUp => "setup…".to_owned(),
        WorkspaceState::SetupFailed { .. } => "setup ✗".to_owned(),
        other => other.to_string(),
    }
}

/// Its services, and on a line of their own its sidecars (a database, a
/// cache) with the engine's word for their containers: both on one line
/// would not fit the column.
fn services_lines(listed: &WorkspaceStatus) -> Vec<String> {
    let services: Vec<String> = listed
        .services
        .iter()
        .map(|s| format!("{} {}", s.name, s.state))
        .collect();
    let sidecars: Vec<String> = listed
        .sidecars
        .iter()
        .map(|s| format!("{} (sidecar) {}", s.name, s.state))
        .collect();
    match (services.is_empty(), sidecars.is_empty()) {
        (_, true) => vec![services.join(", ")],
        (true, false) => vec![sidecars.join(", ")],
        (false, false) => vec![services.join(", "), sidecars.join(", ")],
    }
}

/// Its ports: those with a URL (and those on 127.0.0.1 only, marked `!`),
/// then those that do not speak HTTP (a database: no URL, marked `/tcp`),
/// on a second line where the row has one (its sidecars').
fn ports_lines(listed: &WorkspaceStatus, two: bool) -> Vec<String> {
    let mut web: Vec<String> = listed
        .listening
        .iter()
        .filter(|p| !listed.tcp_ports.contains(p))
        .map(|p| format!(":{p}"))
        .collect();
    web.extend(listed.loopback_only.iter().map(|p| format!(":{p}!")));
    let tcp: Vec<String> = listed
        .tcp_ports
        .iter()
        .map(|p| format!(":{p}/tcp"))
        .collect();
    if two {
        vec![web.join(" "), tcp.join(" ")]
    } else {
        web.extend(tcp);
        vec![web.join(" ")]
    }
}

fn draw_table(frame: &mut Frame, area: Rect, app: &App) {
    let narrow = area.width < NARROW;
    let visible = app.visible();
    if visible.is_empty() {
        let text = if app.rows.is_empty() {
            "No workspaces yet.\n\nIn a git repository: `dual add`, then press c here (or `dual create BRANCH`)."
        } else {
            "No workspace matches the filter."
        };
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .block(Block::default().borders(Borders::ALL).title(" dual ")),
            area,
        );
        return;
    }
    let mut rows = Vec::new();
    let mut selected_row = None;
    let mut repo: Option<&str> = None;
    for (position, &index) in visible.iter().enumerate() {
        let listed = &app.rows[index];
        if repo != Some(listed.repo.as_str()) {
            repo = Some(listed.repo.as_str());
            rows.push(Row::new(vec![Line::from(Span::styled(
                listed.repo.clone(),
                Style::default().add_modifier(Modifier::BOLD),
            ))]));
        }
        if position == app.selected {
            selected_row = Some(rows.len());
        }
        let mut name = format!("  {}", listed.branch);
        if listed.focus {
            name.push_str(" *");
        }
        let services = services_lines(listed);
        let height = services.len();
        let text =
            |lines: Vec<String>| Text::from(lines.into_iter().map(Line::from).collect::<Vec<_>>());
        let mut cells = vec![
            Text::from(name),
            Text::from(Span::styled(
                state_text(&listed.state),
                state_style(&listed.state),
            )),
            text(services),
            text(ports_lines(listed, height > 1)),
        ];
        if !narrow {
            // The scheme says nothing here; the room is better spent on the name.
            let url = listed
                .urls
                .first()
                .map_or(String::new(), |u| format!("{}:{}", u.host, u.port));
            cells.push(Text::from(url));
        }
        rows.push(Row::new(cells).height(height as u16));
    }
    let mut widths = vec![
        Constraint::Fill(2),
        Constraint::Length(8),
        Constraint::Fill(4),
        Constraint::Fill(2),
    ];
    let mut header = vec!["WORKSPACE", "STATE", "SERVICES", "PORTS"];
    if !narrow {
        widths.push(Constraint::Fill(3));
        header.push("URL");
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::DIM)))
        .block(Block::default().borders(Borders::ALL).title(" dual "))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("› ")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always);
    let mut state = ratatui::widgets::TableState::default();
    state.select(selected_row);
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_logs(frame: &mut Frame, area: Rect, workspace: &str, lines: &[String]) {
    let height = area.height.saturating_sub(2) as usize;
    let start = lines.len().saturating_sub(height);
    let text: Vec<Line> = lines[start..]
        .iter()
        .map(|l| Line::from(l.as_str()))
        .collect();
    frame.render_widget(
        Paragraph::new(text).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" logs of {workspace} (following; Esc returns) ")),
        ),
        area,
    );
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let width = area.width.min(58);
    let height = (KEYS.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{key:>7}  "),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        popup,
    );
}

fn status_line(app: &App) -> Paragraph<'_> {
    let line = match &app.mode {
        Mode::Filter => Line::from(format!("filter: {}▏", app.filter)),
        Mode::Create(branch) => Line::from(format!(
            "create a workspace of {} for branch: {branch}▏  (Enter creates, Esc cancels)",
            app.selected_repo().unwrap_or("the repo")
        )),
        Mode::ConfirmDestroy(name) => Line::from(Span::styled(
            format!(
                "destroy {name}: its container, volumes and clone? y to confirm, any other key cancels"
            ),
            Style::default().fg(Color::Red),
        )),
        _ => match &app.message {
            Some((true, text)) => {
                Line::from(Span::styled(text.clone(), Style::default().fg(Color::Red)))
            }
            Some((false, text)) => Line::from(text.clone()),
            None => match &app.focus {
                Some(focus) => Line::from(format!("focus: {focus}")),
                None => Line::from(""),
            },
        },
    };
    Paragraph::new(line)
}

/// The keys that fit, most used first; `?` and `q` always.
const FOOTER: &[&str] = &[
    "Enter attach",
    "s stop",
    "f focus",
    "l logs",
    "o open",
    "r restart",
    "c create",
    "d destroy",
    "/ filter",
];

fn footer_line(app: &App, width: u16) -> Paragraph<'_> {
    let text = if matches!(app.mode, Mode::Logs { .. }) {
        "Esc back  q quit".to_owned()
    } else {
        let tail = "? help  q quit";
        let mut text = String::new();
        for key in FOOTER {
            if text.len() + key.len() + 2 + tail.len() > usize::from(width) {
                break;
            }
            text.push_str(key);
            text.push_str("  ");
        }
        text + tail
    };
    Paragraph::new(Line::from(Span::styled(
        text,
        Style::default().add_modifier(Modifier::DIM),
    )))
}
