#!/usr/bin/env bash
# Builds the release binaries and runs the benchmark; arguments go to triad-bench
# (--quick for a smoke run, --help for the sizes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --locked
exec target/release/triad-bench "$@"
