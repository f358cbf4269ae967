//! scripts/install.sh and scripts/uninstall.sh: into a DESTDIR with fake
//! binaries (idempotent, configs never overwritten and never
//! world-readable, units rewritten to PREFIX, everything removed again),
//! their refusals, and the live-system path (user, ownership, purge) as
//! root inside a private mount namespace so the host stays untouched.

use crate::util::appliance::{UNITS, root, text};
use crate::util::{TempDir, need_root, need_tools, skip};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn write_exec(path: &Path, body: &str) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every path under `dir` with its kind, size, mode and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, bool, u64, u32, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((
                p,
                m.is_dir(),
                m.len(),
                m.permissions().mode(),
                m.modified().unwrap(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

struct Install {
    tmp: TempDir,
    dest: PathBuf,
    bins: PathBuf,
    configs: PathBuf,
}

impl Install {
    fn new() -> Install {
        let tmp = TempDir::new("install");
        let bins = tmp.0.join("bins");
        let configs = tmp.0.join("configs");
        let dest = tmp.0.join("dest");
        fs::create_dir_all(&bins).unwrap();
        fs::create_dir_all(configs.join("examples")).unwrap();
        write_exec(&bins.join("opengslb"), "#!/bin/sh\necho fake opengslb\n");
        write_exec(
            &bins.join("opengslb-cli"),
            "#!/bin/sh\necho fake opengslb-cli\n",
        );
        fs::write(configs.join("overwatch.yaml"), "mode: overwatch\n").unwrap();
        fs::write(configs.join("agent.yaml"), "mode: agent\n").unwrap();
        fs::write(
            configs.join("examples/two-sites.yaml"),
            "mode: overwatch # example\n",
        )
        .unwrap();
        Install {
            dest,
            bins,
            configs,
            tmp,
        }
    }

    fn run(&self, script: &str, args: &[&str]) -> String {
        let out = Command::new("sh")
            .arg(root().join("scripts").join(script))
            .args(args)
            .env("DESTDIR", &self.dest)
            .env("PREFIX", "/opt/ogslb")
            .env("BINDIR_SRC", &self.bins)
            .env("CONFIG_SRC", &self.configs)
            .output()
            .unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{script} {args:?} failed:\n{t}");
        t
    }
}

#[test]
fn install_is_idempotent_keeps_edited_configs_and_uninstalls() {
    let i = Install::new();
    let d = &i.dest;
    let first = i.run("install.sh", &[]);
    assert!(first.contains("not creating the opengslb user"), "{first}");

    let bin = d.join("opt/ogslb/bin");
    for b in ["opengslb", "opengslb-cli", "opengslb-drain"] {
        assert_eq!(mode(&bin.join(b)), 0o755, "{b}");
    }
    assert_eq!(
        fs::read_to_string(bin.join("opengslb")).unwrap(),
        "#!/bin/sh\necho fake opengslb\n"
    );
    assert_eq!(mode(&d.join("etc/opengslb")), 0o750);
    assert_eq!(mode(&d.join("var/lib/opengslb")), 0o750);
    for c in ["overwatch.yaml", "agent.yaml"] {
        assert_eq!(
            mode(&d.join("etc/opengslb").join(c)),
            0o640,
            "{c} must not be world-readable"
        );
    }
    for u in UNITS {
        let text = fs::read_to_string(d.join("etc/systemd/system").join(u)).unwrap();
        assert!(
            text.contains("ExecStart=/opt/ogslb/bin/opengslb "),
            "{u} not rewritten to PREFIX"
        );
        assert!(
            !text.contains("/usr/local/bin"),
            "{u} still names /usr/local/bin"
        );
    }
    assert!(d.join("opt/ogslb/share/man/man8/opengslb.8").is_file());
    assert!(
        d.join("opt/ogslb/share/doc/opengslb/opengslb-alerts.yml")
            .is_file()
    );
    assert!(
        d.join("opt/ogslb/share/doc/opengslb/examples/two-sites.yaml")
            .is_file()
    );

    // A second run changes nothing at all.
    let before = snapshot(d);
    let second = i.run("install.sh", &[]);
    assert!(second.contains("everything already up to date"), "{second}");
    assert_eq!(before, snapshot(d), "the second install changed files");

    // An operator's edit survives; the shipped file lands beside it.
    let agent = d.join("etc/opengslb/agent.yaml");
    fs::write(&agent, "mode: agent\n# edited by the operator\n").unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o644)).unwrap();
    let third = i.run("install.sh", &[]);
    assert_eq!(
        fs::read_to_string(&agent).unwrap(),
        "mode: agent\n# edited by the operator\n"
    );
    assert_eq!(
        fs::read_to_string(d.join("etc/opengslb/agent.yaml.dist")).unwrap(),
        "mode: agent\n"
    );
    assert!(
        third.contains("agent.yaml.dist"),
        "install must say where the shipped file went:\n{third}"
    );
    assert_eq!(mode(&agent), 0o640, "a world-readable config is fixed");
    assert!(
        !d.join("etc/opengslb/overwatch.yaml.dist").exists(),
        "unchanged config got a .dist"
    );
    let before = snapshot(d);
    i.run("install.sh", &[]);
    assert_eq!(before, snapshot(d), "the .dist is rewritten on every run");

    // uninstall removes what install put there and keeps configs and state.
    let un = i.run("uninstall.sh", &[]);
    for b in ["opengslb", "opengslb-cli", "opengslb-drain"] {
        assert!(!bin.join(b).exists(), "{b} left behind:\n{un}");
    }
    for u in UNITS {
        assert!(
            !d.join("etc/systemd/system").join(u).exists(),
            "{u} left behind"
        );
    }
    assert!(!d.join("opt/ogslb/share/man/man8/opengslb.8").exists());
    assert!(
        !d.join("opt/ogslb/share/doc/opengslb").exists(),
        "doc dir left behind"
    );
    assert!(
        agent.is_file(),
        "uninstall without --purge removed a config"
    );
    assert!(
        d.join("var/lib/opengslb").is_dir(),
        "uninstall without --purge removed state"
    );

    let purge = i.run("uninstall.sh", &["--purge"]);
    assert!(
        !d.join("etc/opengslb").exists(),
        "--purge kept /etc/opengslb:\n{purge}"
    );
    assert!(
        !d.join("var/lib/opengslb").exists(),
        "--purge kept /var/lib/opengslb"
    );
}

#[test]
fn install_refuses_missing_binaries_and_bad_arguments() {
    let i = Install::new();
    fs::remove_file(i.bins.join("opengslb-cli")).unwrap();
    let out = Command::new("sh")
        .arg(root().join("scripts/install.sh"))
        .env("DESTDIR", &i.dest)
        .env("BINDIR_SRC", &i.bins)
        .env("CONFIG_SRC", &i.configs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no executable opengslb-cli"),
        "{}",
        text(&out)
    );
    let out = Command::new("sh")
        .arg(root().join("scripts/install.sh"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// The live-system path (no DESTDIR): user creation, ownership and the
/// purge, run as root inside a private mount namespace whose /etc,
/// /usr/local and /var/lib are overlays on a temp dir, so the host is left
/// untouched. Reported `SKIPPED:` when not root or when the namespace
/// or the overlays cannot be made.
#[test]
fn install_live_as_root_in_a_private_mount_namespace() {
    let test = "install::install_live_as_root_in_a_private_mount_namespace";
    if !need_root(test) || !need_tools(test, &["unshare"]) {
        return;
    }
    let i = Install::new();
    let ov = i.tmp.0.join("overlay");
    let host_etc = Path::new("/etc/opengslb").exists();
    let user_existed = Command::new("id")
        .arg("opengslb")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut script = String::from("set -e\n");
    for (n, dir) in ["/etc", "/usr/local", "/var/lib"].iter().enumerate() {
        let (up, work) = (ov.join(format!("{n}/up")), ov.join(format!("{n}/work")));
        fs::create_dir_all(&up).unwrap();
        fs::create_dir_all(&work).unwrap();
        // Any failed mount stops the script before it can touch the host.
        script.push_str(&format!(
            "mount -t overlay overlay -o lowerdir={dir},upperdir={},workdir={} {dir} || exit 77\n",
            up.display(),
            work.display()
        ));
    }
    let inst = root().join("scripts/install.sh");
    let uninst = root().join("scripts/uninstall.sh");
    script.push_str(&format!(
        "sh {inst} && echo RUN2 && sh {inst}\n\
         echo STAT; stat -c '%n %U:%G %a' /etc/opengslb /etc/opengslb/agent.yaml /var/lib/opengslb /usr/local/bin/opengslb\n\
         sh {uninst} --purge\n\
         echo AFTER; id opengslb 2>&1 || true; ls /etc/opengslb 2>&1 || true\n",
        inst = inst.display(),
        uninst = uninst.display()
    ));
    let path = i.tmp.0.join("live.sh");
    fs::write(&path, script).unwrap();
    let out = Command::new("unshare")
        .arg("-m")
        .arg("sh")
        .arg(&path)
        .env_remove("DESTDIR")
        .env_remove("PREFIX")
        .env("BINDIR_SRC", &i.bins)
        .env("CONFIG_SRC", &i.configs)
        .output()
        .unwrap();
    let t = text(&out);
    if out.status.code() == Some(77) || t.contains("unshare failed") {
        skip(test, &format!("no overlay mounts here:\n{t}"));
        return;
    }
    assert!(out.status.success(), "live install failed:\n{t}");
    if !user_existed {
        assert!(t.contains("created system user and group opengslb"), "{t}");
        assert!(t.contains("removed user opengslb"), "{t}");
    }
    let (_, run2) = t.split_once("RUN2").expect("second run");
    assert!(run2.contains("everything already up to date"), "{t}");
    assert!(t.contains("/etc/opengslb root:opengslb 750"), "{t}");
    assert!(
        t.contains("/etc/opengslb/agent.yaml root:opengslb 640"),
        "{t}"
    );
    assert!(t.contains("/var/lib/opengslb opengslb:opengslb 750"), "{t}");
    assert!(t.contains("/usr/local/bin/opengslb root:root 755"), "{t}");
    let (_, after) = t.split_once("AFTER").expect("after purge");
    assert!(
        after.contains("No such file"),
        "--purge left /etc/opengslb: {after}"
    );
    // The host itself is untouched.
    assert_eq!(
        Path::new("/etc/opengslb").exists(),
        host_etc,
        "the host's /etc/opengslb changed"
    );
    let user_now = Command::new("id")
        .arg("opengslb")
        .output()
        .is_ok_and(|o| o.status.success());
    assert_eq!(user_now, user_existed, "the host's opengslb user changed");
}
