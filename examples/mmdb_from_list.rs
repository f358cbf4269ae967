//! Writes a MaxMind-format country database from a plain list, for the
//! geolocation benchmark (scripts/bench/geo.sh) and manual tests: no
//! third-party GeoIP data is shipped. It uses the tests' own writer.
//!
//! Usage: `cargo run --release --example mmdb_from_list OUT.mmdb < LIST`
//! where each line of LIST is `CIDR COUNTRY CONTINENT`, e.g.
//! `198.51.100.0/24 US NA` (wider networks before narrower ones inside
//! them; blank lines and lines starting with `#` are skipped).

#[path = "../tests/util/mmdb.rs"]
mod mmdb;

use std::io::BufRead;

fn main() {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: mmdb_from_list OUT.mmdb < LIST (lines: CIDR COUNTRY CONTINENT)");
        std::process::exit(2);
    };
    let mut writer = mmdb::MmdbWriter::new();
    let mut count = 0usize;
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.unwrap_or_else(|e| {
            eprintln!("mmdb_from_list: stdin: {e}");
            std::process::exit(1);
        });
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [cidr, country, continent] = fields[..] else {
            eprintln!(
                "mmdb_from_list: line {}: want CIDR COUNTRY CONTINENT",
                n + 1
            );
            std::process::exit(1);
        };
        let valid = cidr
            .split_once('/')
            .is_some_and(|(a, l)| a.parse::<std::net::IpAddr>().is_ok() && l.parse::<u8>().is_ok());
        if !valid || country.len() != 2 || continent.len() != 2 {
            eprintln!("mmdb_from_list: line {}: bad entry {line:?}", n + 1);
            std::process::exit(1);
        }
        writer.insert(cidr, country, continent);
        count += 1;
    }
    if let Err(e) = std::fs::write(&out, writer.bytes()) {
        eprintln!("mmdb_from_list: {out}: {e}");
        std::process::exit(1);
    }
    eprintln!("mmdb_from_list: {count} networks written to {out}");
}
