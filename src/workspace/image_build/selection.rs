//! Which paths of a build context a Dockerfile's `COPY`/`ADD` sources
//! take, as the engine reads them: a source names a file or a directory
//! (and so everything below it), `*` and `?` match within one path
//! component, hidden files included.

use super::budget::{Budget, Exhausted};
use super::dockerfile::Source;

/// Where a path of the context stands towards the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// Taken: a source names it (`named`), or a directory above it.
    Taken {
        named: bool,
        source: usize,
    },
    /// A directory on the way to what a source names: entered, not taken.
    Toward {
        source: usize,
    },
    Outside,
}

/// Where `path` (relative to the context, `/`-separated) stands towards
/// `sources`; the work is taken from `budget`.
pub(super) fn reach(
    sources: &[Source],
    path: &[u8],
    budget: &mut Budget,
) -> Result<Reach, Exhausted> {
    let components: Vec<&[u8]> = path.split(|byte| *byte == b'/').collect();
    let mut best = Reach::Outside;
    for (index, source) in sources.iter().enumerate() {
        let shared = source.parts.len().min(components.len());
        let mut matching = true;
        for (pattern, name) in source.parts[..shared].iter().zip(&components[..shared]) {
            let (matched, steps) = matches(pattern, name);
            budget.spend(steps)?;
            if !matched {
                matching = false;
                break;
            }
        }
        if !matching {
            continue;
        }
        let here = if components.len() >= source.parts.len() {
            Reach::Taken {
                named: components.len() == source.parts.len(),
                source: index,
            }
        } else {
            Reach::Toward { source: index }
        };
        best = match (best, here) {
            (Reach::Taken { named: true, .. }, _) => best,
            (_, Reach::Taken { .. }) => here,
            (Reach::Outside, _) => here,
            _ => best,
        };
    }
    Ok(best)
}

/// Whether `pattern` (`*`: any bytes, `?`: one byte, else itself) matches
/// all of `name`: the usual two-cursor walk, backing up to the last `*`,
/// so that the time stays in proportion to the lengths' product at worst.
/// With the steps it took.
fn matches(pattern: &[u8], name: &[u8]) -> (bool, u64) {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    let mut steps = 1 + pattern.len() as u64;
    while n < name.len() {
        steps += 1;
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&byte) if byte == b'?' || byte == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return (false, steps),
            },
        }
    }
    (pattern[p..].iter().all(|byte| *byte == b'*'), steps)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn sources(written: &[&str]) -> Vec<Source> {
        written
            .iter()
            .map(|text| Source {
                instruction: "COPY".into(),
                written: (*text).to_owned(),
                line: 1,
                parts: text.split('/').map(|p| p.as_bytes().to_vec()).collect(),
            })
            .collect()
    }

    #[test]
    fn a_source_takes_what_it_names_and_everything_below() {
        let taken = sources(&["app.py", "src", "conf/*.ini", "lib/?/x*"]);
        let reach =
            |path: &str| reach(&taken, path.as_bytes(), &mut Budget::new(u64::MAX)).unwrap();
        assert_eq!(
            reach("app.py"),
            Reach::Taken {
                named: true,
                source: 0
            }
        );
        assert_eq!(reach("app.pyc"), Reach::Outside);
        assert_eq!(
            reach("src"),
            Reach::Taken {
                named: true,
                source: 1
            }
        );
        assert_eq!(
            reach("src/a/b.rs"),
            Reach::Taken {
                named: false,
                source: 1
            }
        );
        assert_eq!(reach("conf"), Reach::Toward { source: 2 });
        assert_eq!(
            reach("conf/.hidden.ini"),
            Reach::Taken {
                named: true,
                source: 2
            }
        );
        assert_eq!(
            reach("conf/a.ini/x"),
            Reach::Taken {
                named: false,
                source: 2
            }
        );
        assert_eq!(reach("conf/a.txt"), Reach::Outside);
        assert_eq!(reach("lib/a"), Reach::Toward { source: 3 });
        assert_eq!(reach("lib/ab"), Reach::Outside);
        assert_eq!(
            reach("lib/a/xy"),
            Reach::Taken {
                named: true,
                source: 3
            }
        );
        assert_eq!(reach("other"), Reach::Outside);
        // Named by one source beats below another's.
        let both = sources(&["a", "a/b"]);
        assert_eq!(
            super::reach(&both, b"a/b", &mut Budget::new(u64::MAX)).unwrap(),
            Reach::Taken {
                named: true,
                source: 1
            }
        );
    }

    #[test]
    fn patterns_match_within_one_component() {
        assert!(matches(b"*", b"anything.txt").0);
        assert!(matches(b"*.txt", b".txt").0);
        assert!(matches(b"a*b*c", b"aXbYbZc").0);
        assert!(!matches(b"a*b*c", b"aXbYbZ").0);
        assert!(matches(b"a?c", b"abc").0);
        assert!(!matches(b"a?c", b"ac").0);
        assert!(matches(b"**", b"").0);
        assert!(!matches(b"x", b"").0);
        let pattern = b"*a".repeat(300);
        let name = [b"a".repeat(299), b"b".to_vec()].concat();
        let started = Instant::now();
        assert!(!matches(&pattern, &name).0);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
