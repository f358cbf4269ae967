#!/bin/sh
# Runs the cargo-fuzz targets of fuzz/ one after the other.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS is the time per target (default 60); with no TARGET every target
# runs. cargo-fuzz is installed with `cargo install cargo-fuzz` if missing;
# libFuzzer needs nightly-only rustc flags, so RUSTC_BOOTSTRAP=1 lets a
# stable toolchain build it. Each run grows fuzz/corpus/<target>/, writes
# a crash reproducer to fuzz/artifacts/<target>/ and its log to
# fuzz/artifacts/logs/<target>.log (both ignored by git). At the end a
# table gives per target: executions, exec/s, coverage (cov, ft), corpus
# size and result. Exit status 1 if any target crashed.
#
# Environment: FUZZ_TARGET_DIR passes --target-dir to cargo fuzz. One
# libFuzzer process runs at a time (the build machines are shared).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

seconds=60
case "${1:-}" in
'' | *[!0-9]*) ;;
*)
	seconds=$1
	shift
	;;
esac

if [ "$#" -eq 0 ]; then
	set -- dns_query dns_edns_options gossip_frame_raw gossip_frame_decrypted config_yaml api_body api_slow peer_sync
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz.sh: installing cargo-fuzz" >&2
	cargo install cargo-fuzz
fi

RUSTC_BOOTSTRAP=1
export RUSTC_BOOTSTRAP

target_dir_opt=
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
	target_dir_opt="--target-dir=$FUZZ_TARGET_DIR"
fi

logs="$root/fuzz/artifacts/logs"
mkdir -p "$logs"
summary="$logs/summary.txt"
printf '%-24s %12s %8s %6s %7s %7s %s\n' \
	target executions exec/s cov ft corpus result >"$summary"

# The value after `key:` in the last line of the log that has it.
last_field() {
	grep -E "(^|[[:space:]])$2:" "$1" | tail -n 1 |
		sed -E "s/.*(^|[[:space:]])$2:[[:space:]]*([^[:space:]]+).*/\\2/"
}

failed=0
for target in "$@"; do
	log="$logs/$target.log"
	echo "fuzz.sh: $target for ${seconds}s (log: $log)" >&2
	mkdir -p "corpus/$target"
	result=ok
	# shellcheck disable=SC2086 # target_dir_opt is empty or one word
	if ! cargo fuzz run $target_dir_opt "$target" -- \
		-max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
		result=CRASH
		failed=1
	fi
	execs=$(last_field "$log" 'stat::number_of_executed_units')
	rate=$(last_field "$log" 'stat::average_exec_per_sec')
	cov=$(last_field "$log" cov)
	ft=$(last_field "$log" ft)
	files=$(find "corpus/$target" -type f | wc -l | tr -d ' ')
	printf '%-24s %12s %8s %6s %7s %7s %s\n' "$target" "${execs:-?}" \
		"${rate:-?}" "${cov:-?}" "${ft:-?}" "$files" "$result" >>"$summary"
	if [ "$result" = CRASH ]; then
		grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" >&2 || true
	fi
done

cat "$summary"
exit "$failed"
