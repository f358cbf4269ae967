#!/bin/sh
# DNS cost per answered query: OpenGSLB beside NSD, Knot and gdnsd.
#
# One run starts the four servers on free ports of 127.0.0.1, each with one
# UDP worker (opengslb dns.threads: 1, NSD server-count: 1, Knot
# udp-workers: 1, gdnsd udp_threads: 1; rate limiting off everywhere) and
# the same names: zone bench.test with app1..app4 (two A records each,
# 127.0.0.2 and 127.0.0.3); the query mix is the four names (A) plus one
# NXDOMAIN name. Every server is pinned with taskset to one core and
# dnsperf to another, and driven at the same fixed offered rate (dnsperf
# -Q), so every server does the same work; the rounds alternate the
# servers. For each run the script reads utime and stime of the server's
# processes (with their children, for NSD's forked worker) from
# /proc/PID/stat before and after, and divides by the queries dnsperf saw
# answered. A separate short run under `strace -c -f` at a lower rate
# counts system calls per answered query.
#
# Knobs:
#   BENCH_RATE (60000)        offered queries/s of the fixed-rate runs
#   BENCH_SECONDS (10)        length of each run
#   BENCH_ROUNDS (3)          rounds over all servers
#   BENCH_MAX (0)             1: also one unlimited-rate run per server
#   BENCH_STRACE_RATE (20000) rate of the strace run (0: skip strace)
#   BENCH_STRACE_SECONDS (4)
#   BENCH_THREADS (1)         UDP threads of every server (opengslb dns.threads,
#                             NSD server-count, Knot udp-workers, gdnsd
#                             udp_threads); above 1 also the per-thread split
#   BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1)   taskset core lists
#   BENCH_SERVERS ("opengslb nsd knot gdnsd"; add "baseline" to run a
#                             second opengslb binary, BENCH_BASELINE_BIN,
#                             e.g. a build of an older commit, beside it)
#   BENCH_CLIENTS (10)        dnsperf -c
set -eu

cd "$(dirname "$0")/../.."
RATE=${BENCH_RATE:-60000}
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
MAX=${BENCH_MAX:-0}
STRACE_RATE=${BENCH_STRACE_RATE:-20000}
STRACE_SECS=${BENCH_STRACE_SECONDS:-4}
THREADS=${BENCH_THREADS:-1}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
SERVERS=${BENCH_SERVERS:-opengslb nsd knot gdnsd}
CLIENTS=${BENCH_CLIENTS:-10}
BIN="${CARGO_TARGET_DIR:-target}/release/opengslb"
# shellcheck source=scripts/bench/dnslib.sh
. scripts/bench/dnslib.sh

missing=""
for tool in dnsperf dig nsd knotd gdnsd taskset; do
    need "$tool" || missing="$missing $tool"
done
if [ "$STRACE_RATE" -gt 0 ] && ! need strace; then
    missing="$missing strace"
fi
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "dns.sh: missing$missing; run as root to install them" >&2
        exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        dnsperf nsd knot gdnsd bind9-dnsutils strace util-linux
    # The packages may start system instances; they must not hold port 53
    # or compete for the cores.
    for unit in nsd knot gdnsd; do
        systemctl stop "$unit" 2>/dev/null || true
    done
fi

bench_work dns

cargo build --release --bin opengslb >"$WORK/build.log" 2>&1 || {
    cat "$WORK/build.log" >&2
    exit 1
}

QUERIES="$WORK/queries.txt"
{
    for n in 1 2 3 4; do
        echo "app$n.bench.test A"
    done
    echo "nope.bench.test A"
} >"$QUERIES"

zone_file() { # path
    cat >"$1" <<'ZONE'
$ORIGIN bench.test.
$TTL 60
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
}

# ---------------------------------------------------------------- servers
start_nsd() {
    PORT_nsd=$(free_port)
    d="$WORK/nsd"
    mkdir -p "$d"
    zone_file "$d/bench.test.zone"
    cat >"$d/nsd.conf" <<CONF
server:
    ip-address: 127.0.0.1@$PORT_nsd
    server-count: $THREADS
    username: ""
    chroot: ""
    zonesdir: "$d"
    database: ""
    zonelistfile: "$d/zone.list"
    xfrdfile: "$d/xfrd.state"
    pidfile: "$d/nsd.pid"
    logfile: "$d/nsd.log"
    verbosity: 0
    hide-version: yes
    rrl-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: bench.test
    zonefile: bench.test.zone
CONF
    nsd-checkconf "$d/nsd.conf"
    taskset -c "$SERVER_CPU" nsd -d -c "$d/nsd.conf" >"$d/stdout.log" 2>&1 &
    PID_nsd=$!
    PIDS="$PIDS $PID_nsd"
    wait_for_answer nsd "$PORT_nsd"
}

