//! What a tool call comes to: a value and the warnings its operation gave,
//! or a failure with its hint, as the structured result an agent reads.

use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use crate::printer::{Message, Printer};

/// A tool's value and the warnings its operation gave, or its failure.
pub type Outcome = Result<(Value, Vec<String>), Failure>;

/// A tool that ran and failed: what went wrong, and what to do.
pub struct Failure {
    pub error: String,
    pub hint: Option<String>,
}

pub fn failure(error: anyhow::Error) -> Failure {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        message.push_str(&format!(": {cause}"));
    }
    Failure {
        error: message,
        hint: crate::error::hint_of(&error),
    }
}

pub fn hinted(error: String, hint: &str) -> Failure {
    Failure {
        error,
        hint: Some(hint.to_owned()),
    }
}

pub fn panicked(error: tokio::task::JoinError) -> Failure {
    Failure {
        error: format!("dual failed inside: {error}"),
        hint: Some(
            "this is a bug in dual; run the same with the `dual` command line for details".into(),
        ),
    }
}

pub fn result(outcome: Outcome) -> CallToolResult {
    match outcome {
        Ok((mut value, warnings)) => {
            if !warnings.is_empty()
                && let Some(object) = value.as_object_mut()
            {
                object.insert("warnings".into(), json!(warnings));
            }
            CallToolResult::structured(value)
        }
        Err(Failure { error, hint }) => {
            CallToolResult::structured_error(json!({"error": error, "hint": hint}))
        }
    }
}

/// Runs `work` on a blocking thread with a channel printer; its warnings
/// come back with its value.
pub async fn blocking<F>(work: F) -> Outcome
where
    F: FnOnce(&Printer) -> anyhow::Result<Value> + Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    let value = tokio::task::spawn_blocking(move || work(&Printer::channel(sender)))
        .await
        .map_err(panicked)?
        .map_err(failure)?;
    let warnings = receiver
        .try_iter()
        .filter_map(|message| match message {
            Message::Warning(text) => Some(text),
            _ => None,
        })
        .collect();
    Ok((value, warnings))
}
