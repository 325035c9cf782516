#!/usr/bin/env bash
# The test suite, with what it needs on a fresh machine: the wasm32-wasip2 target (the suite
# builds the guests itself) and a NATS server for the lattice's tests (the distribution's
# `nats-server`; each test starts its own on a free loopback port). Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >&2
if ! command -v nats-server >/dev/null && ! test -x /usr/sbin/nats-server; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq nats-server >&2
fi
cargo test --workspace "$@"
