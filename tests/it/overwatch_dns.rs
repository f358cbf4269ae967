//! The standalone Overwatch (issue 2): the real binary, a config file,
//! real HTTP backends on 127.0.0.x, and DNS over UDP and TCP.

use crate::util::dnsclient::{self, A, AAAA, NS, Query, SOA};
use crate::util::*;
use std::net::SocketAddr;
use std::time::Duration;

struct Setup {
    _dir: TempDir,
    daemon: Daemon,
    dns: SocketAddr,
    #[allow(dead_code)] // kept for debugging failed runs
    api: String,
    backends: Vec<HttpBackend>,
}

fn yaml(
    dns_port: u16,
    api_port: u16,
    data: &str,
    backends: &[&HttpBackend],
    extra_domains: &str,
    return_last: bool,
) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            format!(
                "      - {{ address: \"{}\", port: {}, weight: {}, service: app.gslb.test }}\n      - {{ address: \"{}\", port: {}, weight: {}, service: fo.gslb.test }}\n      - {{ address: \"{}\", port: {}, weight: {}, service: wt.gslb.test }}\n",
                b.addr.ip(), b.addr.port(), 1, b.addr.ip(), b.addr.port(), 1, b.addr.ip(), b.addr.port(), if i == 0 { 3 } else { 1 }
            )
        })
        .collect();
    format!(
        r#"mode: overwatch
dns:
  listen_address: "127.0.0.1:{dns_port}"
  zones: [gslb.test]
  default_ttl: 30
  return_last_healthy: {return_last}
overwatch:
  data_dir: "{data}"
  validation: {{ enabled: true, check_interval: 200ms, check_timeout: 500ms }}
regions:
  - name: east
    servers:
{servers}    health_check:
      type: http
      path: /health
      interval: 200ms
      timeout: 500ms
      failure_threshold: 2
      success_threshold: 1
domains:
  - {{ name: app.gslb.test, routing_algorithm: round-robin, regions: [east], ttl: 10 }}
  - {{ name: fo.gslb.test, routing_algorithm: failover, regions: [east] }}
  - {{ name: wt.gslb.test, routing_algorithm: weighted, regions: [east] }}
{extra_domains}api:
  address: "127.0.0.1:{api_port}"
logging: {{ level: debug }}
"#
    )
}

fn start(n: usize, return_last: bool) -> Setup {
    let dir = TempDir::new("ow");
    let backends: Vec<HttpBackend> = (0..n)
        .map(|i| HttpBackend::start(&format!("127.0.0.{}", i + 2)))
        .collect();
    let dns_port = free_port("127.0.0.1");
    let api_port = free_port("127.0.0.1");
    let data = dir.path().join("data");
    let refs: Vec<&HttpBackend> = backends.iter().collect();
    let text = yaml(
        dns_port,
        api_port,
        data.to_str().unwrap(),
        &refs,
        "",
        return_last,
    );
    let daemon = Daemon::start(&dir, "overwatch", &text, "overwatch");
    let dns: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let s = Setup {
        _dir: dir,
        daemon,
        dns,
        api: format!("http://127.0.0.1:{api_port}"),
        backends,
    };
    wait_for("all backends in DNS", Duration::from_secs(15), || {
        let r = dnsclient::udp(s.dns, &Query::new("app.gslb.test", A))?;
        (r.addrs().len() == n).then_some(())
    });
    s
}

fn answers(s: &Setup, name: &str) -> Vec<String> {
    dnsclient::udp(s.dns, &Query::new(name, A))
        .map(|r| r.addr_strings())
        .unwrap_or_default()
}

#[test]
fn round_robin_rotates_and_failing_backend_leaves_and_returns() {
    let s = start(3, false);
    let first = dnsclient::udp(s.dns, &Query::new("app.gslb.test", A)).unwrap();
    assert_eq!(first.rcode, 0);
    assert!(first.aa, "authoritative answers set AA");
    assert_eq!(first.answers[0].1, 10, "domain TTL");
    let mut orders = std::collections::BTreeSet::new();
    for _ in 0..6 {
        orders.insert(answers(&s, "app.gslb.test"));
    }
    assert!(
        orders.len() >= 2,
        "round-robin rotates the order: {orders:?}"
    );

    let bad = s.backends[1].addr.ip().to_string();
    s.backends[1].set_status(503);
    wait_for(
        "failing backend out of DNS",
        Duration::from_secs(10),
        || (!answers(&s, "app.gslb.test").contains(&bad)).then_some(()),
    );
    assert_eq!(answers(&s, "app.gslb.test").len(), 2);
    s.backends[1].set_status(200);
    wait_for(
        "recovered backend back in DNS",
        Duration::from_secs(10),
        || answers(&s, "app.gslb.test").contains(&bad).then_some(()),
    );
}

