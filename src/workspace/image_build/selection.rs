//! Which paths of a build context a Dockerfile's `COPY`/`ADD` sources
//! take, as the engine reads them: a source names a file or a directory
//! (and so everything below it), `*` and `?` match within one path
//! component, hidden files included.

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
/// `sources`.
pub(super) fn reach(sources: &[Source], path: &[u8]) -> Reach {
    let components: Vec<&[u8]> = path.split(|byte| *byte == b'/').collect();
    let mut best = Reach::Outside;
    for (index, source) in sources.iter().enumerate() {
        let shared = source.parts.len().min(components.len());
        let matching = source.parts[..shared]
            .iter()
            .zip(&components[..shared])
            .all(|(pattern, name)| matches(pattern, name));
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
    best
}

/// Whether `pattern` (`*`: any bytes, `?`: one byte, else itself) matches
/// all of `name`: the usual two-cursor walk, backing up to the last `*`,
/// so that the time stays in proportion to the lengths' product at worst.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
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
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|byte| *byte == b'*')
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
        let reach = |path: &str| reach(&taken, path.as_bytes());
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
            super::reach(&both, b"a/b"),
            Reach::Taken {
                named: true,
                source: 1
            }
        );
    }

    #[test]
    fn patterns_match_within_one_component() {
        assert!(matches(b"*", b"anything.txt"));
        assert!(matches(b"*.txt", b".txt"));
        assert!(matches(b"a*b*c", b"aXbYbZc"));
        assert!(!matches(b"a*b*c", b"aXbYbZ"));
        assert!(matches(b"a?c", b"abc"));
        assert!(!matches(b"a?c", b"ac"));
        assert!(matches(b"**", b""));
        assert!(!matches(b"x", b""));
        let pattern = b"*a".repeat(300);
        let name = [b"a".repeat(299), b"b".to_vec()].concat();
        let started = Instant::now();
        assert!(!matches(&pattern, &name));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
