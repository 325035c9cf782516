#!/usr/bin/env bash
# The main job: build the bundled guests and the CLI, then run the worker graph of the
# chapter's delegation example (10.1.2.5, graphs/delegation.toml): a worker farms the numbers
# below 10,000,000 out to ten sub-workers, each counting the primes in its range, and reports
# the total (664579). Extra arguments go to `wasm-workers run` (try --stats).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >&2
cargo build --release --target wasm32-wasip2 --manifest-path guests/Cargo.toml --target-dir target/guests >&2
cargo build -p wasm-workers >&2

echo '{"n": 10000000, "k": 10}' | target/debug/wasm-workers run graphs/delegation.toml "$@"
