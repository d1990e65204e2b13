//! `dual urls [WORKSPACE] [--json]` and `dual open [WORKSPACE]` (see
//! `ops::urls`).

use std::process::ExitCode;

use super::print;
use crate::ops::urls::Opened;
use crate::printer::Printer;

pub fn run(name: Option<&str>, json: bool, printer: &Printer) -> anyhow::Result<ExitCode> {
    let all = crate::ops::urls::urls(name, printer)?;
    let ports: Vec<u16> = all
        .iter()
        .flat_map(|(_, urls)| urls.iter().map(|url| url.port))
        .collect();
    for warning in crate::proxy::conflicts::warnings(&ports) {
        printer.warn(warning);
    }
    if json {
        let value: serde_json::Map<String, serde_json::Value> = all
            .into_iter()
            .map(|(name, urls)| {
                let urls: Vec<String> = urls.iter().map(ToString::to_string).collect();
                (name, urls.into())
            })
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

pub fn open(name: Option<&str>, printer: &Printer) -> anyhow::Result<ExitCode> {
    match crate::ops::urls::open(name, printer)? {
        Opened::InBrowser(url) => print(&format!("opened {url}\n"))?,
        Opened::NoOpener(url) => print(&format!("{url}\n"))?,
        Opened::Nothing => {
            print("no workspace to open\n")?;
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
