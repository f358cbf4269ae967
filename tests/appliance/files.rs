//! Checks of the files that ship beside the binaries: the shell scripts
//! (POSIX sh, executable, shellcheck), the systemd units (systemd-analyze
//! verify and the hardening they promise, command lines that parse with the
//! daemon's own flag parser) and the man pages (mandoc -Tlint, and
//! opengslb(8) against the flag table and the exit-code table). A check
//! whose tool is not installed says so on stderr and passes; CI installs
//! them all (shellcheck, systemd, mandoc).

use crate::util::appliance::{UNITS, root, text};
use crate::util::{TempDir, need_tools};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

// ------------------------------------------------------------ shell

fn scripts() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root().join("scripts"))
        .expect("scripts/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    v.sort();
    v
}

#[test]
fn scripts_pass_shellcheck() {
    let all = scripts();
    for name in ["install.sh", "uninstall.sh", "drain.sh"] {
        assert!(
            all.iter().any(|p| p.ends_with(name)),
            "scripts/{name} missing"
        );
    }
    for p in &all {
        let mode = fs::metadata(p).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} is not executable", p.display());
        let first = fs::read_to_string(p).unwrap();
        assert!(
            first.starts_with("#!/bin/sh\n"),
            "{} must be POSIX sh",
            p.display()
        );
    }
    if !need_tools("files::scripts_pass_shellcheck", &["shellcheck"]) {
        return;
    }
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .args(&all)
        .output()
        .unwrap();
    assert!(out.status.success(), "shellcheck:\n{}", text(&out));
}

// ------------------------------------------------------------ systemd

fn unit(name: &str) -> String {
    fs::read_to_string(root().join("systemd").join(name))
        .unwrap_or_else(|e| panic!("systemd/{name}: {e}"))
}

fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn units_promise_the_documented_hardening() {
    for name in UNITS {
        let u = unit(name);
        let has = |key: &str, want: &dyn Fn(&str) -> bool| {
            assert!(
                values(&u, key).iter().any(|v| want(v)),
                "{name}: no acceptable {key}= ({:?})",
                values(&u, key)
            );
        };
        let yes = |v: &str| matches!(v, "true" | "yes" | "1" | "on");
        has("Type", &|v| v == "notify");
        has("ExecReload", &|v| {
            v.contains("kill -HUP") || v.contains("SIGHUP")
        });
        has("Restart", &|v| v == "on-failure");
        has("User", &|v| v == "opengslb");
        has("StateDirectory", &|v| v == "opengslb");
        has("ProtectSystem", &|v| v == "strict");
        has("NoNewPrivileges", &yes);
        has("PrivateTmp", &yes);
        has("RestrictAddressFamilies", &|v| {
            v.contains("AF_INET") && v.contains("AF_UNIX")
        });
        has("SystemCallFilter", &|v| v == "@system-service");
        has("WatchdogSec", &|v| !v.is_empty());
        // The command lines must parse with the daemon's own flag parser.
        let start = values(&u, "ExecStart");
        assert_eq!(start.len(), 1, "{name}: one ExecStart");
        let argv: Vec<String> = start[0]
            .split_whitespace()
            .skip(1)
            .map(String::from)
            .collect();
        match opengslb::daemon::args::parse(argv) {
            Ok(opengslb::daemon::args::Action::Run(a)) => {
                let mode = if name.contains("agent") {
                    "agent"
                } else {
                    "overwatch"
                };
                assert_eq!(
                    a.config,
                    PathBuf::from(format!("/etc/opengslb/{mode}.yaml")),
                    "{name}"
                );
                assert!(
                    start[0].contains(&format!("--mode {mode}")),
                    "{name}: --mode {mode}"
                );
            }
            other => panic!("{name}: ExecStart does not parse as a run: {other:?}"),
        }
        let check = values(&u, "ExecReload")
            .into_iter()
            .find(|v| v.contains("--check"))
            .unwrap_or_else(|| panic!("{name}: no ExecReload with --check"));
        let argv: Vec<String> = check.split_whitespace().skip(1).map(String::from).collect();
        assert!(
            matches!(
                opengslb::daemon::args::parse(argv),
                Ok(opengslb::daemon::args::Action::Check(_))
            ),
            "{name}: the --check ExecReload does not parse"
        );
        // install.sh rewrites this prefix to $PREFIX/bin.
        assert!(
            start[0].starts_with("/usr/local/bin/opengslb "),
            "{name}: ExecStart path"
        );
    }
    let ow = unit("opengslb-overwatch.service");
    assert!(
        values(&ow, "AmbientCapabilities").contains(&"CAP_NET_BIND_SERVICE"),
        "overwatch binds :53"
    );
    let agent = unit("opengslb-agent.service");
    assert!(
        values(&agent, "RuntimeDirectory").contains(&"opengslb"),
        "agent drain file dir"
    );
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if !need_tools(
        "files::units_pass_systemd_analyze_verify",
        &["systemd-analyze"],
    ) {
        return;
    }
    // The real daemon when this crate has the binary target; /bin/true
    // otherwise (verify only needs an executable path).
    let exe = option_env!("CARGO_BIN_EXE_opengslb").unwrap_or("/bin/true");
    let dir = TempDir::new("units");
    for name in UNITS {
        let rewritten: String = unit(name)
            .lines()
            .map(|l| {
                if l.starts_with("ExecStart=") || l.starts_with("ExecReload=") {
                    l.replace("/usr/local/bin/opengslb", exe)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.0.join(name);
        fs::write(&path, rewritten + "\n").unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let all = text(&out);
        let complaints: Vec<&str> = all.lines().filter(|l| l.contains(name)).collect();
        assert!(
            complaints.is_empty(),
            "systemd-analyze verify {name}:\n{}",
            complaints.join("\n")
        );
        if !out.status.success() {
            eprintln!(
                "systemd-analyze verify {name} exited {} without naming the unit:\n{all}",
                out.status
            );
        }
    }
}

// ------------------------------------------------------------ man pages

fn man_pages() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root().join("man"))
        .expect("man/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "1" || x == "5" || x == "8")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn man_pages_pass_mandoc_lint() {
    let pages = man_pages();
    assert!(
        pages.iter().any(|p| p.ends_with("opengslb.8")),
        "man/opengslb.8 missing"
    );
    if !need_tools("files::man_pages_pass_mandoc_lint", &["mandoc"]) {
        return;
    }
    for p in &pages {
        let out = Command::new("mandoc")
            .arg("-Tlint")
            .arg(p)
            .output()
            .unwrap();
        let t = text(&out);
        assert!(
            out.status.success() && t.trim().is_empty(),
            "mandoc -Tlint {}:\n{t}",
            p.display()
        );
    }
}

/// The lines of one `.SH` section.
fn section<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    page.lines()
        .skip_while(|l| *l != format!(".SH {name}"))
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .collect()
}

/// The line after each `.TP` of a section.
fn tagged(lines: &[&str]) -> Vec<String> {
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| w[1].to_string())
        .collect()
}

