//! Helpers shared by the appliance tests (tests/appliance_*.rs): the
//! repository root, tool detection that reports a skipped check, combined
//! process output, and a temp dir removed on drop.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::Output;

/// The two systemd units that ship in systemd/.
pub const UNITS: &[&str] = &["opengslb-overwatch.service", "opengslb-agent.service"];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when `tool` is on PATH; otherwise says which check is skipped.
pub fn have(tool: &str, check: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED {check}: `{tool}` is not installed");
    }
    found
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ogslb-appl-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
