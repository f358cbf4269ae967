//! `latency` routing against the real binary (SPEC §11): two backends
//! whose health endpoints answer after different delays; the Overwatch's
//! own checks measure them, and DNS answers the faster. Swapping the
//! delays moves the answer; equal delays share it; a failing backend is
//! never answered however fast. Only orders and eventual states are
//! asserted.

use crate::util::dnsclient::{Query, udp};
use crate::util::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

/// An HTTP endpoint answering every request after `delay_ms` with `status`.
struct SlowHealth {
    addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl SlowHealth {
    fn start(ip: &str, delay_ms: u64) -> SlowHealth {
        let listener = TcpListener::bind((ip, 0)).expect("bind");
        let addr = listener.local_addr().unwrap();
        let delay = Arc::new(AtomicU64::new(delay_ms));
        let status = Arc::new(AtomicU16::new(200));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, st, flag) = (Arc::clone(&delay), Arc::clone(&status), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (d, st) = (Arc::clone(&d), Arc::clone(&st));
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk) {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    std::thread::sleep(Duration::from_millis(d.load(Ordering::Relaxed)));
                    let code = st.load(Ordering::Relaxed);
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        )
                        .as_bytes(),
                    );
                });
            }
        });
        SlowHealth {
            addr,
            delay_ms: delay,
            status,
            stop,
        }
    }

    fn set_delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::Relaxed);
    }
}

impl Drop for SlowHealth {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// The addresses of an A answer for `name`, sorted.
fn answer(dns: SocketAddr, name: &str) -> Vec<String> {
    let mut a = udp(dns, &Query::new(name, 1))
        .map(|r| r.addr_strings())
        .unwrap_or_default();
    a.sort();
    a
}

#[test]
fn the_faster_backend_is_answered_and_the_answer_follows_the_delays() {
    let fast = SlowHealth::start("127.0.0.2", 5);
    let slow = SlowHealth::start("127.0.0.3", 150);
    let dir = TempDir::new("latency-it");
    let dns_port = free_port("127.0.0.1");
    let api_port = free_port("127.0.0.1");
    let yaml = format!(
        r#"mode: overwatch
dns:
  listen_address: "127.0.0.1:{dns_port}"
  zones: [gslb.test]
overwatch:
  data_dir: "{data}"
regions:
  - name: one
    servers:
      - {{address: "127.0.0.2", port: {fast_port}}}
      - {{address: "127.0.0.3", port: {slow_port}}}
    health_check: {{type: http, path: /health, interval: 100ms, timeout: 2s, failure_threshold: 1, success_threshold: 1}}
domains:
  - name: fast.gslb.test
    routing_algorithm: latency
    regions: [one]
    latency_config: {{smoothing_factor: 0.5, max_latency_ms: 1000, min_samples: 2}}
api:
  address: "127.0.0.1:{api_port}"
"#,
        data = dir.path().join("data").display(),
        fast_port = fast.addr.port(),
        slow_port = slow.addr.port(),
    );
    let _daemon = Daemon::start(&dir, "ow", &yaml, "overwatch");
    let dns: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let name = "fast.gslb.test";
    let want = |what: &str, addrs: &[&str]| {
        wait_for(what, Duration::from_secs(30), || {
            (answer(dns, name) == addrs).then_some(())
        })
    };
    want("the faster backend alone", &["127.0.0.2"]);
    // Several answers in a row: the slower one never appears.
    for _ in 0..20 {
        assert_eq!(answer(dns, name), ["127.0.0.2"]);
    }
    // The API shows both smoothed round trips, the faster lower.
    let rtts = wait_for("round trips in the API", Duration::from_secs(10), || {
        let (code, body) = http_get(&format!(
            "http://127.0.0.1:{api_port}/api/v1/overwatch/backends"
        ))?;
        if code != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let rtt = |addr: &str| {
            v["backends"]
                .as_array()?
                .iter()
                .find(|b| b["address"] == addr)?["round_trip_ms"]
                .as_f64()
        };
        Some((rtt("127.0.0.2")?, rtt("127.0.0.3")?))
    });
    assert!(rtts.0 < rtts.1, "{rtts:?}");

    // Swap the delays: the answer moves.
    fast.set_delay(150);
    slow.set_delay(5);
    want("the other backend once it is faster", &["127.0.0.3"]);

    // The faster one failing is never answered.
    slow.status.store(500, Ordering::Relaxed);
    want("the healthy one while the faster fails", &["127.0.0.2"]);
    for _ in 0..20 {
        assert_eq!(answer(dns, name), ["127.0.0.2"]);
    }
    slow.status.store(200, Ordering::Relaxed);
    want("the faster one once healthy again", &["127.0.0.3"]);

    // Equal delays: both within 10 % of the lowest share the answer.
    fast.set_delay(300);
    slow.set_delay(300);
    want("both when they tie", &["127.0.0.2", "127.0.0.3"]);
}
