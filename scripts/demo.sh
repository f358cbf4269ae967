#!/bin/sh
# OpenGSLB demo: three web hosts with real HTTP servers and an agent each,
# one Overwatch serving DNS, and a client, all on 127.0.0.x addresses.
#
#   scenario 1: a web server's health check fails -> it leaves DNS after
#               the thresholds (agent check every 1s, failure_threshold 2)
#   scenario 2: a drain file appears -> the address leaves DNS at once,
#               while the web server still answers /health with 200
#
# Usage: scripts/demo.sh [--netns | --latency] [--keep]
#   --netns  (root only) each host in its own network namespace, joined by
#            a bridge on 10.99.0.0/24 that exists only inside them
#   --latency  (root only) demo 3, learned latency: two regions, two
#            clients with different delays to each (scripts/demo-latency.sh)
#   --keep   leave the work dir for reading
# Needs: cargo, python3 (toy web servers), dig (package dnsutils).
# Without a terminal it runs unattended and exits 0 only when both
# scenarios behaved as expected. It cleans up after itself.
# shellcheck disable=SC2317  # cleanup, answers and has run through trap and eval
set -eu

cd "$(dirname "$0")/.."
KEEP=0
NETNS=0
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=1 ;;
        --netns) NETNS=1 ;;
        --latency) exec scripts/demo-latency.sh "$@" ;;
        *) printf 'usage: scripts/demo.sh [--netns | --latency] [--keep]\n' >&2; exit 2 ;;
    esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
