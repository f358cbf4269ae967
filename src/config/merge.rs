//! Merging `includes:` into the main file, and remembering where every
//! merged key came from so errors point into the right file and line.
//!
//! Included files may carry `regions`, `domains` (lists, appended),
//! `overwatch.agent_tokens` (a map, merged; a service defined twice is an
//! error naming both files), `overwatch.geolocation.custom_mappings` and
//! `agent.backends` (lists, appended) and `includes` (nested includes,
//! handed back to the loader). Any other key is an error with file and
//! line, as in v1.1.

use super::error::ConfigError;
use super::lines::LineIndex;
use super::walk;
use serde_norway::{Mapping, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where each key of the merged tree came from.
pub struct Origins {
    pub files: Vec<(PathBuf, LineIndex)>,
    /// Merged list prefix → per merged index, (file, index in that file).
    pub lists: HashMap<&'static str, Vec<(usize, usize)>>,
    /// Service → file that defined its agent token.
    pub tokens: HashMap<String, usize>,
}

pub const MERGED_LISTS: [&str; 4] = [
    "regions",
    "domains",
    "agent.backends",
    "overwatch.geolocation.custom_mappings",
];

impl Origins {
    /// Resolves a merged concrete path to (file index, line).
    pub fn locate(&self, path: &str) -> (usize, Option<usize>) {
        let (file, local) = self.local(path);
        let line = self.files.get(file).and_then(|(_, idx)| idx.find(&local));
        (file, line)
    }

    fn local(&self, path: &str) -> (usize, String) {
        for list in MERGED_LISTS {
            let Some(rest) = path.strip_prefix(list).and_then(|r| r.strip_prefix('[')) else {
                continue;
            };
            let Some((num, tail)) = rest.split_once(']') else {
                continue;
            };
            if let Some(&(file, i)) = num
                .parse::<usize>()
                .ok()
                .and_then(|n| self.lists.get(list)?.get(n))
            {
                return (file, format!("{list}[{i}]{tail}"));
            }
        }
        if let Some(&file) = path
            .strip_prefix("overwatch.agent_tokens.")
            .and_then(|service| self.tokens.get(service))
        {
            return (file, path.to_string());
        }
        (0, path.to_string())
    }

    pub fn error(&self, path: &str, message: String) -> (usize, ConfigError) {
        let (file, line) = if path.is_empty() {
            (0, None)
        } else {
            self.locate(path)
        };
        let name = self
            .files
            .get(file)
            .map(|(p, _)| p.clone())
            .unwrap_or_default();
        let key = (!path.is_empty()).then(|| path.to_string());
        (
            file,
            ConfigError {
                file: name,
                line,
                key,
                message,
            },
        )
    }
}

pub struct Collector {
    pub errors: Vec<(usize, ConfigError)>,
}

impl Collector {
    pub fn file(
        &mut self,
        file_idx: usize,
        file: &Path,
        line: Option<usize>,
        key: Option<String>,
        message: String,
    ) {
        self.errors.push((
            file_idx,
            ConfigError {
                file: file.to_path_buf(),
                line,
                key,
                message,
            },
        ));
    }
}

pub fn list_at<'a>(root: &'a Value, dotted: &str) -> Option<&'a Vec<Value>> {
    let mut v = root;
    for part in dotted.split('.') {
        v = v.as_mapping()?.get(part)?;
    }
    v.as_sequence()
}

