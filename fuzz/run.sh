#!/usr/bin/env bash
# Runs every flexc fuzz target for a bounded time, one after another, at low
# priority, and prints executions / crashes per target. Seeds are generated
# first (testsuite/examples/fuzz_seeds.rs); crashes land in
# fuzz/artifacts/<target>/ and each becomes a case of the malformed corpus.
#
#   fuzz/run.sh [seconds-per-target] [target...]     (default 60 s, every target)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Built without a sanitizer (flexc is safe Rust; the unsafe parts are the JIT,
# not fuzzed here) but with debug assertions, so integer overflow panics.
set -euo pipefail
secs=${1:-60}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target} cargo run -q -p flexc-testsuite --example fuzz_seeds -- "$here/corpus" >/dev/null
cd "$here"
# The fuzz build has its own target dir (fuzz/target): a CARGO_TARGET_DIR
# meant for the workspace would mix nightly+coverage objects into it.
unset CARGO_TARGET_DIR
cargo +nightly fuzz build -s none -a >/dev/null 2>logs-build.txt || { cat logs-build.txt; exit 1; }
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
mkdir -p logs
printf '%-16s %10s %12s %8s %s\n' target seconds executions crashes corpus
for t in "${targets[@]}"; do
    mkdir -p "artifacts/$t" "corpus/$t"
    before=$(ls "artifacts/$t" | wc -l)
    # A crash stops libFuzzer: the summary line then reports the executions
    # before it (from the last status line) and the artifact count.
    # -rss_limit_mb / -malloc_limit_mb: an input that makes flexc allocate
    # more than 2 GiB is a finding (resource limits), as is one taking 10 s.
    nice -n 19 cargo +nightly fuzz run -s none -a "$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"logs/$t.log" 2>&1 || true
    execs=$( (grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" || true) | grep -o '[0-9]*$' | tail -1 || true)
    after=$(ls "artifacts/$t" | wc -l)
    if [ -z "${execs:-}" ]; then
        execs=$( (grep -o '^#[0-9]*' "logs/$t.log" || true) | tail -1 | tr -d '#')
    fi
    printf '%-16s %10s %12s %8s %s\n' "$t" "$secs" "${execs:-?}" "$((after - before))" "$(ls "corpus/$t" | wc -l)"
done
