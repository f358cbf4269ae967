# shellcheck shell=sh
# Helpers shared by the benchmarks (dns.sh, geo.sh; free_port and need also
# rrl.sh, dnssec.sh, scale.sh): free ports and the CPU time and sleeps of
# a server's process tree from /proc. Sourced, not run.

need() {
    command -v "$1" >/dev/null 2>&1
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
