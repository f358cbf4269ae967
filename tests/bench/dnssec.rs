//! Benchmark harness, not a functional test (ignored by default): what
//! DNSSEC online signing costs (SPEC §13, issue 13), in one thread without
//! sockets, in thread CPU time, best of three alternating runs:
//! - responder CPU per DO=1 answer of a signed zone with a warm signature
//!   cache against the same query unsigned (bound: <= 1.3x);
//! - cold signing throughput (signatures per second per core) for
//!   ECDSAP256SHA256 and ED25519;
//! - memory of a signature cache holding 10,000 distinct answer sets.
//!
//! Prints the figures (scripts/bench/dnssec.sh runs it; the 1.3x bound is
//! on server CPU and is not checked here). Run:
//! `cargo test --release --test dnssec_bench -- --ignored --nocapture`.

use domain::base::iana::Rtype;
use domain::base::{MessageBuilder, Name};
use opengslb::config::{RoutingAlgorithm, SoaConfig};
use opengslb::dns::dnssec::{Algorithm, KeyFile, SignatureCache, Signer};
use opengslb::dns::keystore::KeyRing;
use opengslb::dns::{
    DnsStats, DnsTable, DomainSpec, Responder, TableSpec, Target, Transport, ZoneSpec,
};
use std::str::FromStr;
use std::sync::Arc;

fn cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn table(stats: &DnsStats, signed: Option<&KeyFile>) -> DnsTable {
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
            targets: ["10.0.0.1", "10.0.0.2"]
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
        ..Default::default()
    };
    let ring =
        signed.map(|k| Arc::new(KeyRing::from_key_files(&[("k".into(), k.clone())]).unwrap()));
    DnsTable::build(&spec, stats).with_dnssec(ring)
}

fn query(dnssec_ok: bool) -> Vec<u8> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(1);
    let mut q = b.question();
    q.push((
        Name::<Vec<u8>>::from_str("app.example.com.").unwrap(),
        Rtype::A,
    ))
    .unwrap();
    let mut add = q.additional();
    add.opt(|o| {
        o.set_udp_payload_size(1232);
        o.set_dnssec_ok(dnssec_ok);
        Ok(())
    })
    .unwrap();
    add.finish()
}

/// ns per answered query.
fn per_query(table: &DnsTable, stats: &DnsStats, q: &[u8], n: u32) -> f64 {
    let mut r = Responder::new(1232);
    let client = "192.0.2.1".parse().unwrap();
    for _ in 0..1000 {
        let _ = r.respond(q, client, Transport::Udp, table, stats);
    }
    let t0 = cpu_ns();
    for _ in 0..n {
        std::hint::black_box(r.respond(q, client, Transport::Udp, table, stats));
    }
    (cpu_ns() - t0) as f64 / n as f64
}

#[test]
#[ignore]
fn dnssec_costs() {
    let n = 200_000;
    for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let kf = KeyFile::generate("example.com", alg, 0).unwrap();
        let stats = DnsStats::new();
        let plain = table(&stats, None);
        let signed = table(&stats, Some(&kf));
        let (mut best_plain, mut best_signed) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            best_plain = best_plain.min(per_query(&plain, &stats, &query(true), n));
            best_signed = best_signed.min(per_query(&signed, &stats, &query(true), n));
        }
        println!(
            "{alg}: warm signed DO=1 answer {best_signed:.0} ns/query, unsigned {best_plain:.0} ns/query, ratio {:.2}",
            best_signed / best_plain
        );
        // Cold signing: every RRset new (distinct TTLs), one per signature.
        let key = kf.signing_key().unwrap();
        let zone = opengslb::dns::dnssec::wire::name_wire("example.com").unwrap();
        let owner = opengslb::dns::dnssec::wire::name_wire("app.example.com").unwrap();
        let mut s = Signer::new(SignatureCache::new(2, [1; 16]));
        let count = 5_000u32;
        let t0 = cpu_ns();
        for i in 0..count {
            let mut rd: [&[u8]; 1] = [&[10, 0, 0, 1]];
            s.sign_rrset(&key, &zone, &owner, 1, i, &mut rd, 1_800_000_000)
                .unwrap();
        }
        let secs = (cpu_ns() - t0) as f64 / 1e9;
        println!(
            "{alg}: cold signing {:.0} signatures/s per core",
            count as f64 / secs
        );
        // A full cache for 10,000 distinct answer sets (one thread's).
        let mut s = Signer::new(SignatureCache::new(opengslb_cache_slots(), [1; 16]));
        for i in 0..10_000u32 {
            let ip = i.to_be_bytes();
            let mut rd: [&[u8]; 1] = [&ip];
            s.sign_rrset(&key, &zone, &owner, 1, 30, &mut rd, 1_800_000_000)
                .unwrap();
        }
        println!(
            "{alg}: cache of 10,000 answer sets: {} entries held, {} bytes ({} slots)",
            s.cache.entries,
            s.cache.memory_bytes(),
            s.cache.capacity()
        );
    }
}

/// The slot count each DNS thread uses (src/dns/signing.rs CACHE_SLOTS).
fn opengslb_cache_slots() -> usize {
    32_768
}
