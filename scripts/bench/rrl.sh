#!/bin/sh
# Response rate limiting, whole server under dnsperf (issue 12, SPEC §14).
#
# (a) Cost: the daemon with dns.rate_limit off and on (a limit no client
#     reaches), both running at once, each driven by its own dnsperf at
#     half the offered rate (paired, so the shared machine's load weighs
#     on both alike); server CPU (utime+stime from /proc/PID/stat) per
#     answered query, median over the rounds, and the ratio on/off
#     (target at most 1.05). Knot (mod-rrl, the same limit) the same way
#     for its own on/off ratio.
# (b) Flood: RRL on at BENCH_LIMIT responses/s; dnsperf from 127.0.0.5
#     (prefix 127.0.0.0/24) asks one name at 10x the limit while a
#     legitimate client from 127.0.1.1 (another /24) asks another name
#     below the limit. Prints what the flood got (full answers, TC=1
#     slips, dropped, from the server's metrics) and what the legitimate
#     client got (every answer checked: NOERROR, TC=0, with records).
#
# Everything listens on and sends from 127.0.0.0/8 only. The server is
# pinned to one core and dnsperf to another (taskset).
#
# Knobs:
#   BENCH_RATE (20000)     offered queries/s of the cost runs
#   BENCH_SECONDS (10)     length of each run
#   BENCH_ROUNDS (5)       off/on rounds of the cost runs
#   BENCH_LIMIT (100)      responses/s per prefix of the flood run (slip 2)
#   BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1)   taskset core lists
#   BENCH_KNOT (1)         0: skip Knot
#   BENCH_BUILD (1)        0: use the release binary as it is
set -eu

cd "$(dirname "$0")/../.."
# free_port, need: helpers the benchmarks share.
# shellcheck source=scripts/bench/dnslib.sh
. scripts/bench/dnslib.sh
RATE=${BENCH_RATE:-20000}
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-5}
LIMIT=${BENCH_LIMIT:-100}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
KNOT=${BENCH_KNOT:-1}
BIN="${CARGO_TARGET_DIR:-target}/release/opengslb"
# The cost runs' limit: far above what any name (or, for Knot, the one
# client) gets; Knot limits hard at much higher values (1000000 cut it to
# about 2,300 answers/s).
HIGH_LIMIT=50000

for tool in dnsperf dig taskset curl python3; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "rrl.sh: $tool is missing (apt-get install dnsperf bind9-dnsutils util-linux curl)" >&2
        exit 1
    }
done
if [ "$KNOT" = 1 ] && ! command -v knotd >/dev/null 2>&1; then
    echo "rrl.sh: knotd is missing (apt-get install knot), or set BENCH_KNOT=0" >&2
    exit 1
fi

bench_work rrl

if [ "${BENCH_BUILD:-1}" = 1 ]; then
    cargo build --release --bin opengslb >"$WORK/build.log" 2>&1 || {
        cat "$WORK/build.log" >&2
        exit 1
    }
fi

MIX="$WORK/mix.txt"
{
    for n in 1 2 3 4; do
        echo "app$n.bench.test A"
    done
    echo "nope.bench.test A"
} >"$MIX"
FLOOD="$WORK/flood.txt"
echo "app1.bench.test A" >"$FLOOD"

# ---------------------------------------------------------------- servers
# start_og NAME LIMIT: an Overwatch serving bench.test (app1..app4, two
# healthy addresses each); LIMIT 0 leaves rate limiting off.
start_og() {
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
        echo "  threads: 1"
        if [ "$2" -gt 0 ]; then
            echo "  rate_limit: { responses_per_second: $2, slip: 2 }"
        fi
        echo "overwatch:"
        echo "  data_dir: \"$d/data\""
        echo "  gossip: { bind_address: \"127.0.0.1:$gossip_port\", encryption_key: \"$key\" }"
        echo "  validation: { enabled: true, check_interval: 1s, check_timeout: 1s }"
        echo "regions:"
        echo "  - name: bench"
        echo "    servers:"
        echo "      - { address: 127.0.0.2, port: $http_port }"
        echo "      - { address: 127.0.0.3, port: $http_port }"
        echo "    health_check: { type: http, path: /health, interval: 1s, timeout: 1s, failure_threshold: 1, success_threshold: 1 }"
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
    taskset -c "$SERVER_CPU" "$BIN" --config "$d/overwatch.yaml" >"$d/stdout.log" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    eval "PORT_$1=$port PID_$1=$pid API_$1=$api_port"
    wait_for_answer "$1" "$port"
}

