//! scripts/drain.sh against a fake agent API (tiny_http) and fake
//! Overwatch DNS listeners (UDP) on loopback: the drain request it sends,
//! `--wait` until every DNS server stops answering the agent's addresses,
//! and each documented exit code. Reported `SKIPPED:` when curl or dig
//! is missing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::need_tools;

/// curl and dig, which drain.sh calls; reports `test` skipped without them.
fn tools(test: &str) -> bool {
    need_tools(test, &["curl", "dig"])
}

fn drain(args: &[&str]) -> (Output, String, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/drain.sh");
    let out = Command::new("sh")
        .arg(script)
        .args(args)
        .env_remove("OPENGSLB_AGENT")
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, so, se)
}

// ------------------------------------------------------------ fake agent

#[derive(Default)]
struct AgentState {
    draining: bool,
    drained_at: Option<Instant>,
    /// A drain file that `drain off` cannot lift.
    held_by_file: bool,
    /// Answer every drain request with this HTTP error.
    refuse: Option<u16>,
    posts: Vec<String>,
}

struct FakeAgent {
    url: String,
    state: Arc<Mutex<AgentState>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

const BACKENDS: &[(&str, &str)] = &[
    ("www.example.com", "192.0.2.10"),
    ("v6.example.com", "2001:db8::10"),
];

fn status_json(s: &AgentState, pretty: bool) -> String {
    let (source, reason) = if s.held_by_file {
        (
            Some("drain_file"),
            Some("drain file /run/opengslb/drain exists, see: ops, \"ticket 7\""),
        )
    } else if s.draining {
        (Some("operator"), Some("maintenance"))
    } else {
        (None, None)
    };
    let v = serde_json::json!({
        "agent_id": "web-1",
        "region": "eu",
        "draining": s.draining || s.held_by_file,
        "drain_source": source,
        "drain_reason": reason,
        "cert_fingerprint": "ab:cd",
        "cert_not_after": "2027-01-01T00:00:00Z",
        "backends": BACKENDS.iter().map(|(svc, addr)| serde_json::json!({
            "service": svc, "address": addr, "port": 443, "weight": 100,
            "healthy": true, "last_error": "earlier: timeout, {retrying}", "last_check": "2026-11-21T00:00:00Z"
        })).collect::<Vec<_>>(),
        "overwatches": [{"address": "127.0.0.1:7946", "connected": true, "last_ack": null, "rtt_ms": 0.4, "last_error": null}],
        "generated_at": "2026-11-21T00:00:00Z",
    });
    if pretty {
        serde_json::to_string_pretty(&v).unwrap()
    } else {
        serde_json::to_string(&v).unwrap()
    }
}

impl FakeAgent {
    fn start(state: AgentState) -> FakeAgent {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake agent"));
        let url = format!(
            "http://{}",
            server.server_addr().to_ip().expect("ip listener")
        );
        let state = Arc::new(Mutex::new(state));
        let (srv, st) = (Arc::clone(&server), Arc::clone(&state));
        let thread = std::thread::Builder::new()
            .name("fake-agent".into())
            .spawn(move || {
                for mut req in srv.incoming_requests() {
                    let mut body = String::new();
                    let _ = req.as_reader().read_to_string(&mut body);
                    let mut s = st.lock().unwrap();
                    let (code, text) = match (req.method(), req.url()) {
                        (tiny_http::Method::Get, "/api/v1/agent/status") => {
                            (200, status_json(&s, true))
                        }
                        (
                            tiny_http::Method::Post | tiny_http::Method::Delete,
                            "/api/v1/agent/drain",
                        ) if s.refuse.is_some() => {
                            let code = s.refuse.unwrap_or(500);
                            (
                                code,
                                format!(r#"{{"error": "agent is shutting down", "code": {code}}}"#),
                            )
                        }
                        (tiny_http::Method::Post, "/api/v1/agent/drain") => {
                            s.posts.push(body);
                            s.draining = true;
                            s.drained_at = Some(Instant::now());
                            (200, status_json(&s, false))
                        }
                        (tiny_http::Method::Delete, "/api/v1/agent/drain") => {
                            s.draining = false;
                            (200, status_json(&s, false))
                        }
                        _ => (404, r#"{"error": "not found", "code": 404}"#.to_string()),
                    };
                    drop(s);
                    let _ =
                        req.respond(tiny_http::Response::from_string(text).with_status_code(code));
                }
            })
            .unwrap();
        FakeAgent {
            url,
            state,
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------ fake DNS

/// Answers A/AAAA for the backend names: the agent's addresses until
/// `drop_after` has passed since the drain (never when `None`), plus an
/// address of another host that always stays.
struct FakeDns {
    addr: SocketAddr,
    queries: Arc<Mutex<HashMap<(String, u16), u32>>>,
    /// Answers sent without the drained addresses.
    drained_answers: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn answers(name: &str, qtype: u16, drained: bool) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = Vec::new();
    match (name, qtype) {
        ("www.example.com", 1) => {
            v.push("192.0.2.99".parse().unwrap());
            if !drained {
                v.push("192.0.2.10".parse().unwrap());
            }
        }
        ("v6.example.com", 28) => {
            v.push("2001:db8::99".parse().unwrap());
            if !drained {
                v.push("2001:db8::10".parse().unwrap());
            }
        }
        _ => {}
    }
    v
}

/// A response to `q`, or `None` for what is not a plain query.
fn respond(q: &[u8], drained: bool) -> Option<(Vec<u8>, String, u16)> {
    if q.len() < 12 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let qend = i + 4;
    let name = labels.join(".");
    let ips = answers(&name, qtype, drained);
    let mut r = Vec::with_capacity(512);
    r.extend_from_slice(q.get(0..2)?);
    r.extend_from_slice(&[0x84 | (q[2] & 0x01), 0x00, 0, 1]);
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..qend)?);
    for ip in &ips {
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
        match ip {
            IpAddr::V4(a) => {
                r.extend_from_slice(&[0, 4]);
                r.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                r.extend_from_slice(&[0, 16]);
                r.extend_from_slice(&a.octets());
            }
        }
    }
    Some((r, name, qtype))
}

impl FakeDns {
    fn start(agent: Arc<Mutex<AgentState>>, drop_after: Option<Duration>) -> FakeDns {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind fake dns");
        // The stop flag is checked between reads.
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let drained_answers = Arc::new(AtomicU32::new(0));
        let (q2, s2, d2) = (
            Arc::clone(&queries),
            Arc::clone(&stop),
            Arc::clone(&drained_answers),
        );
        let thread = std::thread::Builder::new()
            .name("fake-dns".into())
            .spawn(move || {
                let mut buf = [0u8; 1500];
                while !s2.load(Ordering::Relaxed) {
                    let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let drained = match (drop_after, agent.lock().unwrap().drained_at) {
                        (Some(d), Some(t)) => t.elapsed() >= d,
                        _ => false,
                    };
                    if let Some((resp, name, qtype)) = respond(&buf[..n], drained) {
                        *q2.lock().unwrap().entry((name, qtype)).or_insert(0) += 1;
                        if drained {
                            d2.fetch_add(1, Ordering::SeqCst);
                        }
                        let _ = sock.send_to(&resp, peer);
                    }
                }
            })
            .unwrap();
        FakeDns {
            addr,
            queries,
            drained_answers,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self, name: &str, qtype: u16) -> u32 {
        self.queries
            .lock()
            .unwrap()
            .get(&(name.to_string(), qtype))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn closed_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ------------------------------------------------------------ tests

#[test]
fn drain_on_wait_returns_once_every_dns_server_dropped_the_addresses() {
    if !tools("drain::drain_on_wait_returns_once_every_dns_server_dropped_the_addresses") {
        return;
    }
    let agent = FakeAgent::start(AgentState::default());
    let fast = FakeDns::start(Arc::clone(&agent.state), Some(Duration::from_millis(300)));
    let slow = FakeDns::start(Arc::clone(&agent.state), Some(Duration::from_millis(1200)));
    let reason = r#"kernel update, "4711" \ now"#;
    let (out, so, se) = drain(&[
        "on",
        "--reason",
        reason,
        "--wait",
        "--timeout=20",
        "--agent",
        &agent.url,
        "--dns",
        &fast.addr.to_string(),
        "--dns",
        &slow.addr.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{so}\nstderr:\n{se}");
    // Order, not time: the script returned only after the slow server
    // (which drops the addresses 1.2 s after the drain) answered without
    // them.
    assert!(
        slow.drained_answers.load(Ordering::SeqCst) >= 1,
        "returned before the slow server dropped them"
    );
    let servers = format!("({},{})", fast.addr, slow.addr);
    assert!(
        so.contains(&format!(
            "no DNS server answers the drained addresses any more {servers}"
        )),
        "{so}"
    );
    let posts = agent.state.lock().unwrap().posts.clone();
    assert_eq!(posts.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&posts[0]).expect("drain body is JSON");
    assert_eq!(body["reason"], reason);
    for dns in [&fast, &slow] {
        assert!(dns.count("www.example.com", 1) >= 1, "no A query");
        assert!(
            dns.count("v6.example.com", 28) >= 1,
            "IPv6 backends are checked with AAAA"
        );
        assert_eq!(
            dns.count("v6.example.com", 1),
            0,
            "IPv6 backend asked with A"
        );
    }
    assert!(
        slow.count("www.example.com", 1) >= 2,
        "the slow server was asked only once"
    );
}

#[test]
fn drain_on_wait_times_out_while_an_overwatch_still_answers() {
    if !tools("drain::drain_on_wait_times_out_while_an_overwatch_still_answers") {
        return;
    }
    let agent = FakeAgent::start(AgentState::default());
    let stuck = FakeDns::start(Arc::clone(&agent.state), None);
    let (out, so, se) = drain(&[
        "on",
        "--wait",
        "--timeout",
        "1",
        "--agent",
        &agent.url,
        "--dns",
        &stuck.addr.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(6), "stdout:\n{so}\nstderr:\n{se}");
    assert!(se.contains("timed out"), "{se}");
    assert!(
        se.contains(&format!(
            "{} still answers www.example.com A 192.0.2.10",
            stuck.addr
        )),
        "{se}"
    );
    assert!(se.contains("v6.example.com AAAA 2001:db8::10"), "{se}");
}

#[test]
fn a_silent_dns_server_is_not_taken_as_drained() {
    if !tools("drain::a_silent_dns_server_is_not_taken_as_drained") {
        return;
    }
    let agent = FakeAgent::start(AgentState::default());
    let dead = format!("127.0.0.1:{}", closed_udp_port());
    let (out, so, se) = drain(&[
        "on",
        "--wait",
        "--timeout",
        "1",
        "--agent",
        &agent.url,
        "--dns",
        &dead,
    ]);
    assert_eq!(out.status.code(), Some(6), "stdout:\n{so}\nstderr:\n{se}");
    assert!(se.contains(&format!("{dead} did not reply")), "{se}");
}

#[test]
fn drain_off_lifts_the_drain_or_names_what_still_holds_it() {
    if !tools("drain::drain_off_lifts_the_drain_or_names_what_still_holds_it") {
        return;
    }
    let agent = FakeAgent::start(AgentState {
        draining: true,
        ..Default::default()
    });
    let (out, so, se) = drain(&["off", "--agent", &agent.url]);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{so}\nstderr:\n{se}");
    assert!(so.contains("web-1 no longer draining"), "{so}");

    let held = FakeAgent::start(AgentState {
        held_by_file: true,
        ..Default::default()
    });
    let (out, _, se) = drain(&["off", "--agent", &held.url]);
    assert_eq!(out.status.code(), Some(7), "{se}");
    assert!(se.contains("source=drain_file"), "{se}");
    assert!(
        se.contains(r#"see: ops, "ticket 7""#),
        "the reason is unescaped whole: {se}"
    );
    let (out, _, se) = drain(&["off", "--wait", "--timeout", "1", "--agent", &held.url]);
    assert_eq!(out.status.code(), Some(6), "{se}");
}

#[test]
fn drain_exit_codes_for_usage_unreachable_and_refusal() {
    if !tools("drain::drain_exit_codes_for_usage_unreachable_and_refusal") {
        return;
    }
    let (out, _, se) = drain(&["sideways"]);
    assert_eq!(out.status.code(), Some(2), "{se}");
    let (out, _, se) = drain(&["on", "--timeout", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{se}");
    let (out, _, se) = drain(&["on", "--reason"]);
    assert_eq!(out.status.code(), Some(2), "{se}");
    // A bad --dns is refused before anything is sent to the agent (an
    // unreachable agent would be exit 5).
    let (out, _, se) = drain(&[
        "on",
        "--dns",
        "127.0.0.1:fiftythree",
        "--agent",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{se}");
    assert!(se.contains("bad --dns"), "{se}");
    let (out, so, _) = drain(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    for code in ["0 ", "1 ", "2 ", "5 ", "6 ", "7 "] {
        assert!(
            so.contains(&format!("\n  {code}")),
            "--help documents exit {code}:\n{so}"
        );
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (out, _, se) = drain(&["on", "--agent", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(5), "{se}");
    assert!(se.contains("cannot reach the agent API"), "{se}");

    let agent = FakeAgent::start(AgentState {
        refuse: Some(503),
        ..Default::default()
    });
    let (out, _, se) = drain(&["on", "--agent", &agent.url]);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        se.contains("HTTP 503") && se.contains("agent is shutting down"),
        "{se}"
    );
}
