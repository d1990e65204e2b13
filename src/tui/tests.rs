//! The browser's screens, rendered on ratatui's `TestBackend` and compared
//! with snapshots (`src/tui/snapshots/`).

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::{App, Mode, draw};
use crate::ops::status::{ServiceStatus, WorkspaceState, WorkspaceStatus};
use crate::workspace::services::ServiceState;
use crate::workspace::stack::SidecarStatus;

fn row(repo: &str, branch: &str, state: WorkspaceState) -> WorkspaceStatus {
    let name = format!("{repo}-{branch}");
    WorkspaceStatus {
        urls: vec![crate::workspace::WorkspaceUrl {
            host: format!("{name}.localhost"),
            port: 3000,
        }],
        setup_failure: None,
        path: format!("/home/u/dual/{repo}/{branch}"),
        name,
        repo: repo.into(),
        branch: branch.into(),
        state,
        engine: None,
        remote: None,
        services: Vec::new(),
        sidecars: Vec::new(),
        listening: Vec::new(),
        loopback_only: Vec::new(),
        tcp_ports: Vec::new(),
        focus: false,
    }
}

fn several() -> Vec<WorkspaceStatus> {
    let mut web = row("shop", "main", WorkspaceState::Running);
    web.services = vec![
        ServiceStatus {
            name: "web".into(),
            state: ServiceState::Running {
                restarts: 0,
                since: 0,
            },
        },
        ServiceStatus {
            name: "api".into(),
            state: ServiceState::Restarting {
                restarts: 2,
                code: "1".into(),
            },
        },
    ];
    web.sidecars = vec![SidecarStatus {
        name: "db".into(),
        image: "postgres:16".into(),
        state: "running".into(),
        ports: vec![5432],
    }];
    web.listening = vec![3000, 5173, 5432];
    web.tcp_ports = vec![5432];
    web.loopback_only = vec![9229];
    web.focus = true;
    let mut stopped = row("shop", "feat-auth", WorkspaceState::Stopped);
    stopped.services = vec![ServiceStatus {
        name: "web".into(),
        state: ServiceState::Stopped,
    }];
    stopped.sidecars = vec![SidecarStatus {
        name: "db".into(),
        image: "postgres:16".into(),
        state: "exited".into(),
        ports: vec![5432],
    }];
    vec![
        web,
        stopped,
        row("shop", "fix-cart", WorkspaceState::Lazy),
        row("blog", "draft", WorkspaceState::Down),
    ]
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            let line: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
            line.trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn empty() {
    insta::assert_snapshot!("empty", render(&App::new(Vec::new()), 100, 12));
}

#[test]
fn repos_with_lazy_stopped_running_and_down_workspaces() {
    let app = App::new(several());
    let screen = render(&app, 120, 14);
    // Grouped by repo (blog before shop), the first workspace selected.
    assert!(
        screen.find("blog").unwrap() < screen.find("shop").unwrap(),
        "{screen}"
    );
    insta::assert_snapshot!("several", screen);
}

#[test]
fn services_ports_and_the_focus() {
    let mut app = App::new(several());
    app.selected = 2;
    let screen = render(&app, 120, 14);
    assert!(screen.contains("main *"), "{screen}");
    assert!(screen.contains("api restarting (exited 1)"), "{screen}");
    assert!(screen.contains(":3000 :5173 :9229!"), "{screen}");
    assert!(screen.contains("focus: shop-main"), "{screen}");
    insta::assert_snapshot!("focus", screen);
}

#[test]
fn an_error_line() {
    let mut app = App::new(several());
    app.message = Some((
        true,
        "workspace `shop-fix-cart` has work that is not pushed".into(),
    ));
    insta::assert_snapshot!("error", render(&app, 120, 14));
}

#[test]
fn the_help_overlay() {
    let mut app = App::new(several());
    app.mode = Mode::Help;
    let screen = render(&app, 100, 20);
    assert!(
        screen.contains("destroy (asks first; refuses unpushed work)"),
        "{screen}"
    );
    insta::assert_snapshot!("help", screen);
}

#[test]
fn a_narrow_terminal_drops_the_urls_and_keeps_the_rest() {
    let app = App::new(several());
    let screen = render(&app, 60, 14);
    assert!(!screen.contains(".localhost:3000"), "{screen}");
    assert!(screen.contains("running"), "{screen}");
    insta::assert_snapshot!("narrow", screen);
}

#[test]
fn the_filter_keeps_matching_workspaces() {
    let mut app = App::new(several());
    app.filter = "cart".into();
    app.mode = Mode::Filter;
    let screen = render(&app, 100, 12);
    assert!(
        screen.contains("fix-cart") && !screen.contains("feat-auth"),
        "{screen}"
    );
    assert!(screen.contains("filter: cart"), "{screen}");
}

#[test]
fn a_failed_operation_shows_its_error_and_its_hint_on_one_line() {
    let error = crate::error::hinted(crate::workspace::WorkspaceError::UnknownWorkspace(
        "shop-nope".into(),
    ));
    assert_eq!(
        super::failure_line(&error),
        "no workspace `shop-nope` — hint: `dual list` shows every workspace and its name"
    );
}

#[test]
fn a_hint_of_several_lines_shows_on_the_one_message_line() {
    let error = crate::error::hinted(crate::workspace::WorkspaceError::Unsafe {
        name: "shop-a".into(),
        work: vec!["unpushed: 1a2b3c4 wip".into()],
    });
    let line = super::failure_line(&error);
    assert!(!line.contains('\n'), "{line}");
    assert_eq!(
        line,
        "workspace `shop-a` has work that is not pushed: unpushed: 1a2b3c4 wip — hint: push or stash it first, or throw it away with `dual destroy shop-a --force`"
    );
}

#[test]
fn sidecars_show_beside_the_services_with_their_state() {
    let app = App::new(several());
    let screen = render(&app, 120, 14);
    let lines: Vec<&str> = screen.lines().collect();
    // On the line under its services, with its TCP port beside it.
    let main = lines.iter().position(|l| l.contains("main *")).unwrap();
    assert!(
        lines[main].contains("web running, api restarting (exited 1)"),
        "{screen}"
    );
    assert!(lines[main + 1].contains("db (sidecar) running"), "{screen}");
    assert!(lines[main + 1].contains(":5432/tcp"), "{screen}");
    let stopped = lines.iter().position(|l| l.contains("feat-auth")).unwrap();
    assert!(
        lines[stopped + 1].contains("db (sidecar) exited"),
        "{screen}"
    );
}

#[test]
fn a_tcp_port_the_listing_lacks_still_shows() {
    let mut lone = row("shop", "main", WorkspaceState::Running);
    lone.tcp_ports = vec![6379];
    let screen = render(&App::new(vec![lone]), 120, 8);
    assert!(screen.contains(":6379/tcp"), "{screen}");
}

#[test]
fn the_logs_pane_shows_the_sidecars_after_the_services() {
    let lines = super::all_log_lines(
        "shop-main",
        vec!["web | listening on :3000".into()],
        &["db (sidecar) | database system is ready".into()],
    );
    assert_eq!(
        lines,
        [
            "web | listening on :3000",
            "db (sidecar) | database system is ready"
        ]
    );
    let mut app = App::new(several());
    app.mode = Mode::Logs {
        workspace: "shop-main".into(),
        lines,
    };
    let screen = render(&app, 100, 8);
    assert!(
        screen.contains("db (sidecar) | database system is ready"),
        "{screen}"
    );
    // Nothing yet from either: said so, not a blank pane.
    let none = super::all_log_lines("shop-main", Vec::new(), &[]);
    assert!(none[0].starts_with("no logs yet"), "{none:?}");
}

#[test]
fn the_help_offers_restarting_the_sidecars() {
    let mut app = App::new(several());
    app.mode = Mode::Help;
    let screen = render(&app, 100, 20);
    assert!(screen.contains("R  restart its sidecars"), "{screen}");
}
