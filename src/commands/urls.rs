//! `dual urls [WORKSPACE] [--json]` and `dual open [WORKSPACE]`.

use std::process::ExitCode;

use crate::cli::print;
use crate::workspace::{self, Store};

fn urls_of(name: Option<&str>) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let state = Store::open_default().load()?;
    let chosen: Vec<&workspace::Workspace> = match name {
        Some(_) => vec![workspace::resolve(&state, name)?],
        None => match workspace::resolve(&state, None) {
            Ok(one) => vec![one],
            Err(_) => state.workspaces.iter().collect(),
        },
    };
    // Declared ports, and those its container listens on now (as `list`
    // finds them); a workspace that is not running has only the former.
    let listed = super::list::list(None, &state);
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

pub fn run(name: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let all = urls_of(name)?;
    let ports = crate::proxy::conflicts::ports_of_urls(all.iter().flat_map(|(_, urls)| urls));
    for warning in crate::proxy::conflicts::warnings(&ports) {
        eprintln!("{warning}");
    }
    if json {
        let value: serde_json::Map<String, serde_json::Value> = all
            .into_iter()
            .map(|(name, urls)| (name, urls.into()))
            .collect();
        print(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    } else {
        for (_, urls) in all {
            for url in urls {
                print(&format!("{url}\n"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn open(name: Option<&str>) -> anyhow::Result<ExitCode> {
    let all = urls_of(name)?;
    let Some(url) = all.first().and_then(|(_, urls)| urls.first()).cloned() else {
        print("no workspace to open\n")?;
        return Ok(ExitCode::FAILURE);
    };
    let opener = ["xdg-open", "open", "wslview"]
        .into_iter()
        .find(|o| crate::process::find_on_path(o).is_some());
    match opener {
        Some(opener) if std::env::var_os("DISPLAY").is_some() || opener != "xdg-open" => {
            crate::process::Cmd::new(opener, [url.as_str()]).run()?;
            print(&format!("opened {url}\n"))?;
        }
        _ => print(&format!("{url}\n"))?,
    }
    Ok(ExitCode::SUCCESS)
}
