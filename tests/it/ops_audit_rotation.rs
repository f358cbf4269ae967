//! The audit log rotates and the API still lists the newest entries (issue
//! 12, hardening): a live Overwatch with `overwatch.audit.max_size: 600`
//! rotates into audit.jsonl.1, .2 while writes keep coming; after a
//! restart `/api/v1/audit-logs` still lists every write, read across the
//! rotated files. Then logrotate's way: the file is renamed away, SIGUSR1
//! is sent (its default action would end the process), and the next write
//! lands in a new audit.jsonl.

use crate::util::ops::*;
use crate::util::*;
use serde_json::Value;
use std::time::Duration;

/// One audited write: an override of a backend nobody reports (refused,
/// and audited as refused).
fn write(ow: &Overwatch, n: u32) {
    let (code, body) = http(
        &format!(
            "{}/api/v1/overwatch/backends/{SERVICE}/127.0.9.{n}/80/override",
            ow.api
        ),
        "POST",
        Some(r#"{"healthy": false, "reason": "rotation test"}"#),
    )
    .expect("API answers");
    assert!(code == 200 || code == 404, "{code} {body}");
}

fn targets(ow: &Overwatch) -> Vec<String> {
    ow.get_json("/api/v1/audit-logs?limit=1000")["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["target"].as_str().unwrap_or("").to_string())
        .filter(|t| t.contains("127.0.9."))
        .collect()
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line"))
        .collect()
}

#[test]
fn audit_log_rotates_lists_across_files_and_reopens_on_sigusr1() {
    let dir = TempDir::new("auditrot");
    let opts = OwOptions {
        overwatch_extra: "  audit: { max_size: 600, max_files: 3 }\n",
        ..OwOptions::default()
    };
    let mut ow = Overwatch::start(&dir, "ow-auditrot", &opts);
    for n in 1..=8 {
        write(&ow, n);
    }
    let current = ow.data.join("audit.jsonl");
    assert!(
        ow.data.join("audit.jsonl.1").exists(),
        "no rotation at 600 bytes"
    );
    assert!(std::fs::metadata(&current).expect("audit.jsonl").len() <= 600);
    let before = targets(&ow);
    assert_eq!(before.len(), 8, "{before:?}");

    ow.daemon.signal(libc::SIGTERM);
    assert_eq!(ow.daemon.wait_exit(Duration::from_secs(15)), Some(0));
    ow.restart(&dir);
    assert_eq!(targets(&ow), before, "entries lost across rotated files");

    // logrotate: rename, then SIGUSR1.
    let moved = ow.data.join("audit.jsonl.moved");
    std::fs::rename(&current, &moved).expect("rename");
    let moved_lines = lines(&moved).len();
    ow.daemon.signal(libc::SIGUSR1);
    write(&ow, 9);
    assert_eq!(
        ow.daemon.wait_exit(Duration::from_millis(1)),
        None,
        "SIGUSR1 ended the daemon"
    );
    let fresh = lines(&current);
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert!(
        fresh[0]["target"]
            .as_str()
            .unwrap_or("")
            .contains("127.0.9.9")
    );
    assert_eq!(lines(&moved).len(), moved_lines);
}
