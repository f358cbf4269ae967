//! DNSSEC online signing checked by real validators (SPEC §13, issue 13):
//! unbound with the zone's DS as its only trust anchor, a stub zone to our
//! server on 127.0.0.1 and every address outside 127.0.0.0/8 forbidden
//! (`do-not-query-address`), must mark A, AAAA, NXDOMAIN (compact denial,
//! RFC 9824) and NODATA answers secure (`ad`), before and after a backend
//! leaves DNS; `delv` with the same anchor must say "fully validated";
//! and answers signed with another key must be rejected (SERVFAIL), so
//! the test can fail.

use crate::util::unbound::Unbound;
use opengslb::config::{RoutingAlgorithm, SoaConfig};
use opengslb::dns::dnssec::{Algorithm, KeyFile};
use opengslb::dns::keystore::KeyRing;
use opengslb::dns::{
    self, DnsStats, DnsTable, DomainSpec, NameServerSpec, ServerConfig, TableSpec, Target, ZoneSpec,
};
use opengslb::snapshot::SnapshotCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

pub(crate) const ZONE: &str = "signed.test";

pub(crate) fn spec(app: &[&str]) -> TableSpec {
    TableSpec {
        zones: vec![ZoneSpec {
            apex: ZONE.into(),
            soa: SoaConfig::default(),
            nameservers: vec![],
        }],
        domains: vec![DomainSpec {
            name: format!("app.{ZONE}"),
            // Not cached by the resolver: each check sees the current RRset.
            ttl: 0,
            algorithm: RoutingAlgorithm::RoundRobin,
            max_records: None,
            targets: app
                .iter()
                .map(|a| Target {
                    ip: a.parse().unwrap(),
                    weight: 1,
                })
                .collect(),
            last_healthy: None,
            by_region: Vec::new(),
            round_trips: Vec::new(),
        }],
        serial: 1,
        nameservers: NameServerSpec {
            hosts: vec![],
            self_addrs: vec!["127.0.0.1".parse().unwrap()],
        },
        rate_limit: None,
        geo: None,
    }
}

fn ring(kf: &KeyFile) -> Option<Arc<KeyRing>> {
    Some(Arc::new(
        KeyRing::from_key_files(&[(PathBuf::from("test.key"), kf.clone())]).unwrap(),
    ))
}