start_knot() {
    PORT_knot=$(free_port)
    d="$WORK/knot"
    mkdir -p "$d/db"
    zone_file "$d/bench.test.zone"
    cat >"$d/knot.conf" <<CONF
server:
    rundir: "$d"
    listen: 127.0.0.1@$PORT_knot
    udp-workers: $THREADS
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$d/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$d"
    journal-content: none
zone:
  - domain: bench.test
    file: bench.test.zone
CONF
    taskset -c "$SERVER_CPU" knotd -c "$d/knot.conf" >"$d/stdout.log" 2>&1 &
    PID_knot=$!
    PIDS="$PIDS $PID_knot"
    wait_for_answer knot "$PORT_knot"
}

start_gdnsd() {
    PORT_gdnsd=$(free_port)
    d="$WORK/gdnsd"
    mkdir -p "$d/zones"
    zone_file "$d/zones/bench.test"
    cat >"$d/config" <<CONF
options => {
  listen => [ 127.0.0.1 ]
  dns_port => $PORT_gdnsd
  udp_threads => $THREADS
  tcp_threads => 1
}
CONF
    taskset -c "$SERVER_CPU" gdnsd -c "$d" start >"$d/stdout.log" 2>&1 &
    PID_gdnsd=$!
    PIDS="$PIDS $PID_gdnsd"
    wait_for_answer gdnsd "$PORT_gdnsd"
}

start_opengslb() {
    start_og opengslb "$BIN"
    API_PORT=$(eval "echo \$API_PORT_opengslb")
}

start_baseline() {
    start_og baseline "${BENCH_BASELINE_BIN:?BENCH_BASELINE_BIN: the opengslb binary to compare}"
}

start_og() { # name binary
    port=$(free_port)
    d="$WORK/$1"
    mkdir -p "$d/www" "$d/data"
    echo ok >"$d/www/health"
    http_port=$(free_port)
    for ip in 127.0.0.2 127.0.0.3; do
        python3 -m http.server "$http_port" --bind "$ip" --directory "$d/www" >/dev/null 2>&1 &
        PIDS="$PIDS $!"
    done
    api_port=$(free_port)
    gossip_port=$(free_port)
    key=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
    {
        echo "mode: overwatch"
        echo "dns:"
        echo "  listen_address: \"127.0.0.1:$port\""
        echo "  zones: [bench.test]"
        echo "  default_ttl: 60"
        echo "  threads: $THREADS"
        echo "overwatch:"
        echo "  data_dir: \"$d/data\""
        echo "  gossip:"
        echo "    bind_address: \"127.0.0.1:$gossip_port\""
        echo "    encryption_key: \"$key\""
        echo "  validation:"
        echo "    enabled: true"
        echo "    check_interval: 1s"
        echo "    check_timeout: 1s"
        echo "regions:"
        echo "  - name: bench"
        echo "    servers:"
        echo "      - { address: 127.0.0.2, port: $http_port }"
        echo "      - { address: 127.0.0.3, port: $http_port }"
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
        echo "  address: \"127.0.0.1:$api_port\""
        echo "logging:"
        echo "  level: warn"
    } >"$d/overwatch.yaml"
    chmod 600 "$d/overwatch.yaml"
    taskset -c "$SERVER_CPU" "$2" --config "$d/overwatch.yaml" >"$d/stdout.log" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    eval "PORT_$1=$port PID_$1=$pid API_PORT_$1=$api_port"
    wait_for_answer "$1" "$port"
}

# ---------------------------------------------------------------- measuring
port_of() { eval "echo \$PORT_$1"; }
pid_of() { eval "echo \$PID_$1"; }

