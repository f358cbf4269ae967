#!/bin/sh
# Drains this host's backends out of OpenGSLB DNS (or lifts the drain)
# through the agent's local API, and optionally waits until no Overwatch
# answers their addresses any more. Installed as opengslb-drain.
#
# Usage: drain.sh on|off [--reason R] [--wait] [--timeout S] [--agent URL]
#                        [--dns HOST:PORT]...
#
#   on             drain: POST /api/v1/agent/drain {"reason": R}
#   off            lift the operator drain: DELETE /api/v1/agent/drain
#   --reason R     why (shown in the API, the CLI and the logs)
#   --wait         on: return only when no --dns server answers any of the
#                  agent's backend addresses for its service name (A for
#                  IPv4, AAAA for IPv6, compared as dig prints them), and
#                  say which server (Overwatch node) dropped them last;
#                  off: return only when the agent no longer drains for any
#                  reason (a drain file or a predictive signal may hold it)
#   --timeout S    give up waiting after S seconds (default 30)
#   --agent URL    agent local API (default $OPENGSLB_AGENT, else
#                  http://127.0.0.1:9100)
#   --dns HOST:PORT  an Overwatch DNS listener to watch; repeat it or give a
#                  comma-separated list (default 127.0.0.1:53); IPv6 as
#                  [::1]:53
#
# Needs curl, and dig for `on --wait`; parses JSON with awk (no jq).
# It uses curl rather than opengslb-cli so it works from maintenance hosts
# and images that only carry the daemon, and its exit codes stay its own.
#
# Exit status:
#   0  done (and, with --wait, confirmed)
#   1  the agent refused or gave an unexpected reply, or a tool is missing
#   2  bad usage
#   5  the agent's API could not be reached
#   6  --wait timed out: an address is still answered, or a DNS server
#      never replied (the message names which)
#   7  off: the operator drain is lifted but the agent still drains for
#      another reason (drain file, predictive); the message says which
set -eu

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

die() { code=$1; shift; printf 'drain.sh: %s\n' "$*" >&2; exit "$code"; }
say() { printf 'drain.sh: %s\n' "$*"; }

ACTION=
REASON=
WAIT=0
TIMEOUT=30
AGENT=${OPENGSLB_AGENT:-http://127.0.0.1:9100}
DNS_LIST=

need_value() { [ "$#" -ge 2 ] || die 2 "$1 needs a value (see --help)"; }

while [ "$#" -gt 0 ]; do
    arg=$1
    case "$arg" in
        --*=*) shift; set -- "${arg%%=*}" "${arg#*=}" "$@"; arg=$1 ;;
    esac
    case "$arg" in
        on | off)
            [ -z "$ACTION" ] || die 2 "give on or off once"
            ACTION=$arg; shift ;;
        --reason) need_value "$@"; REASON=$2; shift 2 ;;
        --wait) WAIT=1; shift ;;
        --timeout) need_value "$@"; TIMEOUT=$2; shift 2 ;;
        --agent) need_value "$@"; AGENT=$2; shift 2 ;;
        --dns) need_value "$@"; DNS_LIST="$DNS_LIST,$2"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die 2 "unknown argument: $arg (see --help)" ;;
    esac
done

[ -n "$ACTION" ] || die 2 "say on or off (see --help)"
case "$TIMEOUT" in
    '' | *[!0-9]*) die 2 "--timeout takes whole seconds, not '$TIMEOUT'" ;;
