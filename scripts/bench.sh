#!/usr/bin/env bash
# Builds the release binaries and runs the benchmarks.
#   scripts/bench.sh                 collector, then agent benchmark (full size)
#   scripts/bench.sh collector ARGS  collector ingest and query (--quick, --help)
#   scripts/bench.sh agent ARGS      agent file pipeline (--quick, --mib N)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --locked
case "${1:-all}" in
  collector) shift; exec target/release/triad-bench "$@" ;;
  agent) shift; exec target/release/triad-bench-agent "$@" ;;
  all) shift || true; target/release/triad-bench "$@"; exec target/release/triad-bench-agent "$@" ;;
  *) exec target/release/triad-bench "$@" ;;
esac