# "thread utime+stime" for each dns-udp thread of opengslb.
udp_thread_ticks() { # pid
    for stat in /proc/"$1"/task/*/stat; do
        line=$(cat "$stat" 2>/dev/null) || continue
        case "$line" in
            *"(dns-udp-"*)
                name=${line#*(}
                name=${name%%)*}
                # shellcheck disable=SC2086
                set -- ${line#*) }
                echo "$name $((${12} + ${13}))"
                ;;
        esac
    done | sort
}

thread_queries() { # -> "thread count" lines from /metrics
    curl -s "http://127.0.0.1:$API_PORT/metrics" 2>/dev/null |
        sed -n 's/^opengslb_dns_udp_thread_queries_total{thread="\([0-9]*\)"} \([0-9.e+]*\)$/\1 \2/p'
}

HZ=$(getconf CLK_TCK)

# One dnsperf run against a server; appends a result line to $RESULTS:
# kind server answered qps user_ticks sys_ticks
measure() { # kind server rate(0 = max)
    port=$(port_of "$2")
    pid=$(pid_of "$2")
    rate_flag=""
    if [ "$3" -gt 0 ]; then
        rate_flag="-Q $3"
    fi
    before=$(cpu_ticks "$pid")
    s_before=$(sleeps "$pid")
    # shellcheck disable=SC2086
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$QUERIES" -l "$SECS" \
        -c "$CLIENTS" -T 1 $rate_flag >"$WORK/dnsperf.out" 2>&1
    after=$(cpu_ticks "$pid")
    slept=$(($(sleeps "$pid") - s_before))
    answered=$(awk '/Queries completed:/ { print $3 }' "$WORK/dnsperf.out")
    qps=$(awk '/Queries per second:/ { print $4 }' "$WORK/dnsperf.out")
    # shellcheck disable=SC2086
    set -- "$1" "$2" $before $after
    echo "$1 $2 ${answered:-0} ${qps:-0} $(($5 - $3)) $(($6 - $4)) $slept" >>"$RESULTS"
    awk -v k="$1" -v s="$2" -v a="${answered:-0}" -v q="${qps:-0}" -v u="$(($5 - $3))" -v y="$(($6 - $4))" -v w="$slept" -v hz="$HZ" 'BEGIN {
        us = (a > 0 ? 1e6 / hz / a : 0)
        printf "  %-5s %-9s %9d answered %8.0f qps   CPU/query user %.2f sys %.2f total %.2f us   sleeps/query %.3f\n", k, s, a, q, u * us, y * us, (u + y) * us, (a > 0 ? w / a : 0)
    }'
}

# System calls per answered query: dnsperf at a low fixed rate while
# strace -c -f counts every thread of the server.
count_syscalls() { # server
    port=$(port_of "$1")
    pid=$(pid_of "$1")
    pids=""
    for p in $(cpu_tree "$pid"); do
        pids="$pids -p $p"
    done
    # shellcheck disable=SC2086
    strace -c -f -o "$WORK/strace.$1" $pids >/dev/null 2>&1 &
    spid=$!
    sleep 1
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$QUERIES" -l "$STRACE_SECS" \
        -c "$CLIENTS" -T 1 -Q "$STRACE_RATE" >"$WORK/dnsperf.strace" 2>&1
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    answered=$(awk '/Queries completed:/ { print $3 }' "$WORK/dnsperf.strace")
    # strace -c columns: % time, seconds, usecs/call, calls, [errors], name.
    calls=$(awk '$NF == "total" { print $4 }' "$WORK/strace.$1")
    top=$(awk '$1 ~ /^[0-9.]+$/ && $NF != "total" { print $4, $NF }' "$WORK/strace.$1" |
        sort -rn | head -n 4 | awk -v a="${answered:-0}" '{ printf "%s:%.2f ", $2, (a > 0 ? $1 / a : 0) }')
    echo "$1 ${answered:-0} ${calls:-0} $top" >>"$SYSCALLS"
}

# ---------------------------------------------------------------- run
for s in $SERVERS; do
    "start_$s"
done
RESULTS="$WORK/results"
SYSCALLS="$WORK/syscalls"
: >"$RESULTS"
: >"$SYSCALLS"
echo "date $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "servers on cores $SERVER_CPU, dnsperf on $CLIENT_CPU: dnsperf -l $SECS -c $CLIENTS -T 1 -Q $RATE"
echo "query mix: app1..app4.bench.test A (2 addresses each) + nope.bench.test A (NXDOMAIN)"
echo "opengslb: $BIN; UDP threads per server: $THREADS"
if [ "$THREADS" -gt 1 ] && [ -n "${PID_opengslb:-}" ]; then
    udp_thread_ticks "$PID_opengslb" >"$WORK/threads.before"
    thread_queries >"$WORK/queries.before"
fi
# CPU each server burns with no queries at all (timers, health checks,
# other threads of the daemon): part of every per-query figure below.
echo "idle CPU over $SECS s (no queries):"
for s in $SERVERS; do
    pid=$(pid_of "$s")
    # shellcheck disable=SC2046
    set -- $(cpu_ticks "$pid")
    sleep "$SECS"
    # shellcheck disable=SC2046
    set -- "$@" $(cpu_ticks "$pid")
    echo "  $s $((($3 + $4 - $1 - $2) * 1000 / HZ)) ms"
done
round=1
while [ "$round" -le "$ROUNDS" ]; do
    echo "round $round"
    # Rotate the order each round so no server always runs first.
    order=$SERVERS
    i=1
    while [ "$i" -lt "$round" ]; do
        # shellcheck disable=SC2086
        set -- $order
        first=$1
        shift
        order="$* $first"
        i=$((i + 1))
    done
    for s in $order; do
        measure fixed "$s" "$RATE"
    done
    round=$((round + 1))
done
if [ "$MAX" = 1 ]; then
    echo "maximum rate (no -Q)"
    for s in $SERVERS; do
        measure max "$s" 0
    done
fi
if [ "$THREADS" -gt 1 ] && [ -n "${PID_opengslb:-}" ]; then
    udp_thread_ticks "$PID_opengslb" >"$WORK/threads.after"
    thread_queries >"$WORK/queries.after"
    echo "opengslb UDP threads over all runs (CPU seconds, queries answered):"
    join "$WORK/threads.before" "$WORK/threads.after" | awk -v hz="$HZ" '{ printf "  %s %.2f s CPU\n", $1, ($3 - $2) / hz }'
    join "$WORK/queries.before" "$WORK/queries.after" | awk '
        { q[$1] = $3 - $2; t += $3 - $2 }
        END { for (k in q) printf "  udp thread %s: %d queries (%.1f %%)\n", k, q[k], (t > 0 ? 100 * q[k] / t : 0) }'
fi
if [ "$STRACE_RATE" -gt 0 ]; then
    for s in $SERVERS; do
        count_syscalls "$s"
    done
fi

echo
echo "fixed rate $RATE q/s, mean of $ROUNDS runs (CPU µs per answered query):"
printf '%-9s %10s %7s %7s %7s %9s %9s %11s  %s\n' server answered user sys total "vs best" sleeps/q "syscalls/q" "top system calls (strace run)"
awk -v hz="$HZ" -v sysfile="$SYSCALLS" '
    BEGIN {
        while ((getline line < sysfile) > 0) {
            nf = split(line, f, " ")
            sc[f[1]] = (f[2] > 0 ? f[3] / f[2] : 0)
            top[f[1]] = ""
            for (i = 4; i <= nf; i++) top[f[1]] = top[f[1]] " " f[i]
        }
    }
    $1 == "fixed" {
        a[$2] += $3; u[$2] += $5; s[$2] += $6; w[$2] += $7
        if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
    }
    END {
        best = ""
        for (i = 1; i <= n; i++) {
            k = order[i]
            tot[k] = (a[k] > 0 ? (u[k] + s[k]) * 1e6 / hz / a[k] : 0)
            if (k != "opengslb" && k != "baseline" && (best == "" || tot[k] < tot[best])) best = k
        }
        for (i = 1; i <= n; i++) {
            k = order[i]
            us = (a[k] > 0 ? 1e6 / hz / a[k] : 0)
            ratio = (best != "" && tot[best] > 0 ? sprintf("%.2f", tot[k] / tot[best]) : "-")
            calls = (k in sc ? sprintf("%.2f", sc[k]) : "-")
            sl = (a[k] > 0 ? sprintf("%.3f", w[k] / a[k]) : "-")
            printf "%-9s %10d %7.2f %7.2f %7.2f %9s %9s %11s %s\n", k, a[k], u[k] * us, s[k] * us, tot[k], ratio, sl, calls, top[k]
        }
        if (best != "") printf "(vs best = total CPU per query / that of the best peer, %s)\n", best
    }' "$RESULTS"
if [ "$MAX" = 1 ]; then
    echo "maximum rate:"
    awk '$1 == "max" { printf "  %-9s %8.0f qps\n", $2, $4 }' "$RESULTS"
fi
