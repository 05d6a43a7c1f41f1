#!/usr/bin/env bash
# Runs every ShardFusion test: Rust unit and integration tests (real in-process clusters and
# the .slt suite), then the Python ADBC tests against real `shardfusion` processes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shardfusion/target}"

echo "== installing Python test dependencies"
python3 -m pip install --quiet --disable-pip-version-check \
    pytest pyarrow adbc-driver-manager adbc-driver-flightsql

echo "== checking formatting"
cargo fmt --all -- --check

echo "== building"
cargo build --workspace --all-targets --locked

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi

echo "== Python ADBC tests"
SHARDFUSION_BIN="$CARGO_TARGET_DIR/debug/shardfusion" python3 -m pytest -q tests/python
