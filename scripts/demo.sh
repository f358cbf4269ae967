#!/bin/sh
# OpenGSLB demo: three web hosts with real HTTP servers and an agent each,
# one Overwatch serving DNS, and a client, all on 127.0.0.x addresses.
#
#   scenario 1: a web server's health check fails -> it leaves DNS after
#               the thresholds (agent check every 1s, failure_threshold 2)
#   scenario 2: a drain file appears -> the address leaves DNS at once,
#               while the web server still answers /health with 200
#
# Usage: scripts/demo.sh [--keep]   (--keep leaves the work dir for reading)
# Needs: cargo, python3 (toy web servers), dig (package dnsutils).
# Without a terminal it runs unattended and exits 0 only when both
# scenarios behaved as expected. It cleans up after itself.
# shellcheck disable=SC2317  # cleanup, answers and has run through trap and eval
set -eu

cd "$(dirname "$0")/.."
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

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
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    if [ "$KEEP" -eq 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

OW=127.0.0.10
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
logging: { level: info }
YAML
chmod 600 "$WORK/overwatch.yaml"

start_web() { # n
    mkdir -p "$WORK/web$1/www"
    echo ok > "$WORK/web$1/www/health"
    (cd "$WORK/web$1/www" && exec python3 -m http.server 8080 --bind "127.0.0.1$1" >"$WORK/web$1/http.log" 2>&1) &
    PIDS="$PIDS $!"
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
      address: "127.0.0.1$1"
      port: 8080
      health_check: { type: http, path: /health, interval: 1s, timeout: 500ms, failure_threshold: 2, success_threshold: 1 }
  gossip:
    encryption_key: "$KEY"
    overwatch_nodes: ["$OW:17946"]
  heartbeat: { interval: 1s, missed_threshold: 3 }
  drain_file: "$WORK/web$1/drain"
  api: { address: "127.0.0.1$1:9100" }
logging: { level: info }
YAML
    chmod 600 "$WORK/web$1/agent.yaml"
    "$BIN/opengslb" --config "$WORK/web$1/agent.yaml" >"$WORK/web$1/agent.log" 2>&1 &
    PIDS="$PIDS $!"
}

answers() { dig +short +time=1 +tries=1 -p "$DNS_PORT" "@$OW" "$NAME" A 2>/dev/null | sort | tr '\n' ' '; }
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
"$BIN/opengslb" --config "$WORK/overwatch.yaml" >"$WORK/overwatch.log" 2>&1 &
PIDS="$PIDS $!"
say "starting three web hosts (python3 http.server) and an agent beside each"
for n in 1 2 3; do start_web "$n"; start_agent "$n"; done

if ! wait_until 'has 127.0.0.11 && has 127.0.0.12 && has 127.0.0.13' 20000 >/dev/null; then
    tail -n 20 "$WORK/overwatch.log" "$WORK"/web*/agent.log >&2
    die "the three backends did not appear in DNS"
fi
say "all three web hosts are in DNS"
echo "\$ dig +short -p $DNS_PORT @$OW $NAME A"
dig +short -p "$DNS_PORT" "@$OW" "$NAME" A
echo "\$ opengslb-cli servers"
"$BIN/opengslb-cli" --api "$API" servers
pause

OK=0
say "scenario 1: web2's health check starts failing (its /health now returns 404)"
rm "$WORK/web2/www/health"
if t1=$(wait_until '! has 127.0.0.12' 15000); then
    echo "127.0.0.12 left DNS ${t1} ms after its health check started failing"
    echo "  (expected about interval x failure_threshold = 1s x 2, plus up to one check)"
    echo "\$ dig +short -p $DNS_PORT @$OW $NAME A"
    dig +short -p "$DNS_PORT" "@$OW" "$NAME" A
    "$BIN/opengslb-cli" --api "$API" servers
    OK=$((OK + 1))
else
    echo "FAILED: 127.0.0.12 is still in DNS" >&2
fi
echo ok > "$WORK/web2/www/health"
wait_until 'has 127.0.0.12' 15000 >/dev/null && echo "web2 recovered and is back in DNS"
pause

say "scenario 2: a maintenance script creates web3's drain file"
echo "kernel upgrade" > "$WORK/web3/drain"
if t2=$(wait_until '! has 127.0.0.13' 5000); then
    echo "127.0.0.13 left DNS ${t2} ms after the drain file appeared"
    code=$(python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.13:8080/health", timeout=2).status)' 2>/dev/null || echo none)
    echo "meanwhile web3 still answers /health with HTTP $code"
    echo "\$ dig +short -p $DNS_PORT @$OW $NAME A"
    dig +short -p "$DNS_PORT" "@$OW" "$NAME" A
    "$BIN/opengslb-cli" --api "$API" servers
    [ "$code" = 200 ] && OK=$((OK + 1))
else
    echo "FAILED: 127.0.0.13 is still in DNS" >&2
fi
rm -f "$WORK/web3/drain"
wait_until 'has 127.0.0.13' 5000 >/dev/null && echo "drain file removed: web3 is back in DNS"

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
