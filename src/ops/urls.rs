//! A workspace's URLs, and opening the first in the user's browser.

use crate::error::HintExt as _;
use crate::printer::Printer;
use crate::workspace::{self, Store, WorkspaceUrl};

/// The URLs of workspace `name`; without a name, of the one around the
/// current directory, else of all. Declared ports, and those its container
/// listens on now (as `status` finds them).
pub fn urls(
    name: Option<&str>,
    printer: &Printer,
) -> anyhow::Result<Vec<(String, Vec<WorkspaceUrl>)>> {
    let state = Store::open_default().load().hinted()?;
    let chosen: Vec<&workspace::Workspace> = match name {
        Some(_) => vec![workspace::resolve(&state, name).hinted()?],
        None => match workspace::resolve(&state, None) {
            Ok(one) => vec![one],
            Err(_) => state.workspaces.iter().collect(),
        },
    };
    let listed = super::status::status(None, &state, printer);
    Ok(chosen
        .into_iter()
        .map(|w| {
            let urls = listed
                .iter()
                .find(|l| l.name == w.name())
                .map(|l| l.urls.clone())
                .unwrap_or_else(|| workspace::urls(w, &workspace::declared_ports(&state, w)));
            (w.name(), urls)
        })
        .collect())
}

/// What `open` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Handed to the desktop's opener.
    InBrowser(WorkspaceUrl),
    /// No desktop to open it on: here it is, to open by hand.
    NoOpener(WorkspaceUrl),
    /// No workspace has a URL.
    Nothing,
}

/// Opens the first URL of `name` (as `urls` chooses) in the user's browser.
pub fn open(name: Option<&str>, printer: &Printer) -> anyhow::Result<Opened> {
    let all = urls(name, printer)?;
    let Some(url) = all.first().and_then(|(_, urls)| urls.first()).cloned() else {
        return Ok(Opened::Nothing);
    };
    let opener = ["xdg-open", "open", "wslview"]
        .into_iter()
        .find(|o| crate::process::find_on_path(o).is_some());
    match opener {
        Some(opener) if std::env::var_os("DISPLAY").is_some() || opener != "xdg-open" => {
            crate::process::Cmd::new(opener, [url.to_string()]).run()?;
            Ok(Opened::InBrowser(url))
        }
        _ => Ok(Opened::NoOpener(url)),
    }
}
