//! Errors as the user reads them: `error:` with what failed, `caused by:` for
//! each underlying cause, and `hint:` with the next thing to do.

use std::fmt::Write as _;

use crate::engine::EngineError;

/// An error that knows the command that fixes it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

pub fn render(error: &anyhow::Error) -> String {
    let mut out = format!("error: {error}\n");
    for cause in error.chain().skip(1) {
        let _ = writeln!(out, "  caused by: {cause}");
    }
    if let Some(hint) = hint(error) {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(hinted) = cause.downcast_ref::<Hinted>() {
            return Some(hinted.hint.clone());
        }
        if let Some(error) = cause.downcast_ref::<crate::workspace::WorkspaceError>() {
            return error.hint();
        }
        if let Some(error) = cause.downcast_ref::<crate::workspace::state::StateError>() {
            return error.hint();
        }
        if let Some(error) = cause.downcast_ref::<crate::commands::launch::ImageUnavailable>() {
            return Some(error.hint());
        }
        cause
            .downcast_ref::<EngineError>()
            .and_then(EngineError::hint)
    })
}

pub fn exit_code(error: &anyhow::Error) -> u8 {
    let interrupted = error.chain().any(|cause| {
        cause.is::<crate::verify::Interrupted>()
            || cause
                .downcast_ref::<EngineError>()
                .is_some_and(EngineError::is_interrupted)
    });
    if interrupted { 130 } else { 1 }
}
