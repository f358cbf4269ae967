//! Health checks against real loopback backends: tiny_http servers on
//! 127.0.0.x and [::1], raw TCP listeners, and a rustls server with an
//! rcgen self-signed certificate. Probes are exercised directly and through
//! the `HealthChecker` threads.

use crate::util::health::*;
use opengslb::config::{CheckType, Dur};
use opengslb::health::{HealthChecker, ProbeSpec, Prober, probe};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Shared<T> = Arc<Mutex<T>>;

/// A TLS server with a self-signed certificate for `localhost`; records
/// the SNI name and Host header of the last request.
fn tls_backend(ip: &str) -> (SocketAddr, Shared<Option<String>>, Shared<String>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let sni = Arc::new(Mutex::new(None));
    let request = Arc::new(Mutex::new(String::new()));
    let (sni2, req2) = (sni.clone(), request.clone());
    std::thread::Builder::new()
        .name("test-tls-backend".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut tcp) = conn else { continue };
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(3)));
                let Ok(mut tls) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let mut buf = Vec::new();
                // Read until the end of the request head (or a failed
                // handshake, which is what a strict client causes).
                loop {
                    if tls.complete_io(&mut tcp).is_err() {
                        break;
                    }
                    *sni2.lock().unwrap() = tls.server_name().map(str::to_string);
                    let mut chunk = [0u8; 1024];
                    match tls.reader().read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        *req2.lock().unwrap() = String::from_utf8_lossy(&buf).into_owned();
                        let _ = tls.writer().write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        );
                        tls.send_close_notify();
                        let _ = tls.complete_io(&mut tcp);
                        break;
                    }
                }
            }
        })
        .unwrap();
    (addr, sni, request)
}

// ------------------------------------------------------------- probes

