#!/usr/bin/env bash
# Chaos soak (scripts/soak.py): `scripts/soak.sh [minutes]`, default 30. The test command
# runs a 3-minute one. Builds the binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
exec python3 scripts/soak.py "${1:-30}"
