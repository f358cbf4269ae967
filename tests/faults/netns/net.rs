//! Network namespaces for the fault tests: a bridge in a "core"
//! namespace, one veth per host namespace, processes started inside them,
//! and cleanup on drop (also when the test panics).

use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// True when `test` can run here: root, and `ip`, `iptables` and `python3`
/// that start. Otherwise reports `test` skipped (saying what is missing).
pub fn can_run(test: &str) -> bool {
    if !crate::util::need_root(test) {
        return false;
    }
    let works = |t: &str, arg: &str| {
        Command::new(t)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = [("ip", "-V"), ("iptables", "-V"), ("python3", "-V")]
        .into_iter()
        .filter(|(t, arg)| !works(t, arg))
        .map(|(t, _)| t)
        .collect();
    if !missing.is_empty() {
        crate::util::skip(
            test,
            &format!(
                "needs iproute2, iptables and python3; missing: {}",
                missing.join(", ")
            ),
        );
    }
    missing.is_empty()
}

/// Runs a command; panics with its stderr when it fails.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process started inside a namespace; killed on drop, its log printed
/// when the test fails.
pub struct Proc {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn signal(&self, sig: i32) {
        if self.pid() > 0 {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(self.pid(), sig) };
        }
    }

    pub fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let child = self.child.as_mut()?;
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- {} ----\n{}", self.log.display(), self.log_text());
        }
    }
}

/// The namespaces of one test: a bridge in `core`, one veth per host.
/// Dropping it deletes every namespace, which deletes the veths.
pub struct Net {
    pub core: String,
    pub hosts: Vec<(String, String)>,
}

pub static RUN: AtomicU32 = AtomicU32::new(0);

impl Net {
    pub fn new(hosts: &[&str]) -> Net {
        let id = format!(
            "og{}x{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            core: format!("{id}core"),
            hosts: Vec::new(),
        };
        run(&["ip", "netns", "add", &net.core]);
        run(&[
            "ip", "-n", &net.core, "link", "add", "br0", "type", "bridge",
        ]);
        run(&["ip", "-n", &net.core, "link", "set", "br0", "up"]);
        for (i, h) in hosts.iter().enumerate() {
            let ns = format!("{id}{h}");
            run(&["ip", "netns", "add", &ns]);
            net.hosts.push((h.to_string(), ns.clone()));
            let port = format!("p{i}");
            run(&[
                "ip", "-n", &net.core, "link", "add", &port, "type", "veth", "peer", "name",
                "eth0", "netns", &ns,
            ]);
            run(&[
                "ip", "-n", &net.core, "link", "set", &port, "master", "br0", "up",
            ]);
            let addr = format!("{}/24", Self::addr(i));
            run(&["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    pub fn addr(i: usize) -> String {
        format!("10.77.0.{}", i + 10)
    }

    pub fn ns(&self, host: &str) -> &str {
        &self.hosts.iter().find(|(h, _)| h == host).expect("host").1
    }

    pub fn ip(&self, host: &str) -> String {
        Self::addr(
            self.hosts
                .iter()
                .position(|(h, _)| h == host)
                .expect("host"),
        )
    }

    pub fn spawn(&self, host: &str, args: &[&str], log: &Path) -> Proc {
        let file = std::fs::File::create(log).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", self.ns(host)])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("ip netns exec");
        Proc {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn iptables(&self, host: &str, rule: &[&str]) {
        let mut args = vec!["ip", "netns", "exec", self.ns(host), "iptables", "-w"];
        args.extend_from_slice(rule);
        run(&args);
    }

    /// Moves the calling thread into `host`'s namespace: every socket it
    /// opens afterwards lives there.
    pub fn enter(&self, host: &str) {
        let f =
            std::fs::File::open(format!("/var/run/netns/{}", self.ns(host))).expect("netns file");
        // SAFETY: setns on a valid fd; CLONE_NEWNET affects this thread only.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (_, ns) in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.core])
            .status();
    }
}
