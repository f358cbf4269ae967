//! The daemon speaks systemd's notify protocol: READY=1 once its sockets
//! are bound, WATCHDOG=1 while its loops run, STOPPING=1 on SIGTERM.

use crate::util::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn next_message(sock: &UnixDatagram, want: &str, timeout: Duration) -> Vec<String> {
    let end = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = msg.contains(want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want} within {timeout:?}; saw {seen:?}");
}

#[test]
fn ready_watchdog_and_stopping_are_sent() {
    let dir = TempDir::new("notify");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let dns_port = free_port("127.0.0.1");
    let api_port = free_port("127.0.0.1");
    let yaml = format!(
        "dns: {{ listen_address: \"127.0.0.1:{dns_port}\", zones: [gslb.test] }}\n\
         overwatch: {{ data_dir: \"{}\" }}\n\
         domains:\n  - {{ name: app.gslb.test }}\n\
         api: {{ address: \"127.0.0.1:{api_port}\" }}\n",
        dir.path().join("data").display()
    );
    let config = dir.write("ow.yaml", &yaml);
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = next_message(&sock, "READY=1", Duration::from_secs(10));
    // READY=1 comes only after DNS is bound: it answers now.
    let r = crate::util::dnsclient::udp(
        format!("127.0.0.1:{dns_port}").parse().unwrap(),
        &crate::util::dnsclient::Query::new("gslb.test", crate::util::dnsclient::SOA),
    );
    assert_eq!(r.map(|r| r.rcode), Some(0), "{seen:?}");
    next_message(&sock, "WATCHDOG=1", Duration::from_secs(5));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    next_message(&sock, "STOPPING=1", Duration::from_secs(5));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