pause() { if [ -t 0 ] && [ -t 1 ]; then printf '(press Enter to continue) '; read -r _; fi; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

command -v python3 >/dev/null 2>&1 || die "python3 is needed for the toy web servers"
if ! command -v dig >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing dig (dnsutils)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsutils >/dev/null
    else
        die "dig is needed: apt-get install dnsutils"
    fi
fi

say "building the release binaries"
cargo build --release --bins -q
BIN=$(pwd)/target/release

WORK=$(mktemp -d /tmp/opengslb-demo.XXXXXX)
PIDS=""
NS="ogd$$"
HOSTS="ow web1 web2 web3 client"
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    if [ "$NETNS" -eq 1 ]; then
        for h in $HOSTS core; do ip netns del "$NS$h" 2>/dev/null || true; done
    fi
    if [ "$KEEP" -eq 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# spawn HOST LOG CMD...: starts CMD on HOST in the background; `ip netns
# exec` execs CMD, so the recorded pid is CMD's own.
spawn() {
    host=$1
    log=$2
    shift 2
    if [ "$NETNS" -eq 1 ]; then
        ip netns exec "$NS$host" "$@" >"$log" 2>&1 &
    else
        "$@" >"$log" 2>&1 &
    fi
    PIDS="$PIDS $!"
}

# Addresses of the hosts, and how to run a command on one of them.
if [ "$NETNS" -eq 1 ]; then
    [ "$(id -u)" -eq 0 ] || die "--netns needs root"
    command -v ip >/dev/null 2>&1 || die "--netns needs iproute2"
    OW=10.99.0.10
    web_ip() { echo "10.99.0.1$1"; }
    on() { host=$1; shift; ip netns exec "$NS$host" "$@"; }
    say "creating network namespaces: $HOSTS, joined by a bridge in ${NS}core"
    ip netns add "${NS}core"
    ip -n "${NS}core" link add br0 type bridge
    ip -n "${NS}core" link set br0 up
    i=0
    for h in $HOSTS; do
        case "$h" in ow) addr=10.99.0.10 ;; web*) addr=10.99.0.1${h#web} ;; *) addr=10.99.0.20 ;; esac
        ip netns add "$NS$h"
        ip link add "${NS}v$i" type veth peer name "${NS}e$i"
        ip link set "${NS}v$i" netns "${NS}core"
        ip link set "${NS}e$i" netns "$NS$h"
        ip -n "${NS}core" link set "${NS}v$i" master br0 up
        ip -n "$NS$h" addr add "$addr/24" dev "${NS}e$i"
        ip -n "$NS$h" link set "${NS}e$i" up
        ip -n "$NS$h" link set lo up
        i=$((i + 1))
    done
else
    OW=127.0.0.10
    web_ip() { echo "127.0.0.1$1"; }
    on() { shift; "$@"; }
fi
DNS_PORT=15353
API="http://$OW:19090"
KEY=$("$BIN/opengslb-cli" gen-key)
TOKEN=$("$BIN/opengslb-cli" gen-key)
NAME=app.demo.gslb

cat > "$WORK/overwatch.yaml" <<YAML
mode: overwatch
dns:
  listen_address: "$OW:$DNS_PORT"
  zones: [demo.gslb]
  default_ttl: 5
overwatch:
  identity: { node_id: demo-overwatch, region: demo }
  agent_tokens: { $NAME: "$TOKEN" }
  gossip: { bind_address: "$OW:17946", encryption_key: "$KEY" }
  validation: { enabled: true, check_interval: 1s, check_timeout: 500ms }
  data_dir: "$WORK/overwatch-data"
regions:
  - name: demo
    health_check: { type: http, path: /health, interval: 1s, timeout: 500ms, failure_threshold: 2, success_threshold: 1 }
domains:
  - { name: $NAME, routing_algorithm: round-robin, regions: [demo], ttl: 5 }
api:
  address: "$OW:19090"
  allowed_networks: [127.0.0.0/8, 10.99.0.0/24]
logging: { level: info }
YAML
chmod 600 "$WORK/overwatch.yaml"

start_web() { # n
    mkdir -p "$WORK/web$1/www"
    echo ok > "$WORK/web$1/www/health"
    spawn "web$1" "$WORK/web$1/http.log" python3 -m http.server 8080 --bind "$(web_ip "$1")" --directory "$WORK/web$1/www"
}

start_agent() { # n
    cat > "$WORK/web$1/agent.yaml" <<YAML
mode: agent
agent:
  identity:
    agent_id: web$1
    region: demo
    service_token: "$TOKEN"
    cert_path: "$WORK/web$1/agent.crt"
    key_path: "$WORK/web$1/agent.key"
  backends:
    - service: $NAME
      address: "$(web_ip "$1")"
      port: 8080
      health_check: { type: http, path: /health, interval: 1s, timeout: 500ms, failure_threshold: 2, success_threshold: 1 }
  gossip:
    encryption_key: "$KEY"
    overwatch_nodes: ["$OW:17946"]
  heartbeat: { interval: 1s, missed_threshold: 3 }
  drain_file: "$WORK/web$1/drain"
  api: { address: "$(web_ip "$1"):9100" }
logging: { level: info }
YAML
    chmod 600 "$WORK/web$1/agent.yaml"
    spawn "web$1" "$WORK/web$1/agent.log" "$BIN/opengslb" --config "$WORK/web$1/agent.yaml"
}

answers() { on client dig +short +time=1 +tries=1 -p "$DNS_PORT" "@$OW" "$NAME" A 2>/dev/null | sort | tr '\n' ' '; }
show_dns() {
    echo "client\$ dig +short -p $DNS_PORT @$OW $NAME A"
    on client dig +short -p "$DNS_PORT" "@$OW" "$NAME" A
}
show_servers() {
    echo "client\$ opengslb-cli --api $API servers"
    on client "$BIN/opengslb-cli" --api "$API" servers
}
has() { answers | grep -qw "$1"; }

# wait_until COND_CMD TIMEOUT_MS -> prints elapsed ms, fails on timeout
wait_until() {
    start=$(now_ms)
    while ! eval "$1"; do
        if [ $(( $(now_ms) - start )) -gt "$2" ]; then return 1; fi
        sleep 0.02
    done
    echo $(( $(now_ms) - start ))
}

say "starting the Overwatch on $OW (DNS :$DNS_PORT, API :19090, gossip :17946)"
spawn ow "$WORK/overwatch.log" "$BIN/opengslb" --config "$WORK/overwatch.yaml"
say "starting three web hosts (python3 http.server) and an agent beside each"
for n in 1 2 3; do start_web "$n"; start_agent "$n"; done

W1=$(web_ip 1)
W2=$(web_ip 2)
W3=$(web_ip 3)
if ! wait_until "has $W1 && has $W2 && has $W3" 20000 >/dev/null; then
    tail -n 20 "$WORK/overwatch.log" "$WORK"/web*/agent.log >&2
    die "the three backends did not appear in DNS"
fi
say "all three web hosts are in DNS"
show_dns
show_servers
pause

OK=0
say "scenario 1: web2's health check starts failing (its /health now returns 404)"
rm "$WORK/web2/www/health"
if t1=$(wait_until "! has $W2" 15000); then
    echo "$W2 left DNS ${t1} ms after its health check started failing"
    echo "  (expected about interval x failure_threshold = 1s x 2, plus up to one check)"
    show_dns
    show_servers
    OK=$((OK + 1))
else
    echo "FAILED: $W2 is still in DNS" >&2
fi
echo ok > "$WORK/web2/www/health"
wait_until "has $W2" 15000 >/dev/null && echo "web2 recovered and is back in DNS"
pause

say "scenario 2: a maintenance script creates web3's drain file"
echo "kernel upgrade" > "$WORK/web3/drain"
if t2=$(wait_until "! has $W3" 5000); then
    echo "$W3 left DNS ${t2} ms after the drain file appeared"
    code=$(on client python3 -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=2).status)' "http://$W3:8080/health" 2>/dev/null || echo none)
    echo "meanwhile web3 still answers /health with HTTP $code"
    show_dns
    show_servers
    [ "$code" = 200 ] && OK=$((OK + 1))
else
    echo "FAILED: $W3 is still in DNS" >&2
fi
rm -f "$WORK/web3/drain"
wait_until "has $W3" 5000 >/dev/null && echo "drain file removed: web3 is back in DNS"

say "summary"
echo "scenario 1 (failing health check -> out after thresholds): ${t1:-failed} ms"
echo "scenario 2 (drain file -> out at once, server still healthy): ${t2:-failed} ms"
if [ "$OK" -eq 2 ]; then
    echo "both scenarios behaved as expected"
    exit 0
fi
echo "demo FAILED; logs are in $WORK" >&2
KEEP=1
exit 1
