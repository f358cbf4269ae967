//! The test layout itself (tests/README.md): with `autotests = false`,
//! cargo builds only the `[[test]]` targets of Cargo.toml, so a test file
//! dropped at the top of tests/ or not declared in its binary's main.rs
//! would never compile or run, and nobody would notice. This fails instead.

use crate::util::appliance::root;
use std::fs;
use std::path::Path;

/// `.rs` file stems directly in `dir`.
fn rust_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    out.sort();
    out
}

#[test]
fn every_test_file_belongs_to_a_test_binary() {
    let tests = root().join("tests");
    let loose = rust_files(&tests);
    assert!(
        loose.is_empty(),
        "tests/{{{}}}.rs are not built (autotests = false): move each into \
         tests/it, tests/faults or tests/appliance and add `mod <name>;` to \
         that binary's main.rs (see tests/README.md)",
        loose.join(",")
    );
    let manifest = fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    for binary in ["it", "faults", "appliance"] {
        let dir = tests.join(binary);
        let main = fs::read_to_string(dir.join("main.rs")).expect("main.rs");
        assert!(
            manifest.contains(&format!("path = \"tests/{binary}/main.rs\"")),
            "Cargo.toml has no [[test]] for tests/{binary}"
        );
        for stem in rust_files(&dir) {
            if stem == "main" {
                continue;
            }
            assert!(
                main.lines().any(|l| l.trim() == format!("mod {stem};")),
                "tests/{binary}/{stem}.rs is not declared in tests/{binary}/main.rs: add `mod {stem};`"
            );
        }
    }
    for bench in rust_files(&tests.join("bench")) {
        assert!(
            manifest.contains(&format!("path = \"tests/bench/{bench}.rs\"")),
            "tests/bench/{bench}.rs has no [[test]] entry in Cargo.toml"
        );
    }
}
