#!/bin/sh
# Geolocation with ECS: CPU per answered query of OpenGSLB's geolocation
# routing against its plain round-robin and against gdnsd 3's geoip plugin.
#
# The data (made here, fixed seed; no third-party GeoIP data): 10,000
# custom mappings (/16 to /24, one per /16 of 11.0.0.0-99.255.255.255,
# each to one of three regions eu, us, ap) and a country database of
# 3,000 /16 networks of 100.0.0.0-199.255.255.255 in ten countries on
# five continents, written with the tests' MaxMind DB writer
# (`cargo run --example mmdb_from_list`). OpenGSLB gets the mappings as
# `overwatch.geolocation.custom_mappings` and the file as `database_path`
# (eu: DE FR GB, us: US CA, ap: continent AS, default eu); gdnsd gets the
# same networks as its map's `nets` file and the same database with the
# equivalent `map`. Each region has two addresses (127.0.0.2..7, kept
# healthy by `python3 -m http.server`).
#
# Names: geo.bench.test (geolocation, regions eu us ap; gdnsd: DYNA
# geoip) and rr.bench.test (round-robin over eu's two addresses; gdnsd:
# two static A records), so both answers carry two A records. The query
# files (dnsperf -B, wire format) hold 10,000 queries each with an ECS
# option (source /24) of a client drawn from the mappings (40 %), the
# database (40 %) or neither (20 %, the default region); both files use
# the same clients in the same order and differ only in the name.
#
# Every server is pinned with taskset to one core and dnsperf to another,
# at a fixed offered rate; per run the script divides the utime+stime the
# server's processes used by the queries dnsperf saw answered. The rounds
# rotate over the four runs (opengslb rr, opengslb geo, gdnsd rr, gdnsd
# geo), one process per server serving both names.
#
# Knobs: BENCH_RATE (40000), BENCH_SECONDS (10), BENCH_ROUNDS (3),
# BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1), BENCH_CLIENTS (10),
# BENCH_SERVERS ("opengslb gdnsd").
set -eu

cd "$(dirname "$0")/../.."
RATE=${BENCH_RATE:-40000}
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
CLIENTS=${BENCH_CLIENTS:-10}
SERVERS=${BENCH_SERVERS:-opengslb gdnsd}
TARGET="${CARGO_TARGET_DIR:-target}/release"
BIN="$TARGET/opengslb"
# shellcheck source=scripts/bench/dnslib.sh
. scripts/bench/dnslib.sh

missing=""
for tool in dnsperf dig gdnsd taskset python3; do
    need "$tool" || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "geo.sh: missing$missing; run as root to install them" >&2
        exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        dnsperf gdnsd bind9-dnsutils util-linux python3
    systemctl stop gdnsd 2>/dev/null || true
fi

bench_work geo

cargo build --release --bin opengslb --example mmdb_from_list >"$WORK/build.log" 2>&1 || {
    cat "$WORK/build.log" >&2
    exit 1
}

# ---------------------------------------------------------------- data
python3 - "$WORK" <<'PY'
import ipaddress, random, struct, sys
out = sys.argv[1]
rnd = random.Random(16)
REGIONS = ["eu", "us", "ap"]
# A region's failover order: OpenGSLB goes on in the domain's order.
ORDER = {"eu": "eu, us, ap", "us": "us, ap, eu", "ap": "ap, eu, us"}
bases = [(a, b) for a in range(11, 100) for b in range(256)]
rnd.shuffle(bases)
maps = []
for a, b in bases[:10000]:
    length = rnd.choice([16, 18, 20, 22, 24])
    c = rnd.randrange(256) >> (24 - length) << (24 - length) if length > 16 else 0
    maps.append((f"{a}.{b}.{c}.0/{length}", rnd.choice(REGIONS)))
COUNTRIES = [("DE", "EU"), ("FR", "EU"), ("GB", "EU"), ("US", "NA"), ("CA", "NA"),
             ("JP", "AS"), ("CN", "AS"), ("IN", "AS"), ("BR", "SA"), ("AU", "OC")]
