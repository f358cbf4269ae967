#!/bin/sh
# OpenGSLB demo 3, learned latency (run through `scripts/demo.sh --latency`).
#
# Network namespaces joined by a router namespace: two regions, east
# (10.11.0.0/24) and west (10.12.0.0/24), with two web hosts each and an
# agent beside every web server; one Overwatch (10.10.0.10) with a
# `learned_latency` domain whose cold prefixes fall back to geolocation
# (default_region east); two clients, A (10.1.0.0/24) near east and B
# (10.2.0.0/24) near west: each client's packets to its near region are
# delayed 5 ms, to the far one 60 ms.
#
#   step 1: curl loops from both clients to all four web hosts; the agents
#           read the round trips from the kernel and report them, until
#           A's resolver (dig +subnet=10.1.0.0/24) gets east and B's
#           (dig +subnet=10.2.0.0/24) gets west; B got east before (cold
#           prefix -> geolocation default)
#   step 2: drain files on both east hosts -> A is answered from west
#   step 3: drain files removed -> A is back on east
#
# The delay: `tc qdisc ... netem` on the router's delay devices when the
# kernel has sch_netem, else scripts/demo-delayline.py delays the packets
# itself (it says which). Needs root, iproute2, python3, curl, dig.
# Without a terminal it runs unattended and exits 0 only when every step
# happened; it prints each step's time. Cleans up every namespace and
# process (trap). OPENGSLB_DEMO_PROFILE=debug uses the debug binaries.
# shellcheck disable=SC2317  # cleanup and conditions run through trap and eval
set -eu

cd "$(dirname "$0")/.."
KEEP=0
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=1 ;;
        --latency) ;;
        *) printf 'usage: scripts/demo.sh --latency [--keep]\n' >&2; exit 2 ;;
    esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
