//! The loader: reads the main file and its `includes:`, refuses files that
//! every user can read, merges, walks the tree against the key table,
//! deserializes, checks values, reads secret files, and reports every
//! problem at once as `FILE:LINE: KEY: message`.
//!
//! It has no side effects besides reading files, so the daemon can call it
//! for `--check`, at start and on SIGHUP alike: a file with any error is
//! rejected whole.

use super::error::{ConfigError, ConfigErrors};
use super::glob;
use super::lines::LineIndex;
use super::schema::{Config, Mode};
use super::secrets::{self, Secrets};
use super::validate;
use super::walk::{self, Findings};
use serde_norway::{Mapping, Value};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A configuration that passed every check.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    /// `--mode` if given, else `mode:` from the file, else overwatch.
    pub mode: Mode,
    /// The main file first, then the included files in merge order.
    pub files: Vec<PathBuf>,
    /// `FILE:LINE: ...` lines to log once at start (v1.1 keys, keys with
    /// no effect in this mode, includes that matched nothing).
    pub warnings: Vec<String>,
    /// Gossip keyring and agent token, with `*_file` variants read.
    pub secrets: Secrets,
}

/// Where each key of the merged tree came from.
struct Origins {
    files: Vec<(PathBuf, LineIndex)>,
    /// Merged list prefix → per merged index, (file, index in that file).
    lists: HashMap<&'static str, Vec<(usize, usize)>>,
    /// Service → file that defined its agent token.
    tokens: HashMap<String, usize>,
}

const MERGED_LISTS: [&str; 3] = ["regions", "domains", "agent.backends"];