/// `dig` output for a query to `server` with DO set.
pub(crate) fn dig(server: SocketAddr, name: &str, qtype: &str) -> String {
    let out = Command::new("dig")
        .args([
            "+dnssec",
            "+time=2",
            "+tries=2",
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            name,
            qtype,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn flags(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(";; flags:"))
        .unwrap_or("")
        .to_string()
}

pub(crate) fn status(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// A validating unbound with the zone's DS as its trust anchor.
pub(crate) fn start_unbound(stub: SocketAddr, ds: &str, tag: &str) -> Result<Unbound, String> {
    let lines = format!(
        "  module-config: \"validator iterator\"\n  trust-anchor: \"{ds}\"\n  val-log-level: 2\n  local-zone: \"test.\" nodefault\n"
    );
    crate::util::unbound::start(&format!("dnssec-{tag}"), ZONE, stub, &lines, &|addr| {
        !status(&dig(addr, ZONE, "SOA")).is_empty()
    })
}

pub(crate) fn server(
    table: DnsTable,
    stats: &Arc<DnsStats>,
) -> (dns::DnsServer, Arc<SnapshotCell<DnsTable>>) {
    let cell = Arc::new(SnapshotCell::new(table));
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        tcp_idle_timeout: Duration::from_secs(5),
        tcp_max_connections: 16,
        max_udp_size: 1232,
        learned: None,
    };
    (
        dns::start(&cfg, Arc::clone(&cell), Arc::clone(stats)).unwrap(),
        cell,
    )
}

/// The four answer kinds through the validating resolver: all secure.
pub(crate) fn assert_secure(resolver: SocketAddr, when: &str) {
    for (name, qtype, want) in [
        (format!("app.{ZONE}"), "A", "NOERROR"),
        (format!("app.{ZONE}"), "AAAA", "NOERROR"),
        (format!("nope.{ZONE}"), "A", "NOERROR"), // NXDOMAIN, compact denial
        (format!("app.{ZONE}"), "TXT", "NOERROR"), // NODATA
        (ZONE.to_string(), "DNSKEY", "NOERROR"),
    ] {
        let out = dig(resolver, &name, qtype);
        assert_eq!(status(&out), want, "{when}: {name} {qtype}:\n{out}");
        assert!(
            flags(&out).contains(" ad"),
            "{when}: {name} {qtype} not validated:\n{out}"
        );
    }
}

#[test]
fn validators_accept_signed_answers_and_reject_a_wrong_key() {
    if !crate::util::need_tools(
        "validators_accept_signed_answers_and_reject_a_wrong_key",
        &["dig", "delv"],
    ) {
        return;
    }
    for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let kf = KeyFile::generate(ZONE, alg, 0).unwrap();
        let key = kf.signing_key().unwrap();
        let ds = key.ds_text(ZONE).unwrap();
        let stats = Arc::new(DnsStats::new());
        let table = |app: &[&str]| DnsTable::build(&spec(app), &stats).with_dnssec(ring(&kf));
        let (srv, cell) = server(table(&["10.0.0.1", "10.0.0.2", "2001:db8::1"]), &stats);
        let unbound = match start_unbound(srv.local_addr(), &ds, alg.mnemonic()) {
            Ok(u) => u,
            Err(why) => {
                crate::util::skip(
                    "validators_accept_signed_answers_and_reject_a_wrong_key",
                    &why,
                );
                srv.stop();
                return;
            }
        };
        let resolver = unbound.addr;
        assert_secure(resolver, "all backends");
        // A backend leaves DNS: the new RRset is signed and validates.
        cell.publish(table(&["10.0.0.2", "2001:db8::1"]));
        let out = dig(resolver, &format!("app.{ZONE}"), "A");
        assert!(!out.contains("10.0.0.1"), "{out}");
        assert_secure(resolver, "after a backend left");
        // delv with the DS as trust anchor.
        let dir = std::env::temp_dir().join(format!("opengslb-delv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f: Vec<&str> = ds.split_whitespace().collect();
        let anchor = dir.join("anchor.conf");
        std::fs::write(
            &anchor,
            format!(
                "trust-anchors {{\n  {ZONE}. static-ds {} {} {} \"{}\";\n}};\n",
                f[3], f[4], f[5], f[6]
            ),
        )
        .unwrap();
        for (name, qtype) in [
            (format!("app.{ZONE}"), "A"),
            (format!("app.{ZONE}"), "AAAA"),
            (format!("nope.{ZONE}"), "A"),
            (format!("app.{ZONE}"), "TXT"),
            (ZONE.to_string(), "SOA"),
            (ZONE.to_string(), "NS"),
            (format!("ns1.{ZONE}"), "A"), // its RRSIG is also the glue's
            (ZONE.to_string(), "CDS"),
            (ZONE.to_string(), "CDNSKEY"),
        ] {
            let out = Command::new("delv")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &srv.local_addr().port().to_string(),
                    "-a",
                    anchor.to_str().unwrap(),
                    &format!("+root={ZONE}"),
                    &name,
                    qtype,
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                text.contains("fully validated"),
                "delv {name} {qtype}:\n{text}"
            );
        }
        // Tampered: the zone signed with another key than the DS names;
        // a fresh resolver (nothing cached) must refuse it.
        drop(unbound);
        let other = KeyFile::generate(ZONE, alg, 0).unwrap();
        cell.publish(DnsTable::build(&spec(&["10.0.0.9"]), &stats).with_dnssec(ring(&other)));
        let tag = format!("{}-wrong", alg.mnemonic());
        let unbound = start_unbound(srv.local_addr(), &ds, &tag).unwrap();
        let resolver = unbound.addr;
        for qtype in ["A", "AAAA", "TXT"] {
            let out = dig(resolver, &format!("app.{ZONE}"), qtype);
            assert_eq!(status(&out), "SERVFAIL", "wrong key accepted:\n{out}");
            assert!(!flags(&out).contains(" ad"), "{out}");
        }
        let delv = Command::new("delv")
            .args([
                "@127.0.0.1",
                "-p",
                &srv.local_addr().port().to_string(),
                "-a",
                anchor.to_str().unwrap(),
                &format!("+root={ZONE}"),
                &format!("app.{ZONE}"),
                "A",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&delv.stdout).into_owned()
            + &String::from_utf8_lossy(&delv.stderr);
        assert!(
            !text.contains("fully validated"),
            "wrong key accepted:\n{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        drop(unbound);
        srv.stop();
    }
}

/// The bad-input corners of issue 13 without a validator: DO with a tiny
/// UDP size gets TC, CD is echoed and AD never set, DS at the apex is
/// NODATA with a signed NSEC, the NXDOMAIN of a signed
/// zone is NOERROR (RFC 9824), and without DO nothing is signed.
#[test]
fn signed_answers_bad_input_corners() {
    use domain::base::iana::{Rcode, Rtype};
    use domain::base::{Message, MessageBuilder, Name};
    use opengslb::dns::{Responder, Transport};
    use std::str::FromStr;
    let kf = KeyFile::generate(ZONE, Algorithm::EcdsaP256Sha256, 0).unwrap();
    let stats = DnsStats::new();
    let table = DnsTable::build(&spec(&["10.0.0.1", "10.0.0.2"]), &stats).with_dnssec(ring(&kf));
    let ask = |name: &str, qtype: Rtype, size: u16, dnssec_ok: bool, cd: bool| {
        let mut b = MessageBuilder::new_vec();
        b.header_mut().set_id(3);
        b.header_mut().set_cd(cd);
        let mut q = b.question();
        q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
            .unwrap();
        let mut add = q.additional();
        add.opt(|o| {
            o.set_udp_payload_size(size);
            o.set_dnssec_ok(dnssec_ok);
            Ok(())
        })
        .unwrap();
        let mut r = Responder::new(4096);
        let out = r
            .respond(
                &add.finish(),
                "192.0.2.1".parse().unwrap(),
                Transport::Udp,
                &table,
                &stats,
            )
            .unwrap()
            .to_vec();
        Message::from_octets(out).unwrap()
    };
    let has_rrsig = |m: &Message<Vec<u8>>| {
        m.answer()
            .unwrap()
            .chain(m.authority().unwrap())
            .any(|r| r.unwrap().rtype() == Rtype::RRSIG)
    };
    let apex = format!("{ZONE}.");
    // DNSKEY with DO at the smallest size: fits or is TC, never cut.
    let m = ask(&apex, Rtype::DNSKEY, 512, true, true);
    assert!(m.header().cd(), "CD echoed");
    assert!(!m.header().ad(), "AD never set by the authority");
    assert!(m.header().tc() || has_rrsig(&m));
    // Many addresses do not fit 512 bytes with signatures: TC.
    let many: Vec<String> = (1..=40).map(|i| format!("10.0.1.{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let big = DnsTable::build(&spec(&refs), &stats).with_dnssec(ring(&kf));
    let b = MessageBuilder::new_vec();
    let mut q = b.question();
    q.push((
        Name::<Vec<u8>>::from_str(&format!("app.{ZONE}.")).unwrap(),
        Rtype::A,
    ))
    .unwrap();
    let mut add = q.additional();
    add.opt(|o| {
        o.set_udp_payload_size(512);
        o.set_dnssec_ok(true);
        Ok(())
    })
    .unwrap();
    let out = Responder::new(4096)
        .respond(
            &add.finish(),
            "192.0.2.1".parse().unwrap(),
            Transport::Udp,
            &big,
            &stats,
        )
        .unwrap()
        .to_vec();
    assert!(Message::from_octets(out).unwrap().header().tc());
    // DS at the apex: NODATA, the NSEC at the apex does not list DS.
    let m = ask(&apex, Rtype::DS, 1232, true, false);
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert_eq!(m.header_counts().ancount(), 0);
    assert!(has_rrsig(&m));
    assert!(
        m.authority()
            .unwrap()
            .any(|r| r.unwrap().rtype() == Rtype::NSEC),
        "NSEC in the authority section"
    );
    // Compact denial: NOERROR, not NXDOMAIN, with DO; NXDOMAIN without.
    let m = ask(&format!("nope.{ZONE}."), Rtype::A, 1232, true, false);
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    let m = ask(&format!("nope.{ZONE}."), Rtype::A, 1232, false, false);
    assert_eq!(m.header().rcode(), Rcode::NXDOMAIN);
    assert!(!has_rrsig(&m));
    let m = ask(&format!("app.{ZONE}."), Rtype::A, 1232, false, false);
    assert!(!has_rrsig(&m));
}

/// In-zone NS addresses (glue in the additional section of an NS answer)
/// carry their RRSIG with DO=1: the same RRSIG as the direct answer for
/// the name (Ed25519 is deterministic), which delv validates above; and
/// nothing is signed without DO.
#[test]
fn signed_glue_carries_the_rrsig_of_the_host_answer() {
    use domain::base::iana::Rtype;
    use domain::base::{Message, MessageBuilder, Name, ParsedName, Record, UnknownRecordData};
    use opengslb::dns::{Responder, Transport};
    use std::str::FromStr;
    let kf = KeyFile::generate(ZONE, Algorithm::Ed25519, 0).unwrap();
    let stats = DnsStats::new();
    let table = DnsTable::build(&spec(&["10.0.0.1"]), &stats).with_dnssec(ring(&kf));
    let ask = |name: &str, qtype: Rtype, dnssec_ok: bool| {
        let b = MessageBuilder::new_vec();
        let mut q = b.question();
        q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
            .unwrap();
        let mut add = q.additional();
        add.opt(|o| {
            o.set_udp_payload_size(1232);
            o.set_dnssec_ok(dnssec_ok);
            Ok(())
        })
        .unwrap();
        let out = Responder::new(1232)
            .respond(
                &add.finish(),
                "192.0.2.1".parse().unwrap(),
                Transport::Udp,
                &table,
                &stats,
            )
            .unwrap()
            .to_vec();
        Message::from_octets(out).unwrap()
    };
    type Rr<'a> = Record<ParsedName<&'a [u8]>, UnknownRecordData<&'a [u8]>>;
    let rrsigs = |m: &Message<Vec<u8>>, additional: bool| -> Vec<(String, Vec<u8>)> {
        let section = if additional {
            m.additional().unwrap()
        } else {
            m.answer().unwrap()
        };
        section
            .filter_map(|r| {
                let r: Rr<'_> = r.unwrap().into_record().unwrap()?;
                (r.rtype() == Rtype::RRSIG)
                    .then(|| (r.owner().to_string(), r.data().data().to_vec()))
            })
            .collect()
    };
    let ns = format!("ns1.{ZONE}.");
    let direct = rrsigs(&ask(&ns, Rtype::A, true), false);
    assert_eq!(direct.len(), 1, "{direct:?}");
    let glue = rrsigs(&ask(&format!("{ZONE}."), Rtype::NS, true), true);
    assert_eq!(glue, direct);
    assert!(rrsigs(&ask(&format!("{ZONE}."), Rtype::NS, false), true).is_empty());
}