pause() { if [ -t 0 ] && [ -t 1 ]; then printf '(press Enter to continue) '; read -r _; fi; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

[ "$(id -u)" -eq 0 ] || die "--latency needs root (network namespaces and tc); nothing was run"
for tool in ip tc python3 curl dig; do
    command -v "$tool" >/dev/null 2>&1 || die "--latency needs $tool (packages: iproute2 python3 curl dnsutils)"
done
[ -c /dev/net/tun ] || die "--latency needs /dev/net/tun (kernel TUN support)"

PROFILE=${OPENGSLB_DEMO_PROFILE:-release}
say "building the $PROFILE binaries"
if [ "$PROFILE" = release ]; then cargo build --release --bins -q; else cargo build --bins -q; fi
BIN=$(pwd)/target/$PROFILE

WORK=$(mktemp -d /tmp/opengslb-demo3.XXXXXX)
P="ogl$$"
HOSTS="core ow e1 e2 w1 w2 ca cb"
PIDS=""
cleanup() {
    # Every process in our namespaces is one this demo started.
    for h in $HOSTS; do
        for p in $(ip netns pids "$P$h" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    done
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    for h in $HOSTS; do ip netns del "$P$h" 2>/dev/null || true; done
    if [ "$KEEP" -eq 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

on() { h=$1; shift; ip netns exec "$P$h" "$@"; }
# spawn HOST LOG CMD...: CMD in HOST's namespace, in the background.
spawn() {
    h=$1
    log=$2
    shift 2
    ip netns exec "$P$h" "$@" >"$log" 2>&1 &
    PIDS="$PIDS $!"
}

# link HOST ADDR/24 GW [BRIDGE]: a veth from HOST's eth0 to the router.
link() {
    ip netns add "$P$1"
    ip -n "$P$1" link set lo up
    ip link add eth0 netns "$P$1" type veth peer name "h-$1" netns "${P}core"
    ip -n "$P$1" addr add "$2" dev eth0
    ip -n "$P$1" link set eth0 up
    ip -n "$P$1" route add default via "$3"
    if [ -n "${4:-}" ]; then
        ip -n "${P}core" link set "h-$1" master "$4"
    else
        ip -n "${P}core" addr add "$3/24" dev "h-$1"
    fi
    ip -n "${P}core" link set "h-$1" up
}

say "creating the namespaces: router, Overwatch, east e1 e2, west w1 w2, clients ca cb"
ip netns add "${P}core"
ip -n "${P}core" link set lo up
on core sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
for br in east:10.11.0.1 west:10.12.0.1; do
    ip -n "${P}core" link add "br-${br%%:*}" type bridge
    ip -n "${P}core" addr add "${br#*:}/24" dev "br-${br%%:*}"
    ip -n "${P}core" link set "br-${br%%:*}" up
done
link ow 10.10.0.10/24 10.10.0.1
link e1 10.11.0.11/24 10.11.0.1 br-east
link e2 10.11.0.12/24 10.11.0.1 br-east
link w1 10.12.0.11/24 10.12.0.1 br-west
link w2 10.12.0.12/24 10.12.0.1 br-west
link ca 10.1.0.2/24 10.1.0.1
link cb 10.2.0.2/24 10.2.0.1

# The delay: each client's packets to a region leave the router through a
# delay device (d5 near, d60 far) and come back in on it after the delay.
NETEM=0
spawn core "$WORK/delayline.log" python3 scripts/demo-delayline.py d5:0 d60:0
DELAY_PID=${PIDS##* }
i=0
until grep -q ready "$WORK/delayline.log" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 100 ] || die "the delay line did not start: $(cat "$WORK/delayline.log")"
    sleep 0.05
done
if ip -n "${P}core" link set d5 up && tc -n "${P}core" qdisc add dev d5 root netem delay 5ms 2>"$WORK/netem.err" &&
    tc -n "${P}core" qdisc add dev d60 root netem delay 60ms 2>>"$WORK/netem.err"; then
    NETEM=1
    echo "delays: tc netem on the router's d5 (5 ms) and d60 (60 ms)"
else
    tc -n "${P}core" qdisc del dev d5 root 2>/dev/null || true
    kill "$DELAY_PID"
    wait "$DELAY_PID" 2>/dev/null || true
    echo "delays: this kernel has no sch_netem ($(head -n 1 "$WORK/netem.err")); modprobe sch_netem"
    echo "        would add it. Falling back to scripts/demo-delayline.py delaying in user space."
    spawn core "$WORK/delayline2.log" python3 scripts/demo-delayline.py d5:5 d60:60
    i=0
    until grep -q ready "$WORK/delayline2.log" 2>/dev/null; do
        i=$((i + 1)); [ "$i" -lt 100 ] || die "the delay line did not start: $(cat "$WORK/delayline2.log")"
        sleep 0.05
    done
fi
ip -n "${P}core" link set d5 up
ip -n "${P}core" link set d60 up
ip -n "${P}core" route add 10.11.0.0/24 dev d5 table 101
ip -n "${P}core" route add 10.12.0.0/24 dev d60 table 101
ip -n "${P}core" route add 10.11.0.0/24 dev d60 table 102
ip -n "${P}core" route add 10.12.0.0/24 dev d5 table 102
ip -n "${P}core" rule add pref 100 iif h-ca lookup 101
ip -n "${P}core" rule add pref 101 iif h-cb lookup 102

OW=10.10.0.10
API="http://$OW:19090"
KEY=$("$BIN/opengslb-cli" gen-key)
TOKEN=$("$BIN/opengslb-cli" gen-key)
NAME=app.demo.gslb
HC="{ type: http, path: /health, interval: 1s, timeout: 500ms, failure_threshold: 2, success_threshold: 1 }"

cat > "$WORK/overwatch.yaml" <<YAML
mode: overwatch
dns:
  listen_address: "$OW:53"
  zones: [demo.gslb]
  default_ttl: 5
overwatch:
  identity: { node_id: demo-overwatch, region: east }
  agent_tokens: { $NAME: "$TOKEN" }
  gossip: { bind_address: "$OW:17946", encryption_key: "$KEY" }
  validation: { enabled: true, check_interval: 1s, check_timeout: 500ms }
  data_dir: "$WORK/overwatch-data"
  geolocation:
    default_region: east
    ecs_enabled: true
    custom_mappings:
      - { cidr: 10.10.0.0/24, region: east, comment: "the Overwatch's own network" }
regions:
  - { name: east, health_check: $HC }
  - { name: west, health_check: $HC }
domains:
  - { name: $NAME, routing_algorithm: learned_latency, regions: [east, west], ttl: 5 }
api:
  address: "$OW:19090"
  allowed_networks: [10.0.0.0/8]
logging: { level: info }
YAML
chmod 600 "$WORK/overwatch.yaml"

# web HOST REGION ADDR: a web server keeping connections open (HTTP/1.1)
# and an agent learning from them. The agent samples only established
# connections older than min_connection_age: the clients reuse one
# connection for many requests, as browsers do.
web() {
    mkdir -p "$WORK/$1/www"
    echo ok > "$WORK/$1/www/health"
    head -c 20000 /dev/zero > "$WORK/$1/www/page"
    spawn "$1" "$WORK/$1/http.log" python3 -m http.server 8080 -p HTTP/1.1 --bind "$3" --directory "$WORK/$1/www"
    cat > "$WORK/$1/agent.yaml" <<YAML
mode: agent
agent:
  identity:
    agent_id: $1
    region: $2
    service_token: "$TOKEN"
    cert_path: "$WORK/$1/agent.crt"
    key_path: "$WORK/$1/agent.key"
  backends:
    - { service: $NAME, address: "$3", port: 8080, health_check: $HC }
  gossip:
    encryption_key: "$KEY"
    overwatch_nodes: ["$OW:17946"]
  heartbeat: { interval: 1s, missed_threshold: 3 }
  drain_file: "$WORK/$1/drain"
  api: { address: "$3:9100" }
  latency_learning:
    enabled: true
    poll_interval: 500ms
    min_connection_age: 1s
    min_samples: 2
    report_interval: 1s
logging: { level: info }
YAML
    chmod 600 "$WORK/$1/agent.yaml"
    spawn "$1" "$WORK/$1/agent.log" "$BIN/opengslb" --config "$WORK/$1/agent.yaml"
}

# answers CLIENT: what the client's resolver gets, asking with the
# client's prefix in ECS as a recursive resolver would.
subnet() { case "$1" in ca) echo 10.1.0.0/24 ;; *) echo 10.2.0.0/24 ;; esac; }
answers() {
    on "$1" dig +short +time=1 +tries=1 +subnet="$(subnet "$1")" "@$OW" "$NAME" A 2>/dev/null |
        sort | tr '\n' ' '
}
EAST="10.11.0.11 10.11.0.12 "
WEST="10.12.0.11 10.12.0.12 "
gets() { [ "$(answers "$1")" = "$2" ]; }
show_dns() {
    echo "$1\$ dig +subnet=$(subnet "$1") @$OW $NAME A"
    on "$1" dig +subnet="$(subnet "$1")" "@$OW" "$NAME" A |
        grep -E 'CLIENT-SUBNET|[[:space:]]IN[[:space:]]+A[[:space:]]' || true
}
show_latency() {
    echo "\$ opengslb-cli --api $API latency"
    on ow "$BIN/opengslb-cli" --api "$API" latency
}

# learned: the table ranks both regions for both prefixes, near first.
learned() {
    table=$(on ow "$BIN/opengslb-cli" --api "$API" latency 2>/dev/null) || return 1
    echo "$table" | grep -q '^10\.1\.0\.0/24 *east=[^ ]* west=' &&
        echo "$table" | grep -q '^10\.2\.0\.0/24 *west=[^ ]* east='
}

# wait_until COND_CMD TIMEOUT_MS -> prints elapsed ms, fails on timeout
wait_until() {
    start=$(now_ms)
    while ! eval "$1"; do
        if [ $(( $(now_ms) - start )) -gt "$2" ]; then return 1; fi
        sleep 0.1
    done
    echo $(( $(now_ms) - start ))
}

say "starting the Overwatch on $OW (DNS :53, API :19090) and four web hosts with an agent each"
spawn ow "$WORK/overwatch.log" "$BIN/opengslb" --config "$WORK/overwatch.yaml"
web e1 east 10.11.0.11
web e2 east 10.11.0.12
web w1 west 10.12.0.11
web w2 west 10.12.0.12
if ! wait_until "gets ca '$EAST'" 30000 >/dev/null; then
    tail -n 20 "$WORK/overwatch.log" "$WORK"/*/agent.log >&2
    die "the east backends did not appear in DNS"
fi
for c in ca cb; do
    printf '%s to east: ' "$c"; on "$c" curl -s -o /dev/null -w '%{time_connect}s to connect\n' http://10.11.0.11:8080/health
    printf '%s to west: ' "$c"; on "$c" curl -s -o /dev/null -w '%{time_connect}s to connect\n' http://10.12.0.11:8080/health
done
echo "nothing is learned yet: both prefixes are cold and fall back to geolocation (default_region east)"
show_dns ca
show_dns cb
pause

OK=0
say "step 1: clients A and B fetch pages from all four web hosts (keep-alive, 2/s); the agents learn"
for c in ca cb; do
    for ip in 10.11.0.11 10.11.0.12 10.12.0.11 10.12.0.12; do
        spawn "$c" /dev/null sh -c "while :; do curl -s -o /dev/null --rate 2/s 'http://$ip:8080/page?[1-20]'; done"
    done
done
if t1=$(wait_until "learned && gets ca '$EAST' && gets cb '$WEST'" 60000); then
    echo "both regions are measured for both prefixes, and A (10.1.0.0/24) gets east and"
    echo "B (10.2.0.0/24) gets west, ${t1} ms after the traffic started"
    show_dns ca
    show_dns cb
    show_latency
    OK=$((OK + 1))
else
    echo "FAILED: A gets '$(answers ca)', B gets '$(answers cb)'" >&2
    show_latency >&2 || true
fi
pause

say "step 2: drain files appear on both east hosts"
touch "$WORK/e1/drain" "$WORK/e2/drain"
if t2=$(wait_until "gets ca '$WEST'" 15000); then
    echo "A moved to its far region west ${t2} ms after the drain"
    show_dns ca
    OK=$((OK + 1))
else
    echo "FAILED: A still gets '$(answers ca)'" >&2
fi
pause

say "step 3: the drain files are removed"
rm -f "$WORK/e1/drain" "$WORK/e2/drain"
if t3=$(wait_until "gets ca '$EAST'" 15000); then
    echo "A is back on east ${t3} ms after the undrain"
    show_dns ca
    OK=$((OK + 1))
else
    echo "FAILED: A still gets '$(answers ca)'" >&2
fi

say "summary"
[ "$NETEM" -eq 1 ] && how="tc netem" || how="user-space delay line (no sch_netem)"
echo "delays: near 5 ms, far 60 ms ($how)"
echo "step 1 (traffic -> A on east, B on west):   ${t1:-failed} ms"
echo "step 2 (east drained -> A on west):         ${t2:-failed} ms"
echo "step 3 (east undrained -> A back on east):  ${t3:-failed} ms"
if [ "$OK" -eq 3 ]; then
    echo "every step behaved as expected"
    exit 0
fi
echo "demo FAILED; logs are in $WORK" >&2
KEEP=1
exit 1
