//! A compose service's `build:`: a context inside the clone, for the
//! launcher to build (it replaces the placeholder image with a tag of the
//! context's content).

use super::service::Service;
use super::yaml::Node;
use crate::workspace::config_file::{is_plain_relative, is_stage_name};
use crate::workspace::sidecars::{self, Build};
use std::collections::BTreeMap;

impl Service<'_, '_> {
    /// `build:` as a context inside the clone.
    pub(super) fn build(&mut self, node: &Node) -> Result<Build, String> {
        let key = self.key("build");
        let mut build = Build {
            context: String::new(),
            dockerfile: None,
            args: BTreeMap::new(),
            target: None,
        };
        let context = match node {
            Node::Map(entries) => {
                for (field, value) in entries {
                    match field.as_str() {
                        "context" => {}
                        "dockerfile" => {
                            let dockerfile = self.text(value, "build.dockerfile")?;
                            if !is_plain_relative(&dockerfile) {
                                return Err(format!(
                                    "`{key}.dockerfile`: `{}` must be a relative path inside the context, without `..`",
                                    dockerfile.escape_debug()
                                ));
                            }
                            build.dockerfile = Some(dockerfile);
                        }
                        "args" => self.build_args(value, &mut build.args)?,
                        "target" => {
                            let target = self.text(value, "build.target")?;
                            if !is_stage_name(&target) {
                                return Err(format!(
                                    "`{key}.target`: `{}` is not a build stage name",
                                    target.escape_debug()
                                ));
                            }
                            build.target = Some(target);
                        }
                        extension if extension.starts_with("x-") => {}
                        other => {
                            self.note(&format!("`build.{other}` is not passed on to the build"))
                        }
                    }
                }
                node.get("context").map_or(Ok(".".to_owned()), |context| {
                    self.text(context, "build.context")
                })?
            }
            scalar => self.text(scalar, "build")?,
        };
        let remote = context.contains("://") || context.starts_with("git@");
        let inside = if remote {
            None
        } else {
            self.reader.inside(&context)
        };
        let Some(inside) = inside else {
            return Err(format!(
                "`{key}`: the context `{}` must be a directory inside the repo (a relative path, not a URL)",
                context.escape_debug()
            ));
        };
        let context = inside.to_string_lossy().into_owned();
        build.context = if context.is_empty() {
            ".".into()
        } else {
            context
        };
        if !is_plain_relative(&build.context) {
            return Err(format!(
                "`{key}`: the context `{}` may hold only letters, digits and `/._-+@`",
                build.context.escape_debug()
            ));
        }
        Ok(build)
    }

    fn build_args(
        &mut self,
        node: &Node,
        args: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        let key = self.key("build.args");
        let mut without_value = Vec::new();
        let pairs: Vec<(String, Option<String>)> = match node {
            Node::Map(entries) => entries
                .iter()
                .map(|(name, value)| (name.clone(), value.as_text()))
                .collect(),
            _ => self
                .texts(node, "build.args")?
                .into_iter()
                .map(|item| match item.split_once('=') {
                    Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                    None => (item, None),
                })
                .collect(),
        };
        for (name, value) in pairs {
            match value {
                Some(value) => {
                    sidecars::check_env(&key, &name, &value)?;
                    args.insert(name, value);
                }
                None => without_value.push(name),
            }
        }
        self.note_without_value("build.args", &without_value);
        Ok(())
    }
}
