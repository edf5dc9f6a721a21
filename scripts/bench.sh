#!/usr/bin/env bash
# Builds the release binaries and runs the benchmarks.
#   scripts/bench.sh                 collector, agent and metrics benchmarks (full size)
#   scripts/bench.sh collector ARGS  collector ingest and query (--quick, --help)
#   scripts/bench.sh agent ARGS      agent file pipeline (--quick, --mib N)
#   scripts/bench.sh metrics ARGS    metric store and PromQL next to Prometheus 2.42
#                                    (--quick, --series N, --rss-series N)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --locked
case "${1:-all}" in
  collector) shift; exec target/release/triad-bench "$@" ;;
  agent) shift; exec target/release/triad-bench-agent "$@" ;;
  metrics) shift; exec target/release/triad-bench-metrics "$@" ;;
  all) shift || true
    target/release/triad-bench "$@"
    target/release/triad-bench-agent "$@"
    exec target/release/triad-bench-metrics "$@" ;;
  *) exec target/release/triad-bench "$@" ;;
esac