/// Merges one included file into the main tree; returns the patterns of
/// its own `includes:`.
pub fn merge(
    root: &mut Value,
    inc: Value,
    idx: usize,
    origins: &mut Origins,
    out: &mut Collector,
) -> Vec<String> {
    let mut nested: Vec<String> = Vec::new();
    let Some(file) = origins
        .files
        .get(idx)
        .map(|(p, lines)| (p.clone(), lines.clone()))
    else {
        return nested;
    };
    let (path, lines) = file;
    let bad = |out: &mut Collector, key: &str, msg: String| {
        out.file(idx, &path, lines.find(key), Some(key.to_string()), msg);
    };
    let inc = match inc {
        Value::Mapping(m) => m,
        Value::Null => return nested,
        other => {
            bad(
                out,
                "",
                format!(
                    "the file must hold a mapping of keys, found {}",
                    walk::describe(&other)
                ),
            );
            return nested;
        }
    };
    let Some(main) = root.as_mapping_mut() else {
        return nested;
    };
    for (k, v) in inc {
        let name = k.as_str().unwrap_or_default().to_string();
        match (name.as_str(), v) {
            ("includes", Value::Sequence(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(p) => nested.push(p),
                        other => bad(
                            out,
                            &format!("includes[{i}]"),
                            format!("expected a string, found {}", walk::describe(&other)),
                        ),
                    }
                }
            }
            ("regions" | "domains", Value::Sequence(items)) => {
                let list = if name == "regions" { "regions" } else { "domains" };
                append(main, list, list, items, idx, origins);
            }
            ("overwatch", Value::Mapping(m)) => {
                for (sk, sv) in m {
                    match (sk.as_str(), sv) {
                        (Some("agent_tokens"), Value::Mapping(tokens)) => {
                            let mut target = section(main, "overwatch", "agent_tokens");
                            for (service, token) in tokens {
                                let sname = service.as_str().unwrap_or_default().to_string();
                                let key = format!("overwatch.agent_tokens.{sname}");
                                if let Some(&first) = origins.tokens.get(&sname) {
                                    let (fp, fl) = &origins.files[first];
                                    let at = fl.find(&key).map(|l| format!(":{l}")).unwrap_or_default();
                                    bad(out, &key, format!("defined twice: already set in {}{at}", fp.display()));
                                    continue;
                                }
                                origins.tokens.insert(sname, idx);
                                if let Some(t) = target.as_deref_mut() {
                                    t.insert(service, token);
                                }
                            }
                        }
                        (Some("geolocation"), Value::Mapping(geo)) => {
                            for (gk, gv) in geo {
                                match (gk.as_str(), gv) {
                                    (Some("custom_mappings"), Value::Sequence(items)) => {
                                        if let Some(g) = section(main, "overwatch", "geolocation") {
                                            append(
                                                g,
                                                "custom_mappings",
                                                "overwatch.geolocation.custom_mappings",
                                                items,
                                                idx,
                                                origins,
                                            );
                                        }
                                    }
                                    (other, _) => bad(
                                        out,
                                        &format!("overwatch.geolocation.{}", other.unwrap_or("?")),
                                        "only a list of overwatch.geolocation.custom_mappings may be set in an included file".into(),
                                    ),
                                }
                            }
                        }
                        (other, _) => bad(
                            out,
                            &format!("overwatch.{}", other.unwrap_or("?")),
                            "only overwatch.agent_tokens and overwatch.geolocation.custom_mappings may be set in an included file".into(),
                        ),
                    }
                }
            }
            ("agent", Value::Mapping(m)) => {
                for (sk, sv) in m {
                    match (sk.as_str(), sv) {
                        (Some("backends"), Value::Sequence(items)) => {
                            if let Some(agent) = section(main, "agent", "").as_mut() {
                                append(agent, "backends", "agent.backends", items, idx, origins);
                            }
                        }
                        (other, _) => bad(
                            out,
                            &format!("agent.{}", other.unwrap_or("?")),
                            "only a list of agent.backends may be set in an included file".into(),
                        ),
                    }
                }
            }
            (other, _) => bad(
                out,
                other,
                "cannot be set in an included file (allowed: includes, regions, domains, overwatch.agent_tokens, overwatch.geolocation.custom_mappings, agent.backends)"
                    .into(),
            ),
        }
    }
    nested
}

/// `main[a]` (or `main[a][b]` when `b` is not empty) as a mapping,
/// created when absent; None when the main file has another type there.
fn section<'a>(main: &'a mut Mapping, a: &str, b: &str) -> Option<&'a mut Mapping> {
    let first = main
        .entry(Value::String(a.into()))
        .or_insert(Value::Mapping(Mapping::new()));
    if first.is_null() {
        *first = Value::Mapping(Mapping::new());
    }
    let first = first.as_mapping_mut()?;
    if b.is_empty() {
        return Some(first);
    }
    let second = first
        .entry(Value::String(b.into()))
        .or_insert(Value::Mapping(Mapping::new()));
    if second.is_null() {
        *second = Value::Mapping(Mapping::new());
    }
    second.as_mapping_mut()
}

fn append(
    main: &mut Mapping,
    key: &str,
    list: &'static str,
    items: Vec<Value>,
    idx: usize,
    origins: &mut Origins,
) {
    let slot = main
        .entry(Value::String(key.into()))
        .or_insert(Value::Sequence(Vec::new()));
    if slot.is_null() {
        *slot = Value::Sequence(Vec::new());
    }
    let Some(seq) = slot.as_sequence_mut() else {
        return;
    };
    let origin = origins.lists.entry(list).or_default();
    for (i, item) in items.into_iter().enumerate() {
        seq.push(item);
        origin.push((idx, i));
    }
}
