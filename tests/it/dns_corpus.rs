//! Replays every file of the fuzz seed corpus (fuzz/corpus/dns_query/)
//! through the responder, as the fuzz target does, so the seeds and any
//! crash reproducers added there are checked by `cargo test`.

use domain::base::Message;
use domain::base::iana::Rcode;
use opengslb::dns::{DnsStats, DnsTable, Responder, Transport, sample};
use std::path::Path;

#[test]
fn corpus_replays_without_panic_and_answers_seeds() {
    let stats = DnsStats::new();
    let spec = sample::spec();
    let table = DnsTable::build(&spec, &stats);
    // The seed `a_app` asks app.example.com A: every IPv4 target answers.
    let app_v4 = spec
        .domains
        .iter()
        .find(|d| d.name == "app.example.com")
        .map(|d| d.targets.iter().filter(|t| t.ip.is_ipv4()).count())
        .expect("app.example.com in the sample table");
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
                assert_eq!(usize::from(m.header_counts().ancount()), app_v4);
            }
            if name == "compression_loop" {
                assert_eq!(m.header().rcode(), Rcode::FORMERR);
            }
        }
    }
    assert!(files >= 10, "seed corpus missing in {}", dir.display());
}
