//! The loader: reads the main file and its `includes:`, refuses files that
//! every user can read, merges, walks the tree against the key table,
//! deserializes, checks values, reads secret files, and reports every
//! problem at once as `FILE:LINE: KEY: message`.
//!
//! It has no side effects besides reading files, so the daemon can call it
//! for `--check`, at start and on SIGHUP alike: a file with any error is
//! rejected whole.

use super::compat;
use super::conflicts::{self, Written};
use super::error::{ConfigError, ConfigErrors};
use super::geo_rules;
use super::glob;
use super::lines::LineIndex;
use super::merge::{self, Collector, MERGED_LISTS, Origins};
use super::schema::{Config, Mode};
use super::secrets::{self, Secrets};
use super::validate;
use super::walk::{self, Findings};
use serde_norway::Value;
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
    parse_yaml(&text, path, idx, out)
}

/// Parses the text of file number `idx` (named `path` in errors).
fn parse_yaml(
    text: &str,
    path: &Path,
    idx: usize,
    out: &mut Collector,
) -> Option<(Value, LineIndex)> {
    match serde_norway::from_str::<Value>(text).and_then(|mut v| v.apply_merge().map(|()| v)) {
        Ok(v) => Some((v, LineIndex::scan(text))),
        Err(e) => {
            let line = e.location().map(|l| l.line());
            out.file(idx, path, line, None, format!("invalid YAML: {e}"));
            None
        }
    }
}

pub fn load(path: &Path, mode_override: Option<Mode>) -> Result<Loaded, ConfigErrors> {
    let mut out = Collector { errors: Vec::new() };
    let Some((root, index)) = read_yaml(path, 0, &mut out) else {
        return Err(finish(out));
    };
    load_parsed(path, root, index, mode_override, out, Lookups::Resolve)
}

/// Like `load`, for the text of a main file that is not read from disk
/// (the fuzzer, tests, `config migrate`). `name` stands for its path in
/// messages; includes and `*_file` secrets are still read relative to its
/// folder. No permission check applies to `text` itself, and backend host
/// names are not looked up (a warning says they will be at start).
pub fn load_str(
    text: &str,
    name: &Path,
    mode_override: Option<Mode>,
) -> Result<Loaded, ConfigErrors> {
    let mut out = Collector { errors: Vec::new() };
    let Some((root, index)) = parse_yaml(text, name, 0, &mut out) else {
        return Err(finish(out));
    };
    load_parsed(name, root, index, mode_override, out, Lookups::Skip)
}

/// Whether backend host names are looked up (`load`) or left as written
/// (`load_str`: the fuzzer and `config migrate` must not touch the network).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lookups {
    Resolve,
    Skip,
}

