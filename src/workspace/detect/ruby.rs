//! A Ruby project (`Gemfile`): its Ruby version, `bundle install` into
//! the clone's `vendor/bundle` (copied to a new workspace, never the
//! image's gem directory), and Rails' server (or Rack's) listening on
//! every address.

use super::files::RepoFiles;
use super::version::{self, Line};
use super::{Plan, service};

const DEFAULT_RUBY: Line = Line {
    major: 3,
    minor: Some(3),
};

pub fn detect(files: &RepoFiles) -> Option<Plan> {
    if !files.exists("Gemfile") {
        return None;
    }
    let mut notes = Vec::new();
    let (line, why) = ruby_version(files, &mut notes);
    let mut plan = Plan {
        what: "a Ruby project".to_owned(),
        marker: "Gemfile",
        image: format!("ruby:{line}-bookworm"),
        image_why: format!("Ruby {line}, {why}"),
        setup: Some("bundle install".to_owned()),
        setup_why: "bundler, from Gemfile".to_owned(),
        // Gems and their executables in the clone, so that `seed` copies
        // them and `path` finds them (`${DUAL_CLONE}`: see `[env]`).
        path: vec!["vendor/bin".to_owned()],
        seed: vec!["vendor/bundle".to_owned()],
        ..Plan::default()
    };
    plan.env
        .insert("BUNDLE_PATH".into(), "${DUAL_CLONE}/vendor/bundle".into());
    plan.env
        .insert("BUNDLE_BIN".into(), "${DUAL_CLONE}/vendor/bin".into());
    if files.exists("bin/rails") {
        plan.what = "a Rails project".to_owned();
        plan.service_why = "Rails, from bin/rails".to_owned();
        plan.service = Some(service(
            "bin/rails server -b 0.0.0.0 -p 3000".to_owned(),
            Some(3000),
        ));
        plan.port = Some(3000);
    } else if files.exists("config.ru") {
        plan.what = "a Rack project".to_owned();
        plan.service_why = "Rack, from config.ru".to_owned();
        plan.service = Some(service(
            "bundle exec rackup -o 0.0.0.0 -p 9292".to_owned(),
            Some(9292),
        ));
        plan.port = Some(9292);
    }
    plan.notes = notes;
    Some(plan)
}

/// The Ruby line to run, and where it came from.
fn ruby_version(files: &RepoFiles, notes: &mut Vec<String>) -> (Line, String) {
    if let Some(text) = files.text(".ruby-version")
        && let Some(written) = super::first_line(&text)
    {
        let number = written.strip_prefix("ruby-").unwrap_or(written);
        if let Some(line) = version::line_of(number, true).filter(|l| l.minor.is_some()) {
            return (line, "from .ruby-version".to_owned());
        }
        notes.push(format!(
            ".ruby-version says `{}`, not a version dual reads (`3.3`, `3.2.2`): Ruby {DEFAULT_RUBY}",
            crate::untrusted::shown_line(&written.chars().take(40).collect::<String>())
        ));
        return (DEFAULT_RUBY, ".ruby-version unread, the default".to_owned());
    }
    if let Some(text) = files.text(".tool-versions")
        && let Some(written) = super::tool_version(&text, &["ruby"])
        && let Some(line) = version::line_of(written, true).filter(|l| l.minor.is_some())
    {
        return (line, "from .tool-versions".to_owned());
    }
    // `ruby "3.2.2"` or `ruby '~> 3.2'` in the Gemfile.
    let gemfile = files.text("Gemfile").unwrap_or_default();
    let declared = gemfile.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("ruby ")?;
        version::first_number(rest, true)
    });
    match declared {
        Some(line) => (line, "from the Gemfile".to_owned()),
        None => (DEFAULT_RUBY, "the default".to_owned()),
    }
}
