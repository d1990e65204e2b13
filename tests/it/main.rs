//! One integration-test binary (faster to link than one per file).

// Tests watch the engine through its own CLI, apart from dual's runner, as an
// independent witness of what dual did.
#![allow(clippy::disallowed_methods)]

mod boundary;
mod browser;
mod conn;
mod control;
mod differential;
mod engine;
mod errors;
mod outage;
mod parse;
mod proxy;
mod services;
mod shell_boundary;
mod support;
mod truth;
mod verify;
mod workspaces;
