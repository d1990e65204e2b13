//! The `run`s going: how many (bounded), and whether they must end now
//! (the client is gone, or dual was told to stop).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Runs going at once, at most: each holds a thread, an engine command on
/// the host and up to twice `OUTPUT_MAX` of memory, and a client told by
/// a hostile page to start thousands would take them all.
pub const MAX_RUNS: usize = 16;

#[derive(Default)]
pub struct Runs {
    closing: AtomicBool,
    going: AtomicUsize,
}

impl Runs {
    /// Every run ends now (each cleans up inside its container).
    pub fn end_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    pub fn going(&self) -> usize {
        self.going.load(Ordering::SeqCst)
    }

    /// A run's place, unless `MAX_RUNS` are going.
    pub fn count(self: &Arc<Self>) -> Option<Counted> {
        self.going
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |going| {
                (going < MAX_RUNS).then_some(going + 1)
            })
            .ok()?;
        Some(Counted(Arc::clone(self)))
    }
}

/// A run's count, for as long as its thread holds it.
pub struct Counted(Arc<Runs>);

impl Counted {
    pub fn closing(&self) -> bool {
        self.0.closing()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.going.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_going_at_once_are_bounded() {
        let runs = Arc::new(Runs::default());
        let counts: Vec<Counted> = (0..MAX_RUNS).map(|_| runs.count().expect("room")).collect();
        assert!(runs.count().is_none());
        drop(counts);
        assert_eq!(runs.going(), 0);
        assert!(runs.count().is_some());
    }
}