#[test]
fn failover_prefers_primary_and_returns_to_it() {
    let s = start(2, false);
    let primary = s.backends[0].addr.ip().to_string();
    let secondary = s.backends[1].addr.ip().to_string();
    for _ in 0..4 {
        assert_eq!(answers(&s, "fo.gslb.test"), vec![primary.clone()]);
    }
    s.backends[0].set_status(500);
    wait_for("failover to secondary", Duration::from_secs(10), || {
        (answers(&s, "fo.gslb.test") == vec![secondary.clone()]).then_some(())
    });
    s.backends[0].set_status(200);
    wait_for("return to primary", Duration::from_secs(10), || {
        (answers(&s, "fo.gslb.test") == vec![primary.clone()]).then_some(())
    });
}

#[test]
fn weighted_is_smooth_and_proportional() {
    let s = start(2, false);
    let heavy = s.backends[0].addr.ip().to_string();
    let picks: Vec<String> = (0..8)
        .map(|_| answers(&s, "wt.gslb.test").remove(0))
        .collect();
    let heavy_count = picks.iter().filter(|p| **p == heavy).count();
    assert_eq!(heavy_count, 6, "3:1 weights over 8 answers: {picks:?}");
    // Smooth: the light backend is never starved for more than 3 in a row.
    assert!(
        picks.windows(4).all(|w| w.iter().any(|p| *p != heavy)),
        "{picks:?}"
    );
}

#[test]
fn dns_protocol_rules() {
    let s = start(1, false);
    let ip = s.backends[0].addr.ip().to_string();
    // Case-insensitive, question echoed as asked.
    let r = dnsclient::udp(s.dns, &Query::new("ApP.GsLb.TeSt", A)).unwrap();
    assert_eq!(r.qname, "ApP.GsLb.TeSt");
    assert_eq!(r.addr_strings(), vec![ip.clone()]);
    // SOA and NS at the apex.
    let r = dnsclient::udp(s.dns, &Query::new("gslb.test", SOA)).unwrap();
    assert_eq!((r.rcode, r.answers.len(), r.answers[0].0), (0, 1, SOA));
    let r = dnsclient::udp(s.dns, &Query::new("gslb.test", NS)).unwrap();
    assert!(r.answers.iter().all(|a| a.0 == NS) && !r.answers.is_empty());
    // NXDOMAIN with the SOA.
    let r = dnsclient::udp(s.dns, &Query::new("nope.gslb.test", A)).unwrap();
    assert_eq!(r.rcode, 3);
    assert!(r.aa);
    assert_eq!(r.authority.first().map(|a| a.0), Some(SOA));
    // NODATA (name exists, no AAAA) with the SOA.
    let r = dnsclient::udp(s.dns, &Query::new("app.gslb.test", AAAA)).unwrap();
    assert_eq!((r.rcode, r.answers.len()), (0, 0));
    assert_eq!(r.authority.first().map(|a| a.0), Some(SOA));
    // REFUSED outside our zones.
    let r = dnsclient::udp(s.dns, &Query::new("example.com", A)).unwrap();
    assert_eq!(r.rcode, 5);
    // EDNS: OPT echoed; BADVERS for version 1.
    let r = dnsclient::udp(s.dns, &Query::new("app.gslb.test", A).edns(1232, 0)).unwrap();
    assert!(r.has_opt);
    assert_eq!(r.addr_strings(), vec![ip.clone()]);
    let r = dnsclient::udp(s.dns, &Query::new("app.gslb.test", A).edns(1232, 1)).unwrap();
    assert_eq!(r.ext_rcode, 16, "BADVERS");
    // No OPT in, no OPT out.
    let r = dnsclient::udp(s.dns, &Query::new("app.gslb.test", A)).unwrap();
    assert!(!r.has_opt);
    // NOTIMP for another opcode (STATUS = 2).
    let mut q = Query::new("app.gslb.test", A);
    q.opcode = 2;
    let raw = dnsclient::udp_raw(s.dns, &q.encode(7)).unwrap();
    assert_eq!(dnsclient::parse(&raw).unwrap().rcode, 4);
    // TCP with pipelined queries, answered in order.
    let qs = vec![
        Query::new("app.gslb.test", A),
        Query::new("nope.gslb.test", A),
        Query::new("gslb.test", SOA),
    ];
    let rs = dnsclient::tcp_many(s.dns, &qs).expect("tcp answers");
    assert_eq!(
        rs.iter().map(|r| r.rcode).collect::<Vec<_>>(),
        vec![0, 3, 0]
    );
    assert_eq!(rs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![0, 1, 2]);
}

