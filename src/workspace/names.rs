//! Names: which branch and repo names dual accepts, and the DNS-safe labels
//! it derives from them for directories, containers and `{repo}-{branch}.localhost`.
//!
//! A label is lowercase `[a-z0-9-]`. `{repo}-{label}` is one DNS label, so it
//! fits in 63 characters. Labels are stable: derived from the name alone, with
//! a hash suffix (FNV-1a, fixed forever) only when a name had to be shortened
//! or when it would collide with another branch's label.

/// Longest DNS label.
pub const MAX_DNS_LABEL: usize = 63;
/// Longest repo name, leaving room for branch labels.
pub const MAX_REPO: usize = 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {what} `{name}`: {reason}")]
pub struct NameError {
    pub what: &'static str,
    pub name: String,
    pub reason: String,
}

impl NameError {
    fn new(what: &'static str, name: &str, reason: impl Into<String>) -> Self {
        NameError {
            what,
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Accepts what git accepts as a branch name, minus anything a shell would
/// read specially: `[A-Za-z0-9._/+-]` only.
pub fn validate_branch(name: &str) -> Result<(), NameError> {
    let fail = |reason: &str| Err(NameError::new("branch name", name, reason));
    if name.is_empty() {
        return fail("it is empty");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._/+-".contains(*c)))
    {
        return fail(&format!(
            "`{}` is not allowed; use letters, digits and . _ / + -",
            bad.escape_default()
        ));
    }
    if name.starts_with('-') {
        return fail("it starts with `-`, which commands would read as an option");
    }
    if name.contains("..") {
        return fail("git forbids `..` in branch names");
    }
    if name.contains("//") || name.starts_with('/') || name.ends_with('/') {
        return fail("git forbids empty path components (`//`, or `/` at either end)");
    }
    if name.ends_with('.') {
        return fail("git forbids a trailing `.`");
    }
    if name == "@" || name == "HEAD" {
        return fail("git reserves that name");
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return fail("git forbids a path component starting with `.`");
        }
        if component.ends_with(".lock") {
            return fail("git forbids a path component ending with `.lock`");
        }
    }
    Ok(())
}

/// A repo name given with `--name`: must already be a label.
pub fn validate_repo(name: &str) -> Result<(), NameError> {
    let fail = |reason: String| Err(NameError::new("repo name", name, reason));
    if name.is_empty() {
        return fail("it is empty".into());
    }
    if name.len() > MAX_REPO {
        return fail(format!("it is longer than {MAX_REPO} characters"));
    }
    if sanitize(name) != name {
        return fail(format!(
            "use lowercase letters, digits and `-` (for example `{}`)",
            sanitize_or(name, "repo")
        ));
    }
    Ok(())
}

/// Lowercase, every run of other characters becomes one `-`, no `-` at the ends.
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn sanitize_or(name: &str, fallback: &str) -> String {
    let clean = sanitize(name);
    if clean.is_empty() {
        fallback.to_owned()
    } else {
        clean
    }
}

/// A repo name derived from a path or URL: `git@host:org/My_Shop.git` → `my-shop`.
pub fn repo_name_from(source: &str) -> String {
    let last = source
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(source);
    let stem = last.strip_suffix(".git").unwrap_or(last);
    shorten(&sanitize_or(stem, "repo"), MAX_REPO, stem)
}

/// The label for `branch` in `repo`, distinct from the labels in `taken`.
pub fn branch_label(repo: &str, branch: &str, taken: &[&str]) -> String {
    let max = MAX_DNS_LABEL - repo.len() - 1;
    let base = shorten(&sanitize_or(branch, "branch"), max, branch);
    if !taken.contains(&base.as_str()) {
        return base;
    }
    // Another branch already has this label (`feat/auth` and `feat-auth`):
    // this one gets the hash of its own name, which no order of creation changes.
    with_hash(&base, max, branch)
}

fn shorten(label: &str, max: usize, original: &str) -> String {
    if label.len() <= max {
        label.to_owned()
    } else {
        with_hash(label, max, original)
    }
}

fn with_hash(label: &str, max: usize, original: &str) -> String {
    let hash = short_hash(original);
    let keep = max.saturating_sub(hash.len() + 1);
    let head = label[..keep.min(label.len())].trim_end_matches('-');
    format!("{head}-{hash}")
}

/// Six hex digits of FNV-1a: stable across Rust versions, unlike std's hasher.
pub fn short_hash(text: &str) -> String {
    format!("{:06x}", fnv1a(text) & 0xff_ffff)
}

/// All sixteen hex digits of FNV-1a, where a chance collision must stay rare.
pub fn long_hash(text: &str) -> String {
    format!("{:016x}", fnv1a(text))
}

fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_branch_names() {
        for name in [
            "main",
            "feat/auth",
            "fix-123",
            "release/v1.2.3",
            "user/jo_e/x+y",
        ] {
            assert_eq!(validate_branch(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_what_git_or_a_shell_would_misread() {
        let reason = |name: &str| validate_branch(name).unwrap_err().reason;
        assert_eq!(reason(""), "it is empty");
        assert!(reason("a..b").contains("`..`"));
        assert!(reason("-rf").contains("starts with `-`"));
        assert!(reason("feat;rm -rf ~").contains("`;` is not allowed"));
        assert!(reason("$(id)").contains("`$` is not allowed"));
        assert!(reason("a b").contains("` ` is not allowed"));
        assert!(reason("back`tick").contains("is not allowed"));
        assert!(reason("x\ny").contains("`\\n` is not allowed"));
        assert!(reason("feat/").contains("empty path components"));
        assert!(reason("feat/.hidden").contains("starting with `.`"));
        assert!(reason("refs.lock").contains(".lock"));
        assert!(reason("HEAD").contains("reserves"));
        assert!(reason("über").contains("not allowed"));
    }

    #[test]
    fn labels_are_dns_safe_and_readable() {
        assert_eq!(branch_label("shop", "feat/auth", &[]), "feat-auth");
        assert_eq!(
            branch_label("shop", "Fix__Login--Bug", &[]),
            "fix-login-bug"
        );
        assert_eq!(branch_label("shop", "___", &[]), "branch");
    }

    #[test]
    fn colliding_branches_get_distinct_stable_labels() {
        let first = branch_label("shop", "feat/auth", &[]);
        let second = branch_label("shop", "feat-auth", &[&first]);
        let third = branch_label("shop", "Feat/Auth", &[&first, &second]);
        assert_ne!(first, second);
        assert_ne!(second, third);
        assert_eq!(second, format!("feat-auth-{}", short_hash("feat-auth")));
        // The same inputs always give the same label.
        assert_eq!(branch_label("shop", "feat-auth", &[&first]), second);
    }

    #[test]
    fn long_names_fit_one_dns_label_and_stay_distinct() {
        let long_a = format!("feature/{}-a", "x".repeat(80));
        let long_b = format!("feature/{}-b", "x".repeat(80));
        let a = branch_label("shop", &long_a, &[]);
        let b = branch_label("shop", &long_b, &[]);
        assert_ne!(a, b, "names sharing a long prefix keep distinct labels");
        for label in [&a, &b] {
            assert!(format!("shop-{label}").len() <= MAX_DNS_LABEL, "{label}");
            assert_eq!(&sanitize(label), label);
        }
    }

    #[test]
    fn repo_names() {
        assert_eq!(repo_name_from("/home/u/src/My_Shop"), "my-shop");
        assert_eq!(repo_name_from("git@github.com:org/api.git"), "api");
        assert_eq!(repo_name_from("https://host/org/web-app.git/"), "web-app");
        assert_eq!(validate_repo("shop"), Ok(()));
        assert!(validate_repo("Shop").unwrap_err().reason.contains("`shop`"));
        assert!(validate_repo("").is_err());
        assert!(validate_repo(&"a".repeat(31)).is_err());
    }
}
