//! dual: one full clone and one container per branch workspace, so every
//! workspace's dev server can bind its default port. See README.md.

pub mod cli;
pub mod commands;
pub mod confined;
pub mod engine;
pub mod error;
pub mod files;
pub mod interrupt;
pub mod log;
pub mod mcp;
pub mod ops;
pub mod parallel;
pub mod paths;
pub mod printer;
pub mod process;
pub mod proxy;
pub mod remote;
pub mod settings;
pub mod shell;
pub mod sockets;
pub mod testserver;
pub mod tmux;
pub mod tui;
pub mod untrusted;
pub mod verify;
pub mod workspace;
