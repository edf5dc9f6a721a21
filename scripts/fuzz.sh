#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, each from its checked-in seeds
# (fuzz/seeds/<target>) plus the working corpus it grows (fuzz/corpus/<target>, not
# tracked).
#
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]
#
# Needs the nightly toolchain and cargo-fuzz (installed here when missing): libFuzzer's
# coverage instrumentation and the sanitizers are nightly-only, and building the targets
# with them rebuilds the whole dependency tree (several minutes on 2 cores), which is why
# the test command does not run this; the parsers' property tests run there on stable
# instead (docs/security.md). A crash stops the run with the input saved
# under fuzz/artifacts/<target>/; turn it into a regression test named after the
# artifact, next to the code that crashed, then fix the code.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
shift || true
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

printf '%-16s %10s %12s %8s\n' target seconds executions result
failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    log="fuzz/artifacts/$t.log"
    mkdir -p fuzz/artifacts
    if (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
            -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -timeout=10) >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        failed+=("$t")
    fi
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
    printf '%-16s %10s %12s %8s\n' "$t" "$SECONDS_PER_TARGET" "$runs" "$result"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashes in: ${failed[*]} (inputs under fuzz/artifacts/, logs in fuzz/artifacts/<target>.log)" >&2
    exit 1
fi
