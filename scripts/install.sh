#!/bin/sh
# Installs OpenGSLB: binaries, systemd units, man pages, example configs,
# alert rules, and the service user and directories. Safe to run again: a
# second run changes nothing, and an existing config is never overwritten
# (the shipped one lands beside it as NAME.yaml.dist).
#
# Environment:
#   PREFIX      install prefix (default /usr/local)
#   DESTDIR     staging root for packagers (default empty: the live system);
#               with DESTDIR no user is created, no ownership is set and
#               systemd is not told
#   BINDIR_SRC  folder holding pre-built opengslb and opengslb-cli
#               (default ${CARGO_TARGET_DIR:-./target}/release, built with
#               `cargo build --release` when a binary is missing)
#   CONFIG_SRC  folder holding the shipped configs (default ./etc/opengslb)
#
# Exit status: 0 installed (or already up to date), 1 failed, 2 bad usage.
set -eu

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

SRC=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
CONFIG_SRC=${CONFIG_SRC:-$SRC/etc/opengslb}
USER_NAME=opengslb
MANIFEST_REL=$PREFIX/share/opengslb/install-manifest
CHANGED=0

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
# Ownership and the user are set only on the live system, as root.
live_root() { [ -z "$DESTDIR" ] && is_root; }

if [ -z "$DESTDIR" ] && ! is_root; then
    die "installing into the live system needs root (run with sudo), or set DESTDIR to stage"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/opengslb-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
: >"$TMP/manifest"

# mkdir_mode DIR MODE [OWNER:GROUP]
mkdir_mode() {
    if [ ! -d "$1" ]; then
        mkdir -p "$1"
        say "created $1"
        CHANGED=1
    fi
    chmod "$2" "$1"
    if [ -n "${3:-}" ] && live_root; then chown "$3" "$1"; fi
}

# put SRC DEST MODE [OWNER:GROUP]: copies when the content differs, through a
# temporary file and a rename so a running binary is never written in place.
put() {
    parent=$(dirname -- "$2")
    if [ ! -d "$parent" ]; then
        mkdir -p "$parent"
        CHANGED=1
    fi
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        chmod "$3" "$2"
    else
        cp "$1" "$2.tmp.$$"
        chmod "$3" "$2.tmp.$$"
        mv -f "$2.tmp.$$" "$2"
        say "installed $2"
        CHANGED=1
    fi
    if [ -n "${4:-}" ] && live_root; then chown "$4" "$2"; fi
}

# record DEST: a file uninstall.sh may remove (path without DESTDIR).
record() { printf '%s\n' "${1#"$DESTDIR"}" >>"$TMP/manifest"; }

ensure_user() {
    if [ -n "$DESTDIR" ]; then
        say "DESTDIR is set: not creating the $USER_NAME user (the package must)"
        return
    fi
    if id "$USER_NAME" >/dev/null 2>&1; then return; fi
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    [ -x "$nologin" ] || nologin=/bin/false
    if command -v useradd >/dev/null 2>&1; then
        if grep -q "^$USER_NAME:" /etc/group; then group_flag="-g $USER_NAME"; else group_flag=-U; fi
        # shellcheck disable=SC2086 # group_flag is two words on purpose
        useradd --system $group_flag --home-dir /var/lib/opengslb --no-create-home \
            --shell "$nologin" --comment "OpenGSLB daemon" "$USER_NAME"
    elif command -v adduser >/dev/null 2>&1; then
        # BusyBox (Alpine) syntax.
        grep -q "^$USER_NAME:" /etc/group || addgroup -S "$USER_NAME"
        adduser -S -D -H -h /var/lib/opengslb -s "$nologin" -G "$USER_NAME" "$USER_NAME"
    else
        die "neither useradd nor adduser found: create the system user $USER_NAME yourself"
    fi
    say "created system user and group $USER_NAME"
    CHANGED=1
}

