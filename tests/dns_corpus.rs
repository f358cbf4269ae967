//! Replays every file of the fuzz seed corpus (fuzz/corpus/dns_query/)
//! through the responder, as the fuzz target does, so the seeds and any
//! crash reproducers added there are checked by `cargo test`.

use domain::base::Message;
use domain::base::iana::Rcode;
use opengslb::config::{RoutingAlgorithm, SoaConfig};
use opengslb::dns::{
    DnsStats, DnsTable, DomainSpec, Responder, TableSpec, Target, Transport, ZoneSpec,
};
use std::path::Path;

#[test]
fn corpus_replays_without_panic_and_answers_seeds() {
    let stats = DnsStats::new();
    let spec = TableSpec {
        zones: vec![ZoneSpec {
            apex: "example.com".into(),
            soa: SoaConfig::default(),
            nameservers: vec![],
        }],
        domains: vec![DomainSpec {
            name: "app.example.com".into(),
            ttl: 30,
            algorithm: RoutingAlgorithm::RoundRobin,
            max_records: None,
            targets: vec![Target {
                ip: "10.0.0.1".parse().unwrap(),
                weight: 1,
            }],
            last_healthy: None,
        }],
        serial: 1,
        ..Default::default()
    };
    let table = DnsTable::build(&spec, &stats);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/dns_query");
    let mut r = Responder::new(1232);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        files += 1;
        let udp = r
            .respond(
                &data,
                "127.0.0.1".parse().unwrap(),
                Transport::Udp,
                &table,
                &stats,
            )
            .map(<[u8]>::to_vec);
        let _ = r.respond(
            &data,
            "127.0.0.1".parse().unwrap(),
            Transport::Tcp,
            &table,
            &stats,
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(out) = udp {
            assert!(out.len() <= 1232, "{name}");
            let m = Message::from_octets(out).unwrap();
            if name == "a_app" {
                assert_eq!(m.header().rcode(), Rcode::NOERROR);
                assert_eq!(m.header_counts().ancount(), 1);
            }
            if name == "compression_loop" {
                assert_eq!(m.header().rcode(), Rcode::FORMERR);
            }
        }
    }
    assert!(files >= 10, "seed corpus missing in {}", dir.display());
}
