#!/bin/sh
# One Overwatch under gossip load (SPEC §10): BENCH_AGENTS simulated agents
# (10,000) x BENCH_BACKENDS backends (5) at one heartbeat per second.
# Targets (issue 9): < 15 % of one core, < 150 MB resident, and the DNS
# responder's CPU per answered query (responder-thread CPU time / queries)
# within 5 % of idle. Also measures how long the fleet takes to be all
# active again after the Overwatch restarts.
#
# Starts target/release/opengslb (or under $CARGO_TARGET_DIR) as an
# Overwatch on 127.0.0.1 with the five
# services svc0..svc4.bench.test as domains plus static.bench.test (two
# static servers, python3 http.server on 127.0.0.2 and 127.0.0.3, checked
# over HTTP; validation of agent backends is off). Then:
#   1. idle: the Overwatch's CPU over BENCH_IDLE_SECONDS and a dnsperf run
#      of BENCH_DNS_SECONDS against static.bench.test;
#   2. starts tests/bench_gossip_load.rs (the test binary, run directly so
#      its CPU can be read too), which ramps the agents up at BENCH_RAMP
#      per second, and waits until the API counts them all active and
#      then until it is steady (all active, none stale, 5 samples 2 s
#      apart), at most BENCH_WAIT_SECONDS after the start;
#   3. loaded: the Overwatch's CPU (/proc/PID/stat utime + stime) and peak
#      RSS (/proc/PID/status VmRSS) over BENCH_LOAD_SECONDS (60), then the
#      same dnsperf run, and the API's agent counts before and after;
#   4. restart (BENCH_RESTART=1, the default): SIGTERM, start the Overwatch
#      again on the same data directory and ports, and time until the API
#      counts every agent active again (at most BENCH_WAIT_SECONDS), with
#      the Overwatch's CPU and peak RSS over that recovery.
# One generator process opens one socket per agent; when BENCH_AGENTS is
# above BENCH_PER_GENERATOR (10000) the fleet is split over several
# generators (agent numbers via BENCH_FIRST), each under the open-file
# hard limit.
# Knobs: BENCH_AGENTS, BENCH_BACKENDS, BENCH_RAMP (1000), BENCH_LOAD_SECONDS
# (60), BENCH_DNS_SECONDS (20), BENCH_IDLE_SECONDS (10), BENCH_CLIENTS (10),
# BENCH_WAIT_SECONDS (180: how long to wait for every agent to be active
# before measuring anyway), BENCH_PER_GENERATOR (10000), BENCH_RESTART (1),
# BENCH_KEEP=1 keeps the temp dir.
set -eu

cd "$(dirname "$0")/../.."
# free_port, need: helpers the benchmarks share.
# shellcheck source=scripts/bench/dnslib.sh
. scripts/bench/dnslib.sh
BIN=${CARGO_TARGET_DIR:-target}/release/opengslb
ROOT=$(pwd)
AGENTS=${BENCH_AGENTS:-10000}
BACKENDS=${BENCH_BACKENDS:-5}
RAMP=${BENCH_RAMP:-1000}
LOAD_SECONDS=${BENCH_LOAD_SECONDS:-60}
DNS_SECONDS=${BENCH_DNS_SECONDS:-20}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-10}
WAIT_SECONDS=${BENCH_WAIT_SECONDS:-180}
PER_GEN=${BENCH_PER_GENERATOR:-10000}
RESTART=${BENCH_RESTART:-1}
GENERATORS=$(((AGENTS + PER_GEN - 1) / PER_GEN))

