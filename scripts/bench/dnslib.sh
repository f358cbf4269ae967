# shellcheck shell=sh
# Helpers shared by the benchmarks (dns.sh, geo.sh, rrl.sh, dnssec.sh;
# free_port and need also scale.sh): the run's temp dir and cleanup, free
# ports, waiting for a server's first answer, and the CPU time and sleeps
# of a server's process tree from /proc. Sourced, not run.

need() {
    command -v "$1" >/dev/null 2>&1
}

# The run's temp dir in WORK; every pid added to PIDS is killed and WORK
# removed on exit. Usage: bench_work NAME (dir opengslb-NAME-bench.*).
bench_work() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/opengslb-$1-bench.XXXXXX")
    PIDS=""
    trap bench_cleanup EXIT INT TERM
}

bench_cleanup() {
    for pid in $PIDS; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}

# Waits up to 30 s until SERVER on 127.0.0.1:PORT answers QNAME A
# (default app1.bench.test) with a 127.0.0.x address.
# Usage: wait_for_answer SERVER PORT [QNAME]
wait_for_answer() {
    wfa_name_=${3:-app1.bench.test}
    i=0
    while [ "$i" -lt 150 ]; do
        if dig +short +time=1 +tries=1 -p "$2" @127.0.0.1 "$wfa_name_" A 2>/dev/null | grep -q '^127\.0\.0\.'; then
            return 0
        fi
        i=$((i + 1))
        sleep 0.2
    done
    echo "${0##*/}: $1 does not answer $wfa_name_ on 127.0.0.1:$2" >&2
    return 1
}

# A free TCP+UDP port on 127.0.0.1, chosen by the kernel.
free_port() {
    python3 -c 'import socket
while True:
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

# "pid ppid utime stime" of every process.
proc_table() {
    for stat in /proc/[0-9]*/stat; do
        p_=${stat#/proc/}
        p_=${p_%/stat}
        fields=$(sed 's/^.*) //' "$stat" 2>/dev/null) || continue
        # shellcheck disable=SC2086
        set -- $fields
        echo "$p_ $2 ${12} ${13}"
    done
}

# "utime stime" in clock ticks of a process and all its descendants.
cpu_ticks() { # pid
    proc_table | awk -v root="$1" '
        { parent[$1] = $2; ut[$1] = $3; st[$1] = $4 }
        END {
            u = 0; s = 0
            for (p in ut) {
                q = p
                for (depth = 0; depth < 16 && q != "" && q != 0; depth++) {
                    if (q == root) { u += ut[p]; s += st[p]; break }
                    q = parent[q]
                }
            }
            print u, s
        }'
}

# The pid and every descendant pid of a process.
cpu_tree() { # pid
    proc_table | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (p in parent) {
                q = p
                for (depth = 0; depth < 16 && q != "" && q != 0; depth++) {
                    if (q == root) { print p; break }
                    q = parent[q]
                }
            }
        }'
}

# Voluntary context switches of a process tree: each is one sleep of a
# thread, so per answered query it is the wake-ups per query.
sleeps() { # pid
    total=0
    for p_ in $(cpu_tree "$1"); do
        for st in /proc/"$p_"/task/*/status; do
            v=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$st" 2>/dev/null) || continue
            total=$((total + ${v:-0}))
        done
    done
    echo "$total"
}
