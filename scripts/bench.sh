#!/usr/bin/env bash
# Builds the release binaries and runs the benchmarks.
#   scripts/bench.sh                 collector, agent and metrics benchmarks (full size)
#   scripts/bench.sh collector ARGS  collector ingest and query (--quick, --help)
#   scripts/bench.sh agent ARGS      agent file pipeline, then 50 files idle and trickled next
#                                    to rsyslog, and triad up --demo (--quick, --mib N,
#                                    --window SECS, --only throughput|quiet|demo)
#   scripts/bench.sh metrics ARGS    metric store and PromQL next to Prometheus 2.42
#                                    (--quick, --series N, --rss-series N)
#   scripts/bench.sh objects ARGS    object-storage mode next to local disk on SeaweedFS
#                                    and PostgreSQL (--quick, --splits N, --rows N)
#   scripts/bench.sh scale-out ARGS  1, 2 and 3 collectors sharing one store: CPU per GB
#                                    and per million spans, fan-out search, agent fail-over
#                                    (--quick; needs the e2e test clients: scripts/test.sh)
#   scripts/bench.sh trace-ui ARGS   the trace page with 10k, 50k and 100k-span traces in
#                                    headless Chromium, streamed rows next to one document
#                                    (--sizes, --runs; needs the e2e test clients)
#   scripts/bench.sh security ARGS   ingest and query with tokens + mutual TLS next to
#                                    plain: server CPU per record and per query
#                                    (--seconds, --rounds; needs the e2e test clients)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-all}" = all ] || [ "${1:-all}" = agent ]; then
  if ! command -v rsyslogd >/dev/null; then
    echo "== installing rsyslog (the agent benchmark's reference log shipper)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends rsyslog >/dev/null
  fi
fi
cargo build --release --workspace --locked
case "${1:-all}" in
  collector) shift; exec target/release/triad-bench "$@" ;;
  agent) shift; exec target/release/triad-bench-agent "$@" ;;
  metrics) shift; exec target/release/triad-bench-metrics "$@" ;;
  objects) shift; exec target/release/triad-bench-objects "$@" ;;
  scale-out) shift; exec python3 scripts/bench-scale-out.py "$@" ;;
  trace-ui) shift; exec python3 scripts/bench-trace-ui.py "$@" ;;
  security) shift; exec python3 scripts/bench-security.py "$@" ;;
  all) shift || true
    target/release/triad-bench "$@"
    target/release/triad-bench-agent "$@"
    exec target/release/triad-bench-metrics "$@" ;;
  *) exec target/release/triad-bench "$@" ;;
esac
