//! Errors as the user reads them: `error:` with what failed, `caused by:` for
//! each underlying cause, and `hint:` with the next thing to do.
//!
//! A hint belongs to the error that knows it: an error type implements
//! [`Hint`], and the hint is attached where such an error enters `anyhow`
//! ([`hinted`], or `.hinted()` on a `Result`), as a [`WithHint`] around it.
//! `render` then finds the hint without knowing any error type of dual's
//! layers: it looks for the two carriers, [`WithHint`] and [`Hinted`].

use std::error::Error as StdError;
use std::fmt::Write as _;

use crate::engine::EngineError;

/// An error that can say what to do about it.
pub trait Hint: StdError + Send + Sync + 'static {
    /// The next thing to do, a command where there is one.
    fn hint(&self) -> Option<String>;

    /// A Ctrl-C ended it (exit status 130).
    fn interrupted(&self) -> bool {
        false
    }
}

/// An error made with its message and hint in one place.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

/// A typed error with the hint it gave as it entered `anyhow`. It reads as
/// the error itself (same message, same causes).
pub struct WithHint {
    error: Box<dyn StdError + Send + Sync + 'static>,
    hint: Option<String>,
    interrupted: bool,
}

impl WithHint {
    pub fn new<E: Hint>(error: E) -> WithHint {
        WithHint {
            hint: error.hint(),
            interrupted: error.interrupted(),
            error: Box::new(error),
        }
    }

    /// The error it carries, to look into (`downcast_ref`).
    pub fn inner(&self) -> &(dyn StdError + 'static) {
        &*self.error
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl std::fmt::Display for WithHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::fmt::Debug for WithHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl StdError for WithHint {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.error.source()
    }
}

/// For `?` where the error type is `WithHint` (a `Store::update` closure):
/// any error with a hint converts, keeping it.
impl<E: Hint> From<E> for WithHint {
    fn from(error: E) -> WithHint {
        WithHint::new(error)
    }
}

/// `error` as an `anyhow::Error` that keeps its hint.
pub fn hinted<E: Hint>(error: E) -> anyhow::Error {
    anyhow::Error::new(WithHint::new(error))
}

/// `.hinted()?` where a typed error with a hint enters `anyhow`.
pub trait HintExt<T> {
    fn hinted(self) -> anyhow::Result<T>;
}

impl<T, E: Hint> HintExt<T> for Result<T, E> {
    fn hinted(self) -> anyhow::Result<T> {
        self.map_err(hinted)
    }
}

impl Hint for Hinted {
    fn hint(&self) -> Option<String> {
        Some(self.hint.clone())
    }
}

impl Hint for crate::workspace::state::StateError {
    fn hint(&self) -> Option<String> {
        crate::workspace::state::StateError::hint(self)
    }
}

impl Hint for EngineError {
    fn hint(&self) -> Option<String> {
        EngineError::hint(self)
    }

    fn interrupted(&self) -> bool {
        self.is_interrupted()
    }
}

pub fn render(error: &anyhow::Error) -> String {
    let mut out = format!("error: {error}\n");
    for cause in error.chain().skip(1) {
        let _ = writeln!(out, "  caused by: {cause}");
    }
    if let Some(hint) = hint_of(error) {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

/// The first hint an error of the chain carries.
pub fn hint_of(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(carrier) = cause.downcast_ref::<WithHint>() {
            return carrier.hint.clone();
        }
        cause.downcast_ref::<Hinted>().map(|h| h.hint.clone())
    })
}

pub fn exit_code(error: &anyhow::Error) -> u8 {
    let interrupted = error.chain().any(|cause| {
        cause.is::<Interrupted>()
            || cause
                .downcast_ref::<WithHint>()
                .is_some_and(|carrier| carrier.interrupted)
            || cause
                .downcast_ref::<EngineError>()
                .is_some_and(EngineError::is_interrupted)
    });
    if interrupted { 130 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[derive(Debug, thiserror::Error)]
    #[error("the thing `x` is broken")]
    struct Broken(#[source] std::io::Error);

    impl Hint for Broken {
        fn hint(&self) -> Option<String> {
            Some("mend it with `dual mend x`".into())
        }
    }

    #[test]
    fn a_hint_attached_on_entry_survives_context_and_keeps_its_causes() {
        let error: anyhow::Result<()> = Err(Broken(std::io::Error::other("disk on fire"))).hinted();
        let error = error.context("could not launch `shop-a`").unwrap_err();
        assert_eq!(
            render(&error),
            "error: could not launch `shop-a`\n  caused by: the thing `x` is broken\n  caused by: disk on fire\nhint: mend it with `dual mend x`\n"
        );
        assert_eq!(exit_code(&error), 1);
    }

    #[test]
    fn an_error_entering_without_its_hint_has_none() {
        // The counterpart of the test above: the hint comes from the
        // conversion, not from a list of types `render` knows.
        let error = anyhow::Error::new(Broken(std::io::Error::other("disk on fire")));
        assert!(!render(&error).contains("hint:"));
    }
}

/// Ctrl-C arrived during `dual verify`: the run stopped and its containers
/// were removed (exit status 130).
#[derive(Debug, thiserror::Error)]
#[error("interrupted: verify stopped and removed the {removed} container(s) it had started")]
pub struct Interrupted {
    pub removed: usize,
}
