#!/bin/sh
# Agent CPU of learned latency (issue 10, SPEC §11): an agent with
# `agent.latency_learning` polls BENCH_CONNS (10,000) established loopback
# TCP connections to its backend port every `poll_interval` through
# netlink sock_diag. Target: < 2 % of one core.
#
# Root (sock_diag of every socket needs CAP_NET_ADMIN; the open-file
# limit is raised to hold the connections). Starts:
#   - a backend on 127.0.0.1 (python3) that accepts and holds every
#     connection and echoes one byte back, so each has a measured RTT;
#   - a client (python3) that opens BENCH_CONNS connections to it from
#     BENCH_PREFIXES /24 prefixes (source addresses 127.1.P.H) and sends
#     one byte on each, then holds them;
#   - an Overwatch (to receive the reports) and the agent, from
#     target/release/opengslb (or $OPENGSLB_BIN), with poll_interval
#     BENCH_POLL (10s, the default of `agent.latency_learning`),
#     min_connection_age 1s, report_interval 10s.
# Once the agent reports every prefix (opengslb_agent_latency_subnets), it
# reads /proc for BENCH_SECONDS (60): the agent process's CPU (utime +
# stime) and its `latency` thread's alone, as a percentage of one core.
# The same measurement with learning off (BENCH_BASELINE=1, the default)
# gives the agent's own idle cost, printed beside it for comparison.
# Knobs: BENCH_CONNS, BENCH_PREFIXES (100), BENCH_POLL, BENCH_SECONDS,
# BENCH_BASELINE, BENCH_KEEP=1 keeps the temp dir.
set -eu

cd "$(dirname "$0")/../.."
BIN=${OPENGSLB_BIN:-${CARGO_TARGET_DIR:-target}/release/opengslb}
CONNS=${BENCH_CONNS:-10000}
PREFIXES=${BENCH_PREFIXES:-100}
POLL=${BENCH_POLL:-10s}
SECONDS_=${BENCH_SECONDS:-60}
BASELINE=${BENCH_BASELINE:-1}
KEY="q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="

if [ "$(id -u)" -ne 0 ]; then
    echo "learned.sh: run as root (sock_diag needs CAP_NET_ADMIN)" >&2
    exit 1
fi
if [ ! -x "$BIN" ]; then
    echo "learned.sh: $BIN missing; cargo build --release first" >&2
    exit 1
fi

DIR=$(mktemp -d /tmp/ogslb-learned-bench.XXXXXX)
umask 077
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

BACKEND_PORT=$(free_port)
GOSSIP_PORT=$(free_port)
DNS_PORT=$(free_port)
API_PORT=$(free_port)
AGENT_API_PORT=$(free_port)

