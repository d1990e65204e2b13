//! The command line: argument definitions, and the one place that turns a
//! command's result into output and an exit status.
//!
//! Exit statuses: 0 success; 1 the command failed (a failed check, an engine
//! error); 2 bad usage (from clap); 130 interrupted by Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::engine::EngineKind;
use crate::printer::{Printer, Verbosity};

#[derive(Debug, Parser)]
#[command(
    name = "dual",
    version,
    about = "One clone and one container per branch, each with its own ports"
)]
pub struct Cli {
    /// Container engine to drive [default: $DUAL_ENGINE, else the first of docker and podman that answers]
    #[arg(long, global = true, value_enum)]
    pub engine: Option<EngineKind>,

    /// The docker context to use, on a workspace's first launch (as `docker --context`; default: DOCKER_HOST, else docker's current context)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The podman connection to use, on a workspace's first launch (as `podman --connection`; default: CONTAINER_HOST, else this host's podman)
    #[arg(long, global = true, value_name = "NAME")]
    pub connection: Option<String>,

    /// Print every external command dual runs (also DUAL_LOG=debug)
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Without one: the workspace browser on a terminal, else `dual list`
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register a git repository (default: the one around the current directory)
    Add {
        /// A local path or a URL
        source: Option<String>,
        /// The repo's name in workspace names and URLs [default: from the path]
        #[arg(long)]
        name: Option<String>,
    },
    /// Write what dual guesses for a repo with no config into its .dual.toml, to review and commit
    Init {
        /// The repo's directory [default: the repo around the current directory]
        dir: Option<PathBuf>,
        /// Replace an existing .dual.toml
        #[arg(long)]
        force: bool,
        /// Only print what it would write
        #[arg(long)]
        print: bool,
    },
    /// Registered repos: list them, or unregister one
    Repo {
        #[command(subcommand)]
        action: RepoAction,
    },
    /// Declare a workspace for BRANCH (no clone or container yet)
    Create {
        branch: String,
        /// The repo [default: the one around the current directory, or the only one]
        #[arg(long)]
        repo: Option<String>,
        /// The workspace whose sidecars' data (databases) this one starts with a copy of [default: `data_from` in .dual.toml, else the default branch's]
        #[arg(long, value_name = "WORKSPACE")]
        from: Option<String>,
    },
    /// Clone and start a workspace [default: the one around the current directory]
    Launch {
        workspace: Option<String>,
        /// Make its container again even when .dual.toml did not change (clone and volumes kept)
        #[arg(long)]
        recreate: bool,
        /// Launch without the devcontainer.json's `initializeCommand`, which would run on this host (this launch only)
        #[arg(long)]
        skip_initialize_command: bool,
    },
    /// Every workspace, its state and its URLs
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run a command in the container of the workspace around the current directory
    Run {
        /// The workspace [default: the one around the current directory]
        #[arg(short, long)]
        workspace: Option<String>,
        /// The command and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Serve dual's tools to an agent over MCP (JSON-RPC on stdin and
    /// stdout): workspaces, commands inside them, logs, pages
    Mcp,
    /// Print shell code that routes runtime commands into workspace containers
    ShellInit { shell: Option<crate::shell::Shell> },
    /// What a workspace's services printed (all of them, or SERVICE)
    Logs {
        /// The workspace [default: the one around the current directory]
        workspace: Option<String>,
        service: Option<String>,
        /// Keep printing what they print
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (of each service)
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// Restart a workspace's services (all of them, or SERVICE)
    Restart {
        /// The workspace [default: the one around the current directory]
        workspace: Option<String>,
        service: Option<String>,
    },
    /// Send plain http://localhost:PORT to a workspace (or say which has the focus)
    Focus {
        workspace: Option<String>,
        /// No workspace in focus: plain localhost gets a page listing them
        #[arg(long, conflicts_with = "workspace")]
        clear: bool,
    },
    /// Forward a port on 127.0.0.1 to a workspace container's PORT (raw TCP: Postgres, Redis, …)
    #[command(
        override_usage = "dual forward [WORKSPACE] PORT [--local N]\n       dual forward --list\n       dual forward --stop [LOCAL_PORT|WORKSPACE]"
    )]
    Forward(crate::commands::forward::Args),
    /// Attach its tmux session (created in the clone, with runtime commands routed)
    Attach { workspace: Option<String> },
    /// Stop a workspace's container (the clone stays)
    Stop { workspace: Option<String> },
    /// Remove a workspace: its sidecars, its container, its volumes (named, with their sizes), its kept images and its clone
    Destroy {
        workspace: Option<String>,
        /// Also when the clone has uncommitted or unpushed work, and delete sidecars' data without asking
        #[arg(long)]
        force: bool,
    },
    /// Copy the repo's shared files (`shared_files` in .dual.toml) into workspaces
    Sync { workspace: Option<String> },
    /// Find and remove what dual left behind
    Prune {
        /// Remove without asking
        #[arg(long)]
        yes: bool,
    },
    /// Rebuild a lost or corrupt state file from the engine's labels and the clones on disk
    Recover,
    /// The reverse proxy: in the foreground, or start|stop|status in the background
    Proxy {
        #[command(subcommand)]
        action: Option<ProxyAction>,
    },
    /// The URLs of a workspace (default: the one around the current directory, else all)
    Urls {
        workspace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Open a workspace's first URL in the browser (prints it where there is none)
    Open { workspace: Option<String> },
    /// Check that this host can run dual, and say what to fix
    Verify(VerifyArgs),
    /// The small dev server that tests and `verify` run inside containers
    #[command(hide = true)]
    TestServer {
        #[arg(long)]
        name: String,
        #[arg(long = "port", default_values_t = [3000u16])]
        ports: Vec<u16>,
        /// Keep the bytes read from every connection for `GET /received`
        #[arg(long)]
        record: bool,
    },
    /// Fixes a bridge's MAC address; run by dual inside podman's rootless
    /// network namespace (see engine::bridge)
    #[command(hide = true)]
    PinBridge { interface: String },
    /// A workspace's sync with its copy on a remote engine's host (see
    /// remote::sync): `run` is the supervisor `launch` starts detached; the
    /// others drive it by hand (tests, troubleshooting)
    #[command(hide = true)]
    RemoteSync {
        #[command(subcommand)]
        action: RemoteSyncAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemoteSyncAction {
    /// The supervisor, in the foreground
    Run { workspace: String },
    /// Start it in the background for the pairs of a JSON spec: `{"ssh":
    /// "ssh://user@host", "identity": null, "pairs": [{"local", "remote",
    /// "direction": "Both"|"ToRemote"|"FromRemote", "ignore": [..]}]}`
    Start {
        workspace: String,
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
    },
    /// Wait for its first copy
    Wait {
        workspace: String,
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        timeout: u64,
    },
    /// Stop it and everything it started, here and there
    Stop { workspace: String },
    /// Whether it runs (exit status 3 when not)
    Status { workspace: String },
}

#[derive(Debug, Subcommand)]
pub enum RepoAction {
    /// Every registered repo, its source and its default branch
    List,
    /// Unregister a repo (refused while it has workspaces; its source stays as it is)
    Remove { name: String },
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ProxyAction {
    /// Start it in the background (no-op when it runs)
    Start,
    /// Stop the background proxy
    Stop,
    /// Whether it runs (exit status 3 when not)
    Status,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,

    /// Also run the full isolation probe suite (many containers, failure modes, figures)
    #[arg(long)]
    pub probes: bool,

    /// Containers the probe suite starts at once (with --probes)
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u16).range(2..=500))]
    pub count: u16,

    /// Write a markdown report of the run to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// A port the proxy will need on 127.0.0.1 and ::1 (repeatable) [default:
    /// those the registered repos declare and the workspaces listen on]
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
}

/// The word the shims that `shell-init` writes run dual with: `dual shim
/// NAME ARGS…`.
pub const SHIM: &str = "shim";

pub fn main() -> ExitCode {
    let debug = crate::settings::debug_log();
    // A shim's arguments are the routed command's, every one of them: `npm
    // -v`, `curl --help`, `make -- x` must reach npm, curl and make as
    // typed. So `dual shim` is dispatched before clap could read dual's own
    // options (`-v`, `--engine`, `--help`, `--`) out of them; its engine
    // comes from the workspace or `DUAL_ENGINE`, its verbosity from
    // `DUAL_LOG`.
    let mut argv = std::env::args_os().skip(1);
    if argv.next().is_some_and(|first| first == SHIM) {
        crate::log::set_verbose(debug);
        install_interrupts();
        let args: Vec<std::ffi::OsString> = argv.collect();
        return finish(crate::commands::shell_init::shim_main(&args));
    }
    let cli = Cli::parse();
    crate::log::set_verbose(cli.verbose || debug);
    crate::engine::endpoint::choose(cli.context.clone(), cli.connection.clone());
    // The test server stands in for a dev server, which SIGTERM ends.
    if !matches!(cli.command, Some(Command::TestServer { .. })) {
        install_interrupts();
    }
    finish(run(cli))
}

fn install_interrupts() {
    if let Err(error) = crate::interrupt::install() {
        crate::log::debug(&format!("could not install signal handlers: {error}"));
    }
}

/// The one place a command's result becomes output and an exit status.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            eprint!("{}", crate::error::render(&error));
            ExitCode::from(crate::error::exit_code(&error))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    use crate::commands as c;
    let engine = cli.engine;
    // Decided once, here: every command reports its work through it.
    let printer = Printer::terminal(if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    });
    let Some(command) = cli.command else {
        use std::io::IsTerminal;
        // An agent or a pipe gets the list; a person, the browser.
        if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
            return crate::tui::run(engine);
        }
        return c::list::run(engine, false, &printer);
    };
    match command {
        Command::Add { source, name } => c::add::run(source.as_deref(), name.as_deref(), &printer),
        Command::Init { dir, force, print } => c::init::run(dir.as_deref(), force, print, &printer),
        Command::Repo {
            action: RepoAction::Remove { name },
        } => c::add::remove(&name, &printer),
        Command::Repo {
            action: RepoAction::List,
        } => c::add::list(),
        Command::Create { branch, repo, from } => {
            c::create::run(&branch, repo.as_deref(), from.as_deref(), &printer)
        }
        Command::Launch {
            workspace,
            recreate,
            skip_initialize_command,
        } => {
            let options = crate::ops::launch::LaunchOptions {
                recreate,
                skip_initialize_command,
            };
            c::launch::run(engine, workspace.as_deref(), options, &printer)
        }
        Command::List { json } => c::list::run(engine, json, &printer),
        Command::Run { workspace, command } => c::run::run(engine, workspace.as_deref(), &command),
        Command::ShellInit { shell } => c::shell_init::run(shell),
        Command::Mcp => crate::mcp::serve(engine),
        Command::Stop { workspace } => c::stop::run(engine, workspace.as_deref(), &printer),
        Command::Focus { workspace, clear } => c::focus::run(workspace.as_deref(), clear),
        Command::Forward(args) => c::forward::run(engine, &args, &printer).or_else(|error| {
            let usage = error.downcast::<c::forward::Usage>()?;
            use clap::CommandFactory as _;
            let cli = Cli::command();
            let forward = cli.find_subcommand("forward").cloned().unwrap_or(cli);
            let _ = forward
                .bin_name("dual forward")
                .error(usage.kind, usage.message)
                .print();
            Ok(ExitCode::from(2))
        }),
        Command::Attach { workspace } => c::attach::run(engine, workspace.as_deref(), &printer),
        Command::Logs {
            workspace,
            service,
            follow,
            tail,
        } => c::services::logs(
            engine,
            workspace.as_deref(),
            service.as_deref(),
            follow,
            tail,
        ),
        Command::Restart { workspace, service } => {
            c::services::restart(engine, workspace.as_deref(), service.as_deref(), &printer)
        }
        Command::Destroy { workspace, force } => {
            c::destroy::run(engine, workspace.as_deref(), force, &printer)
        }
        Command::Sync { workspace } => c::sync::run(workspace.as_deref(), &printer),
        Command::Prune { yes } => c::prune::run(engine, yes, &printer),
        Command::Recover => c::recover::run(engine, &printer),
        Command::Proxy { action } => c::proxy::run(engine, action),
        Command::Urls { workspace, json } => c::urls::run(workspace.as_deref(), json, &printer),
        Command::Open { workspace } => c::urls::open(workspace.as_deref(), &printer),
        Command::Verify(args) => c::verify::run(engine, &args),
        Command::TestServer {
            name,
            ports,
            record,
        } => {
            crate::testserver::run(name, ports, record)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RemoteSync { action } => c::remote_sync::run(action),
        Command::PinBridge { interface } => {
            let pinned = crate::engine::bridge::pin_mac(&interface)?;
            crate::log::debug(&format!("bridge {interface}: {pinned:?}"));
            Ok(ExitCode::SUCCESS)
        }
    }
}