dbnets = [(a, b) for a in range(100, 200) for b in range(256)]
rnd.shuffle(dbnets)
db = [(f"{a}.{b}.0.0/16",) + rnd.choice(COUNTRIES) for a, b in dbnets[:3000]]
with open(f"{out}/mappings.yaml", "w") as f:
    for cidr, r in maps:
        f.write(f"      - {{cidr: {cidr}, region: {r}}}\n")
with open(f"{out}/nets", "w") as f:
    for cidr, r in maps:
        f.write(f"{cidr} => [ {ORDER[r]} ]\n")
with open(f"{out}/db.list", "w") as f:
    for cidr, country, continent in db:
        f.write(f"{cidr} {country} {continent}\n")

def client():
    x = rnd.random()
    if x < 0.4:
        net = ipaddress.ip_network(rnd.choice(maps)[0])
    elif x < 0.8:
        net = ipaddress.ip_network(rnd.choice(db)[0])
    else:
        net = ipaddress.ip_network(f"{rnd.randrange(200, 224)}.{rnd.randrange(256)}.0.0/16")
    addr = int(net.network_address) + rnd.randrange(net.num_addresses)
    return struct.pack(">I", addr)[:3]

def query(name, ecs, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    ecs_opt = struct.pack(">HBB", 1, 24, 0) + ecs
    opt = struct.pack(">HH", 8, len(ecs_opt)) + ecs_opt
    q += b"\0" + struct.pack(">HHIH", 41, 1232, 0, len(opt)) + opt
    return struct.pack(">H", len(q)) + q

clients = [client() for _ in range(10000)]
for name in ("geo", "rr"):
    with open(f"{out}/{name}.bin", "wb") as f:
        for i, ecs in enumerate(clients):
            f.write(query(f"{name}.bench.test", ecs, i))
PY
"$TARGET/examples/mmdb_from_list" "$WORK/geo.mmdb" <"$WORK/db.list" 2>/dev/null

# ---------------------------------------------------------------- servers
start_gdnsd() {
    PORT_gdnsd=$(free_port)
    d="$WORK/gdnsd"
    mkdir -p "$d/zones" "$d/geoip"
    cp "$WORK/geo.mmdb" "$d/geoip/geo.mmdb"
    cp "$WORK/nets" "$d/geoip/nets"
    cat >"$d/zones/bench.test" <<'ZONE'
$ORIGIN bench.test.
$TTL 60
@     3600 IN SOA ns1.bench.test. hostmaster.bench.test. 1 3600 600 86400 30
@     3600 IN NS  ns1.bench.test.
rr    IN A 127.0.0.2
rr    IN A 127.0.0.3
geo   60 DYNA geoip!geo
ZONE
    cat >"$d/config" <<CONF
options => {
  listen => [ 127.0.0.1 ]
  dns_port => $PORT_gdnsd
  udp_threads => 1
  tcp_threads => 1
}
plugins => {
  geoip => {
    maps => {
      bench => {
        geoip2_db => geo.mmdb
        datacenters => [ eu, us, ap ]
        nets => nets
        map => {
          default => [ eu, us, ap ]
          EU => { DE => [ eu, us, ap ], FR => [ eu, us, ap ], GB => [ eu, us, ap ] }
          NA => { US => [ us, ap, eu ], CA => [ us, ap, eu ] }
          AS => [ ap, eu, us ]
        }
      }
    }
    resources => {
      geo => {
        map => bench
        dcmap => {
          eu => [ 127.0.0.2, 127.0.0.3 ]
          us => [ 127.0.0.4, 127.0.0.5 ]
          ap => [ 127.0.0.6, 127.0.0.7 ]
        }
      }
    }
  }
}
CONF
    taskset -c "$SERVER_CPU" gdnsd -c "$d" start >"$d/stdout.log" 2>&1 &
    PID_gdnsd=$!
    PIDS="$PIDS $PID_gdnsd"
    wait_for_answer gdnsd "$PORT_gdnsd" geo.bench.test || {
        cat "$d/stdout.log" >&2
        exit 1
    }
}

start_opengslb() {
    port=$(free_port)
    d="$WORK/opengslb"
    mkdir -p "$d/www" "$d/data"
    echo ok >"$d/www/health"
    http_port=$(free_port)
    for n in 2 3 4 5 6 7; do
        python3 -m http.server "$http_port" --bind "127.0.0.$n" --directory "$d/www" >/dev/null 2>&1 &
        PIDS="$PIDS $!"
    done
    api_port=$(free_port)
    gossip_port=$(free_port)
    key=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
    region() { # name first-address-number countries-line
        echo "  - name: $1"
        echo "    $3"
        echo "    servers:"
        echo "      - { address: 127.0.0.$2, port: $http_port }"
        echo "      - { address: 127.0.0.$(($2 + 1)), port: $http_port }"
        echo "    health_check: { type: http, path: /health, interval: 1s, timeout: 1s, failure_threshold: 1, success_threshold: 1 }"
    }
    {
        echo "mode: overwatch"
        echo "dns:"
        echo "  listen_address: \"127.0.0.1:$port\""
        echo "  zones: [bench.test]"
        echo "  default_ttl: 60"
        echo "  threads: 1"
        echo "overwatch:"
        echo "  data_dir: \"$d/data\""
        echo "  gossip:"
        echo "    bind_address: \"127.0.0.1:$gossip_port\""
        echo "    encryption_key: \"$key\""
        echo "  validation: { enabled: true, check_interval: 1s, check_timeout: 1s }"
        echo "  geolocation:"
        echo "    database_path: \"$WORK/geo.mmdb\""
        echo "    default_region: eu"
        echo "    ecs_enabled: true"
        echo "    custom_mappings:"
        cat "$WORK/mappings.yaml"
        echo "regions:"
        region eu 2 "countries: [DE, FR, GB]"
        region us 4 "countries: [US, CA]"
        region ap 6 "continents: [AS]"
        echo "domains:"
        echo "  - { name: geo.bench.test, routing_algorithm: geolocation, regions: [eu, us, ap] }"
        echo "  - { name: rr.bench.test, routing_algorithm: round-robin, regions: [eu] }"
        echo "api:"
        echo "  address: \"127.0.0.1:$api_port\""
        echo "logging:"
        echo "  level: warn"
    } >"$d/overwatch.yaml"
    chmod 600 "$d/overwatch.yaml"
    taskset -c "$SERVER_CPU" "$BIN" --config "$d/overwatch.yaml" >"$d/stdout.log" 2>&1 &
    PID_opengslb=$!
    PIDS="$PIDS $PID_opengslb"
    eval "PORT_opengslb=$port"
    for name in rr.bench.test geo.bench.test; do
        wait_for_answer opengslb "$port" "$name" || {
            cat "$d/stdout.log" >&2
            exit 1
        }
    done
}

# ---------------------------------------------------------------- checks
# Both servers place a sample of clients alike (same region, i.e. the
# same first address family member set) before anything is measured.
check_same_answers() {
    python3 - "$WORK" <<'PY' >"$WORK/sample.txt"
import struct, sys
data = open(f"{sys.argv[1]}/geo.bin", "rb").read()
pos, n = 0, 0
while pos < len(data) and n < 300:
    (length,) = struct.unpack(">H", data[pos:pos + 2])
    msg = data[pos + 2:pos + 2 + length]
    pos += 2 + length
    if n % 10 == 0:
        ecs = msg[-3:]
        print(f"{ecs[0]}.{ecs[1]}.{ecs[2]}.0/24")
    n += 1
PY
    for s in $SERVERS; do
        port=$(eval "echo \$PORT_$s")
        while read -r subnet; do
            printf '%s ' "$subnet"
            dig +short +tries=1 +time=2 -p "$port" @127.0.0.1 "+subnet=$subnet" geo.bench.test A |
                sort | tr '\n' ' '
            echo
        done <"$WORK/sample.txt" >"$WORK/answers.$s"
    done
    # shellcheck disable=SC2086
    set -- $SERVERS
    if [ "$#" -ge 2 ] && ! cmp -s "$WORK/answers.$1" "$WORK/answers.$2"; then
        echo "geo.sh: $1 and $2 place clients differently:" >&2
        diff "$WORK/answers.$1" "$WORK/answers.$2" | head -n 20 >&2
        return 1
    fi
    echo "answers checked: $(wc -l <"$WORK/sample.txt") clients placed alike by $SERVERS"
}

# ---------------------------------------------------------------- measuring
HZ=$(getconf CLK_TCK)

measure() { # server name(geo|rr)
    port=$(eval "echo \$PORT_$1")
    pid=$(eval "echo \$PID_$1")
    before=$(cpu_ticks "$pid")
    taskset -c "$CLIENT_CPU" dnsperf -B -s 127.0.0.1 -p "$port" -d "$WORK/$2.bin" -l "$SECS" \
        -c "$CLIENTS" -T 1 -Q "$RATE" >"$WORK/dnsperf.out" 2>&1
    after=$(cpu_ticks "$pid")
    answered=$(awk '/Queries completed:/ { print $3 }' "$WORK/dnsperf.out")
    qps=$(awk '/Queries per second:/ { print $4 }' "$WORK/dnsperf.out")
    # shellcheck disable=SC2086
    set -- "$1" "$2" $before $after
    echo "$1 $2 ${answered:-0} ${qps:-0} $(($5 - $3)) $(($6 - $4))" >>"$RESULTS"
    awk -v s="$1" -v n="$2" -v a="${answered:-0}" -v q="${qps:-0}" -v u="$(($5 - $3))" -v y="$(($6 - $4))" -v hz="$HZ" 'BEGIN {
        us = (a > 0 ? 1e6 / hz / a : 0)
        printf "  %-9s %-4s %9d answered %8.0f qps   CPU/query user %.2f sys %.2f total %.2f us\n", s, n, a, q, u * us, y * us, (u + y) * us
    }'
}