cat >"$DIR/backend.py" <<'EOF'
import resource, selectors, socket, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
sel = selectors.DefaultSelector()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(4096)
sel.register(ls, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is ls:
            c, _ = ls.accept()
            sel.register(c, selectors.EVENT_READ)
        else:
            try:
                data = s.recv(64)
            except OSError:
                data = b""
            if data:
                s.send(data[:1])
            else:
                sel.unregister(s)
                s.close()
EOF

cat >"$DIR/client.py" <<'EOF'
import resource, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, conns, prefixes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(conns):
    p, h = i % prefixes, i // prefixes % 250 + 1
    s = socket.socket()
    s.bind(("127.1.%d.%d" % (p, h), 0))
    s.connect(("127.0.0.1", port))
    s.send(b"x")
    held.append(s)
print("open", len(held), flush=True)
for s in held:
    try:
        s.recv(1)
    except OSError:
        pass
while True:
    time.sleep(3600)
EOF

cat >"$DIR/ow.yaml" <<EOF
mode: overwatch
dns:
  listen_address: "127.0.0.1:$DNS_PORT"
  zones: [bench.test]
overwatch:
  identity: { node_id: ow }
  agent_tokens: { app.bench.test: "bench-token" }
  gossip: { bind_address: "127.0.0.1:$GOSSIP_PORT", encryption_key: "$KEY" }
  data_dir: "$DIR/ow-data"
regions:
  - name: east
domains:
  - { name: app.bench.test, routing_algorithm: learned_latency, regions: [east] }
api:
  address: "127.0.0.1:$API_PORT"
EOF

agent_yaml() { # $1 = true|false (latency learning)
    cat <<EOF
mode: agent
agent:
  identity:
    agent_id: bench1
    region: east
    service_token: "bench-token"
    cert_path: "$DIR/agent.crt"
    key_path: "$DIR/agent.key"
  backends:
    - service: app.bench.test
      address: "127.0.0.1"
      port: $BACKEND_PORT
      health_check: { type: tcp, interval: 10s, timeout: 2s }
  gossip:
    encryption_key: "$KEY"
    overwatch_nodes: ["127.0.0.1:$GOSSIP_PORT"]
  api: { address: "127.0.0.1:$AGENT_API_PORT" }
  latency_learning:
    enabled: $1
    poll_interval: $POLL
    min_connection_age: 1s
    report_interval: 10s
    min_samples: 1
EOF
}

python3 "$DIR/backend.py" "$BACKEND_PORT" &
PIDS="$PIDS $!"
sleep 0.5
python3 "$DIR/client.py" "$BACKEND_PORT" "$CONNS" "$PREFIXES" >"$DIR/client.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until grep -q '^open' "$DIR/client.log" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 600 ]; then echo "client did not open its connections" >&2; cat "$DIR/client.log" >&2; exit 1; fi
    sleep 0.2
done
ESTAB=$(ss -Htn state established "( sport = :$BACKEND_PORT )" | wc -l)
echo "established connections to the backend port: $ESTAB"

chmod 600 "$DIR/ow.yaml"
"$BIN" --config "$DIR/ow.yaml" --mode overwatch 2>"$DIR/ow.log" &
PIDS="$PIDS $!"

ticks=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of /proc/$1/stat (or a task's stat)
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$1"
}
latency_task() { # the agent's `latency` thread's stat file
    for t in /proc/"$1"/task/*; do
        if [ "$(cat "$t/comm")" = latency ]; then echo "$t/stat"; return; fi
    done
}
metric() { # $1 metric name from the agent's /metrics
    curl -s "http://127.0.0.1:$AGENT_API_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

measure() { # $1 = true|false; writes "agent% latency-thread%" to $DIR/result-$1
    agent_yaml "$1" >"$DIR/agent.yaml"
    chmod 600 "$DIR/agent.yaml"
    "$BIN" --config "$DIR/agent.yaml" --mode agent 2>"$DIR/agent-$1.log" &
    apid=$!
    PIDS="$PIDS $apid"
    i=0
    if [ "$1" = true ]; then
        # Every prefix learned: the polls are in steady state.
        until [ "$(metric opengslb_agent_latency_subnets)" -ge "$PREFIXES" ] 2>/dev/null; do
            i=$((i + 1))
            if [ "$i" -gt 300 ]; then echo "agent did not learn $PREFIXES prefixes (has $(metric opengslb_agent_latency_subnets))" >&2; exit 1; fi
            sleep 1
        done
    else
        until [ -n "$(metric opengslb_agent_heartbeats_sent_total)" ]; do
            i=$((i + 1))
            if [ "$i" -gt 60 ]; then echo "agent did not start" >&2; exit 1; fi
            sleep 1
        done
        sleep 5
    fi
    task=$(latency_task "$apid")
    a0=$(cpu_ticks "/proc/$apid/stat")
    t0=0
    if [ -n "$task" ]; then t0=$(cpu_ticks "$task"); fi
    s0=$(date +%s.%N)
    sleep "$SECONDS_"
    a1=$(cpu_ticks "/proc/$apid/stat")
    t1=0
    if [ -n "$task" ]; then t1=$(cpu_ticks "$task"); fi
    s1=$(date +%s.%N)
    kill "$apid"
    wait "$apid" 2>/dev/null || true
    awk -v a="$((a1 - a0))" -v t="$((t1 - t0))" -v hz="$ticks" -v s0="$s0" -v s1="$s1" \
        'BEGIN { w = s1 - s0; printf "%.3f %.3f\n", 100 * a / hz / w, 100 * t / hz / w }' \
        >"$DIR/result-$1"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
BASE=""
if [ "$BASELINE" = 1 ]; then
    measure false
    read -r BASE _ <"$DIR/result-false"
    echo "agent without learning: $BASE % of one core over ${SECONDS_}s"
fi
measure true
read -r AGENT THREAD <"$DIR/result-true"
echo "agent with learning, $ESTAB connections, $PREFIXES prefixes, poll_interval $POLL:"
echo "  agent process: $AGENT % of one core over ${SECONDS_}s (target < 2 %)"
echo "  its latency thread alone: $THREAD %"
if [ -n "$BASE" ]; then
    awk -v a="$AGENT" -v b="$BASE" 'BEGIN { printf "  learning adds %.3f %% of one core\n", a - b }'
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
