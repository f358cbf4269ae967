#!/bin/sh
# Removes what scripts/install.sh installed: binaries, units, man pages,
# docs and examples, as listed in its manifest. Keeps /etc/opengslb (your
# configs) and /var/lib/opengslb (overrides, pins, audit log, agent
# identity) unless --purge is given; --purge also removes the opengslb user.
#
# Usage: uninstall.sh [--purge]
# Environment: PREFIX and DESTDIR as given to install.sh.
# Exit status: 0 removed (or nothing to remove), 1 failed, 2 bad usage.
set -eu

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

PURGE=0
for arg in "$@"; do
    case "$arg" in
        --purge) PURGE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "uninstall.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
MANIFEST=$DESTDIR$PREFIX/share/opengslb/install-manifest
USER_NAME=opengslb

say() { printf 'uninstall.sh: %s\n' "$*"; }
die() { printf 'uninstall.sh: error: %s\n' "$*" >&2; exit 1; }

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    die "removing from the live system needs root (run with sudo), or set DESTDIR"
fi

live_systemd() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; }

if live_systemd; then
    for unit in opengslb-overwatch.service opengslb-agent.service; do
        if systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; then
            systemctl disable --now "$unit" && say "stopped and disabled $unit"
        fi
    done
fi

# What to remove: the manifest, or the fixed list when it is missing (an
# install made by an older script or by hand).
if [ -f "$MANIFEST" ]; then
    list=$(cat "$MANIFEST")
else
    say "no manifest at $MANIFEST; removing the standard files"
    list="$PREFIX/bin/opengslb
$PREFIX/bin/opengslb-cli
$PREFIX/bin/opengslb-drain
/etc/systemd/system/opengslb-overwatch.service
/etc/systemd/system/opengslb-agent.service
$PREFIX/share/man/man1/opengslb-cli.1
$PREFIX/share/man/man5/opengslb.yaml.5
$PREFIX/share/man/man8/opengslb.8
$PREFIX/share/doc/opengslb/opengslb-alerts.yml"
fi

removed=0
old_ifs=$IFS
IFS='
'
for rel in $list; do
    case "$rel" in
        /*) ;;
        *) say "skipping odd manifest line: $rel"; continue ;;
    esac
    path=$DESTDIR$rel
    if [ -e "$path" ] || [ -L "$path" ]; then
        rm -f -- "$path"
        say "removed $path"
        removed=1
    fi
done
IFS=$old_ifs

# Folders that only OpenGSLB used, removed when empty.
for dir in "$DESTDIR$PREFIX/share/doc/opengslb/examples" \
    "$DESTDIR$PREFIX/share/doc/opengslb" \
    "$DESTDIR$PREFIX/share/opengslb"; do
    if [ -d "$dir" ]; then rmdir -- "$dir" 2>/dev/null || say "kept non-empty $dir"; fi
done

if [ "$PURGE" -eq 1 ]; then
    for dir in "$DESTDIR/etc/opengslb" "$DESTDIR/var/lib/opengslb" "$DESTDIR/run/opengslb"; do
        if [ -d "$dir" ]; then
            rm -rf -- "$dir"
            say "purged $dir"
        fi
    done
    if [ -z "$DESTDIR" ] && id "$USER_NAME" >/dev/null 2>&1; then
        if command -v userdel >/dev/null 2>&1; then
            userdel "$USER_NAME" && say "removed user $USER_NAME"
            if grep -q "^$USER_NAME:" /etc/group && command -v groupdel >/dev/null 2>&1; then
                groupdel "$USER_NAME" && say "removed group $USER_NAME"
            fi
        else
            deluser "$USER_NAME" && say "removed user $USER_NAME"
        fi
    fi
else
    say "kept $DESTDIR/etc/opengslb and $DESTDIR/var/lib/opengslb (use --purge to remove them)"
fi

if live_systemd && [ "$removed" -eq 1 ]; then systemctl daemon-reload; fi
[ "$removed" -eq 1 ] || say "nothing to remove"
