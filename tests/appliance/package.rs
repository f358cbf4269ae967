//! The Debian package built by scripts/package.sh, installed with dpkg into
//! a throwaway Debian root (a copy of a debootstrap'd chroot): the binaries
//! run, the shipped configurations and examples pass `--check`, the user,
//! directories and modes are right, units are neither enabled nor startable
//! on the unedited example (unless enabling is asked for), an upgrade over
//! itself keeps an edited conffile, and purge removes it all.
//!
//! Needs root, chroot, and a base root at $OPENGSLB_PKG_ROOT (default
//! target/pkg-chroot/bookworm), made once with:
//!   debootstrap --variant=minbase --include=adduser,init-system-helpers \
//!       bookworm target/pkg-chroot/bookworm http://deb.debian.org/debian
//! and the package from scripts/package.sh. Prints `SKIPPED: ...` without.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn skip(why: &str) {
    crate::util::skip("appliance_package", why);
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A copy of the base root, removed on drop.
struct Root(PathBuf);

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Root {
    /// Runs `sh -c script` inside the root (with `env` set).
    fn sh(&self, env: &[(&str, &str)], script: &str) -> Output {
        let mut cmd = Command::new("chroot");
        cmd.arg(&self.0).arg("/usr/bin/env").arg("-i");
        cmd.arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(["/bin/sh", "-c", script]);
        cmd.output().expect("run chroot")
    }

    /// Like `sh`, and the script must succeed; returns its output.
    fn ok(&self, env: &[(&str, &str)], script: &str) -> String {
        let out = self.sh(env, script);
        assert!(
            out.status.success(),
            "in the root: {script}\n{}",
            text(&out)
        );
        text(&out)
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.0.join(inside.trim_start_matches('/'))
    }

    /// `owner:group mode` of a path inside the root.
    fn stat(&self, inside: &str) -> String {
        self.ok(&[], &format!("stat -c '%U:%G %a' {inside}"))
            .trim()
            .to_string()
    }
}

/// Whether a symlink (or file) is there; its absolute target points into
/// the root, so `exists()` from outside would not follow it.
fn linked(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

fn which(tool: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).is_file())
}

