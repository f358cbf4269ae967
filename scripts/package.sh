#!/bin/sh
# Builds the Debian package target/debian/opengslb_<version>-1_amd64.deb
# with cargo-deb from the [package.metadata.deb] section of Cargo.toml,
# reproducibly, and prints the SHA-256 of the binaries and the package.
#
# Usage: scripts/package.sh [--lintian]
#   --lintian  also run lintian on the package; exit non-zero on an error
#
# Reproducible: the same commit gives the same bytes, whatever the checkout
# path, user or time (docs/packaging.md says why):
#   SOURCE_DATE_EPOCH  the last commit's time, for every timestamp cargo-deb
#                      writes (tar members, gzip headers)
#   --remap-path-prefix  the checkout and cargo home paths in panic messages
#                      and debug info become /build/opengslb and /cargo
#   --locked           the dependency versions of Cargo.lock, nothing newer
#   gzip -9n           man pages without name or time in the gzip header
# Needs: cargo, git, gzip, dpkg-deb; cargo-deb is installed (cargo install cargo-deb
# --locked) when missing.
set -eu

cd "$(dirname "$0")/.."
SRC=$(pwd)
LINTIAN=0
for arg in "$@"; do
    case "$arg" in
        --lintian) LINTIAN=1 ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "package.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "package.sh: installing cargo-deb (cargo install cargo-deb --locked)"
    cargo install cargo-deb --locked
fi

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export SOURCE_DATE_EPOCH
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$SRC=/build/opengslb --remap-path-prefix=$CARGO_HOME_DIR=/cargo"
export RUSTFLAGS
# Reproducible archives whatever the caller's umask.
umask 022

cargo build --release --locked --bins

# Files cargo-deb takes from target/package/ (see Cargo.toml).
STAGE=target/package
rm -rf "$STAGE"
mkdir -p "$STAGE/systemd" "$STAGE/man" "$STAGE/completions"
for which in overwatch agent; do
    # Binaries live in /usr/bin in the package, and a unit refuses to start
    # on the configuration exactly as shipped.
    sed -e 's#/usr/local/bin/#/usr/bin/#g' \
        -e 's#^\# Installed by scripts/install.sh#\# Installed by the opengslb Debian package#' \
        -e 's#scripts/install.sh creates it#the package creates it#' \
        -e "s#^ExecStart=#ExecStartPre=/usr/lib/opengslb/opengslb-check-edited $which\nExecStart=#" \
        "systemd/opengslb-$which.service" >"$STAGE/systemd/opengslb-$which.service"
done
for page in man/*.[158]; do
    gzip -9nc "$page" >"$STAGE/man/$(basename "$page").gz"
done
CLI=target/release/opengslb-cli
"$CLI" completion bash >"$STAGE/completions/opengslb-cli"
"$CLI" completion zsh >"$STAGE/completions/_opengslb-cli"
"$CLI" completion fish >"$STAGE/completions/opengslb-cli.fish"
touch -d "@$SOURCE_DATE_EPOCH" "$STAGE"/*/*

DEB=$(cargo deb --no-build --locked --strip --output target/debian/ | tail -n 1)
echo "package.sh: built $DEB"
echo "SHA-256 (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH):"
sha256sum target/release/opengslb target/release/opengslb-cli "$DEB"
# The stripped binaries as installed, read from the package itself.
for b in opengslb opengslb-cli; do
    sum=$(dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - "./usr/bin/$b" | sha256sum | cut -d' ' -f1)
    echo "$sum  $DEB:/usr/bin/$b"
done

if [ "$LINTIAN" -eq 1 ]; then
    command -v lintian >/dev/null 2>&1 || { echo "package.sh: lintian is not installed (apt-get install lintian)" >&2; exit 1; }
    # Errors fail the build; warnings are printed for a human to read.
    lintian --fail-on error --no-tag-display-limit "$DEB"
    echo "package.sh: lintian reports no errors"
fi
