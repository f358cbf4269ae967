#!/bin/sh
# Failover timing of the real binaries (SPEC §10):
#   drain file created -> address gone from the DNS answers of every
#   Overwatch (target p99 <= 250 ms), and agent SIGKILL -> its backend out
#   of DNS on every Overwatch (target <= 3.5 s with heartbeat 1s x 3).
#
# Starts on 127.0.0.1 two Overwatch nodes (target/release/opengslb, or
# under $CARGO_TARGET_DIR), a
# python3 http.server on 127.0.0.2 (the agent's backend) and one on
# 127.0.0.3 (a static server on both nodes, so the name never runs empty),
# then runs tests/bench/failover.rs, which starts the agent with default
# heartbeat settings, drains it BENCH_DRAINS times through its drain file
# and SIGKILLs it BENCH_KILLS times, polling both nodes' DNS every 1 ms.
# Knobs: BENCH_DRAINS (100), BENCH_KILLS (5), BENCH_KEEP=1 keeps the
# temp dir (configs, logs).
set -eu

cd "$(dirname "$0")/../.."
BIN=${CARGO_TARGET_DIR:-target}/release/opengslb
DRAINS=${BENCH_DRAINS:-100}
KILLS=${BENCH_KILLS:-5}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/opengslb-failover.XXXXXX")
PIDS=""
cleanup() {
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

free_port() {
    python3 -c 'import socket
for _ in range(100):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(p)
    break'
}

wait_ready() { # api port
    i=0
    while [ "$i" -lt 100 ]; do
        if curl -fs "http://127.0.0.1:$1/api/v1/ready" >/dev/null 2>&1; then
            return 0
        fi
        i=$((i + 1))
        sleep 0.1
    done
    echo "failover.sh: Overwatch API on port $1 never became ready" >&2
    return 1
}

echo "building release"
cargo build --release >"$WORK/build.log" 2>&1 || {
    cat "$WORK/build.log" >&2
    exit 1
}

KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
HTTP_PORT=$(free_port)
mkdir -p "$WORK/www"
echo ok >"$WORK/www/health"
for ip in 127.0.0.2 127.0.0.3; do
    python3 -m http.server "$HTTP_PORT" --bind "$ip" --directory "$WORK/www" >/dev/null 2>&1 &
    PIDS="$PIDS $!"
done

DNS_LIST=""
GOSSIP_LIST=""
for n in 1 2; do
    dns_port=$(free_port)
    api_port=$(free_port)
    gossip_port=$(free_port)
    mkdir -p "$WORK/ow$n-data"
    cat >"$WORK/ow$n.yaml" <<EOF
mode: overwatch
dns:
  listen_address: "127.0.0.1:$dns_port"
  zones: [bench.test]
  default_ttl: 5
  return_last_healthy: false
overwatch:
  identity: { node_id: ow$n }
  agent_tokens: { app.bench.test: "bench-token" }
  gossip: { bind_address: "127.0.0.1:$gossip_port", encryption_key: "$KEY" }
  validation: { enabled: false }
  data_dir: "$WORK/ow$n-data"
regions:
  - name: bench
    servers:
      - { address: 127.0.0.3, port: $HTTP_PORT, service: app.bench.test }
    health_check: { type: http, path: /health, interval: 1s, timeout: 1s, failure_threshold: 3, success_threshold: 1 }
domains:
  - { name: app.bench.test, routing_algorithm: round-robin, regions: [bench] }
api:
  address: "127.0.0.1:$api_port"
logging:
  level: info
EOF
    chmod 600 "$WORK/ow$n.yaml"
    "$BIN" --config "$WORK/ow$n.yaml" --mode overwatch >"$WORK/ow$n.log" 2>&1 &
    PIDS="$PIDS $!"
    wait_ready "$api_port"
    DNS_LIST="$DNS_LIST${DNS_LIST:+,}127.0.0.1:$dns_port"
    GOSSIP_LIST="$GOSSIP_LIST${GOSSIP_LIST:+, }\"127.0.0.1:$gossip_port\""
done

AGENT_API=$(free_port)
# No agent.heartbeat section: the defaults (1s interval, missed_threshold 3).
cat >"$WORK/agent.yaml" <<EOF
mode: agent
agent:
  identity:
    agent_id: bench-agent
    region: bench
    service_token: "bench-token"
    cert_path: "$WORK/agent.crt"
    key_path: "$WORK/agent.key"
  backends:
    - service: app.bench.test
      address: 127.0.0.2
      port: $HTTP_PORT
      health_check: { type: http, path: /health, interval: 1s, timeout: 1s, failure_threshold: 3, success_threshold: 1 }
  gossip:
    encryption_key: "$KEY"
    overwatch_nodes: [$GOSSIP_LIST]
  drain_file: "$WORK/agent.drain"
  api: { address: "127.0.0.1:$AGENT_API" }
logging:
  level: info
EOF
chmod 600 "$WORK/agent.yaml"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
BENCH_DNS="$DNS_LIST" BENCH_NAME=app.bench.test BENCH_IP=127.0.0.2 \
    BENCH_AGENT_CONFIG="$WORK/agent.yaml" BENCH_DRAIN_FILE="$WORK/agent.drain" \
    BENCH_LOG="$WORK/agent.log" BENCH_DRAINS="$DRAINS" BENCH_KILLS="$KILLS" \
    cargo test --release --test bench_failover -- --ignored --nocapture 2>&1 |
    tee "$WORK/harness.out" | grep -v '^running\|^test result\|^$' || true
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if ! grep -q '^RESULT timeouts: 0$' "$WORK/harness.out"; then
    echo "failover.sh: the harness failed" >&2
    exit 1
fi
awk '
    /^RESULT drain_file_to_gone_from_all/ { for (i = 1; i <= NF; i++) if ($i ~ /^p99=/) { sub("p99=", "", $i); p99 = $i } }
    /^RESULT sigkill_to_gone_from_all/ { for (i = 1; i <= NF; i++) if ($i ~ /^max=/) { sub("max=", "", $i); kmax = $i } }
    /^RESULT drained address seen again/ { for (i = 1; i < NF; i++) if ($(i + 1) == "answers") again = $i }
    END {
        printf "drained address stayed out of DNS while the file existed: %s\n", (again == "0" ? "yes" : "NO (" again " answers held it)")
        printf "target drain p99 <= 250 ms: %s ms -> %s\n", p99, (p99 + 0 <= 250 ? "met" : "NOT met")
        printf "target SIGKILL <= 3500 ms: max %s ms -> %s\n", kmax, (kmax + 0 <= 3500 ? "met" : "NOT met")
    }' "$WORK/harness.out"
