//! Helpers of the appliance tests (tests/appliance/): the repository root,
//! the shipped unit names, and combined process output. Tool detection and
//! temp dirs are the shared ones in `util`.

use std::path::PathBuf;
use std::process::Output;

/// The two systemd units that ship in systemd/.
pub const UNITS: &[&str] = &["opengslb-overwatch.service", "opengslb-agent.service"];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
