#!/usr/bin/env bash
# Runs each fuzz target (fuzz/) for a bounded time, on the machine's stable toolchain:
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz's nightly flags through. Usage: scripts/fuzz.sh [SECONDS]
# (per target, default 60). The corpus grows in fuzz/corpus/<target> (ignored by git); a
# crashing input lands in fuzz/artifacts/<target> and fails the script.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup target add wasm32-wasip2 >&2
export RUSTC_BOOTSTRAP=1

for target in manifest message host_calls; do
    seeds=seeds/${target//_/-}
    mkdir -p "corpus/$target"
    before=$(find "corpus/$target" -type f | wc -l)
    # No sanitizer: the host is safe Rust but for a few audited `unsafe` blocks, and coverage
    # alone finds the panics and broken invariants the targets assert.
    cargo fuzz run --sanitizer none "$target" "corpus/$target" "$seeds" -- \
        -max_total_time="$seconds" -timeout=120 -rss_limit_mb=8192 -print_final_stats=1 2> "corpus/$target.log" \
        || { tail -40 "corpus/$target.log"; echo "fuzz target $target failed: see fuzz/artifacts/$target" >&2; exit 1; }
    after=$(find "corpus/$target" -type f | wc -l)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "corpus/$target.log" | grep -o '[0-9]*$' || echo "?")
    echo "$target: $runs runs in ${seconds}s, corpus $before -> $after inputs"
done
