//! Where the output of work goes, decided once by the command layer: a
//! terminal (stdout for results, stderr for progress and warnings), a
//! channel (the browser shows an operation's progress in its own window), or
//! nowhere. Code below the commands reports through a `Printer` it is given
//! and never prints by itself.

use std::io::Write;
use std::sync::mpsc::Sender;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Warnings and results only.
    Quiet,
    Normal,
    /// Also every external command (see `crate::log`).
    Verbose,
}

/// One line of output, as a channel printer sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// What the work is doing now ("cloning …").
    Progress(String),
    /// Something the user should act on; it did not stop the work.
    Warning(String),
    /// A result line (on a terminal: stdout).
    Out(String),
}

#[derive(Clone)]
enum Sink {
    Terminal,
    Channel(Sender<Message>),
    Silent,
}

#[derive(Clone)]
pub struct Printer {
    sink: Sink,
    verbosity: Verbosity,
}

impl Printer {
    pub fn terminal(verbosity: Verbosity) -> Printer {
        Printer {
            sink: Sink::Terminal,
            verbosity,
        }
    }

    /// Every line goes to `sender` as a `Message` (none is dropped for
    /// verbosity: the receiver decides what to show).
    pub fn channel(sender: Sender<Message>) -> Printer {
        Printer {
            sink: Sink::Channel(sender),
            verbosity: Verbosity::Normal,
        }
    }

    pub fn silent() -> Printer {
        Printer {
            sink: Sink::Silent,
            verbosity: Verbosity::Quiet,
        }
    }

    /// Its lines go to dual's own stdout and stderr: a child may write
    /// there too (a pull's progress, `setup`'s output) without garbling
    /// another face's screen.
    pub fn is_terminal(&self) -> bool {
        matches!(self.sink, Sink::Terminal)
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    pub fn progress(&self, text: impl Into<String>) {
        if self.verbosity != Verbosity::Quiet {
            self.emit(Message::Progress(text.into()));
        }
    }

    /// A step of the work that a terminal shows only when verbose (there the
    /// user sees the command working, and its output stays as it always
    /// was); the browser, with nothing else to show, gets every one.
    pub fn detail(&self, text: impl Into<String>) {
        if shows_details(self.is_terminal(), self.verbosity) {
            self.emit(Message::Progress(text.into()));
        }
    }

    /// `text` without the `warning: ` prefix, which the terminal adds (one
    /// already there, as in the proxy's conflict warnings, is not doubled).
    pub fn warn(&self, text: impl Into<String>) {
        let text = text.into();
        let text = match text.strip_prefix("warning: ") {
            Some(rest) => rest.to_owned(),
            None => text,
        };
        self.emit(Message::Warning(text));
    }

    /// A result line, without its newline.
    pub fn out(&self, text: impl Into<String>) {
        self.emit(Message::Out(text.into()));
    }

    fn emit(&self, message: Message) {
        match &self.sink {
            Sink::Silent => {}
            Sink::Channel(sender) => {
                let _ = sender.send(message);
            }
            Sink::Terminal => {
                // A closed pipe (`dual … | head`) or a gone terminal is no
                // reason to fail the work being reported.
                let _ = match message {
                    Message::Progress(text) => writeln!(std::io::stderr().lock(), "{text}"),
                    Message::Warning(text) => {
                        writeln!(std::io::stderr().lock(), "warning: {text}")
                    }
                    Message::Out(text) => {
                        let mut stdout = std::io::stdout().lock();
                        writeln!(stdout, "{text}").and_then(|()| stdout.flush())
                    }
                };
            }
        }
    }
}

fn shows_details(terminal: bool, verbosity: Verbosity) -> bool {
    !terminal || verbosity == Verbosity::Verbose
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_printer_sends_every_line_in_order() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let printer = Printer::channel(sender);
        printer.progress("cloning");
        printer.warn("port 3000 is held");
        printer.out("launched");
        let got: Vec<Message> = receiver.try_iter().collect();
        assert_eq!(
            got,
            vec![
                Message::Progress("cloning".into()),
                Message::Warning("port 3000 is held".into()),
                Message::Out("launched".into()),
            ]
        );
    }

    #[test]
    fn details_reach_a_channel_and_a_verbose_terminal_only() {
        let (sender, receiver) = std::sync::mpsc::channel();
        Printer::channel(sender).detail("cloning");
        assert_eq!(
            receiver.try_iter().collect::<Vec<_>>(),
            vec![Message::Progress("cloning".into())]
        );
        assert!(shows_details(true, Verbosity::Verbose));
        assert!(!shows_details(true, Verbosity::Normal));
        assert!(!shows_details(true, Verbosity::Quiet));
    }

    #[test]
    fn quiet_drops_progress_but_never_warnings() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let printer = Printer {
            sink: Sink::Channel(sender),
            verbosity: Verbosity::Quiet,
        };
        printer.progress("cloning");
        printer.warn("held");
        let got: Vec<Message> = receiver.try_iter().collect();
        assert_eq!(got, vec![Message::Warning("held".into())]);
    }
}
