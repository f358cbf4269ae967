//! Every `opengslb-cli` command written in docs/operations.md (code blocks
//! and inline code), run verbatim through a shell against a running
//! Overwatch: none may be a usage error (a renamed command or flag), and
//! the read-only ones must succeed. Placeholders (ID, AGENT_ID, example
//! names) reach the Overwatch as typed and may be refused there (404),
//! which is not a usage error. The agent-side commands reach no agent
//! here and must fail as unreachable, not as usage. The `curl` lines to
//! the Overwatch API (port 9090 in the text) must answer 200.

use crate::util::ops::*;
use crate::util::*;
use std::process::Command;

fn doc_commands() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .expect("docs/operations.md");
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let l = line.trim();
            if !pending.is_empty() || l.starts_with("opengslb-cli ") || l.starts_with("curl ") {
                match l.strip_suffix('\\') {
                    Some(head) => pending.push_str(&format!("{head} ")),
                    None => {
                        pending.push_str(l);
                        out.push(std::mem::take(&mut pending));
                    }
                }
            }
            continue;
        }
        // Inline code: `opengslb-cli ...`
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 1 && (part.starts_with("opengslb-cli ") || part.starts_with("curl ")) {
                out.push(part.to_string());
            }
        }
    }
    out.into_iter()
        .map(|c| {
            // What a shell would run of it: up to a pipe or a comment.
            let c = c.split(" | ").next().unwrap_or("");
            let c = c.split(" #").next().unwrap_or("");
            c.trim().to_string()
        })
        .collect()
}

#[test]
fn every_cli_command_in_operations_md_runs_verbatim() {
    let commands = doc_commands();
    assert!(commands.len() >= 15, "found only {commands:?}");
    let dir = TempDir::new("runbook-docs");
    let ow = Overwatch::start(&dir, "ow", &OwOptions::default());
    let dead_agent = format!("http://127.0.0.1:{}", free_port("127.0.0.1"));
    let api_host = ow.api.trim_start_matches("http://").to_string();
    let mut curls = 0;
    for c in commands.iter().filter(|c| c.starts_with("curl ")) {
        if !c.contains("localhost:9090") {
            continue; // the agent's local API: not running here
        }
        curls += 1;
        let script = format!(
            "{} -o /dev/null -w '%{{http_code}}'",
            c.replace("localhost:9090", &api_host)
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh");
        let status = String::from_utf8_lossy(&out.stdout);
        assert_eq!(status, "200", "{c}");
    }
    assert!(curls >= 2, "{commands:?}");
    for c in commands.iter().filter(|c| c.starts_with("opengslb-cli ")) {
        let rest = c.strip_prefix("opengslb-cli ").unwrap();
        let script = format!("\"$CLI\" --api \"$API\" --agent \"$AGENT\" {rest}");
        let out = Command::new("sh")
            .args(["-c", &script])
            .env("CLI", CLI)
            .env("API", &ow.api)
            .env("AGENT", &dead_agent)
            .output()
            .expect("sh");
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(code, 2, "usage error: {c}\n{stderr}");
        let first = rest.split_whitespace().next().unwrap_or("");
        let second = rest.split_whitespace().nth(1).unwrap_or("");
        let read_only = matches!(
            (first, second),
            ("servers", _) | ("status", _) | ("domains", _) | ("healthz", _) | ("gen-key", _)
        ) || (first, second) == ("agents", "")
            || (first, second) == ("overrides", "list");
        if read_only {
            assert_eq!(code, 0, "{c}\n{stderr}");
        }
        if first == "drain" || (first, second) == ("agent", "status") {
            assert_eq!(code, 5, "{c} with no agent: unreachable\n{stderr}");
        }
    }
}
