//! `opengslb-cli config migrate FILE`: prints a v1.1 configuration file
//! with the changes this version needs to run it as v1.1 did, each change
//! marked by a comment, and a header listing the changes and what the
//! daemon will warn about.
//!
//! Edits are made on the text, not on a re-serialized tree, so the
//! operator's own comments, order and quoting survive and the output can
//! be diffed against the input. The result is loaded again with the
//! daemon's loader before it is printed; a file that still fails is
//! printed with its errors and the command exits with the config code.
//!
//! What it changes: an Overwatch without `overwatch.agent_tokens` for a
//! domain gets a generated token for it (v1.1 never checked tokens, so
//! every migrated agent would be refused); a file whose `metrics.address`
//! takes the port of the API (or agent API) it never configured gets that
//! API moved to the next free default port.

use super::client::CliError;
use crate::config::{self, Listener, Mode};
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The migrated text and what was done, for `--json` and tests.
#[derive(Debug, Default)]
pub struct Migration {
    pub text: String,
    pub changes: Vec<String>,
    /// Service (domain) → generated token.
    pub tokens: BTreeMap<String, String>,
    /// Warnings of the loader on the migrated file.
    pub warnings: Vec<String>,
    /// Errors of the loader on the migrated file (empty when valid).
    pub errors: Vec<String>,
}

pub fn migrate(
    path: &Path,
    token: &mut dyn FnMut() -> Result<String, CliError>,
) -> Result<Migration, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Failure(format!("{}: cannot read: {e}", path.display())))?;
    let raw: Value = serde_norway::from_str(&text)
        .map_err(|e| CliError::Config(format!("{}: invalid YAML: {e}", path.display())))?;
    let mode = match raw.get("mode").and_then(Value::as_str) {
        Some(m) if m.eq_ignore_ascii_case("agent") => Mode::Agent,
        Some(_) => Mode::Overwatch,
        None if raw.get("agent").is_some() => Mode::Agent,
        None => Mode::Overwatch,
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut m = Migration::default();

    if mode == Mode::Overwatch {
        add_tokens(&raw, &mut lines, &mut m, token)?;
    }
    move_api(&raw, mode, &mut lines, &mut m);

    let mut body = lines.join("\n");
    body.push('\n');
    match config::load_str(&body, path, Some(mode)) {
        Ok(l) => m.warnings = l.warnings,
        Err(e) => m.errors = e.to_string().lines().map(str::to_string).collect(),
    }
    let mut out = String::new();
    out.push_str(&format!(
        "# Migrated from OpenGSLB v1.1 by `opengslb-cli config migrate {}` (opengslb-cli {}).\n",
        path.display(),
        crate::VERSION
    ));
    if m.changes.is_empty() {
        out.push_str("# No change was needed.\n");
    } else {
        out.push_str("# Changes (each marked `# migrate:` below):\n");
        for c in &m.changes {
            out.push_str(&format!("#   - {c}\n"));
        }
    }
    if mode == Mode::Agent {
        let services: Vec<&str> = raw
            .get("agent")
            .and_then(|a| a.get("backends"))
            .and_then(Value::as_sequence)
            .map(|s| {
                s.iter()
                    .filter_map(|b| b.get("service")?.as_str())
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "# Note: agent.identity.service_token must equal overwatch.agent_tokens of its service on every Overwatch ({}); `config migrate` on the Overwatch file prints one per domain.\n",
            services.join(", ")
        ));
    }
    if !m.warnings.is_empty() {
        out.push_str(
            "# The daemon will warn at start (fine to keep, see docs/migrating-from-v1.md):\n",
        );
        for w in &m.warnings {
            out.push_str(&format!("#   - {}\n", strip_file(w, path)));
        }
    }
    if !m.errors.is_empty() {
        out.push_str("# STILL INVALID, fix by hand:\n");
        for e in &m.errors {
            out.push_str(&format!("#   - {}\n", strip_file(e, path)));
        }
    }
    out.push_str(&body);
    m.text = out;
    Ok(m)
}

/// Messages start with the file name; in comments of that file it is noise.
fn strip_file(msg: &str, path: &Path) -> String {
    msg.strip_prefix(&format!("{}:", path.display()))
        .map(str::trim_start)
        .unwrap_or(msg)
        .to_string()
}

