#!/usr/bin/env bash
# The test suite, with what it needs on a fresh machine: the wasm32-wasip2 target (the suite
# builds the guests itself), a NATS server for the lattice's tests (the distribution's
# `nats-server`; each test starts its own on a free loopback port), and the toolchains that
# build the JavaScript and Python guests (npm and PyPI packages, pinned). Extra arguments go
# to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >&2
if ! command -v nats-server >/dev/null && ! test -x /usr/sbin/nats-server; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq nats-server >&2
fi
# The toolchains of the JavaScript and Python workers' tests, pinned: componentize-js by
# guest-js/package-lock.json, componentize-py (with hashes) by guest-py/requirements.txt.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "error: the JavaScript workers' tests need Node.js 18 or later (node and npm) on PATH" >&2
    exit 1
fi
if [ ! -x guest-js/node_modules/.bin/componentize-js ] || [ guest-js/package-lock.json -nt guest-js/node_modules/.package-lock.json ]; then
    npm ci --prefix guest-js --no-audit --no-fund --loglevel=error >&2
fi
if [ ! -x guest-py/.venv/bin/componentize-py ] || [ guest-py/requirements.txt -nt guest-py/.venv/installed ]; then
    python3 -m venv guest-py/.venv >&2
    guest-py/.venv/bin/pip install --quiet --disable-pip-version-check --require-hashes --only-binary :all: \
        -r guest-py/requirements.txt >&2
    touch guest-py/.venv/installed
fi
cargo test --workspace "$@"