esac
DNS_LIST=${DNS_LIST#,}
[ -n "$DNS_LIST" ] || DNS_LIST=127.0.0.1:53
AGENT=${AGENT%/}
command -v curl >/dev/null 2>&1 || die 1 "curl is needed"
if [ "$WAIT" -eq 1 ] && [ "$ACTION" = on ]; then
    command -v dig >/dev/null 2>&1 || die 1 "dig is needed for --wait (package dnsutils or bind-tools)"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/opengslb-drain.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

# json_flat: JSON on stdin to one "path<TAB>value" line per scalar, e.g.
# "backends.0.address<TAB>192.0.2.10". Any layout (pretty or compact) works;
# strings may hold commas, braces and escaped quotes.
json_flat() {
    awk '
function name(   p) {
    if (t[d] == "{") p = key; else p = idx[d]
    return base[d] == "" ? p : base[d] "." p
}
function emit(v) { if (d > 0) print name() "\t" v; expect = 0 }
{ s = s $0 "\n" }
END {
    n = length(s); d = 0; i = 1
    while (i <= n) {
        c = substr(s, i, 1)
        if (c == "\"") {
            v = ""; j = i + 1
            while (j <= n) {
                ch = substr(s, j, 1)
                if (ch == "\\") {
                    nx = substr(s, j + 1, 1)
                    if (nx == "n" || nx == "t" || nx == "r") v = v " "
                    else if (nx == "u") v = v "\\u"
                    else v = v nx
                    j += 2; continue
                }
                if (ch == "\"") break
                v = v ch; j++
            }
            i = j + 1
            if (t[d] == "{" && !expect) key = v; else emit(v)
        } else if (c == ":") { expect = 1; i++ }
        else if (c == "{" || c == "[") {
            nb = d > 0 ? name() : ""
            d++; t[d] = c; base[d] = nb; idx[d] = 0; expect = 0; i++
        } else if (c == "}" || c == "]") { if (d > 0) d--; expect = 0; i++ }
        else if (c == ",") { if (t[d] == "[") idx[d]++; expect = 0; i++ }
        else if (c == " " || c == "\t" || c == "\n" || c == "\r") i++
        else {
            j = i
            while (j <= n && index(",}] \t\n\r", substr(s, j, 1)) == 0) j++
            emit(substr(s, i, j - i)); i = j
        }
    }
}'
}

# field FILE PATH: the value at PATH in a flattened file, or nothing.
field() { awk -F '\t' -v p="$2" '$1 == p { print $2; exit }' "$1"; }

# api METHOD PATH [BODY]: calls the agent; the reply lands in $TMP/reply
# (flattened) and the HTTP status is checked.
api() {
    set -- "$1" "$2" "${3:-}"
    if [ -n "$3" ]; then
        code=$(curl -sS --max-time 10 -o "$TMP/body" -w '%{http_code}' -X "$1" \
            -H 'Content-Type: application/json' --data "$3" "$AGENT$2") ||
            die 5 "cannot reach the agent API at $AGENT (is opengslb-agent running? see --agent)"
    else
        code=$(curl -sS --max-time 10 -o "$TMP/body" -w '%{http_code}' -X "$1" "$AGENT$2") ||
            die 5 "cannot reach the agent API at $AGENT (is opengslb-agent running? see --agent)"
    fi
    json_flat <"$TMP/body" >"$TMP/reply"
    if [ "$code" != 200 ]; then
        msg=$(field "$TMP/reply" error)
        die 1 "the agent refused $1 $2 (HTTP $code): ${msg:-$(dd bs=200 count=1 <"$TMP/body" 2>/dev/null)}"
    fi
}

now() { date +%s; }
pause() { sleep 0.2 2>/dev/null || sleep 1; }

# The drain source and reason, for messages.
why() {
    src=$(field "$TMP/reply" drain_source)
    rsn=$(field "$TMP/reply" drain_reason)
    printf 'source=%s reason=%s' "${src:-unknown}" "${rsn:-none}"
}

# backends: "service<TAB>address" per backend of the last reply, deduplicated.
backends() {
    awk -F '\t' '
        $1 ~ /^backends\.[0-9]+\.service$/ { split($1, a, "."); svc[a[2]] = $2 }
        $1 ~ /^backends\.[0-9]+\.address$/ { split($1, a, "."); adr[a[2]] = $2 }
        END { for (k in svc) if (k in adr) print svc[k] "\t" adr[k] }
    ' "$TMP/reply" | sort -u
}

# split_dns HOST:PORT: sets HOST and PORT ([v6]:port, v6, host, host:port).
split_dns() {
    case "$1" in
        \[*\]:*) HOST=${1#\[}; HOST=${HOST%%\]*}; PORT=${1##*\]:} ;;
        \[*\]) HOST=${1#\[}; HOST=${HOST%\]}; PORT=53 ;;
        *:*:*) HOST=$1; PORT=53 ;;
        *:*) HOST=${1%:*}; PORT=${1##*:} ;;
        *) HOST=$1; PORT=53 ;;
    esac
    case "$PORT" in
        '' | *[!0-9]*) die 2 "bad --dns '$1': expected HOST:PORT" ;;
    esac
    [ -n "$HOST" ] || die 2 "bad --dns '$1': expected HOST:PORT"
}