# start_knot NAME LIMIT: Knot with the same zone; LIMIT 0: no mod-rrl.
start_knot() {
    port=$(free_port)
    d="$WORK/$1"
    mkdir -p "$d/db"
    cat >"$d/bench.test.zone" <<'ZONE'
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
    {
        echo "server:"
        echo "    rundir: \"$d\""
        echo "    listen: 127.0.0.1@$port"
        echo "    udp-workers: 1"
        echo "    tcp-workers: 1"
        echo "    background-workers: 1"
        echo "database:"
        echo "    storage: \"$d/db\""
        echo "log:"
        echo "  - target: stderr"
        echo "    any: warning"
        if [ "$2" -gt 0 ]; then
            echo "mod-rrl:"
            echo "  - id: bench"
            echo "    rate-limit: $2"
            echo "    slip: 2"
        fi
        echo "template:"
        echo "  - id: default"
        echo "    storage: \"$d\""
        echo "    journal-content: none"
        if [ "$2" -gt 0 ]; then
            echo "    global-module: mod-rrl/bench"
        fi
        echo "zone:"
        echo "  - domain: bench.test"
        echo "    file: bench.test.zone"
    } >"$d/knot.conf"
    taskset -c "$SERVER_CPU" knotd -c "$d/knot.conf" >"$d/stdout.log" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    eval "PORT_$1=$port PID_$1=$pid"
    wait_for_answer "$1" "$port"
}

port_of() { eval "echo \$PORT_$1"; }
pid_of() { eval "echo \$PID_$1"; }

# utime+stime (clock ticks) of a process and its threads.
ticks() { # pid
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
HZ=$(getconf CLK_TCK)

# One round for a pair of servers (RRL off, on) at the same time: both on
# the server core, each driven by its own dnsperf at RATE/2 on the client
# core, so whatever else the machine runs weighs on both alike. Appends
# "server answered ticks" lines to $RESULTS and prints them.
measure_pair() { # server server
    half=$((RATE / 2))
    set -- "$1" "$2" "$(ticks "$(pid_of "$1")")" "$(ticks "$(pid_of "$2")")"
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$(port_of "$1")" -d "$MIX" -l "$SECS" \
        -c 10 -T 1 -Q "$half" >"$WORK/dnsperf.$1" 2>&1 &
    p1=$!
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$(port_of "$2")" -d "$MIX" -l "$SECS" \
        -c 10 -T 1 -Q "$half" >"$WORK/dnsperf.$2" 2>&1 &
    p2=$!
    wait "$p1" "$p2"
    for i in 1 2; do
        if [ "$i" = 1 ]; then s=$1 t0=$3; else s=$2 t0=$4; fi
        t=$(($(ticks "$(pid_of "$s")") - t0))
        answered=$(awk '/Queries completed:/ { print $3 }' "$WORK/dnsperf.$s")
        echo "$s ${answered:-0} $t" >>"$RESULTS"
        awk -v s="$s" -v a="${answered:-0}" -v t="$t" -v hz="$HZ" 'BEGIN {
            printf "  %-9s %9d answered   CPU/query %.2f us\n", s, a, (a > 0 ? t * 1e6 / hz / a : 0)
        }'
    done
}