#[test]
fn http_200_is_ok_and_503_is_an_error() {
    let b = Backend::start("127.0.0.2:0", None).unwrap();
    let spec = spec_at(&check(CheckType::Http), b.addr);
    let prober = Prober::new();
    let latency = prober.probe(&spec).unwrap();
    eprintln!("http probe latency on loopback: {latency:?}");
    b.set_status(503);
    assert_eq!(prober.probe(&spec), Err("HTTP 503".to_string()));
    assert_eq!(b.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn redirects_are_not_followed_and_expected_status_is_honoured() {
    let b = Backend::start("127.0.0.2:0", None).unwrap();
    b.set_status(301);
    let mut hc = check(CheckType::Http);
    let prober = Prober::new();
    assert_eq!(
        prober.probe(&spec_at(&hc, b.addr)),
        Err("HTTP 301".to_string())
    );
    hc.expected_status = vec![301];
    assert!(prober.probe(&spec_at(&hc, b.addr)).is_ok());
    b.set_status(200);
    assert_eq!(
        prober.probe(&spec_at(&hc, b.addr)),
        Err("HTTP 200".to_string())
    );
    assert_eq!(b.hits.load(Ordering::SeqCst), 3);
}

#[test]
fn host_header_is_sent_from_config() {
    let b = Backend::start("127.0.0.3:0", Some("app.example.test")).unwrap();
    let prober = Prober::new();
    let mut hc = check(CheckType::Http);
    assert_eq!(
        prober.probe(&spec_at(&hc, b.addr)),
        Err("HTTP 404".to_string())
    );
    assert_eq!(
        b.last_host.lock().unwrap().as_deref(),
        Some(b.addr.to_string().as_str())
    );
    hc.host = "app.example.test".into();
    assert!(prober.probe(&spec_at(&hc, b.addr)).is_ok());
    hc.host = "other.example.test".into();
    assert_eq!(
        prober.probe(&spec_at(&hc, b.addr)),
        Err("HTTP 404".to_string())
    );
}

#[test]
fn ipv6_backend() {
    let Some(b) = Backend::start("[::1]:0", None) else {
        crate::util::skip(
            "health_checks::ipv6_backend",
            "cannot bind [::1] on this host",
        );
        return;
    };
    let spec = ProbeSpec::from_config(&check(CheckType::Http), "::1", b.addr.port()).unwrap();
    assert_eq!(spec.url(), format!("http://[::1]:{}/health", b.addr.port()));
    assert!(probe(&spec).is_ok());
    let tcp = ProbeSpec::from_config(&check(CheckType::Tcp), "[::1]", b.addr.port()).unwrap();
    assert!(probe(&tcp).is_ok());
}

#[test]
fn http_connection_refused() {
    let port = closed_port("127.0.0.2");
    let spec = ProbeSpec::from_config(&check(CheckType::Http), "127.0.0.2", port).unwrap();
    assert_eq!(probe(&spec), Err("connect: connection refused".to_string()));
}

#[test]
fn tcp_open_and_closed_ports() {
    let listener = TcpListener::bind("127.0.0.4:0").unwrap();
    let open = spec_at(&check(CheckType::Tcp), listener.local_addr().unwrap());
    assert!(probe(&open).is_ok());
    let port = closed_port("127.0.0.4");
    let closed = ProbeSpec::from_config(&check(CheckType::Tcp), "127.0.0.4", port).unwrap();
    assert_eq!(
        probe(&closed),
        Err("connect: connection refused".to_string())
    );
}

#[test]
fn silent_server_times_out() {
    let addr = black_hole("127.0.0.5");
    let mut hc = check(CheckType::Http);
    hc.timeout = Dur::millis(300);
    // How long the probe takes is a bound measured by
    // scripts/bench/timing.sh (probe_timeout), not asserted here.
    assert_eq!(
        probe(&spec_at(&hc, addr)),
        Err("timeout after 300ms".to_string())
    );
}

#[test]
fn https_self_signed_needs_insecure_skip_verify() {
    let (addr, sni, request) = tls_backend("127.0.0.6");
    let mut hc = check(CheckType::Https);
    hc.host = "app.example.test".into();
    hc.insecure_skip_verify = true;
    let prober = Prober::new();
    let latency = prober.probe(&spec_at(&hc, addr)).unwrap();
    eprintln!("https probe latency on loopback: {latency:?}");
    assert_eq!(sni.lock().unwrap().as_deref(), Some("app.example.test"));
    let head = request.lock().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /health http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nhost: app.example.test\r\n"), "{head}");

    hc.insecure_skip_verify = false;
    let err = prober.probe(&spec_at(&hc, addr)).unwrap_err();
    eprintln!("strict probe error: {err}");
    assert!(
        err.starts_with("tls: ") && err.contains("certificate"),
        "{err}"
    );
    // Without a host the address is the server name: still refused.
    hc.host = String::new();
    let err = prober.probe(&spec_at(&hc, addr)).unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}

// ------------------------------------------------------------- scheduler

#[test]
fn thresholds_drive_the_verdict_through_the_checker() {
    let b = Backend::start("127.0.0.2:0", None).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let checker = HealthChecker::start_seeded(2, 1, tx);
    let spec = spec_at(&check(CheckType::Http), b.addr);
    checker.set_targets(vec![target(7, spec, 100, 3, 2)]);
    let wait = Duration::from_secs(3);

    let first = next_for(&rx, 7, wait);
    assert!(first.healthy && first.changed && first.probe_ok && first.latency.is_some());

    b.set_status(503);
    let mut failures = 0;
    loop {
        let r = next_for(&rx, 7, wait);
        if !r.probe_ok {
            failures += 1;
            assert_eq!(r.error.as_deref(), Some("HTTP 503"));
        }
        if r.changed {
            assert!(!r.healthy);
            break;
        }
        assert!(r.healthy);
    }
    assert_eq!(failures, 3, "down after exactly failure_threshold failures");
    // How long 503 → unhealthy takes is a bound measured by
    // scripts/bench/timing.sh (verdict_after_failures).

    b.set_status(200);
    let mut successes = 0;
    loop {
        let r = next_for(&rx, 7, wait);
        if r.probe_ok {
            successes += 1;
        }
        if r.changed {
            assert!(r.healthy);
            break;
        }
        assert!(!r.healthy);
    }
    assert_eq!(successes, 2, "up after exactly success_threshold successes");
    checker.stop();
}

#[test]
fn several_targets_reload_and_removal() {
    let a = Backend::start("127.0.0.2:0", None).unwrap();
    let b = Backend::start("127.0.0.3:0", None).unwrap();
    let c = Backend::start("127.0.0.4:0", None).unwrap();
    let hc = check(CheckType::Http);
    let (tx, rx) = crossbeam_channel::unbounded();
    let checker = HealthChecker::start_seeded(4, 2, tx);
    checker.set_targets(vec![
        target(1, spec_at(&hc, a.addr), 100, 2, 2),
        target(2, spec_at(&hc, b.addr), 150, 2, 2),
        target(3, spec_at(&hc, c.addr), 200, 2, 2),
    ]);
    // Every target keeps being probed, each result healthy (counts, not a
    // time window: the deadline only stops a hung checker).
    let mut counts = [0usize; 4];
    let until = Instant::now() + Duration::from_secs(15);
    while !(counts[1] >= 4 && counts[2] >= 3 && counts[3] >= 2) {
        let r = rx
            .recv_deadline(until)
            .unwrap_or_else(|_| panic!("targets stopped reporting: {counts:?}"));
        assert!(r.healthy && r.probe_ok, "{r:?}");
        counts[r.id as usize] += 1;
    }

    // Reload: 1 unchanged (keeps its state), 2 now a TCP check on a closed
    // port (fresh state), 3 removed.
    let tcp = check(CheckType::Tcp);
    let closed = ProbeSpec::from_config(&tcp, "127.0.0.3", closed_port("127.0.0.3")).unwrap();
    checker.set_targets(vec![
        target(1, spec_at(&hc, a.addr), 100, 2, 2),
        target(2, closed, 150, 2, 2),
    ]);
    // Results leave in order: once target 2's new spec reports, the reload
    // is applied and target 3 must stay silent.
    let marker = loop {
        let r = next_for(&rx, 2, Duration::from_secs(3));
        if !r.probe_ok {
            break r;
        }
    };
    assert!(
        marker.changed && !marker.healthy,
        "fresh state: first probe decides"
    );
    assert_eq!(marker.error.as_deref(), Some("connect: connection refused"));
    let hits_c = c.hits.load(Ordering::SeqCst);
    // The remaining targets report again and again; target 3 never does.
    let until = Instant::now() + Duration::from_secs(15);
    let mut after = [0usize; 4];
    while !(after[1] >= 4 && after[2] >= 3) {
        let r = rx
            .recv_deadline(until)
            .unwrap_or_else(|_| panic!("targets stopped reporting: {after:?}"));
        assert_ne!(r.id, 3, "removed target still reported");
        if r.id == 1 {
            assert!(r.healthy && !r.changed, "target 1 lost its state: {r:?}");
        }
        after[r.id as usize] += 1;
    }
    assert!(
        c.hits.load(Ordering::SeqCst) <= hits_c + 1,
        "removed target still probed"
    );
    checker.stop();
}

#[test]
fn check_now_runs_every_target_at_once() {
    let a = Backend::start("127.0.0.2:0", None).unwrap();
    let b = Backend::start("127.0.0.3:0", None).unwrap();
    let hc = check(CheckType::Http);
    let (tx, rx) = crossbeam_channel::unbounded();
    let checker = HealthChecker::start_seeded(2, 3, tx);
    checker.set_targets(vec![
        target(1, spec_at(&hc, a.addr), 60_000, 3, 2),
        target(2, spec_at(&hc, b.addr), 60_000, 3, 2),
    ]);
    // First probes are spread over at most one second (the spread is a
    // bound measured by scripts/bench/timing.sh, check_now): one each, in
    // either order.
    let mut first = [0usize; 3];
    while first[1] == 0 || first[2] == 0 {
        let r = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a first result of each target");
        first[r.id as usize] += 1;
    }
    assert_eq!(first, [0, 1, 1], "one first result per target");
    // Nothing more for a while: the interval is a minute.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    assert_eq!(a.hits.load(Ordering::SeqCst), 1);
    assert_eq!(b.hits.load(Ordering::SeqCst), 1);

    // With a one-minute interval, any second result of a target is the
    // one check_now asked for.
    checker.check_now();
    let mut seen = [0usize; 3];
    while seen[1] == 0 || seen[2] == 0 {
        let r = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("check_now gave no result");
        seen[r.id as usize] += 1;
    }
    assert_eq!(seen, [0, 1, 1], "one result per target, no more");
    assert_eq!(a.hits.load(Ordering::SeqCst), 2);
    assert_eq!(b.hits.load(Ordering::SeqCst), 2);
    checker.stop();
}

#[test]
fn slow_probe_does_not_delay_other_targets() {
    let hole = black_hole("127.0.0.7");
    let fast = Backend::start("127.0.0.2:0", None).unwrap();
    let mut slow_hc = check(CheckType::Http);
    slow_hc.timeout = Dur::secs(2);
    let (tx, rx) = crossbeam_channel::unbounded();
    let checker = HealthChecker::start_seeded(2, 4, tx);
    checker.set_targets(vec![
        target(1, spec_at(&slow_hc, hole), 100, 1, 1),
        target(2, spec_at(&check(CheckType::Http), fast.addr), 100, 1, 1),
    ]);
    // Order, not a time window: six results of the fast target arrive
    // while the hung one is still in its first (2 s) probe.
    let until = Instant::now() + Duration::from_secs(15);
    let (mut slow, mut quick) = (0, 0);
    while quick < 6 {
        let r = rx
            .recv_deadline(until)
            .unwrap_or_else(|_| panic!("fast target starved: {quick}"));
        match r.id {
            1 => slow += 1,
            _ => quick += 1,
        }
        assert_eq!(slow, 0, "the hung probe ended before 6 fast results");
    }
    let r = next_for(&rx, 1, Duration::from_secs(10));
    assert_eq!(r.error.as_deref(), Some("timeout after 2s"));
    assert!(!r.healthy && r.changed);
    checker.stop();
}
