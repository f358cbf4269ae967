#!/bin/sh
# API contract check: schemathesis (PyPI) generates requests from
# docs/openapi.yaml and runs them against a live Overwatch and a live agent
# on loopback; it fails on any 5xx and on any response (status, headers,
# body) the document does not describe.
#
# Usage: [SEED=N] scripts/api-contract.sh [MAX_EXAMPLES]   (default 40 per
# operation, seed 1: the same requests every run)
# Needs: cargo, python3, schemathesis (pip install schemathesis).
# Prints `SKIPPED: api-contract: ...` and exits 0 when schemathesis is
# missing, unless REQUIRE_SCHEMATHESIS=1 (CI sets it).
# shellcheck disable=SC2317  # cleanup runs through trap
set -eu

cd "$(dirname "$0")/.."
MAX=${1:-40}

if ! command -v schemathesis >/dev/null 2>&1; then
    if [ "${REQUIRE_SCHEMATHESIS:-0}" = 1 ]; then
        echo "api-contract: schemathesis is not installed (pip install schemathesis)" >&2
        exit 1
    fi
    echo "SKIPPED: api-contract: schemathesis is not installed (pip install schemathesis)" >&2
    exit 0
fi

cargo build --bins -q
BIN=$(pwd)/target/debug

WORK=$(mktemp -d /tmp/opengslb-contract.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Four free loopback ports (TCP and UDP), asked of the kernel.
PORTS=$(python3 -c '
import socket
socks = []
for _ in range(4):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); socks.append(t)
    port = t.getsockname()[1]
    u = socket.socket(type=socket.SOCK_DGRAM); u.bind(("127.0.0.1", port)); socks.append(u)
    print(port)
')
# shellcheck disable=SC2086  # one word per port, split on purpose
set -- $PORTS
DNS=$1 API=$2 GOSSIP=$3 AGENT=$4
KEY=b3BlbmdzbGItZXhhbXBsZS1rZXktUkVQTEFDRS1NRSE=

mkdir -p "$WORK/data"
cat >"$WORK/overwatch.yaml" <<EOF
mode: overwatch
dns:
  listen_address: "127.0.0.1:$DNS"
  zones: [gslb.example.com]
overwatch:
  identity: { node_id: contract-1 }
  agent_tokens: { app.gslb.example.com: "app-token" }
  gossip: { bind_address: "127.0.0.1:$GOSSIP", encryption_key: "$KEY" }
  validation: { enabled: true, check_interval: 1s, check_timeout: 200ms }
  data_dir: "$WORK/data"
regions:
  - name: eu-west
    servers:
      - { address: "10.0.1.10", port: 80, weight: 1, service: app.gslb.example.com }
    health_check: { type: tcp, interval: 1s, timeout: 200ms }
domains:
  - { name: app.gslb.example.com, routing_algorithm: round-robin, regions: [eu-west] }
api:
  address: "127.0.0.1:$API"
EOF
cat >"$WORK/agent.yaml" <<EOF
mode: agent
agent:
  identity:
    agent_id: web-1
    region: eu-west
    service_token: "app-token"
    cert_path: "$WORK/agent.crt"
    key_path: "$WORK/agent.key"
  backends:
    - service: app.gslb.example.com
      address: "127.0.0.1"
      port: 9
      health_check: { type: tcp, interval: 1s, timeout: 200ms }
  gossip:
    encryption_key: "$KEY"
    overwatch_nodes: ["127.0.0.1:$GOSSIP"]
  drain_file: "$WORK/agent.drain"
  api: { address: "127.0.0.1:$AGENT" }
EOF
chmod 600 "$WORK/overwatch.yaml" "$WORK/agent.yaml"

"$BIN/opengslb" --config "$WORK/overwatch.yaml" >"$WORK/overwatch.log" 2>&1 &
PIDS="$PIDS $!"
"$BIN/opengslb" --config "$WORK/agent.yaml" >"$WORK/agent.log" 2>&1 &
PIDS="$PIDS $!"

# wait_for URL WHAT: up to 20 s for a 200.
wait_for() {
    i=0
    until python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -ge 100 ]; then
            echo "api-contract: $2 did not come up; its log:" >&2
            cat "$WORK"/*.log >&2
            exit 1
        fi
        sleep 0.2
    done
}
wait_for "http://127.0.0.1:$API/api/v1/ready" "the Overwatch"
wait_for "http://127.0.0.1:$AGENT/api/v1/agent/status" "the agent"

# One run per server; the document's path-level `servers` send agent
# operations to the agent, so each run selects its operations by tag.
# --checks all: status codes, content types, headers and bodies must match
# the document, schema-valid requests are accepted and invalid ones
# refused; and no 5xx. The stateful phase is left out: schemathesis infers
# links between the two override paths that its own validator then rejects.
# schemathesis runs in the work dir so its cache (.schemathesis/) goes away
# with it.
#
# Writes whose acceptance depends on state the document cannot express
# (a server's region and service must exist, a region or domain cannot be
# renamed, an address without a port must name one backend, a page cursor
# must be a listed prefix) run in a second pass without the two
# acceptance checks: every other check (no 5xx, status codes, content
# types, response bodies) still applies to them.
SPEC=$(pwd)/docs/openapi.yaml
STATEFUL='^/api/v1/(servers|regions|domains|overrides|overwatch/backends/.*/override|overwatch/latency|geo/mappings)'
run() (
    tag=$1 url=$2
    shift 2
    cd "$WORK"
    schemathesis run "$SPEC" \
        --url "$url" --include-tag "$tag" \
        --phases examples,coverage,fuzzing \
        --max-examples "$MAX" --seed "${SEED:-1}" \
        --request-timeout 10 \
        --no-color \
        --report-dir "$WORK/report-$tag-$#" \
        "$@"
)
status=0
run overwatch "http://127.0.0.1:$API" --checks all --exclude-path-regex "$STATEFUL" || status=1
run overwatch "http://127.0.0.1:$API" --checks all --include-path-regex "$STATEFUL" \
    --exclude-checks positive_data_acceptance,negative_data_rejection || status=1
run agent "http://127.0.0.1:$AGENT" --checks all || status=1

for p in $PIDS; do
    if ! kill -0 "$p" 2>/dev/null; then
        echo "api-contract: a daemon died during the run; logs:" >&2
        cat "$WORK"/*.log >&2
        status=1
    fi
done
if [ "$status" -ne 0 ]; then
    echo "api-contract: FAILED (see the schemathesis output above)" >&2
    exit 1
fi
echo "api-contract: OK (max $MAX examples per operation)"