# still_answered: writes to $TMP/pending what is not yet confirmed gone;
# true when that list is not empty.
still_answered() {
    : >"$TMP/pending"
    old_ifs=$IFS
    IFS=,
    for server in $DNS_LIST; do
        IFS=$old_ifs
        [ -n "$server" ] || continue
        split_dns "$server"
        tab=$(printf '\t')
        while IFS=$tab read -r svc addr; do
            case "$addr" in *:*) qtype=AAAA ;; *) qtype=A ;; esac
            if out=$(dig +short +time=1 +tries=1 -p "$PORT" "@$HOST" "$svc" "$qtype" 2>&1); then
                if printf '%s\n' "$out" | grep -Fxq -- "$addr"; then
                    printf '%s still answers %s %s %s\n' "$server" "$svc" "$qtype" "$addr" >>"$TMP/pending"
                fi
            else
                printf '%s did not reply for %s %s (%s)\n' "$server" "$svc" "$qtype" \
                    "$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-120)" >>"$TMP/pending"
            fi
        done <"$TMP/backends"
    done
    IFS=$old_ifs
    [ -s "$TMP/pending" ]
}

# Reject a bad --dns now rather than after the drain was sent.
check_dns_list() {
    old_ifs=$IFS
    IFS=,
    for server in $DNS_LIST; do
        IFS=$old_ifs
        [ -z "$server" ] || split_dns "$server"
    done
    IFS=$old_ifs
}

json_string() {
    printf '%s' "$1" | tr '\n\t\r' '   ' | sed 's/\\/\\\\/g; s/"/\\"/g'
}

check_dns_list

if [ "$ACTION" = on ]; then
    if [ -n "$REASON" ]; then
        api POST /api/v1/agent/drain "{\"reason\": \"$(json_string "$REASON")\"}"
    else
        api POST /api/v1/agent/drain '{}'
    fi
    [ "$(field "$TMP/reply" draining)" = true ] ||
        die 1 "the agent accepted the drain but does not report draining"
    say "agent $(field "$TMP/reply" agent_id) draining ($(why))"
    [ "$WAIT" -eq 1 ] || exit 0

    api GET /api/v1/agent/status
    backends >"$TMP/backends"
    if [ ! -s "$TMP/backends" ]; then
        say "the agent reports no backends; nothing to wait for"
        exit 0
    fi
    deadline=$(($(now) + TIMEOUT))
    : >"$TMP/last_pending"
    while still_answered; do
        if [ "$(now)" -ge "$deadline" ]; then
            printf 'drain.sh: timed out after %ss waiting for DNS to drop the backends:\n' "$TIMEOUT" >&2
            sed 's/^/  /' "$TMP/pending" >&2
            exit 6
        fi
        cp "$TMP/pending" "$TMP/last_pending"
        pause
    done
    say "no DNS server answers the drained addresses any more ($DNS_LIST)"
    # With several Overwatches: which one dropped them last.
    if [ -s "$TMP/last_pending" ]; then
        say "last to drop them: $(awk '{ print $1 }' "$TMP/last_pending" | sort -u | tr '\n' ' ' | sed 's/ $//')"
    else
        say "every DNS server had dropped them at the first look"
    fi
else
    api DELETE /api/v1/agent/drain
    if [ "$(field "$TMP/reply" draining)" != true ]; then
        say "agent $(field "$TMP/reply" agent_id) no longer draining"
        exit 0
    fi
    [ "$WAIT" -eq 1 ] ||
        die 7 "operator drain lifted, but the agent still drains ($(why)); remove that cause"
    deadline=$(($(now) + TIMEOUT))
    while :; do
        if [ "$(now)" -ge "$deadline" ]; then
            die 6 "timed out after ${TIMEOUT}s: the agent still drains ($(why))"
        fi
        pause
        api GET /api/v1/agent/status
        if [ "$(field "$TMP/reply" draining)" != true ]; then
            say "agent $(field "$TMP/reply" agent_id) no longer draining"
            exit 0
        fi
    done
fi