fn domain_names(raw: &Value) -> Vec<String> {
    raw.get("domains")
        .and_then(Value::as_sequence)
        .map(|seq| {
            seq.iter()
                .filter_map(|d| d.get("name")?.as_str())
                .map(config::values::normalize_name)
                .collect()
        })
        .unwrap_or_default()
}

/// A generated token for every domain without one.
fn add_tokens(
    raw: &Value,
    lines: &mut Vec<String>,
    m: &mut Migration,
    token: &mut dyn FnMut() -> Result<String, CliError>,
) -> Result<(), CliError> {
    let existing: Vec<String> = raw
        .get("overwatch")
        .and_then(|o| o.get("agent_tokens"))
        .and_then(Value::as_mapping)
        .map(|t| {
            t.keys()
                .filter_map(Value::as_str)
                .map(config::values::normalize_name)
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<String> = domain_names(raw)
        .into_iter()
        .filter(|d| !existing.contains(d))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    for d in &missing {
        m.tokens.insert(d.clone(), token()?);
    }
    let entries = |indent: usize| -> Vec<String> {
        m.tokens
            .iter()
            .map(|(d, t)| format!("{:indent$}{d}: \"{t}\"  # migrate: generated", ""))
            .collect()
    };
    match find_top(lines, "overwatch") {
        None => {
            let mut b = vec![
                String::new(),
                "overwatch:".to_string(),
                "  agent_tokens:".to_string(),
            ];
            b.extend(entries(4));
            lines.extend(b);
        }
        Some(ow) => {
            let step = child_indent(lines, ow).unwrap_or(2);
            let end = block_end(lines, ow);
            let at = (ow + 1..end).find(|&i| {
                indent_of(&lines[i]) == step && lines[i].trim_start().starts_with("agent_tokens:")
            });
            match at {
                Some(i) if lines[i].trim_end().ends_with(':') => {
                    let inner = child_indent(lines, i).unwrap_or(step * 2);
                    let new = entries(inner);
                    lines.splice(i + 1..i + 1, new);
                }
                Some(i) => {
                    // Flow style (`agent_tokens: {}`): replaced as a block.
                    lines[i] = format!(
                        "{:step$}agent_tokens:  # migrate: was {}",
                        "",
                        lines[i].trim()
                    );
                    let new = entries(step * 2);
                    lines.splice(i + 1..i + 1, new);
                }
                None => {
                    let mut b = vec![format!("{:step$}agent_tokens:", "")];
                    b.extend(entries(step * 2));
                    lines.splice(ow + 1..ow + 1, b);
                }
            }
        }
    }
    for d in m.tokens.keys() {
        m.changes.push(format!(
            "overwatch.agent_tokens.{d}: generated a token (1.x never checked tokens, this version refuses agents without one); set it as agent.identity.service_token on the agents of {d}"
        ));
    }
    Ok(())
}

/// Moves the API (or agent API) off the port `metrics.address` took,
/// when the file never configured that API.
fn move_api(raw: &Value, mode: Mode, lines: &mut Vec<String>, m: &mut Migration) {
    let Some(port) = raw
        .get("metrics")
        .filter(|mm| mm.get("enabled").and_then(Value::as_bool).unwrap_or(false))
        .and_then(|mm| mm.get("address")?.as_str())
        .and_then(|a| Listener::Metrics.parse(a).ok())
        .map(|a| a.port())
    else {
        return;
    };
    match mode {
        Mode::Overwatch if raw.get("api").is_none() && port == 9090 => {
            lines.extend([
                String::new(),
                "api:  # migrate: added; metrics.address keeps :9090 for your scrapes".to_string(),
                "  address: \"127.0.0.1:9092\"".to_string(),
            ]);
            m.changes.push(
                "api.address: 127.0.0.1:9092 (the API's default 127.0.0.1:9090 is the port v1.1 metrics used); point the CLI at it with --api http://127.0.0.1:9092 or OPENGSLB_API".into(),
            );
        }
        Mode::Agent if raw.get("agent").and_then(|a| a.get("api")).is_none() && port == 9100 => {
            let Some(at) = find_top(lines, "agent") else {
                return;
            };
            let step = child_indent(lines, at).unwrap_or(2);
            let new = vec![
                format!(
                    "{:step$}api:  # migrate: added; metrics.address keeps :9100 for your scrapes",
                    ""
                ),
                format!("{:w$}address: \"127.0.0.1:9102\"", "", w = step * 2),
            ];
            lines.splice(at + 1..at + 1, new);
            m.changes.push(
                "agent.api.address: 127.0.0.1:9102 (the agent API's default 127.0.0.1:9100 is the port v1.1 agent metrics used); use opengslb-cli --agent http://127.0.0.1:9102 for drain and agent status".into(),
            );
        }
        _ => {}
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The line of top-level `key:` (block style).
fn find_top(lines: &[String], key: &str) -> Option<usize> {
    lines.iter().position(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| {
                let r = r.trim();
                r.is_empty() || r.starts_with('#')
            })
    })
}

/// Indentation of the first content line after `at`, if deeper.
fn child_indent(lines: &[String], at: usize) -> Option<usize> {
    let own = indent_of(&lines[at]);
    lines[at + 1..]
        .iter()
        .find(|l| is_content(l))
        .map(|l| indent_of(l))
        .filter(|&i| i > own)
}

/// One past the last line of the block opened at `at`.
fn block_end(lines: &[String], at: usize) -> usize {
    let own = indent_of(&lines[at]);
    (at + 1..lines.len())
        .find(|&i| is_content(&lines[i]) && indent_of(&lines[i]) <= own)
        .unwrap_or(lines.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> impl FnMut() -> Result<String, CliError> {
        let mut n = 0;
        move || {
            n += 1;
            Ok(format!("tok{n}"))
        }
    }

    fn run(text: &str) -> Migration {
        let dir = std::env::temp_dir().join(format!(
            "opengslb-migrate-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ow.yaml");
        std::fs::write(&path, text).unwrap();
        let m = migrate(&path, &mut tokens()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        m
    }

    const V11: &str = "# my comment\nmode: overwatch\noverwatch:\n    identity:\n        node_id: ow1\n    gossip:\n        bind_address: \"127.0.0.1:17946\"\nregions:\n  - name: a\n    servers:\n      - address: 10.0.0.1\ndomains:\n  - name: www.example.com\n    regions: [a]\n  - name: api.example.com\n    routing_algorithm: rr\n    regions: [a]\nmetrics:\n  enabled: true\n  address: \":9090\"\n";

    #[test]
    fn tokens_and_api_port() {
        let m = run(V11);
        assert!(m.errors.is_empty(), "{:?}\n{}", m.errors, m.text);
        assert_eq!(m.tokens.len(), 2);
        assert_eq!(m.tokens["www.example.com"], "tok1");
        assert!(m.text.contains("# my comment\n"), "{}", m.text);
        assert!(
            m.text.contains(
                "    agent_tokens:\n        api.example.com: \"tok2\"  # migrate: generated\n"
            ),
            "{}",
            m.text
        );
        assert!(m.text.contains("api:  # migrate: added"), "{}", m.text);
        assert!(
            !m.warnings.iter().any(|w| w.contains("agent_tokens")),
            "{:?}",
            m.warnings
        );
        assert_eq!(m.changes.len(), 3);
    }

    #[test]
    fn existing_tokens_are_kept() {
        let text = V11.replace(
            "overwatch:\n",
            "overwatch:\n    agent_tokens:\n        www.example.com: keep-me\n",
        );
        let m = run(&text);
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        assert_eq!(m.tokens.keys().collect::<Vec<_>>(), ["api.example.com"]);
        assert!(m.text.contains("www.example.com: keep-me"));
    }

    #[test]
    fn flow_style_and_no_overwatch_section() {
        let text = V11.replace("overwatch:\n", "overwatch:\n    agent_tokens: {}\n");
        let m = run(&text);
        assert!(m.errors.is_empty(), "{:?}\n{}", m.errors, m.text);
        assert_eq!(m.tokens.len(), 2);
        let text = "regions:\n  - name: a\n    servers:\n      - address: 10.0.0.1\ndomains:\n  - name: www.example.com\n    regions: [a]\n";
        let m = run(text);
        assert!(m.errors.is_empty(), "{:?}\n{}", m.errors, m.text);
        assert_eq!(m.tokens.len(), 1);
        assert!(m.text.contains("# No change") || !m.changes.is_empty());
    }
}
