//! Debug logging to stderr, switched on by `-v` or `DUAL_LOG=debug`: enough to
//! see every external command dual runs, without pulling in a logging framework.

use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

pub fn debug(message: &str) {
    if verbose() {
        eprintln!("[dual] {message}");
    }
}
