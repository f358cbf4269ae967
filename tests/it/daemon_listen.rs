//! Regression (issue 9, bug 3): `--check` accepted `dns.listen_address:
//! "127.0.0.1"` and `::1`, then the daemon exited 3 (and 1 for
//! `api.address`), because three parsers had three sets of rules. Now
//! every listen address `--check` accepts is the address the daemon binds:
//! for each form and listener, the real `opengslb --check` passes, the
//! daemon's bind path (`daemon::listen::address`, the function the daemon
//! calls) yields the expected socket address, and the real daemon, started
//! on it, answers there. Bare addresses imply a listener's default port
//! (53, 7946, 9090, 9091, 9100); those are bound on a loopback address of
//! their own when the port is free there (53 needs root), and skipped with
//! a SKIPPED line otherwise. Addresses `--check` refuses, the daemon
//! refuses with the same exit code, 3.

use crate::util::dnsclient::{self, Query, SOA};
use crate::util::*;
use opengslb::config::{self, Listener, Mode};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

/// How an address is written; `port` is the free port for the forms that
/// carry one.
#[derive(Clone, Copy, Debug)]
enum Form {
    IpPort(&'static str),
    AnyPort,
    LocalhostPort,
    Bare(&'static str),
}

impl Form {
    fn text(self, port: u16) -> String {
        match self {
            Form::IpPort(ip) if ip.contains(':') => format!("[{ip}]:{port}"),
            Form::IpPort(ip) => format!("{ip}:{port}"),
            Form::AnyPort => format!(":{port}"),
            Form::LocalhostPort => format!("localhost:{port}"),
            Form::Bare(ip) => ip.to_string(),
        }
    }

    /// What the daemon must bind, and where a client reaches it.
    fn expect(self, listener: Listener, port: u16) -> (SocketAddr, SocketAddr) {
        let at = |ip: &str, port| SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port);
        match self {
            Form::IpPort(ip) => (at(ip, port), at(ip, port)),
            Form::AnyPort => (at("::", port), at("127.0.0.1", port)),
            Form::LocalhostPort => (at("127.0.0.1", port), at("127.0.0.1", port)),
            Form::Bare(ip) => {
                let p = listener.default_port();
                (at(ip, p), at(ip, p))
            }
        }
    }

    /// A port for `listener` written this way, or None when a bare form's
    /// default port cannot be bound here.
    fn port(self, listener: Listener) -> Option<u16> {
        match self {
            Form::IpPort(ip) => Some(free_port(ip)),
            Form::AnyPort => Some(free_port("::")),
            Form::LocalhostPort => Some(free_port("127.0.0.1")),
            Form::Bare(ip) => {
                let addr = SocketAddr::new(ip.parse().unwrap(), listener.default_port());
                let free = TcpListener::bind(addr).is_ok() && UdpSocket::bind(addr).is_ok();
                free.then_some(0)
            }
        }
    }
}

fn has_ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

fn overwatch_yaml(dir: &TempDir, addr: &dyn Fn(Listener) -> String) -> String {
    format!(
        "mode: overwatch\n\
         dns: {{ listen_address: \"{dns}\", zones: [gslb.test] }}\n\
         overwatch:\n  gossip: {{ bind_address: \"{gossip}\", encryption_key: \"{KEY}\" }}\n  \
         data_dir: \"{data}\"\n\
         domains:\n  - {{ name: app.gslb.test }}\n\
         api: {{ address: \"{api}\" }}\n\
         metrics: {{ enabled: true, address: \"{metrics}\" }}\n",
        dns = addr(Listener::Dns),
        gossip = addr(Listener::Gossip),
        api = addr(Listener::Api),
        metrics = addr(Listener::Metrics),
        data = dir.path().join("data").display(),
    )
}

fn agent_yaml(dir: &TempDir, addr: &dyn Fn(Listener) -> String) -> String {
    format!(
        "mode: agent\n\
         agent:\n  identity: {{ agent_id: listen-test, region: east, service_token: t, \
         cert_path: \"{d}/a.crt\", key_path: \"{d}/a.key\" }}\n  \
         backends:\n    - {{ service: app.gslb.test, address: 127.0.0.1, port: 1, \
         health_check: {{ type: tcp, interval: 1s, timeout: 500ms }} }}\n  \
         gossip: {{ encryption_key: \"{KEY}\", overwatch_nodes: [\"127.0.0.1:1\"] }}\n  \
         api: {{ address: \"{agent_api}\" }}\n\
         metrics: {{ enabled: true, address: \"{metrics}\" }}\n",
        d = dir.path().display(),
        agent_api = addr(Listener::AgentApi),
        metrics = addr(Listener::Metrics),
    )
}

fn check(config: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["--check", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .expect("run opengslb --check");
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.code(), text)
}

/// Answers on `at` as that listener should.
fn answers(listener: Listener, at: SocketAddr) -> bool {
    let url = |path: &str| format!("http://{at}{path}");
    match listener {
        Listener::Dns => dnsclient::udp(at, &Query::new("gslb.test", SOA)).is_some(),
        Listener::Gossip => TcpStream::connect_timeout(&at, Duration::from_secs(1)).is_ok(),
        Listener::Api => http_get(&url("/api/v1/live")).is_some_and(|(c, _)| c == 200),
        Listener::Metrics => http_get(&url("/metrics")).is_some_and(|(c, _)| c == 200),
        Listener::AgentApi => http_get(&url("/api/v1/agent/status")).is_some_and(|(c, _)| c == 200),
    }
}

/// One daemon per (mode, form): every listener of the mode written in that
/// form. Returns false when the form could not be bound here (skipped).
fn checked_and_bound(mode: Mode, form: Form) -> bool {
    let listeners: &[Listener] = match mode {
        Mode::Overwatch => &[
            Listener::Dns,
            Listener::Gossip,
            Listener::Api,
            Listener::Metrics,
        ],
        Mode::Agent => &[Listener::AgentApi, Listener::Metrics],
    };
    let mut ports = Vec::new();
    for l in listeners {
        match form.port(*l) {
            Some(p) => ports.push((*l, p)),
            None => {
                eprintln!(
                    "SKIPPED: daemon_listen {mode:?} {form:?}: {}:{} is not free or needs root",
                    l.key(),
                    l.default_port()
                );
                return false;
            }
        }
    }
    let port_of = |l: Listener| {
        ports
            .iter()
            .find(|(x, _)| *x == l)
            .map(|(_, p)| *p)
            .unwrap()
    };
    let text = |l: Listener| form.text(port_of(l));
    let dir = TempDir::new("listen");
    let yaml = match mode {
        Mode::Overwatch => overwatch_yaml(&dir, &text),
        Mode::Agent => agent_yaml(&dir, &text),
    };
    let path = dir.write("config.yaml", &yaml);

    // `--check` accepts it, and the daemon's bind path reads the same address.
    let (code, stderr) = check(&path);
    assert_eq!(
        code,
        Some(0),
        "{form:?} {mode:?}: --check refused:\n{stderr}\n{yaml}"
    );
    let loaded = config::load(&path, Some(mode)).unwrap_or_else(|e| panic!("{e}"));
    for (l, port) in &ports {
        let (bind, _) = form.expect(*l, *port);
        assert_eq!(
            opengslb::daemon::listen::address(&loaded.config, mode, *l).unwrap(),
            Some(bind),
            "{form:?}: {} = {:?}",
            l.key(),
            text(*l)
        );
    }

    // The real daemon binds it and answers there.
    let mode_name = if mode == Mode::Agent {
        "agent"
    } else {
        "overwatch"
    };
    let mut daemon = Daemon::start_file(&dir, "d", &path, mode_name);
    for (l, port) in &ports {
        let (_, reach) = form.expect(*l, *port);
        wait_for(
            &format!("{} on {reach}", l.key()),
            Duration::from_secs(10),
            || {
                if let Ok(Some(s)) = daemon.child.as_mut().unwrap().try_wait() {
                    panic!(
                        "{form:?}: the daemon exited with {s}:\n{}",
                        daemon.log_text()
                    );
                }
                answers(*l, reach).then_some(())
            },
        );
    }
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    true
}

#[test]
fn regression_every_address_check_accepts_the_daemon_binds() {
    let mut forms = vec![
        Form::IpPort("127.0.0.1"),
        Form::AnyPort,
        Form::LocalhostPort,
        Form::Bare("127.0.0.93"),
    ];
    if has_ipv6_loopback() {
        forms.extend([Form::IpPort("::1"), Form::Bare("::1")]);
    } else {
        crate::util::skip("daemon_listen IPv6 forms", "no IPv6 loopback on this host");
    }
    let mut bound = 0;
    for form in forms {
        for mode in [Mode::Overwatch, Mode::Agent] {
            bound += usize::from(checked_and_bound(mode, form));
        }
    }
    // The forms that carry a free port never skip.
    assert!(bound >= 6, "only {bound} daemons were started");
}

/// Bare addresses mean the listener's default port in `--check` and in
/// the bind path alike, whether or not this host could bind it.
#[test]
fn bare_addresses_take_the_default_port_in_check_and_bind_alike() {
    for ip in ["127.0.0.1", "::1", "[::1]"] {
        let dir = TempDir::new("listen-bare");
        let yaml = overwatch_yaml(&dir, &|_| ip.to_string());
        let path = dir.write("config.yaml", &yaml);
        let (code, stderr) = check(&path);
        assert_eq!(code, Some(0), "{ip}: {stderr}");
        let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
        let want: IpAddr = ip.trim_matches(['[', ']']).parse().unwrap();
        for (l, port) in [
            (Listener::Dns, 53),
            (Listener::Gossip, 7946),
            (Listener::Api, 9090),
            (Listener::Metrics, 9091),
        ] {
            let got = opengslb::daemon::listen::address(&loaded.config, Mode::Overwatch, l);
            assert_eq!(
                got.unwrap(),
                Some(SocketAddr::new(want, port)),
                "{ip} {l:?}"
            );
        }
    }
}

/// An address `--check` refuses, the daemon refuses too, with exit 3.
#[test]
fn refused_by_check_and_by_the_daemon_alike() {
    for bad in ["ow1.example.com:53", "127.0.0.1:99999", "[::1"] {
        let dir = TempDir::new("listen-bad");
        let yaml = overwatch_yaml(&dir, &|l| {
            if l == Listener::Dns {
                bad.to_string()
            } else {
                format!("127.0.0.1:{}", free_port("127.0.0.1"))
            }
        });
        let path = dir.write("config.yaml", &yaml);
        let (code, stderr) = check(&path);
        assert_eq!(code, Some(3), "{bad}: {stderr}");
        assert!(stderr.contains("dns.listen_address: invalid"), "{stderr}");
        let mut daemon = Daemon::start_file(&dir, "d", &path, "overwatch");
        assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(3), "{bad}");
    }
}
