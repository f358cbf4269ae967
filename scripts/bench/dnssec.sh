#!/usr/bin/env bash
# DNSSEC online signing costs (issue 13): responder CPU per DO=1 answer of
# a signed zone with a warm signature cache against the same query
# unsigned, cold signing throughput per core for both algorithms, and the
# memory of a cache holding 10,000 answer sets. In-process (no sockets),
# thread CPU time, best of three. Prints the harness's figures.
# Not done yet: the server-level comparison with dnsperf and PowerDNS
# (pdns-server + pdns-backend-lua2); see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
nice cargo test --release --test dnssec_bench -- --ignored --nocapture 2>&1 |
    grep -E 'ns/query|signatures/s|cache of'