# ---------------------------------------------------------------- run
for s in $SERVERS; do
    "start_$s"
done
# Health checks may not have passed for every backend yet.
tries=0
until check_same_answers 2>"$WORK/check.err"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 10 ]; then
        cat "$WORK/check.err" >&2
        exit 1
    fi
    sleep 1
done
RESULTS="$WORK/results"
: >"$RESULTS"
echo "date $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "servers on cores $SERVER_CPU, dnsperf on $CLIENT_CPU: dnsperf -B -l $SECS -c $CLIENTS -T 1 -Q $RATE"
echo "10,000 ECS clients (/24): 40 % in the 10,000 mappings, 40 % in the 3,000-network database, 20 % default"
echo "idle CPU over $SECS s (no queries):"
for s in $SERVERS; do
    pid=$(eval "echo \$PID_$s")
    # shellcheck disable=SC2046
    set -- $(cpu_ticks "$pid")
    sleep "$SECS"
    # shellcheck disable=SC2046
    set -- "$@" $(cpu_ticks "$pid")
    echo "  $s $((($3 + $4 - $1 - $2) * 1000 / HZ)) ms"
done
runs=""
for s in $SERVERS; do
    runs="$runs $s:rr $s:geo"
done
round=1
while [ "$round" -le "$ROUNDS" ]; do
    echo "round $round"
    order=$runs
    i=1
    while [ "$i" -lt "$round" ]; do
        # shellcheck disable=SC2086
        set -- $order
        first=$1
        shift
        order="$* $first"
        i=$((i + 1))
    done
    for run in $order; do
        measure "${run%%:*}" "${run#*:}"
    done
    round=$((round + 1))
done

echo
echo "fixed rate $RATE q/s, $ROUNDS runs each (CPU µs per answered query):"
printf '%-9s %-4s %10s %7s %7s %7s  %s\n' server name answered user sys total ratios
awk -v hz="$HZ" '
    {
        k = $1 " " $2
        a[k] += $3; u[k] += $5; s[k] += $6
        if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]
            tot[k] = (a[k] > 0 ? (u[k] + s[k]) * 1e6 / hz / a[k] : 0)
        }
        for (i = 1; i <= n; i++) {
            k = order[i]
            split(k, p, " ")
            us = (a[k] > 0 ? 1e6 / hz / a[k] : 0)
            r = ""
            if (p[2] == "geo" && tot[p[1] " rr"] > 0) r = sprintf("geo/rr %.2f", tot[k] / tot[p[1] " rr"])
            if (p[1] == "opengslb" && p[2] == "geo" && tot["gdnsd geo"] > 0) r = r sprintf(", vs gdnsd geo %.2f", tot[k] / tot["gdnsd geo"])
            printf "%-9s %-4s %10d %7.2f %7.2f %7.2f  %s\n", p[1], p[2], a[k], u[k] * us, s[k] * us, tot[k], r
        }
    }' "$RESULTS"
