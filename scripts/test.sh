#!/usr/bin/env bash
# Runs every test of Triad on a fresh machine: installs the real clients the
# end-to-end tests drive, checks formatting and lints, runs the Rust tests, then the
# end-to-end tests against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test clients (OpenTelemetry SDK, pytest)"
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked

echo "== building the triad binary (the steps below run it)"
cargo build --workspace --locked

echo "== example configurations pass check-config"
for f in deploy/config/*.yaml; do
  ./target/debug/triad check-config "$f"
done

echo "== end-to-end tests (real binary, real OpenTelemetry SDK)"
TRIAD_BIN="$PWD/target/debug/triad" python3 -m pytest -q tests/e2e
