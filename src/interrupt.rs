//! Ctrl-C, SIGTERM and SIGHUP set one flag instead of killing dual outright, so
//! that commands holding containers (verify, the probes) can remove them first.
//! A second signal exits at once, for a user who really wants out.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// The last signal received and not yet taken, for commands that pass
/// signals on (`dual run`); 0 when none.
static PENDING: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

fn pending() -> &'static Arc<AtomicUsize> {
    PENDING.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Installs the handlers; call once, early in `main`.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // Order matters: the conditional exit sees the flag as it was before this signal.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(flag()))?;
        signal_hook::flag::register(signal, Arc::clone(flag()))?;
        signal_hook::flag::register_usize(signal, Arc::clone(pending()), signal as usize)?;
    }
    Ok(())
}

/// Takes the last signal received, if any, and clears the interrupt flag:
/// the signal has been dealt with by passing it on.
pub fn take_signal() -> Option<i32> {
    let signal = pending().swap(0, Ordering::SeqCst);
    if signal == 0 {
        return None;
    }
    flag().store(false, Ordering::SeqCst);
    i32::try_from(signal).ok()
}

/// True once the user asked dual to stop.
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}