impl Origins {
    /// Resolves a merged concrete path to (file index, line).
    fn locate(&self, path: &str) -> (usize, Option<usize>) {
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

    fn error(&self, path: &str, message: String) -> (usize, ConfigError) {
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

struct Collector {
    errors: Vec<(usize, ConfigError)>,
}

impl Collector {
    fn file(
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

/// Refuses a file that every user may read; the message names the fix.
pub(crate) fn check_permissions(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(format!(
            "file is readable by every user and may hold keys and tokens; fix it with: chmod 600 {}",
            path.display()
        ));
    }
    Ok(())
}

/// Reads and parses one file; errors carry the file and, for YAML syntax
/// errors, the line.
fn read_yaml(path: &Path, idx: usize, out: &mut Collector) -> Option<(Value, LineIndex)> {
    if let Err(e) = check_permissions(path) {
        out.file(idx, path, None, None, e);
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            if path.exists() {
                out.file(idx, path, None, None, format!("cannot read: {e}"));
            }
            return None;
        }
    };
    match serde_norway::from_str::<Value>(&text).and_then(|mut v| v.apply_merge().map(|()| v)) {
        Ok(v) => Some((v, LineIndex::scan(&text))),
        Err(e) => {
            let line = e.location().map(|l| l.line());
            out.file(idx, path, line, None, format!("invalid YAML: {e}"));
            None
        }
    }
}

pub fn load(path: &Path, mode_override: Option<Mode>) -> Result<Loaded, ConfigErrors> {
    let mut out = Collector { errors: Vec::new() };
    let mut warnings: Vec<(usize, Option<usize>, String)> = Vec::new();
    let Some((mut root, index)) = read_yaml(path, 0, &mut out) else {
        return Err(finish(out));
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut origins = Origins {
        files: vec![(path.to_path_buf(), index)],
        lists: HashMap::new(),
        tokens: HashMap::new(),
    };
    for list in MERGED_LISTS {
        let n = list_at(&root, list).map_or(0, Vec::len);
        origins.lists.insert(list, (0..n).map(|i| (0, i)).collect());
    }
    if let Some(tokens) = get(&root, "overwatch")
        .and_then(|o| o.get("agent_tokens"))
        .and_then(Value::as_mapping)
    {
        for k in tokens.keys().filter_map(Value::as_str) {
            origins.tokens.insert(k.to_string(), 0);
        }
    }

    // Includes.
    let patterns: Vec<String> = match get(&root, "includes").and_then(Value::as_sequence) {
        Some(seq) => seq
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        None => Vec::new(),
    };
    let mut include_files: Vec<PathBuf> = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let key = format!("includes[{i}]");
        let line = origins.files[0].1.find(&key);
        if glob::has_wildcard(pattern) {
            let found = glob::expand(&full);
            if found.is_empty() {
                warnings.push((0, line, format!("{key}: {pattern:?} matches no file")));
            }
            include_files.extend(found);
        } else if full.is_file() {
            include_files.push(full);
        } else {
            out.file(
                0,
                path,
                line,
                Some(key),
                format!("included file {} does not exist", full.display()),
            );
        }
    }
    let mut seen = vec![std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())];
    for file in include_files {
        let canon = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        if seen.contains(&canon) {
            continue;
        }
        seen.push(canon);
        let idx = origins.files.len();
        let Some((value, index)) = read_yaml(&file, idx, &mut out) else {
            continue;
        };
        origins.files.push((file.clone(), index));
        merge(&mut root, value, idx, &mut origins, &mut out);
    }

    // Mode.
    let file_mode = match get(&root, "mode").and_then(Value::as_str) {
        Some("agent") => Some(Mode::Agent),
        Some("overwatch") => Some(Mode::Overwatch),
        _ => None,
    };
    let mode = mode_override.or(file_mode).unwrap_or_default();
    let has = |key: &str| get(&root, key).is_some_and(|v| !v.is_null());
    let mut extra: Vec<(String, String)> = Vec::new();
    match mode {
        Mode::Agent if !has("agent") => {
            let at = if has("mode") { "mode" } else { "" };
            extra.push((at.into(), "agent mode needs an agent: section".into()));
        }
        Mode::Overwatch if has("agent") => extra.push((
            "agent".into(),
            "an overwatch configuration must not contain agent: (set mode: agent or run with --mode agent)".into(),
        )),
        Mode::Agent => {
            for key in ["dns", "overwatch", "regions", "domains", "api"] {
                if has(key) {
                    let (f, line) = origins.locate(key);
                    warnings.push((f, line, format!("{key}: has no effect in agent mode")));
                }
            }
        }
        Mode::Overwatch => {}
    }

    // Keys and types.
    let mut findings = Findings::default();
    walk::walk(&mut root, &mut findings);
    for (generic, concrete) in &findings.inert {
        let (f, line) = origins.locate(concrete);
        warnings.push((
            f,
            line,
            format!("key {generic} is accepted for v1.1 compatibility and has no effect"),
        ));
    }
    for (p, m) in findings.errors.iter().chain(extra.iter()) {
        out.errors.push(origins.error(p, m.clone()));
    }

    // Values.
    let mut config: Config = match serde_norway::from_value(root) {
        Ok(c) => c,
        Err(e) => {
            out.errors
                .push(origins.error("", format!("invalid configuration: {e}")));
            return Err(finish(out));
        }
    };
    resolve_paths(&mut config, &base);
    let report = validate::validate(&config, mode);
    let (secrets, secret_errors) = secrets::resolve(&config, mode);
    let duplicates = report.duplicates.into_iter().map(|(p, first, what)| {
        let (f, line) = origins.locate(&first);
        let file = origins
            .files
            .get(f)
            .map(|(p, _)| p.display().to_string())
            .unwrap_or_default();
        let at = line.map(|l| format!(":{l}")).unwrap_or_default();
        (p, format!("{what} is defined twice: first at {file}{at}"))
    });
    for (p, m) in report
        .errors
        .into_iter()
        .chain(duplicates)
        .chain(secret_errors)
    {
        if !findings.covers(&p) {
            out.errors.push(origins.error(&p, m));
        }
    }
    for (p, m) in report.warnings {
        let (f, line) = origins.locate(&p);
        warnings.push((f, line, format!("{p}: {m}")));
    }
    if !out.errors.is_empty() {
        return Err(finish(out));
    }
    warnings.sort_by_key(|(f, line, _)| (*f, line.unwrap_or(0)));
    let warnings = warnings
        .into_iter()
        .map(|(f, line, msg)| {
            let file = origins
                .files
                .get(f)
                .map(|(p, _)| p.display().to_string())
                .unwrap_or_default();
            match line {
                Some(l) => format!("{file}:{l}: {msg}"),
                None => format!("{file}: {msg}"),
            }
        })
        .collect();
    Ok(Loaded {
        config,
        mode,
        files: origins.files.into_iter().map(|(p, _)| p).collect(),
        warnings,
        secrets,
    })
}

fn finish(out: Collector) -> ConfigErrors {
    let mut errors = out.errors;
    errors.sort_by_key(|(file, e)| (*file, e.line.unwrap_or(0)));
    let mut list: Vec<ConfigError> = Vec::with_capacity(errors.len());
    for (_, e) in errors {
        if !list.contains(&e) {
            list.push(e);
        }
    }
    ConfigErrors(list)
}

/// Makes relative secret-file paths relative to the main file's folder.
fn resolve_paths(config: &mut Config, base: &Path) {
    let fix = |p: &mut Option<String>| {
        if let Some(s) = p.as_mut().filter(|s| !Path::new(s.as_str()).is_absolute()) {
            *s = base.join(s.as_str()).display().to_string();
        }
    };
    fix(&mut config.overwatch.gossip.encryption_key_file);
    if let Some(agent) = config.agent.as_mut() {
        fix(&mut agent.gossip.encryption_key_file);
        fix(&mut agent.identity.service_token_file);
    }
}

fn get<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    root.as_mapping()?.get(key)
}

fn list_at<'a>(root: &'a Value, dotted: &str) -> Option<&'a Vec<Value>> {
    let mut v = root;
    for part in dotted.split('.') {
        v = v.as_mapping()?.get(part)?;
    }
    v.as_sequence()
}

/// Merges one included file into the main tree.
fn merge(root: &mut Value, inc: Value, idx: usize, origins: &mut Origins, out: &mut Collector) {
    let Some(file) = origins
        .files
        .get(idx)
        .map(|(p, lines)| (p.clone(), lines.clone()))
    else {
        return;
    };
    let (path, lines) = file;
    let bad = |out: &mut Collector, key: &str, msg: String| {
        out.file(idx, &path, lines.find(key), Some(key.to_string()), msg);
    };
    let inc = match inc {
        Value::Mapping(m) => m,
        Value::Null => return,
        other => {
            bad(
                out,
                "",
                format!(
                    "the file must hold a mapping of keys, found {}",
                    walk::describe(&other)
                ),
            );
            return;
        }
    };
    let Some(main) = root.as_mapping_mut() else {
        return;
    };
    for (k, v) in inc {
        let name = k.as_str().unwrap_or_default().to_string();
        match (name.as_str(), v) {
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
                        (other, _) => bad(
                            out,
                            &format!("overwatch.{}", other.unwrap_or("?")),
                            "only overwatch.agent_tokens may be set in an included file".into(),
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
                "cannot be set in an included file (allowed: regions, domains, overwatch.agent_tokens, agent.backends)"
                    .into(),
            ),
        }
    }
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
