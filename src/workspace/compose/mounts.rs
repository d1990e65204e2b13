//! A compose service's `volumes` and `tmpfs`: named volumes kept per
//! workspace, anonymous ones named, bind mounts dropped (see `compose`).

use super::is_bind_source;
use super::service::Service;
use super::yaml::Node;
use crate::workspace::sidecars::{self, Sidecar, Volume};

impl Service<'_, '_> {
    pub(super) fn volumes(&mut self, node: &Node, sidecar: &mut Sidecar) -> Result<(), String> {
        let key = self.key("volumes");
        let Node::Seq(items) = node else {
            return Err(format!("`{key}` is {}, not a list", node.kind()));
        };
        for item in items {
            // (kind, source, target, read-only)
            let (kind, source, target, read_only) = match item {
                Node::Map(_) => {
                    let field = |name: &str| item.get(name).and_then(Node::as_text);
                    let kind = field("type").unwrap_or_else(|| "volume".into());
                    let target = field("target")
                        .ok_or_else(|| format!("`{key}`: an entry without `target`"))?;
                    let read_only = item.get("read_only") == Some(&Node::Bool(true));
                    (kind, field("source"), target, read_only)
                }
                scalar => {
                    let short = self.text(scalar, "volumes")?;
                    let parts: Vec<&str> = short.split(':').collect();
                    match parts[..] {
                        [target] => ("volume".into(), None, target.to_owned(), false),
                        [source, target] | [source, target, _] => {
                            let kind = if is_bind_source(source) {
                                "bind"
                            } else {
                                "volume"
                            };
                            let mode = parts.get(2).copied().unwrap_or_default();
                            let read_only = mode.split(',').any(|option| option == "ro");
                            (
                                kind.into(),
                                Some(source.to_owned()),
                                target.to_owned(),
                                read_only,
                            )
                        }
                        _ => {
                            return Err(format!(
                                "`{key}`: `{}` is not `[source:]target[:mode]`",
                                short.escape_debug()
                            ));
                        }
                    }
                }
            };
            match kind.as_str() {
                "volume" => {
                    let name = match source.filter(|source| !source.is_empty()) {
                        Some(name) => name,
                        None => self.anonymous_volume_name(&target, &sidecar.volumes),
                    };
                    sidecars::check_volume(&key, &name, &target)?;
                    if read_only {
                        self.note(&format!(
                            "volume `{name}` is mounted read-write (`ro` is not kept)"
                        ));
                    }
                    sidecar.volumes.push(Volume { name, target });
                }
                "tmpfs" => {
                    sidecars::check_container_path(&key, &target)?;
                    sidecar.tmpfs.push(target);
                }
                "bind" => {
                    let shown = format!("{}:{target}", source.unwrap_or_default());
                    self.note(&format!(
                        "bind mount `{shown}` dropped: a sidecar gets no path of the host or of the clone (keep its data in a named volume)"
                    ));
                }
                other => self.note(&format!(
                    "a `{other}` mount at `{target}` is not supported; dropped"
                )),
            }
        }
        Ok(())
    }

    /// A per-workspace name for a volume given only as its path:
    /// `SIDECAR-last-component`, made unique among `taken`.
    fn anonymous_volume_name(&self, target: &str, taken: &[Volume]) -> String {
        let base: String = format!(
            "{}-{}",
            self.sidecar_name(),
            sidecars::volume_name_for(target)
        )
        .chars()
        .take(60)
        .collect();
        let mut name = base.clone();
        let mut number = 2;
        while taken.iter().any(|volume| volume.name == name) {
            name = format!("{base}-{number}");
            number += 1;
        }
        name
    }

    /// `tmpfs`: paths, each maybe with `:options`, which are dropped.
    pub(super) fn tmpfs(&mut self, node: &Node, tmpfs: &mut Vec<String>) -> Result<(), String> {
        let key = self.key("tmpfs");
        for item in self.texts(node, "tmpfs")? {
            let (path, options) = match item.split_once(':') {
                Some((path, options)) => (path.to_owned(), Some(options.to_owned())),
                None => (item, None),
            };
            sidecars::check_container_path(&key, &path)?;
            if let Some(options) = options {
                self.note(&format!("tmpfs `{path}`: options `{options}` are not kept"));
            }
            tmpfs.push(path);
        }
        Ok(())
    }
}
