#!/bin/sh
# DNS throughput of OpenGSLB against NSD, side by side, with dnsperf.
#
# Both servers run on 127.0.0.1 with one responder (opengslb dns.threads: 1,
# NSD server-count: 1, rate limiting off) and serve the same names: four A
# names with two addresses each and one NXDOMAIN name in the query mix.
# Runs A B A B (NSD, OpenGSLB, NSD, OpenGSLB) with the same query file and
# client settings, prints the qps of each run and the ratio.
#
# Target under test (BENCH_TARGET):
#   binary  - target/release/opengslb --config FILE (overwatch mode, static
#             servers validated by HTTP checks against python3 http.server)
#   harness - the in-process server of tests/dns_bench_server.rs (same
#             responder and listener code, no daemon around it)
#   auto    - binary when the daemon builds, else harness (default)
# Knobs: BENCH_SECONDS (10), BENCH_CLIENTS (10), BENCH_THREADS (1).
set -eu

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-10}
THREADS=${BENCH_THREADS:-1}
TARGET=${BENCH_TARGET:-auto}

need() {
    command -v "$1" >/dev/null 2>&1
}

if ! need dnsperf || ! need nsd || ! need dig; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "dns.sh: need dnsperf, nsd and dig; run as root to install them" >&2
        exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dnsperf nsd bind9-dnsutils
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/opengslb-dns-bench.XXXXXX")
PIDS=""
cleanup() {
    for pid in $PIDS; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# A free TCP+UDP port on 127.0.0.1, chosen by the kernel.
free_port() {
    python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
p = s.getsockname()[1]
t = socket.socket()
t.bind(("127.0.0.1", p))
print(p)'
}

wait_for_answer() { # port
    i=0
    while [ "$i" -lt 150 ]; do
        if dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 app1.bench.test A 2>/dev/null | grep -q '^127\.0\.0\.'; then
            return 0
        fi
        i=$((i + 1))
        sleep 0.2
    done
    echo "dns.sh: nothing answers on 127.0.0.1:$1" >&2
    return 1
}

# ---------------------------------------------------------------- build
if [ "$TARGET" = auto ] || [ "$TARGET" = binary ]; then
    if cargo build --release >"$WORK/build.log" 2>&1 && [ -x "${CARGO_TARGET_DIR:-target}/release/opengslb" ]; then
        TARGET=binary
    elif [ "$TARGET" = binary ]; then
        cat "$WORK/build.log" >&2
        echo "dns.sh: ${CARGO_TARGET_DIR:-target}/release/opengslb did not build" >&2
        exit 1
    else
        TARGET=harness
    fi
fi
if [ "$TARGET" = harness ]; then
    cargo test --release --test dns_bench_server --no-run >"$WORK/build.log" 2>&1 || {
        cat "$WORK/build.log" >&2
        exit 1
    }
    HARNESS=$(sed -n 's/.*Executable .*(\(.*dns_bench_server-[^)]*\)).*/\1/p' "$WORK/build.log" | tail -n 1)
    case "$HARNESS" in
        /*) ;;
        *) HARNESS="$ROOT/$HARNESS" ;;
    esac
fi

# ---------------------------------------------------------------- queries
QUERIES="$WORK/queries.txt"
{
    for n in 1 2 3 4; do
        echo "app$n.bench.test A"
    done
    echo "nope.bench.test A"
} >"$QUERIES"

# ---------------------------------------------------------------- NSD
NSD_PORT=$(free_port)
mkdir -p "$WORK/nsd"
cat >"$WORK/nsd/bench.test.zone" <<ZONE
\$ORIGIN bench.test.
\$TTL 60
@     3600 IN SOA ns1.bench.test. hostmaster.bench.test. 1 3600 600 86400 30
@     3600 IN NS  ns1.bench.test.
app1  IN A 127.0.0.2
app1  IN A 127.0.0.3
app2  IN A 127.0.0.2
app2  IN A 127.0.0.3
app3  IN A 127.0.0.2
app3  IN A 127.0.0.3
app4  IN A 127.0.0.2
app4  IN A 127.0.0.3
ZONE
cat >"$WORK/nsd/nsd.conf" <<CONF
server:
    ip-address: 127.0.0.1@$NSD_PORT
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$WORK/nsd"
    database: ""
    zonelistfile: "$WORK/nsd/zone.list"
    xfrdfile: "$WORK/nsd/xfrd.state"
    pidfile: "$WORK/nsd/nsd.pid"
    logfile: "$WORK/nsd/nsd.log"
    verbosity: 0
    hide-version: yes
    rrl-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: bench.test
    zonefile: bench.test.zone
CONF
nsd-checkconf "$WORK/nsd/nsd.conf"
nsd -d -c "$WORK/nsd/nsd.conf" >"$WORK/nsd/stdout.log" 2>&1 &
NSD_PID=$!
PIDS="$PIDS $NSD_PID"
wait_for_answer "$NSD_PORT"

# ---------------------------------------------------------------- OpenGSLB
OG_PORT=$(free_port)
if [ "$TARGET" = binary ]; then
    mkdir -p "$WORK/www" "$WORK/data"
    echo ok >"$WORK/www/health"
    HTTP_PORT=$(free_port)
    for ip in 127.0.0.2 127.0.0.3; do
        python3 -m http.server "$HTTP_PORT" --bind "$ip" --directory "$WORK/www" >/dev/null 2>&1 &
        PIDS="$PIDS $!"
    done
    API_PORT=$(free_port)
    GOSSIP_PORT=$(free_port)
    KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
    CONFIG="$WORK/overwatch.yaml"
    {
        echo "mode: overwatch"
        echo "dns:"
        echo "  listen_address: \"127.0.0.1:$OG_PORT\""
        echo "  zones: [bench.test]"
        echo "  default_ttl: 60"
        echo "  threads: 1"
        echo "overwatch:"
        echo "  data_dir: \"$WORK/data\""
        echo "  gossip:"
        echo "    bind_address: \"127.0.0.1:$GOSSIP_PORT\""
        echo "    encryption_key: \"$KEY\""
        echo "  validation:"
        echo "    enabled: true"
        echo "    check_interval: 1s"
        echo "    check_timeout: 1s"
        echo "regions:"
        echo "  - name: bench"
        echo "    servers:"
        echo "      - { address: 127.0.0.2, port: $HTTP_PORT }"
        echo "      - { address: 127.0.0.3, port: $HTTP_PORT }"
        echo "    health_check:"
        echo "      type: http"
        echo "      path: /health"
        echo "      interval: 1s"
        echo "      timeout: 1s"
        echo "      failure_threshold: 1"
        echo "      success_threshold: 1"
        echo "domains:"
        for n in 1 2 3 4; do
            echo "  - { name: app$n.bench.test, routing_algorithm: round-robin, regions: [bench] }"
        done
        echo "api:"
        echo "  address: \"127.0.0.1:$API_PORT\""
        echo "logging:"
        echo "  level: warn"
    } >"$CONFIG"
    chmod 600 "$CONFIG"
    "${CARGO_TARGET_DIR:-target}/release/opengslb" --config "$CONFIG" >"$WORK/opengslb.log" 2>&1 &
    OG_PID=$!
    PIDS="$PIDS $OG_PID"
    LABEL="opengslb (daemon)"
else
    DNS_BENCH_ADDR="127.0.0.1:$OG_PORT" DNS_BENCH_SECS=3600 \
        "$HARNESS" --ignored --exact serve_bench_names >"$WORK/harness.log" 2>&1 &
    OG_PID=$!
    PIDS="$PIDS $OG_PID"
    LABEL="opengslb (in-process harness)"
fi
wait_for_answer "$OG_PORT"

# ---------------------------------------------------------------- runs
# CPU ticks (user + system) of a process and all its descendants, so the
# figures include NSD's forked server process.
cpu_ticks() { # uses $WATCH
    for stat in /proc/[0-9]*/stat; do
        pid=${stat#/proc/}
        pid=${pid%/stat}
        fields=$(sed 's/^.*) //' "$stat" 2>/dev/null) || continue
        # shellcheck disable=SC2086
        set -- $fields
        echo "$pid $2 $((${12} + ${13}))"
    done | awk -v root="$WATCH" '
        { parent[$1] = $2; ticks[$1] = $3 }
        END {
            total = 0
            for (p in ticks) {
                q = p
                for (depth = 0; depth < 16 && q != "" && q != 0; depth++) {
                    if (q == root) { total += ticks[p]; break }
                    q = parent[q]
                }
            }
            print total
        }'
}

HZ=$(getconf CLK_TCK)
run() { # port pid -> "qps cpu_seconds"
    WATCH=$2
    before=$(cpu_ticks)
    dnsperf -s 127.0.0.1 -p "$1" -d "$QUERIES" -l "$SECONDS_PER_RUN" \
        -c "$CLIENTS" -T "$THREADS" >"$WORK/dnsperf.out" 2>&1
    after=$(cpu_ticks)
    qps=$(awk '/Queries per second:/ { print $4 }' "$WORK/dnsperf.out")
    echo "$qps $(((after - before) * 100 / HZ))"
}

report() { # label "qps centiseconds"
    # shellcheck disable=SC2086
    set -- "$1" $2
    awk -v l="$1" -v q="$2" -v c="$3" -v s="$SECONDS_PER_RUN" 'BEGIN {
        cpu = c / 100
        printf "%-10s %9.0f qps   server CPU %5.1f s   %8.0f queries per server CPU second\n", l, q, cpu, (cpu > 0 ? q * s / cpu : 0)
    }'
}

echo "dnsperf -l $SECONDS_PER_RUN -c $CLIENTS -T $THREADS, query mix: 4 names x A (2 addresses) + 1 NXDOMAIN"
echo "opengslb under test: $LABEL"
N1=$(run "$NSD_PORT" "$NSD_PID")
report nsd "$N1"
O1=$(run "$OG_PORT" "$OG_PID")
report opengslb "$O1"
N2=$(run "$NSD_PORT" "$NSD_PID")
report nsd "$N2"
O2=$(run "$OG_PORT" "$OG_PID")
report opengslb "$O2"
echo "$N1 $N2 $O1 $O2" | awk '{
    n = ($1 + $3) / 2; o = ($5 + $7) / 2
    nc = ($2 + $4) / 100; oc = ($6 + $8) / 100
    printf "mean: nsd %.0f qps, opengslb %.0f qps, opengslb/nsd = %.2f (throughput)\n", n, o, (n > 0 ? o / n : 0)
    if (nc > 0 && oc > 0)
        printf "      queries per server CPU second: opengslb/nsd = %.2f (efficiency)\n", (o / oc) / (n / nc)
}'