/// Everything the test needs, or the reason it is skipped.
fn setup() -> Option<(Root, PathBuf)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("needs root (dpkg into a chroot)");
        return None;
    }
    if !which("chroot") || !which("dpkg") {
        skip("chroot or dpkg is not installed");
        return None;
    }
    let deb = root_dir().join(format!("target/debian/opengslb_{VERSION}-1_amd64.deb"));
    if !deb.is_file() {
        skip(&format!(
            "{} does not exist: run scripts/package.sh first",
            deb.display()
        ));
        return None;
    }
    let base = std::env::var_os("OPENGSLB_PKG_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root_dir().join("target/pkg-chroot/bookworm"));
    if !base.join("usr/bin/dpkg").is_file() {
        skip(&format!(
            "no Debian root at {} (see the top of tests/appliance_package.rs)",
            base.display()
        ));
        return None;
    }
    let copy = std::env::temp_dir().join(format!("opengslb-pkg-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    let out = Command::new("cp")
        .arg("-a")
        .arg(&base)
        .arg(&copy)
        .output()
        .expect("cp");
    assert!(out.status.success(), "copy the root: {}", text(&out));
    let root = Root(copy);
    std::fs::copy(&deb, root.path("/tmp/opengslb.deb")).expect("copy the package in");
    Some((root, deb))
}

#[test]
fn install_check_upgrade_purge() {
    let Some((root, _deb)) = setup() else { return };

    // Install, without asking for the units.
    root.ok(&[], "dpkg -i /tmp/opengslb.deb");
    let version = root.ok(&[], "opengslb --version; opengslb-cli --version");
    assert!(version.contains(VERSION), "{version}");
    for file in [
        "/usr/bin/opengslb-drain",
        "/lib/systemd/system/opengslb-overwatch.service",
        "/lib/systemd/system/opengslb-agent.service",
        "/usr/share/man/man1/opengslb-cli.1.gz",
        "/usr/share/man/man5/opengslb.yaml.5.gz",
        "/usr/share/man/man8/opengslb.8.gz",
        "/usr/share/opengslb/prometheus/opengslb-alerts.yml",
        "/usr/share/opengslb/grafana/opengslb.json",
        "/usr/share/opengslb/openapi.yaml",
        "/usr/share/bash-completion/completions/opengslb-cli",
        "/usr/share/zsh/vendor-completions/_opengslb-cli",
        "/usr/share/fish/vendor_completions.d/opengslb-cli.fish",
        "/usr/share/doc/opengslb/copyright",
    ] {
        assert!(root.path(file).is_file(), "{file} is not installed");
    }
    let unit = std::fs::read_to_string(root.path("/lib/systemd/system/opengslb-overwatch.service"))
        .expect("unit");
    assert!(unit.contains("ExecStart=/usr/bin/opengslb "), "{unit}");
    assert!(unit.contains("ExecStartPre=/usr/lib/opengslb/opengslb-check-edited overwatch"));

    // The user, the directories, the modes.
    let passwd = root.ok(&[], "getent passwd opengslb");
    assert!(passwd.contains(":/var/lib/opengslb:"), "{passwd}");
    assert!(passwd.trim_end().ends_with("nologin"), "{passwd}");
    assert_eq!(root.stat("/var/lib/opengslb"), "opengslb:opengslb 750");
    assert_eq!(root.stat("/etc/opengslb"), "root:opengslb 750");
    for which in ["overwatch", "agent"] {
        assert_eq!(
            root.stat(&format!("/etc/opengslb/{which}.yaml")),
            "root:opengslb 640"
        );
    }
    let conffiles = std::fs::read_to_string(root.path("/var/lib/dpkg/info/opengslb.conffiles"))
        .expect("conffiles");
    assert!(
        conffiles.contains("/etc/opengslb/overwatch.yaml"),
        "{conffiles}"
    );
    assert!(
        conffiles.contains("/etc/opengslb/agent.yaml"),
        "{conffiles}"
    );

    // Shipped configurations and examples pass --check (examples are
    // world-readable docs: checked from a private copy, as an operator would).
    root.ok(
        &[],
        "opengslb --config /etc/opengslb/overwatch.yaml --check",
    );
    root.ok(&[], "opengslb --config /etc/opengslb/agent.yaml --check");
    root.ok(
        &[],
        "set -e; d=$(mktemp -d); for f in /usr/share/doc/opengslb/examples/*.yaml; do \
         cp \"$f\" \"$d/\"; chmod 600 \"$d/$(basename \"$f\")\"; \
         opengslb --config \"$d/$(basename \"$f\")\" --check; done",
    );

    // Not enabled, and not startable on the unedited example.
    let wants = root.path("/etc/systemd/system/multi-user.target.wants");
    assert!(!linked(&wants.join("opengslb-overwatch.service")));
    assert!(!linked(&wants.join("opengslb-agent.service")));
    let refused = root.sh(&[], "/usr/lib/opengslb/opengslb-check-edited overwatch");
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("still the shipped example"),
        "{}",
        text(&refused)
    );

    // Edit, upgrade over itself: the edit stays and the guard lets it start.
    root.ok(
        &[],
        "sed -i 's/node_id: overwatch-1/node_id: edited-node/' /etc/opengslb/overwatch.yaml",
    );
    root.ok(&[], "/usr/lib/opengslb/opengslb-check-edited overwatch");
    root.ok(&[], "dpkg -i /tmp/opengslb.deb");
    let edited =
        std::fs::read_to_string(root.path("/etc/opengslb/overwatch.yaml")).expect("config");
    assert!(
        edited.contains("node_id: edited-node"),
        "the upgrade lost the edit"
    );
    assert_eq!(
        root.stat("/etc/opengslb/overwatch.yaml"),
        "root:opengslb 640"
    );
    root.ok(
        &[],
        "opengslb --config /etc/opengslb/overwatch.yaml --check",
    );
    root.ok(&[], "echo state > /var/lib/opengslb/audit.jsonl");

    // Purge: files, configuration and state go; the user stays (policy).
    root.ok(&[], "dpkg --purge opengslb");
    for gone in [
        "/usr/bin/opengslb",
        "/usr/bin/opengslb-cli",
        "/etc/opengslb",
        "/var/lib/opengslb",
        "/lib/systemd/system/opengslb-overwatch.service",
    ] {
        assert!(!root.path(gone).exists(), "{gone} survived the purge");
    }
    root.ok(&[], "getent passwd opengslb");

    // Asking for a unit at install enables it (and only it); purge forgets.
    let out = root.ok(
        &[("OPENGSLB_ENABLE", "overwatch")],
        "dpkg -i /tmp/opengslb.deb",
    );
    assert!(out.contains("enabled opengslb-overwatch.service"), "{out}");
    assert!(linked(&wants.join("opengslb-overwatch.service")));
    assert!(!linked(&wants.join("opengslb-agent.service")));
    root.ok(&[], "dpkg --purge opengslb");
    assert!(!linked(&wants.join("opengslb-overwatch.service")));
}
