//! The stdio framing in front of the SDK: one JSON-RPC message a line. A
//! line that is not JSON gets a JSON-RPC parse error (the SDK drops such a
//! line without a word, which leaves a client waiting forever), an
//! over-long one an invalid-request error; either way the server keeps
//! serving. Everything else passes to the SDK as it came.
//!
//! The protocol owns the real stdout: `take_stdout` moves it aside and
//! points fd 1 at stderr, so nothing else dual or a child prints (a
//! warning, a pull's progress) can break a message.

use std::os::fd::OwnedFd;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The longest message a client may send (a `run`'s argv, a request body).
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// The protocol's own stdout; fd 1 goes to stderr from now on. The copy
/// closes on exec: a child (an engine command, git, the proxy started in
/// the background) never gets it, so none can write into the stream or
/// keep it open after dual is gone.
pub fn take_stdout() -> std::io::Result<OwnedFd> {
    let protocol = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3)?;
    rustix::stdio::dup2_stdout(rustix::stdio::stderr())?;
    Ok(protocol)
}

/// Carries lines from `input` to the SDK's end `sdk`, and the SDK's lines
/// (and the errors for lines it never sees) to `output`, one whole line at
/// a time. When `input` ends, `hung_up` is called at once (the SDK lets
/// requests in flight finish first, and a `run` may have minutes to go);
/// returns once the SDK has seen the end too.
pub async fn frame<I, O, S>(input: I, output: O, sdk: S, hung_up: impl FnOnce())
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (from_sdk, mut to_sdk) = tokio::io::split(sdk);
    let (lines, mut outgoing) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        let mut output = output;
        while let Some(line) = outgoing.recv().await {
            if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });
    let replies = lines.clone();
    let answers = tokio::spawn(async move {
        let mut from_sdk = BufReader::new(from_sdk);
        loop {
            let mut line = Vec::new();
            match from_sdk.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if replies.send(line).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut input = BufReader::new(input);
    loop {
        match read_line(&mut input).await {
            Line::End => break,
            Line::TooLong => {
                let _ = lines
                    .send(error_line(
                        -32600,
                        "Invalid Request: the message is longer than 8 MiB",
                    ))
                    .await;
            }
            Line::Whole(line) => {
                let text = line.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(text) {
                    let message = format!("Parse error: {error}");
                    let _ = lines.send(error_line(-32700, &message)).await;
                    continue;
                }
                if to_sdk.write_all(&line).await.is_err() {
                    break;
                }
            }
        }
    }
    // The client is gone: the SDK sees the end of its input and stops.
    hung_up();
    let _ = to_sdk.shutdown().await;
    drop(to_sdk);
    let _ = answers.await;
    drop(lines);
    let _ = writer.await;
}

enum Line {
    Whole(Vec<u8>),
    TooLong,
    End,
}

/// The next line with its newline (one is added at the end of input), or
/// `TooLong` after skipping past the end of one over `MAX_LINE`.
async fn read_line<R: AsyncBufReadExt + Unpin>(input: &mut R) -> Line {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buffer = match input.fill_buf().await {
            Ok(buffer) => buffer,
            Err(_) => return Line::End,
        };
        if buffer.is_empty() {
            return match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::End,
                (false, false) => {
                    line.push(b'\n');
                    Line::Whole(line)
                }
            };
        }
        let (taken, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buffer.len(), false),
        };
        if !too_long {
            line.extend_from_slice(&buffer[..taken]);
            if line.len() > MAX_LINE {
                too_long = true;
                line = Vec::new();
            }
        }
        input.consume(taken);
        if done {
            return if too_long {
                Line::TooLong
            } else {
                Line::Whole(line)
            };
        }
    }
}

/// A JSON-RPC error with no id (there is no request to answer).
fn error_line(code: i32, message: &str) -> Vec<u8> {
    let mut line = serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    }))
    .unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `frame` writes for `input`, with an SDK that echoes each line.
    async fn framed(input: &'static [u8]) -> (String, String) {
        let (ours, sdk) = tokio::io::duplex(1 << 16);
        let (sdk_read, mut sdk_write) = tokio::io::split(sdk);
        let echo = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut reader = BufReader::new(sdk_read);
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                seen.extend_from_slice(&line);
                sdk_write.write_all(b"{\"echo\":1}\n").await.unwrap();
            }
            drop(sdk_write);
            String::from_utf8(seen).unwrap()
        });
        let (out_write, mut out_read) = tokio::io::duplex(1 << 16);
        frame(input, out_write, ours, || {}).await;
        let mut written = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut out_read, &mut written)
            .await
            .unwrap();
        (echo.await.unwrap(), written)
    }

    #[tokio::test]
    async fn json_passes_and_garbage_gets_a_parse_error() {
        let (seen, written) = framed(b"{\"a\":1}\nnot json\n\n[1,\n{\"b\":2}").await;
        assert_eq!(seen, "{\"a\":1}\n{\"b\":2}\n");
        let lines: Vec<serde_json::Value> = written
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let errors: Vec<i64> = lines
            .iter()
            .filter_map(|l| l["error"]["code"].as_i64())
            .collect();
        assert_eq!(errors, [-32700, -32700], "{written}");
        assert_eq!(lines.iter().filter(|l| l["echo"] == 1).count(), 2);
        assert!(
            lines
                .iter()
                .all(|l| l.get("error").is_none() || l["id"].is_null())
        );
    }
}
