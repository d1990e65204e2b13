//! A bound on the work of matching a build context's paths against its
//! `.dockerignore` and its Dockerfile's `COPY`/`ADD` sources. Both are the
//! repo's: thousands of patterns of many `*`, over a context of thousands
//! of files, kept the host's CPU busy for as long as the repo liked (8,000
//! patterns over 3,000 files: more than twelve minutes, a core, before it
//! was killed). Past the bound the build is refused, naming why.

/// The steps of matching one walk of a context may take (a cell of the
/// `.dockerignore` table, a step of a source's match): seconds of work. A
/// `.dockerignore` of a few dozen lines over the largest context dual
/// builds takes a small part of it.
pub(super) const MAX_MATCH_STEPS: u64 = 10_000_000_000;

/// The matching work a walk has left.
#[derive(Debug)]
pub(super) struct Budget {
    left: u64,
}

/// The budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Exhausted;

impl Budget {
    pub(super) fn new(steps: u64) -> Budget {
        Budget { left: steps }
    }

    /// Takes `steps` from what is left; none left is `Exhausted`.
    pub(super) fn spend(&mut self, steps: u64) -> Result<(), Exhausted> {
        match self.left.checked_sub(steps) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => {
                self.left = 0;
                Err(Exhausted)
            }
        }
    }
}