find_binaries() {
    if [ -n "${BINDIR_SRC:-}" ]; then
        for b in opengslb opengslb-cli; do
            [ -x "$BINDIR_SRC/$b" ] || die "BINDIR_SRC=$BINDIR_SRC has no executable $b"
        done
        return
    fi
    BINDIR_SRC=${CARGO_TARGET_DIR:-$SRC/target}/release
    if [ ! -x "$BINDIR_SRC/opengslb" ] || [ ! -x "$BINDIR_SRC/opengslb-cli" ]; then
        command -v cargo >/dev/null 2>&1 ||
            die "no binaries in $BINDIR_SRC and no cargo to build them (set BINDIR_SRC)"
        say "building release binaries (cargo build --release)"
        (cd "$SRC" && cargo build --release --locked) || die "cargo build --release failed"
    fi
}

install_configs() {
    etc=$DESTDIR/etc/opengslb
    mkdir_mode "$etc" 0750 "root:$USER_NAME"
    found=0
    for src in "$CONFIG_SRC"/*.yaml; do
        [ -f "$src" ] || continue
        found=1
        name=$(basename -- "$src")
        dst=$etc/$name
        if [ ! -e "$dst" ]; then
            put "$src" "$dst" 0640 "root:$USER_NAME"
        elif cmp -s "$src" "$dst"; then
            : # already the shipped file
        else
            # Never overwrite an operator's file; offer the new one beside it.
            if [ ! -f "$dst.dist" ] || ! cmp -s "$src" "$dst.dist"; then
                put "$src" "$dst.dist" 0640 "root:$USER_NAME"
                say "kept your $dst; the shipped version is $dst.dist"
            fi
        fi
        # Whatever happened, a config must not be world-readable: the daemon
        # refuses to start with one.
        if [ -n "$(find "$dst" -prune -perm -004)" ]; then
            chmod o-rwx "$dst"
            say "$dst was world-readable; removed the access of others"
            CHANGED=1
        fi
    done
    [ "$found" -eq 1 ] || say "warning: no shipped configs in $CONFIG_SRC"
}

install_units() {
    units=$DESTDIR/etc/systemd/system
    for src in "$SRC"/systemd/*.service; do
        [ -f "$src" ] || continue
        name=$(basename -- "$src")
        sed "s#/usr/local/bin/#$PREFIX/bin/#g" "$src" >"$TMP/$name"
        put "$TMP/$name" "$units/$name" 0644
        record "$units/$name"
    done
}

install_man() {
    for src in "$SRC"/man/*.[158]; do
        [ -f "$src" ] || continue
        section=${src##*.}
        dst=$DESTDIR$PREFIX/share/man/man$section/$(basename -- "$src")
        put "$src" "$dst" 0644
        record "$dst"
    done
}

install_docs() {
    doc=$DESTDIR$PREFIX/share/doc/opengslb
    for src in "$CONFIG_SRC"/examples/*; do
        [ -f "$src" ] || continue
        dst=$doc/examples/$(basename -- "$src")
        put "$src" "$dst" 0644
        record "$dst"
    done
    if [ -f "$SRC/etc/prometheus/opengslb-alerts.yml" ]; then
        put "$SRC/etc/prometheus/opengslb-alerts.yml" "$doc/opengslb-alerts.yml" 0644
        record "$doc/opengslb-alerts.yml"
    fi
}

find_binaries
ensure_user

bindir=$DESTDIR$PREFIX/bin
for b in opengslb opengslb-cli; do
    put "$BINDIR_SRC/$b" "$bindir/$b" 0755
    record "$bindir/$b"
done
put "$SRC/scripts/drain.sh" "$bindir/opengslb-drain" 0755
record "$bindir/opengslb-drain"

install_configs
mkdir_mode "$DESTDIR/var/lib/opengslb" 0750 "$USER_NAME:$USER_NAME"
install_units
install_man
install_docs

# The manifest lists what uninstall.sh removes; it records itself too.
record "$DESTDIR$MANIFEST_REL"
put "$TMP/manifest" "$DESTDIR$MANIFEST_REL" 0644

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    if [ "$CHANGED" -eq 1 ]; then systemctl daemon-reload; fi
    say "enable with: systemctl enable --now opengslb-overwatch.service (or opengslb-agent.service)"
fi
if [ "$CHANGED" -eq 0 ]; then say "everything already up to date"; else say "done"; fi