if ! command -v dnsperf >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scale.sh: need dnsperf; run as root to install it" >&2
        exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dnsperf
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/opengslb-scale.XXXXXX")
PIDS=""
cleanup() {
    touch "$WORK/stop"
    for pid in $PIDS; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM


loadavg() {
    cut -d' ' -f1-3 /proc/loadavg
}

# UDP datagrams the kernel dropped for a full receive buffer, machine-wide
# (other processes' drops count too).
rcvbuf_errors() {
    awk '/^Udp:/ { n++ } /^Udp:/ && n == 2 { print $6 }' /proc/net/snmp
}

# utime + stime of a process (all its threads), in clock ticks.
cpu_ticks() { # pid
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

rss_kb() { # pid
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Sets ACTIVE STALE REGISTERED TOTAL HEALTHY from the API's stats.
stats() {
    curl -fs "http://127.0.0.1:$API_PORT/api/v1/overwatch/stats" >"$WORK/stats.json" || true
    python3 -c 'import json, sys
try:
    s = json.load(open(sys.argv[1]))
    print(s["active_agents"], s["stale_agents"], s["registered_agents"], s["total_backends"], s["healthy_backends"])
except Exception:
    print("0 0 0 0 0")' "$WORK/stats.json" >"$WORK/stats.txt"
    read -r ACTIVE STALE REGISTERED TOTAL HEALTHY <"$WORK/stats.txt"
}

# Registrations the load generators have seen so far (their last STATUS lines).
reg_events() {
    total=0
    for f in "$WORK"/loadgen.*.out; do
        n=$(grep '^STATUS' "$f" | tail -n 1 |
            sed -n 's/.*registered_events: \([0-9]*\).*/\1/p' | grep . || echo 0)
        total=$((total + n))
    done
    echo "$total"
}

# CPU ticks of every load generator.
lg_ticks() {
    total=0
    for pid in $LG_PIDS; do
        total=$((total + $(cpu_ticks "$pid")))
    done
    echo "$total"
}

lg_alive() {
    for pid in $LG_PIDS; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "scale.sh: a load generator exited" >&2
            cat "$WORK"/loadgen.*.out >&2
            exit 1
        fi
    done
}

# Alive and not a zombie waiting to be reaped.
running() { # pid
    [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

start_overwatch() {
    "$BIN" --config "$WORK/overwatch.yaml" --mode overwatch >>"$WORK/overwatch.log" 2>&1 &
    OW_PID=$!
    PIDS="$PIDS $OW_PID"
}

track_extremes() {
    if [ "$STALE" -gt "$MAX_STALE" ]; then MAX_STALE=$STALE; fi
    if [ "$ACTIVE" -lt "$MIN_ACTIVE" ]; then MIN_ACTIVE=$ACTIVE; fi
}

show_stats() { # label
    stats
    echo "API $1: active_agents=$ACTIVE stale_agents=$STALE registered_agents=$REGISTERED total_backends=$TOTAL healthy_backends=$HEALTHY"
}

HZ=$(getconf CLK_TCK)
QUERIES="$WORK/queries.txt"
echo "static.bench.test A" >"$QUERIES"
# The Overwatch's DNS responder thread (dns.threads: 1).
dns_thread() {
    for task in "/proc/$OW_PID/task/"*; do
        if [ "$(cat "$task/comm" 2>/dev/null)" = dns-udp-0 ]; then
            echo "$OW_PID/task/${task##*/}"
            return
        fi
    done
    echo "$OW_PID"
}

# Writes "qps queries_per_responder_cpu_second" to $WORK/run.txt.
dnsperf_run() {
    t0=$(cpu_ticks "$(dns_thread)")
    dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$QUERIES" -l "$DNS_SECONDS" \
        -c "$CLIENTS" -T 1 >"$WORK/dnsperf.out" 2>&1
    t1=$(cpu_ticks "$(dns_thread)")
    awk -v d=$((t1 - t0)) -v hz="$HZ" '/Queries completed:/ { n = $3 }
        /Queries per second:/ { q = $4 }
        END { printf "%.0f %.0f\n", q, (d > 0 ? n / (d / hz) : 0) }' "$WORK/dnsperf.out" >"$WORK/run.txt"
}

# ---------------------------------------------------------------- build
echo "building release binary and the load generator"
if ! cargo build --release >"$WORK/build.log" 2>&1 ||
    ! cargo test --release --test bench_gossip_load --no-run >>"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    exit 1
fi
LOADGEN=$(sed -n 's/.*Executable .*(\(.*bench_gossip_load-[^)]*\)).*/\1/p' "$WORK/build.log" | tail -n 1)
case "$LOADGEN" in
    /*) ;;
    *) LOADGEN="$ROOT/$LOADGEN" ;;
esac

# ---------------------------------------------------------------- Overwatch
KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
TOKEN=bench-load-token
HTTP_PORT=$(free_port)
DNS_PORT=$(free_port)
API_PORT=$(free_port)
GOSSIP_PORT=$(free_port)
mkdir -p "$WORK/www" "$WORK/data"
echo ok >"$WORK/www/health"
for ip in 127.0.0.2 127.0.0.3; do
    python3 -m http.server "$HTTP_PORT" --bind "$ip" --directory "$WORK/www" >/dev/null 2>&1 &
    PIDS="$PIDS $!"
done
{
    echo "mode: overwatch"
    echo "dns:"
    echo "  listen_address: \"127.0.0.1:$DNS_PORT\""
    echo "  zones: [bench.test]"
    echo "  threads: 1"
    echo "overwatch:"
    echo "  identity: { node_id: scale }"
    echo "  agent_tokens:"
    k=0
    while [ "$k" -lt "$BACKENDS" ]; do
        echo "    svc$k.bench.test: \"$TOKEN\""
        k=$((k + 1))
    done
    echo "  gossip: { bind_address: \"127.0.0.1:$GOSSIP_PORT\", encryption_key: \"$KEY\" }"
    echo "  validation: { enabled: false }"
    echo "  data_dir: \"$WORK/data\""
    echo "regions:"
    echo "  - name: bench"
    echo "    servers:"
    echo "      - { address: 127.0.0.2, port: $HTTP_PORT, service: static.bench.test }"
    echo "      - { address: 127.0.0.3, port: $HTTP_PORT, service: static.bench.test }"
    echo "    health_check: { type: http, path: /health, interval: 1s, timeout: 1s }"
    echo "domains:"
    echo "  - { name: static.bench.test, routing_algorithm: round-robin, regions: [bench] }"
    k=0
    while [ "$k" -lt "$BACKENDS" ]; do
        echo "  - { name: svc$k.bench.test, routing_algorithm: round-robin, regions: [bench], max_records: 8 }"
        k=$((k + 1))
    done
    echo "api:"
    echo "  address: \"127.0.0.1:$API_PORT\""
    echo "logging:"
    echo "  level: info"
} >"$WORK/overwatch.yaml"
chmod 600 "$WORK/overwatch.yaml"
start_overwatch

i=0
until dig +short +time=1 +tries=1 -p "$DNS_PORT" @127.0.0.1 static.bench.test A 2>/dev/null | grep -q '^127\.0\.0\.'; do
    i=$((i + 1))
    if [ "$i" -gt 150 ]; then
        echo "scale.sh: the Overwatch never answered for static.bench.test" >&2
        cat "$WORK/overwatch.log" >&2
        exit 1
    fi
    sleep 0.2
done

# ---------------------------------------------------------------- idle
sleep 3
echo "== idle (load average $(loadavg))"
c0=$(cpu_ticks "$OW_PID")
sleep "$IDLE_SECONDS"
c1=$(cpu_ticks "$OW_PID")
IDLE_CPU=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v s="$IDLE_SECONDS" 'BEGIN { printf "%.1f", d / hz / s * 100 }')
IDLE_RSS=$(rss_kb "$OW_PID")
echo "overwatch CPU idle: $IDLE_CPU % of one core, RSS $((IDLE_RSS / 1024)) MB"
dnsperf_run
read -r IDLE_QPS IDLE_EFF <"$WORK/run.txt"
echo "dnsperf idle: $IDLE_QPS qps, $IDLE_EFF queries per responder-thread CPU second (-l $DNS_SECONDS -c $CLIENTS -T 1, static.bench.test A; load average $(loadavg))"

# ---------------------------------------------------------------- load
echo "== starting $AGENTS simulated agents x $BACKENDS backends, $RAMP per second ($GENERATORS generator process(es))"
LG_PIDS=""
g=0
while [ "$g" -lt "$GENERATORS" ]; do
    first=$((g * PER_GEN))
    share=$((AGENTS - first))
    if [ "$share" -gt "$PER_GEN" ]; then share=$PER_GEN; fi
    gramp=$((RAMP / GENERATORS))
    if [ "$gramp" -lt 1 ]; then gramp=1; fi
    BENCH_GOSSIP="127.0.0.1:$GOSSIP_PORT" BENCH_KEY="$KEY" BENCH_TOKEN="$TOKEN" \
        BENCH_STOP_FILE="$WORK/stop" BENCH_AGENTS="$share" BENCH_FIRST="$first" \
        BENCH_BACKENDS="$BACKENDS" BENCH_RAMP="$gramp" \
        "$LOADGEN" --ignored --exact gossip_load --nocapture >"$WORK/loadgen.$g.out" 2>&1 &
    LG_PIDS="$LG_PIDS $!"
    PIDS="$PIDS $!"
    g=$((g + 1))
done
RAMP_START=$(date +%s)
while :; do
    sleep 2
    lg_alive
    stats
    if [ "$ACTIVE" -ge "$AGENTS" ]; then
        break
    fi
    if [ $(($(date +%s) - RAMP_START)) -gt "$WAIT_SECONDS" ]; then
        echo "WARNING: only $ACTIVE of $AGENTS agents active after $WAIT_SECONDS s; measuring anyway"
        grep -h '^STATUS' "$WORK"/loadgen.*.out | tail -n "$GENERATORS"
        break
    fi
done
if [ "$ACTIVE" -ge "$AGENTS" ]; then
    echo "all $AGENTS agents active after $(($(date +%s) - RAMP_START)) s (per the API)"
    # Steady: every agent active and none stale on 5 samples in a row.
    stable=0
    while [ "$stable" -lt 5 ] && [ $(($(date +%s) - RAMP_START)) -le "$WAIT_SECONDS" ]; do
        sleep 2
        stats
        if [ "$ACTIVE" -ge "$AGENTS" ] && [ "$STALE" -eq 0 ]; then
            stable=$((stable + 1))
        else
            stable=0
        fi
    done
    if [ "$stable" -ge 5 ]; then
        echo "steady (all active, none stale for 10 s) after $(($(date +%s) - RAMP_START)) s"
    else
        echo "WARNING: not steady after $WAIT_SECONDS s (active $ACTIVE, stale $STALE); measuring anyway"
    fi
fi

echo "== loaded, measuring $LOAD_SECONDS s (load average $(loadavg))"
show_stats before
E0=$(reg_events)
D0=$(rcvbuf_errors)
o0=$(cpu_ticks "$OW_PID")
l0=$(lg_ticks)
PEAK_RSS=0
MAX_STALE=$STALE
MIN_ACTIVE=$ACTIVE
n=0
while [ "$n" -lt "$LOAD_SECONDS" ]; do
    sleep 1
    r=$(rss_kb "$OW_PID")
    if [ "$r" -gt "$PEAK_RSS" ]; then
        PEAK_RSS=$r
    fi
    n=$((n + 1))
    if [ $((n % 10)) -eq 0 ]; then
        stats
        track_extremes
    fi
done
o1=$(cpu_ticks "$OW_PID")
E1=$(reg_events)
D1=$(rcvbuf_errors)
l1=$(lg_ticks)
LOAD_CPU=$(awk -v d=$((o1 - o0)) -v hz="$HZ" -v s="$LOAD_SECONDS" 'BEGIN { printf "%.1f", d / hz / s * 100 }')
LG_CPU=$(awk -v d=$((l1 - l0)) -v hz="$HZ" -v s="$LOAD_SECONDS" 'BEGIN { printf "%.1f", d / hz / s * 100 }')
show_stats after
track_extremes
echo "overwatch CPU under load: $LOAD_CPU % of one core (idle $IDLE_CPU %); peak RSS $((PEAK_RSS / 1024)) MB (idle $((IDLE_RSS / 1024)) MB)"
echo "load generator CPU: $LG_CPU % of one core (shares the 2 cores with the Overwatch)"
echo "registrations during the window (load generator, 5 s resolution): $((E1 - E0))"
echo "UDP datagrams dropped for a full receive buffer during the window (machine-wide): $((D1 - D0))"
echo "load average $(loadavg)"

dnsperf_run
read -r LOAD_QPS LOAD_EFF <"$WORK/run.txt"
echo "dnsperf under load: $LOAD_QPS qps, $LOAD_EFF queries per responder-thread CPU second (load average $(loadavg))"
show_stats "after dnsperf"
track_extremes
echo "sampled every 10 s while loaded: min active_agents $MIN_ACTIVE, max stale_agents $MAX_STALE"
grep -h '^STATUS' "$WORK"/loadgen.*.out | tail -n "$GENERATORS"

# ---------------------------------------------------------------- restart
RESTART_SECS=-
RESTART_CPU=-
RESTART_RSS=0
if [ "$RESTART" = 1 ]; then
    echo "== restarting the Overwatch under the fleet (load average $(loadavg))"
    kill -TERM "$OW_PID"
    i=0
    while running "$OW_PID" && [ "$i" -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if running "$OW_PID"; then
        echo "WARNING: the Overwatch did not stop within 15 s of SIGTERM; killed"
        kill -KILL "$OW_PID" 2>/dev/null || true
    else
        echo "stopped $((i / 10)).$((i % 10)) s after SIGTERM"
    fi
    wait "$OW_PID" 2>/dev/null || true
    r0=$(date +%s%N)
    start_overwatch
    c0=$(cpu_ticks "$OW_PID")
    while :; do
        sleep 1
        lg_alive
        r=$(rss_kb "$OW_PID" 2>/dev/null || echo 0)
        if [ "$r" -gt "$RESTART_RSS" ]; then RESTART_RSS=$r; fi
        stats
        if [ "$ACTIVE" -ge "$AGENTS" ]; then
            break
        fi
        if [ $((($(date +%s%N) - r0) / 1000000000)) -gt "$WAIT_SECONDS" ]; then
            echo "WARNING: only $ACTIVE of $AGENTS agents active $WAIT_SECONDS s after the restart"
            break
        fi
    done
    r1=$(date +%s%N)
    c1=$(cpu_ticks "$OW_PID")
    RESTART_SECS=$(awk -v d=$((r1 - r0)) 'BEGIN { printf "%.1f", d / 1e9 }')
    RESTART_CPU=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v ns=$((r1 - r0)) 'BEGIN { printf "%.1f", d / hz / (ns / 1e9) * 100 }')
    echo "after the restart: $ACTIVE of $AGENTS agents active after $RESTART_SECS s (per the API, 1 s resolution); Overwatch CPU meanwhile $RESTART_CPU % of one core, peak RSS $((RESTART_RSS / 1024)) MB; load average $(loadavg)"
    if [ "$ACTIVE" -lt "$AGENTS" ]; then
        RESTART_SECS="not all: $ACTIVE of $AGENTS after $RESTART_SECS"
    fi
fi

touch "$WORK/stop"
for pid in $LG_PIDS; do
    wait "$pid" || true
done
grep -h '^FINAL\|^ALL_REGISTERED' "$WORK"/loadgen.*.out || true
curl -fs "http://127.0.0.1:$API_PORT/metrics" >"$WORK/metrics.txt" || true
heartbeats=$(awk '/^opengslb_overwatch_heartbeats_received_total/ { print $2 }' "$WORK/metrics.txt")
echo "opengslb_overwatch_heartbeats_received_total (since the restart): $heartbeats"
# What the listener dropped (replays, unknown sessions, failed session
# tags), which tells a slow re-registration from a short CPU.
grep '^opengslb_gossip_dropped_total\|^opengslb_overwatch_agent_auth_failures_total' "$WORK/metrics.txt" |
    grep -v ' 0$' || true

echo "== summary"
awk -v cpu="$LOAD_CPU" -v rss="$PEAK_RSS" -v iq="$IDLE_QPS" -v lq="$LOAD_QPS" \
    -v ie="$IDLE_EFF" -v le="$LOAD_EFF" -v rs="$RESTART_SECS" \
    -v act="$MIN_ACTIVE" -v stale="$MAX_STALE" -v n="$AGENTS" 'BEGIN {
    ratio = (iq > 0 ? lq / iq : 0)
    cost = (le > 0 ? ie / le : 0)
    printf "agents active (min while loaded) %d of %d, stale (max) %d -> %s\n", act, n, stale, (act >= n && stale == 0 ? "ok" : "NOT ok")
    printf "target CPU < 15 %% of one core: %.1f %% -> %s\n", cpu, (cpu < 15 ? "met" : "NOT met")
    printf "target RSS < 150 MB: %.0f MB -> %s\n", rss / 1024, (rss / 1024 < 150 ? "met" : "NOT met")
    printf "target DNS CPU per answered query within 5 %% of idle: loaded/idle cost = %.0f / %.0f queries per responder CPU second -> %.3f -> %s\n", ie, le, cost, (cost > 0 && cost <= 1.05 ? "met" : "NOT met")
    printf "  (throughput, which the shared cores confound: %.0f / %.0f qps = %.3f)\n", lq, iq, ratio
    printf "all agents active again after a restart: %s s\n", rs
}'
