//! Every configuration file we ship loads with `opengslb --check`, exactly
//! as an operator would check it after `scripts/install.sh` (mode 0600).

use crate::util::{BIN, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read etc/opengslb") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_shipped_config_passes_check() {
    let mut files = Vec::new();
    yaml_files(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/etc/opengslb")),
        &mut files,
    );
    assert!(
        files.len() >= 5,
        "expected overwatch, agent and three examples: {files:?}"
    );
    let dir = TempDir::new("shipped");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let copy = dir.write(&name, &std::fs::read_to_string(&file).unwrap());
        let out = Command::new(BIN)
            .args(["--config", copy.to_str().unwrap(), "--check"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mode = if name == "agent.yaml" {
            "agent mode"
        } else {
            "overwatch mode"
        };
        assert!(stdout.contains(mode), "{name}: {stdout}");
    }
}