# Median CPU per answered query (us) of a server over the rounds.
median_us() { # server
    awk -v s="$1" -v hz="$HZ" '$1 == s && $2 > 0 { print $3 * 1e6 / hz / $2 }' "$RESULTS" |
        sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Median over the rounds of the per-round ratio on/off of a pair (each
# round's two runs shared the machine's load).
median_ratio() { # off on
    awk -v off="$1" -v on="$2" '
        $1 == off && $2 > 0 { o[++no] = $3 / $2 }
        $1 == on && $2 > 0 { n[++nn] = $3 / $2 }
        END { for (i = 1; i <= no && i <= nn; i++) if (o[i] > 0) print n[i] / o[i] }' "$RESULTS" |
        sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

metric() { # server name-with-labels
    curl -s "http://127.0.0.1:$(eval "echo \$API_$1")/metrics" |
        awk -v m="$2" '$1 == m { printf "%d\n", $2; found = 1 } END { if (!found) print 0 }'
}

# ---------------------------------------------------------------- (a) cost
echo "date $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "servers on core $SERVER_CPU, dnsperf on $CLIENT_CPU: per server of a pair dnsperf -l $SECS -c 10 -T 1 -Q $((RATE / 2)) from 127.0.0.1"
echo "query mix: app1..app4.bench.test A + nope.bench.test A (NXDOMAIN)"
echo "(a) cost of RRL with no client over the limit (limit $HIGH_LIMIT/s per prefix)"
start_og og_off 0
start_og og_on "$HIGH_LIMIT"
if [ "$KNOT" = 1 ]; then
    start_knot knot_off 0
    start_knot knot_on "$HIGH_LIMIT"
fi
RESULTS="$WORK/results"
: >"$RESULTS"
round=1
while [ "$round" -le "$ROUNDS" ]; do
    echo " round $round"
    measure_pair og_off og_on
    if [ "$KNOT" = 1 ]; then
        measure_pair knot_off knot_on
    fi
    round=$((round + 1))
done
og_off=$(median_us og_off)
og_on=$(median_us og_on)
awk -v off="$og_off" -v on="$og_on" -v r="$(median_ratio og_off og_on)" 'BEGIN {
    printf "RESULT opengslb CPU/query median: off %.2f us, on %.2f us; median of the per-round ratios on/off %.3f (target <= 1.05)\n", off, on, r
}'
if [ "$KNOT" = 1 ]; then
    k_off=$(median_us knot_off)
    k_on=$(median_us knot_on)
    awk -v off="$k_off" -v on="$k_on" -v r="$(median_ratio knot_off knot_on)" 'BEGIN {
        printf "RESULT knot CPU/query median: off %.2f us, on %.2f us; median of the per-round ratios on/off %.3f\n", off, on, r
    }'
    for s in knot_off knot_on; do
        kill "$(pid_of "$s")" 2>/dev/null || true
    done
fi
kill "$(pid_of og_off)" 2>/dev/null || true

# ---------------------------------------------------------------- (b) flood
FLOOD_RATE=$((LIMIT * 10))
LEGIT_RATE=$((LIMIT / 2))
echo "(b) flood: limit $LIMIT/s per /24, slip 2; 127.0.0.5 asks app1 at $FLOOD_RATE/s, 127.0.1.1 asks app2 at $LEGIT_RATE/s, $SECS s"
start_og og_flood "$LIMIT"
port=$(port_of og_flood)
dropped0=$(metric og_flood 'opengslb_dns_rate_limited_total{action="dropped"}')
slipped0=$(metric og_flood 'opengslb_dns_rate_limited_total{action="slipped"}')
python3 - "$port" "$LEGIT_RATE" "$SECS" >"$WORK/legit.out" <<'PY' &
import socket, struct, sys, time
port, rate, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.1.1", 0))
s.settimeout(2)
qname = b"".join(bytes([len(p)]) + p for p in b"app2.bench.test".split(b".")) + b"\0"
sent = full = tc = other = lost = 0
end = time.monotonic() + secs
qid = 0
while time.monotonic() < end:
    qid = (qid + 1) & 0xFFFF
    s.sendto(struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1), ("127.0.0.1", port))
    sent += 1
    try:
        while True:
            data, _ = s.recvfrom(4096)
            if struct.unpack(">H", data[:2])[0] == qid:
                break
    except socket.timeout:
        lost += 1
        continue
    flags, an = struct.unpack(">H", data[2:4])[0], struct.unpack(">H", data[6:8])[0]
    if flags & 0x0200:
        tc += 1
    elif flags & 0x000F == 0 and an > 0:
        full += 1
    else:
        other += 1
    time.sleep(1.0 / rate)
print(sent, full, tc, other, lost)
PY
legit_pid=$!
taskset -c "$CLIENT_CPU" dnsperf -a 127.0.0.5 -s 127.0.0.1 -p "$port" -d "$FLOOD" -l "$SECS" \
    -c 1 -T 1 -Q "$FLOOD_RATE" -t 1 -q 5000 >"$WORK/flood.out" 2>&1
wait "$legit_pid"
sent=$(awk '/Queries sent:/ { print $3 }' "$WORK/flood.out")
completed=$(awk '/Queries completed:/ { print $3 }' "$WORK/flood.out")
dropped=$(($(metric og_flood 'opengslb_dns_rate_limited_total{action="dropped"}') - dropped0))
slipped=$(($(metric og_flood 'opengslb_dns_rate_limited_total{action="slipped"}') - slipped0))
# shellcheck disable=SC2046
set -- $(cat "$WORK/legit.out")
awk -v sent="${sent:-0}" -v done="${completed:-0}" -v d="$dropped" -v sl="$slipped" -v lim="$LIMIT" -v secs="$SECS" 'BEGIN {
    full = done - sl
    printf "RESULT flood from 127.0.0.5: %d sent, %d answered = %d full + %d TC=1 slips, %d dropped; full answers %.0f/s (limit %d/s, burst %d)\n", sent, done, full, sl, d, full / secs, lim, lim
}'
echo "RESULT legitimate client 127.0.1.1: $1 sent, $2 full answers, $3 TC=1, $4 other, $5 lost"
