//! The layering of dual's source: the operations (`src/ops/`) and everything
//! below them never reach up into the command line, and the browser runs
//! operations in-process, never `dual` as a subprocess.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|x| x == "rs") {
            found.push(path);
        }
    }
}

/// `file:line: text` for each line of the files under `src/` (relative
/// paths) that `keep` takes, whose code (not comment) holds one of `needles`.
fn offending_lines(keep: impl Fn(&str) -> bool, needles: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut offences = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !keep(&relative) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if needles.iter().any(|needle| code.contains(needle)) {
                offences.push(format!("{relative}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    offences
}

fn is_command_layer(relative: &str) -> bool {
    relative == "src/main.rs" || relative == "src/cli.rs" || relative.starts_with("src/commands/")
}

#[test]
fn nothing_below_the_commands_imports_the_command_line() {
    let offences = offending_lines(
        |file| !is_command_layer(file),
        &[
            "crate::cli",
            "crate::commands",
            "dual::cli",
            "dual::commands",
        ],
    );
    assert!(
        offences.is_empty(),
        "only src/main.rs, src/cli.rs and src/commands/ may use the command layer; \
         move what these need into src/ops/ (or below):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_checker_sees_an_import_where_there_is_one() {
    // The check above passes as much by finding nothing as by reading
    // nothing: it must find the command layer's own imports.
    let found = offending_lines(is_command_layer, &["crate::cli"]);
    assert!(
        found.iter().any(|line| line.starts_with("src/commands/")),
        "{found:?}"
    );
}
