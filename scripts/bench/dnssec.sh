#!/usr/bin/env bash
# DNSSEC online signing costs (issue 13).
#
# 1. In-process (BENCH_INPROCESS=1, the default): the responder alone, one
#    thread, no sockets (tests/bench/dnssec.rs): warm signed DO=1 answer
#    against the same query unsigned, cold signing throughput per core for
#    both algorithms, memory of a cache holding 10,000 answer sets.
# 2. Server level: OpenGSLB with bench.test signed (ECDSAP256SHA256, key
#    made by `opengslb-cli dnssec keygen`), app1.bench.test answering two
#    health-checked A records, beside PowerDNS (Debian pdns-server, bind
#    backend with its DNSSEC database, `pdnsutil secure-zone`: online
#    signing of a LUA record giving the same two addresses). Each server
#    is pinned to one core and dnsperf to the other, at the same fixed
#    offered rate, once without EDNS and once with DO=1 (`dnsperf -D`) on
#    the same name, rounds alternating. CPU per answered query = utime +
#    stime of the server process (/proc/PID/stat, all threads) over the
#    queries dnsperf saw answered. Prints each figure, the DO/plain ratio
#    per server (issue bound for OpenGSLB: <= 1.3) and OpenGSLB/PowerDNS
#    per signed query.
#
# Knobs:
#   BENCH_INPROCESS (1)   0: skip part 1
#   BENCH_RATE (20000)    offered queries/s
#   BENCH_SECONDS (10)    length of each run
#   BENCH_ROUNDS (3)
#   BENCH_PDNS (1)        0: OpenGSLB only
#   BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1)   taskset core lists
#   BENCH_CLIENTS (10)    dnsperf -c
set -euo pipefail
cd "$(dirname "$0")/../.."
# free_port, need: helpers the benchmarks share.
# shellcheck source=scripts/bench/dnslib.sh
. scripts/bench/dnslib.sh
RATE=${BENCH_RATE:-20000}
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
PDNS=${BENCH_PDNS:-1}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
CLIENTS=${BENCH_CLIENTS:-10}
TARGET=${CARGO_TARGET_DIR:-target}

if [ "${BENCH_INPROCESS:-1}" = 1 ]; then
    nice cargo test --release --test dnssec_bench -- --ignored --nocapture 2>&1 |
        grep -E 'ns/query|signatures/s|cache of'
fi

missing=""
for tool in dnsperf dig taskset python3; do
    need "$tool" || missing="$missing $tool"
done
if [ "$PDNS" = 1 ]; then
    need pdns_server || missing="$missing pdns_server"
    need pdnsutil || missing="$missing pdnsutil"
fi
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "dnssec.sh: missing$missing; run as root to install them" >&2
        exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        dnsperf bind9-dnsutils util-linux pdns-server pdns-backend-lua2
    systemctl stop pdns 2>/dev/null || true
fi

bench_work dnssec

wait_signed() { # name port
    for _ in $(seq 150); do
        if dig +dnssec +norec +time=1 +tries=1 -p "$2" @127.0.0.1 app1.bench.test A 2>/dev/null |
            grep -q 'IN[[:space:]]*RRSIG'; then
            return 0
        fi
        sleep 0.2
    done
    echo "dnssec.sh: $1 gives no signed answer on 127.0.0.1:$2" >&2
    return 1
}

nice cargo build --release --bins >"$WORK/build.log" 2>&1 || {
    cat "$WORK/build.log" >&2
    exit 1
}

# ---------------------------------------------------------------- servers
start_opengslb() {
    d="$WORK/opengslb"
    mkdir -p "$d/www" "$d/data"
    echo ok >"$d/www/health"
    http_port=$(free_port)
    for ip in 127.0.0.2 127.0.0.3; do
        python3 -m http.server "$http_port" --bind "$ip" --directory "$d/www" >/dev/null 2>&1 &
        PIDS="$PIDS $!"
    done
    PORT_opengslb=$(free_port)
    key=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
    cat >"$d/overwatch.yaml" <<CONF
mode: overwatch
dns:
  listen_address: "127.0.0.1:$PORT_opengslb"
  zones: [bench.test]
  default_ttl: 60
  threads: 1
overwatch:
  data_dir: "$d/data"
  dnssec:
    enabled: true
    algorithm: ECDSAP256SHA256
  gossip:
    bind_address: "127.0.0.1:$(free_port)"
    encryption_key: "$key"
  validation:
    enabled: true
    check_interval: 1s
    check_timeout: 1s
regions:
  - name: bench
    servers:
      - { address: 127.0.0.2, port: $http_port }
      - { address: 127.0.0.3, port: $http_port }
    health_check: { type: http, path: /health, interval: 1s, timeout: 1s, failure_threshold: 1, success_threshold: 1 }
domains:
  - { name: app1.bench.test, routing_algorithm: round-robin, regions: [bench] }
api:
  address: "127.0.0.1:$(free_port)"
logging:
  level: warn
CONF
    chmod 600 "$d/overwatch.yaml"
    "$TARGET/release/opengslb-cli" dnssec keygen bench.test --config "$d/overwatch.yaml" >"$d/keygen.log"
    taskset -c "$SERVER_CPU" "$TARGET/release/opengslb" --config "$d/overwatch.yaml" >"$d/stdout.log" 2>&1 &
    PID_opengslb=$!
    PIDS="$PIDS $PID_opengslb"
    wait_signed opengslb "$PORT_opengslb"
}