#[test]
fn malformed_packets_never_stop_the_server() {
    let s = start(1, false);
    let good = Query::new("app.gslb.test", A).encode(1);
    let mut qr_set = good.clone();
    qr_set[2] |= 0x80;
    let mut qd0 = good.clone();
    qd0[5] = 0;
    let mut qd2 = good.clone();
    qd2[5] = 2;
    let mut bad_label = good.clone();
    bad_label[12] = 63; // label runs past the end
    let mut loop_ptr = good[..12].to_vec();
    loop_ptr.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    let mut two_opt = Query::new("app.gslb.test", A).edns(4096, 0).encode(1);
    let opt = two_opt[two_opt.len() - 11..].to_vec();
    two_opt.extend_from_slice(&opt);
    two_opt[11] = 2;
    let cases: Vec<(&str, Vec<u8>, Option<u8>)> = vec![
        ("empty", vec![], None),
        ("short header", good[..7].to_vec(), None),
        (
            "truncated question",
            good[..good.len() - 3].to_vec(),
            Some(1),
        ),
        ("bad label length", bad_label, Some(1)),
        ("compression loop", loop_ptr, Some(1)),
        ("qdcount 0", qd0, Some(1)),
        ("qdcount 2", qd2, Some(1)),
        ("qr set", qr_set, None),
        ("two OPT records", two_opt, Some(1)),
        (
            "random bytes",
            (0..200u32).map(|i| (i * 7919 % 251) as u8).collect(),
            None,
        ),
    ];
    for (what, bytes, want) in cases {
        let reply = dnsclient::udp_raw(s.dns, &bytes);
        match want {
            Some(rcode) => {
                let r = reply.as_deref().and_then(dnsclient::parse);
                assert_eq!(r.map(|r| r.rcode), Some(rcode), "{what}");
            }
            None => {
                if let Some(r) = reply.as_deref().and_then(dnsclient::parse) {
                    assert_ne!(r.rcode, 0, "{what} must not get a normal answer");
                }
            }
        }
        assert_eq!(
            answers(&s, "app.gslb.test").len(),
            1,
            "still answering after {what}"
        );
    }
    // A huge EDNS size is clamped, not trusted.
    let r = dnsclient::udp(s.dns, &Query::new("app.gslb.test", A).edns(65535, 0)).unwrap();
    assert_eq!(r.rcode, 0);
}

#[test]
fn nothing_healthy_gives_servfail_or_last_healthy() {
    let s = start(1, false);
    s.backends[0].set_status(503);
    wait_for(
        "SERVFAIL when nothing is healthy",
        Duration::from_secs(10),
        || {
            let r = dnsclient::udp(s.dns, &Query::new("app.gslb.test", A))?;
            (r.rcode == 2).then_some(())
        },
    );
    let s = start(1, true);
    let ip = s.backends[0].addr.ip().to_string();
    s.backends[0].set_status(503);
    std::thread::sleep(Duration::from_millis(1500));
    let r = dnsclient::udp(s.dns, &Query::new("app.gslb.test", A)).unwrap();
    assert_eq!(
        (r.rcode, r.addr_strings()),
        (0, vec![ip]),
        "return_last_healthy serves the last set"
    );
}

#[test]
fn reload_rejects_invalid_file_and_applies_valid_one() {
    let mut s = start(1, false);
    let good = std::fs::read_to_string(&s.daemon.config).unwrap();
    std::fs::write(
        &s.daemon.config,
        good.replace(
            "routing_algorithm: round-robin",
            "routing_algorythm: round-robin",
        ),
    )
    .unwrap();
    s.daemon.signal(libc::SIGHUP);
    wait_for("reload rejected in the log", Duration::from_secs(5), || {
        s.daemon
            .log_text()
            .contains("routing_algorythm")
            .then_some(())
    });
    assert_eq!(
        answers(&s, "app.gslb.test").len(),
        1,
        "old config keeps serving"
    );
    let extra = "  - { name: new.gslb.test, routing_algorithm: round-robin, regions: [east] }\n";
    let with_new = good.replace("api:\n", &format!("{extra}api:\n"));
    let with_new = with_new.replace("service: app.gslb.test }", "service: app.gslb.test }\n      - { address: \"127.0.0.2\", port: 1, service: new.gslb.test }");
    std::fs::write(&s.daemon.config, with_new).unwrap();
    s.daemon.signal(libc::SIGHUP);
    wait_for("new domain served", Duration::from_secs(10), || {
        let r = dnsclient::udp(s.dns, &Query::new("new.gslb.test", A))?;
        (r.rcode != 3).then_some(())
    });
    s.daemon.signal(libc::SIGTERM);
    assert_eq!(
        s.daemon.wait_exit(Duration::from_secs(10)),
        Some(0),
        "SIGTERM stops cleanly"
    );
}

#[test]
fn check_flag_and_world_readable_config() {
    let dir = TempDir::new("check");
    let b = HttpBackend::start("127.0.0.2");
    let text = yaml(5300, 9300, dir.path().to_str().unwrap(), &[&b], "", false);
    let path = dir.write("ok.yaml", &text);
    let out = std::process::Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.write(
        "bad.yaml",
        &text
            .replace("listen_address", "listen_adress")
            .replace("default_ttl: 30", "default_ttl: soon"),
    );
    let out = std::process::Command::new(BIN)
        .args(["--config", bad.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        err.contains("listen_adress") && err.contains("listen_address"),
        "{err}"
    );
    assert!(err.contains("default_ttl"), "all errors at once: {err}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3));
    assert!(err.contains("chmod 600"), "{err}");
    let out = std::process::Command::new(BIN)
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
