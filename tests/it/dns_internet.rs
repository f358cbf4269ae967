//! SPEC §14 through the real binary: `dns.nameservers` and
//! `dns.rate_limit` in a config file reach the DNS answers and the
//! metrics (the unit tests in src/dns/ pin the protocol rules).

use crate::util::dnsclient::{self, A, NS, Query, SOA};
use crate::util::*;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn nameservers_resolve_and_rate_limit_slips_udp_only() {
    let dir = TempDir::new("dns-internet");
    let dns_port = free_port("127.0.0.1");
    let api_port = free_port("127.0.0.1");
    let data = dir.path().join("data");
    let yaml = format!(
        r#"mode: overwatch
dns:
  listen_address: "127.0.0.1:{dns_port}"
  zones: [gslb.test]
  nameservers:
    - ns1.gslb.test
    - name: ns2.gslb.test
      addresses: [127.0.0.9]
    - ns.elsewhere.example
  rate_limit:
    responses_per_second: 1
    slip: 1
overwatch:
  data_dir: "{data}"
api:
  address: "127.0.0.1:{api_port}"
"#,
        data = data.display()
    );
    let _daemon = Daemon::start(&dir, "overwatch", &yaml, "overwatch");
    let dns: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    // TCP is never rate limited: the checks of the names go over it.
    let soa = wait_for("DNS up", Duration::from_secs(15), || {
        dnsclient::tcp(dns, &Query::new("gslb.test", SOA)).filter(|r| r.rcode == 0)
    });
    assert_eq!(soa.rcode, 0);
    let ns = dnsclient::tcp(dns, &Query::new("gslb.test", NS)).unwrap();
    assert_eq!(ns.answers.len(), 3);
    // The default for an in-zone name without addresses: the listen IP.
    let r = dnsclient::tcp(dns, &Query::new("ns1.gslb.test", A)).unwrap();
    assert_eq!((r.rcode, r.addr_strings()), (0, vec!["127.0.0.1".into()]));
    let r = dnsclient::tcp(dns, &Query::new("ns2.gslb.test", A)).unwrap();
    assert_eq!(r.addr_strings(), vec!["127.0.0.9".to_string()]);
    let r = dnsclient::tcp(dns, &Query::new("ns.elsewhere.example", A)).unwrap();
    assert_eq!(r.rcode, 5, "not ours: REFUSED");

    // One response per second per /24 and class, every limited one
    // slipped: a quick burst of UDP queries gets truncated answers.
    let mut truncated = 0;
    for _ in 0..20 {
        let r = dnsclient::udp(dns, &Query::new("gslb.test", SOA)).expect("slip=1 answers all");
        if r.tc {
            assert!(r.answers.is_empty());
            truncated += 1;
        }
    }
    assert!(truncated >= 1, "no UDP answer was rate limited");
    let (code, metrics) = http_get(&format!("http://127.0.0.1:{api_port}/metrics")).unwrap();
    assert_eq!(code, 200);
    let slipped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("opengslb_dns_rate_limited_total{action=\"slipped\"} "))
        .expect("rate-limit metric");
    assert_eq!(slipped.trim().parse::<f64>().unwrap(), f64::from(truncated));
}
