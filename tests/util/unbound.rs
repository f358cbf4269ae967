//! A real unbound for resolver tests, one way for every test: only a stub
//! zone pointing at our server on loopback, every address outside
//! 127.0.0.0/8 forbidden with `do-not-query-address` (it never tries the
//! root servers), a port below the ephemeral range, and a few tries when
//! another test's socket takes that port first.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Every IPv4 network but 127.0.0.0/8, and all of IPv6.
const OUTSIDE_LOOPBACK: &[&str] = &[
    "0.0.0.0/2",
    "64.0.0.0/3",
    "96.0.0.0/4",
    "112.0.0.0/5",
    "120.0.0.0/6",
    "124.0.0.0/7",
    "126.0.0.0/8",
    "128.0.0.0/1",
    "::/0",
];

/// A running unbound; killed and its directory removed when dropped.
pub struct Unbound {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Unbound {
    /// Stops it and returns what it wrote to stderr.
    pub fn stop_and_log(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts unbound with `zone` stubbed to `stub` and `server_lines` (each
/// `  key: value\n`, e.g. `module-config`) added to its `server:` clause;
/// `ready` says when it answers. Err says why it could not start.
pub fn start(
    tag: &str,
    zone: &str,
    stub: SocketAddr,
    server_lines: &str,
    ready: &dyn Fn(SocketAddr) -> bool,
) -> Result<Unbound, String> {
    start_once(tag, zone, stub, server_lines, ready)
        .or_else(|_| start_once(tag, zone, stub, server_lines, ready))
        .or_else(|_| start_once(tag, zone, stub, server_lines, ready))
}

fn start_once(
    tag: &str,
    zone: &str,
    stub: SocketAddr,
    server_lines: &str,
    ready: &dyn Fn(SocketAddr) -> bool,
) -> Result<Unbound, String> {
    let bin = ["/usr/sbin/unbound", "/usr/local/sbin/unbound"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or("unbound is not installed")?;
    let dir = std::env::temp_dir().join(format!("opengslb-unbound-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port = super::free_port_outside_ephemeral("127.0.0.1");
    let mut conf = format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  logfile: \"\"\n  use-syslog: no\n  verbosity: 1\n  num-threads: 1\n  so-reuseport: no\n  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n{server_lines}",
        d = dir.display()
    );
    for net in OUTSIDE_LOOPBACK {
        conf.push_str(&format!("  do-not-query-address: {net}\n"));
    }
    conf.push_str(&format!(
        "stub-zone:\n  name: \"{zone}\"\n  stub-addr: {}@{}\n",
        stub.ip(),
        stub.port()
    ));
    let path = dir.join("unbound.conf");
    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
    let stderr = std::fs::File::create(dir.join("stderr")).map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .arg("-d")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot run {bin}: {e}"))?;
    let mut u = Unbound {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir,
    };
    // Wait until it answers (bounded), or report why it could not start.
    for _ in 0..50 {
        if let Ok(Some(status)) = u.child.try_wait() {
            let err = std::fs::read_to_string(u.dir.join("stderr")).unwrap_or_default();
            return Err(format!("unbound exited ({status}): {err}"));
        }
        if ready(u.addr) {
            return Ok(u);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("unbound did not answer".into())
}
