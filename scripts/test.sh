#!/usr/bin/env bash
# Runs every ShardFusion test: Rust unit and integration tests (real in-process clusters and
# the .slt suite), the Python ADBC tests against real `shardfusion` processes, then the Python
# bindings: `pip install ./python` into a virtualenv, their pytest suite, and the quickstart
# notebook executed headless.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shardfusion/target}"

echo "== installing Python test dependencies"
python3 -m pip install --quiet --disable-pip-version-check \
    pytest pyarrow pandas adbc-driver-manager adbc-driver-flightsql 'moto[server]'

echo "== checking formatting"
cargo fmt --all -- --check

echo "== building"
cargo build --workspace --all-targets --locked

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi

echo "== Python ADBC tests"
SHARDFUSION_BIN="$CARGO_TARGET_DIR/debug/shardfusion" python3 -m pytest -q tests/python

echo "== Python bindings (pip install ./python into a virtualenv)"
VENV="${SHARDFUSION_VENV:-$CARGO_TARGET_DIR/python-venv}"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    pytest pyarrow pandas polars duckdb adbc-driver-manager adbc-driver-flightsql \
    nbclient nbformat ipykernel matplotlib
# The dev profile, whose artifacts `cargo build` made above; users get the release profile.
MATURIN_PEP517_ARGS="--profile dev" \
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
"$VENV/bin/python" -m pytest -q python/tests
"$VENV/bin/python" scripts/run_notebook.py python/examples/quickstart.ipynb