#[test]
fn man_page_flags_match_the_flag_table() {
    let page = fs::read_to_string(root().join("man/opengslb.8")).unwrap();
    let tags = tagged(&section(&page, "OPTIONS"));
    let documented: BTreeSet<String> = tags
        .iter()
        .filter_map(|t| {
            let rest = t.strip_prefix("\\fB\\-\\-")?;
            Some(format!("--{}", &rest[..rest.find("\\fR")?]))
        })
        .collect();
    assert_eq!(
        documented.len(),
        tags.len(),
        "an OPTIONS tag breaks the convention: {tags:?}"
    );
    let table: BTreeSet<String> = opengslb::daemon::args::FLAGS
        .iter()
        .map(|f| f.0.to_string())
        .collect();
    assert_eq!(
        documented, table,
        "man/opengslb.8 OPTIONS vs src/daemon/args.rs FLAGS"
    );
    for (flag, value, _) in opengslb::daemon::args::FLAGS {
        let tag = tags
            .iter()
            .find(|t| t.contains(&flag.replace('-', "\\-")))
            .expect("tag");
        if value.is_empty() {
            assert!(!tag.contains("\\fI"), "{flag} takes no value: {tag}");
        } else {
            assert!(
                tag.contains(&format!("\\fI{value}\\fR")),
                "{flag} {value}: {tag}"
            );
        }
    }
}

#[test]
fn man_page_exit_codes_match_the_exit_table() {
    let page = fs::read_to_string(root().join("man/opengslb.8")).unwrap();
    let codes: Vec<i32> = tagged(&section(&page, "EXIT STATUS"))
        .iter()
        .filter_map(|t| t.strip_prefix(".B ")?.trim().parse().ok())
        .collect();
    let table: Vec<i32> = opengslb::exit::TABLE.iter().map(|e| e.0).collect();
    assert_eq!(codes, table, "man/opengslb.8 EXIT STATUS vs src/exit.rs");
    for s in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "SIGNALS",
        "EXIT STATUS",
        "FILES",
        "ENVIRONMENT",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            page.contains(&format!(".SH {s}\n")),
            "man/opengslb.8 has no {s} section"
        );
    }
    let signals = section(&page, "SIGNALS").join("\n");
    for s in ["SIGHUP", "SIGTERM", "SIGINT"] {
        assert!(signals.contains(s), "SIGNALS lacks {s}");
    }
    let env = section(&page, "ENVIRONMENT").join("\n");
    for v in ["RUST_LOG", "NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        assert!(env.contains(v), "ENVIRONMENT lacks {v}");
    }
}