start_pdns() {
    d="$WORK/pdns"
    mkdir -p "$d"
    PORT_pdns=$(free_port)
    cat >"$d/bench.test.zone" <<'ZONE'
$ORIGIN bench.test.
$TTL 60
@     3600 IN SOA ns1.bench.test. hostmaster.bench.test. 1 3600 600 86400 30
@     3600 IN NS  ns1.bench.test.
ns1   IN A 127.0.0.1
app1  IN LUA A ";return {'127.0.0.2','127.0.0.3'}"
ZONE
    echo "zone \"bench.test\" { type master; file \"$d/bench.test.zone\"; };" >"$d/named.conf"
    cat >"$d/pdns.conf" <<CONF
launch=bind
bind-config=$d/named.conf
bind-dnssec-db=$d/dnssec.db
local-address=127.0.0.1
local-port=$PORT_pdns
enable-lua-records=yes
socket-dir=$d
daemon=no
guardian=no
write-pid=no
receiver-threads=1
distributor-threads=1
loglevel=3
CONF
    pdnsutil --config-dir="$d" create-bind-db "$d/dnssec.db" >"$d/setup.log" 2>&1
    pdnsutil --config-dir="$d" secure-zone bench.test >>"$d/setup.log" 2>&1
    taskset -c "$SERVER_CPU" pdns_server --config-dir="$d" >"$d/stdout.log" 2>&1 &
    PID_pdns=$!
    PIDS="$PIDS $PID_pdns"
    wait_signed pdns "$PORT_pdns"
}

SERVERS="opengslb"
start_opengslb
if [ "$PDNS" = 1 ]; then
    start_pdns
    SERVERS="$SERVERS pdns"
fi

# ---------------------------------------------------------------- measuring
ticks() { # pid -> utime+stime
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
HZ=$(getconf CLK_TCK)
echo "app1.bench.test A" >"$WORK/queries.txt"
RESULTS="$WORK/results.txt"
: >"$RESULTS"

measure() { # server mode(plain|dnssec)
    port=$(eval "echo \$PORT_$1")
    pid=$(eval "echo \$PID_$1")
    flag=""
    if [ "$2" = "dnssec" ]; then
        flag="-D"
    fi
    before=$(ticks "$pid")
    # shellcheck disable=SC2086
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" \
        -l "$SECS" -c "$CLIENTS" -T 1 -Q "$RATE" $flag >"$WORK/dnsperf.out" 2>&1
    after=$(ticks "$pid")
    answered=$(awk '/Queries completed:/ { print $3 }' "$WORK/dnsperf.out")
    echo "$1 $2 ${answered:-0} $((after - before))" >>"$RESULTS"
}

for round in $(seq "$ROUNDS"); do
    for server in $SERVERS; do
        for mode in plain dnssec; do
            measure "$server" "$mode"
            tail -n 1 "$RESULTS" | awk -v hz="$HZ" -v r="$round" \
                '{ printf "round %s %-8s %-5s answered %8d  cpu %7.2f us/query\n", r, $1, $2, $3, ($3 > 0 ? $4 / hz * 1e6 / $3 : 0) }'
        done
    done
done

# Per server and mode: total CPU over total answered (all rounds).
awk -v hz="$HZ" '
    { q[$1 " " $2] += $3; t[$1 " " $2] += $4 }
    END {
        for (k in q) us[k] = (q[k] > 0 ? t[k] / hz * 1e6 / q[k] : 0)
        for (k in q) printf "%-14s %7.2f us/query (%d answered)\n", k, us[k], q[k]
        if (us["opengslb plain"] > 0)
            printf "opengslb DO=1 / plain: %.2f (bound 1.3)\n", us["opengslb dnssec"] / us["opengslb plain"]
        if (us["pdns plain"] > 0)
            printf "pdns DO=1 / plain: %.2f\n", us["pdns dnssec"] / us["pdns plain"]
        if (us["pdns dnssec"] > 0)
            printf "opengslb / pdns per signed query: %.2f\n", us["opengslb dnssec"] / us["pdns dnssec"]
    }' "$RESULTS" | sort