/// Everything after the main file parsed: includes, merge, checks.
fn load_parsed(
    path: &Path,
    mut root: Value,
    index: LineIndex,
    mode_override: Option<Mode>,
    mut out: Collector,
    lookups: Lookups,
) -> Result<Loaded, ConfigErrors> {
    // An empty main file is most often one truncated by a failed write;
    // running on nothing but defaults (no domains) would be an outage,
    // and on SIGHUP it would replace a working configuration.
    if root.is_null() {
        out.file(
            0,
            path,
            None,
            None,
            "the file is empty (no keys); refusing to run on defaults alone".into(),
        );
        return Err(finish(out));
    }
    let mut warnings: Vec<(usize, Option<usize>, String)> = Vec::new();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut origins = Origins {
        files: vec![(path.to_path_buf(), index)],
        lists: HashMap::new(),
        tokens: HashMap::new(),
    };
    for list in MERGED_LISTS {
        let n = merge::list_at(&root, list).map_or(0, Vec::len);
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

    // Includes, depth first in file order; an included file may include
    // more (v1.1 did, to a depth of 10), relative to its own folder.
    let patterns: Vec<String> = match get(&root, "includes").and_then(Value::as_sequence) {
        Some(seq) => seq
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        None => Vec::new(),
    };
    let mut seen = vec![std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())];
    include_all(
        IncludeSite {
            file: 0,
            base: &base,
            patterns: &patterns,
            depth: 1,
        },
        &mut root,
        &mut origins,
        &mut seen,
        &mut warnings,
        &mut out,
    );

    compat::normalize_raw(&mut root);
    let written = Written {
        api: get(&root, "api").is_some_and(|v| !v.is_null()),
        agent_api: get(&root, "agent")
            .and_then(|a| a.get("api"))
            .is_some_and(|v| !v.is_null()),
    };

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
    let mut compat_errors = Vec::new();
    let mut compat_warnings = Vec::new();
    if lookups == Lookups::Resolve {
        compat::resolve_hosts(&mut config, mode, &mut compat_errors, &mut compat_warnings);
    } else {
        compat::note_hosts(&config, mode, &mut compat_warnings);
    }
    if mode == Mode::Overwatch {
        compat::implicit_zones(&mut config, &mut compat_warnings);
    }
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
        .chain(compat_errors)
        .chain(conflicts::listener_conflicts(&config, mode, written))
        .chain(if mode == Mode::Overwatch {
            geo_rules::database_errors(&config)
        } else {
            Vec::new()
        })
        .chain(duplicates)
        .chain(secret_errors)
    {
        if !findings.covers(&p) {
            out.errors.push(origins.error(&p, m));
        }
    }
    for (p, m) in report
        .warnings
        .into_iter()
        .chain(compat_warnings)
        .chain(conflicts::agent_token_warnings(&config, mode))
    {
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

/// v1.1's limit on nested includes (it guards against include loops that
/// a symbolic link could hide from the `seen` check).
const MAX_INCLUDE_DEPTH: usize = 10;

/// The `includes:` list of one file.
struct IncludeSite<'a> {
    /// Index of the including file in `origins.files`.
    file: usize,
    /// Its folder: relative patterns are taken from there.
    base: &'a Path,
    patterns: &'a [String],
    depth: usize,
}

/// Reads and merges the files `site` includes, then what they include.
fn include_all(
    site: IncludeSite<'_>,
    root: &mut Value,
    origins: &mut Origins,
    seen: &mut Vec<PathBuf>,
    warnings: &mut Vec<(usize, Option<usize>, String)>,
    out: &mut Collector,
) {
    let Some((including, _)) = origins.files.get(site.file).cloned() else {
        return;
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, pattern) in site.patterns.iter().enumerate() {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            site.base.join(pattern)
        };
        let key = format!("includes[{i}]");
        let line = origins.files[site.file].1.find(&key);
        if site.depth > MAX_INCLUDE_DEPTH {
            out.file(
                site.file,
                &including,
                line,
                Some(key),
                format!("includes nested more than {MAX_INCLUDE_DEPTH} deep"),
            );
            return;
        }
        if glob::has_wildcard(pattern) {
            let found = glob::expand(&full);
            if found.is_empty() {
                warnings.push((
                    site.file,
                    line,
                    format!("{key}: {pattern:?} matches no file"),
                ));
            }
            files.extend(found);
        } else if full.is_file() {
            files.push(full);
        } else {
            out.file(
                site.file,
                &including,
                line,
                Some(key),
                format!("included file {} does not exist", full.display()),
            );
        }
    }
    for file in files {
        let canon = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        if seen.contains(&canon) {
            continue;
        }
        seen.push(canon);
        let idx = origins.files.len();
        let Some((value, index)) = read_yaml(&file, idx, out) else {
            continue;
        };
        origins.files.push((file.clone(), index));
        let nested = merge::merge(root, value, idx, origins, out);
        if !nested.is_empty() {
            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
            include_all(
                IncludeSite {
                    file: idx,
                    base: &base,
                    patterns: &nested,
                    depth: site.depth + 1,
                },
                root,
                origins,
                seen,
                warnings,
                out,
            );
        }
    }
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
    if let Some(g) = config.overwatch.geolocation.as_mut() {
        fix(&mut g.database_path);
    }
    if let Some(agent) = config.agent.as_mut() {
        fix(&mut agent.gossip.encryption_key_file);
        fix(&mut agent.identity.service_token_file);
    }
}

fn get<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    root.as_mapping()?.get(key)
}
