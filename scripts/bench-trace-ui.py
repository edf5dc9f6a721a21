#!/usr/bin/env python3
"""The trace page with very large traces, in headless Chromium against a release
`triad up`: for traces of 10k, 50k and 100k spans (sent over OTLP), the time to the
first rows, the time until every row has arrived, the bytes transferred and the JS heap
after load (after a garbage collection) — streamed as rows (`/api/traces/{id}/rows`,
today's page) next to the same trace loaded as one document (`/api/correlate/{id}`,
parsed and laid out, as the page did before), measured in the same run.

    scripts/bench.sh trace-ui [--sizes 10000,50000,100000] [--runs 3]

Needs the e2e test clients (scripts/test.sh installs them) and a release build
(scripts/bench.sh builds it)."""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TRIAD_BIN", str(ROOT / "target" / "release" / "triad"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from big_trace import send_big_trace, stored_spans  # noqa: E402
from conftest import Triad, wait_until  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Today's way before the streamed page: one document, parsed, then laid out as a tree
# (children by start time, depth first) — what the page did before the first row.
ONE_DOCUMENT = """async (id) => {
  const t0 = performance.now();
  const r = await fetch(`/api/correlate/${id}`);
  const doc = await r.json();
  const spans = doc.trace.spans;
  const byId = new Map(spans.map((s) => [s.spanID, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    const p = s.references.find((x) => x.refType === "CHILD_OF" && byId.has(x.spanID))?.spanID;
    if (p) { if (!children.has(p)) children.set(p, []); children.get(p).push(s); } else roots.push(s);
  }
  for (const l of children.values()) l.sort((a, b) => a.startTime - b.startTime);
  const rows = [];
  const stack = roots.map((r) => [r, 0]);
  while (stack.length) {
    const [s, d] = stack.pop();
    rows.push({ s, d });
    const k = children.get(s.spanID) ?? [];
    for (let i = k.length - 1; i >= 0; i--) stack.push([k[i], d + 1]);
  }
  window.__keep = { doc, rows };
  return performance.now() - t0;
}"""


def transferred(page, fragment):
    return page.evaluate(
        "(f) => performance.getEntriesByType('resource').filter((e) => e.name.includes(f))"
        ".reduce((a, e) => a + (e.transferSize || e.encodedBodySize), 0)", fragment)


def heap_mib(page):
    cdp = page.context.new_cdp_session(page)
    cdp.send("HeapProfiler.collectGarbage")
    used = cdp.send("Runtime.getHeapUsage")["usedSize"]
    cdp.detach()
    return used / 2**20


def measure_streamed(browser, t, trace_id, n):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    started = time.monotonic()
    page.goto(f"{t.query}/traces/{trace_id}")
    page.locator("[role=treeitem]").first.wait_for(timeout=120_000)
    first = time.monotonic() - started
    page.get_by_label("Span count").get_by_text(f"{n:,} spans").wait_for(timeout=300_000)
    loaded = time.monotonic() - started
    out = (first, loaded, transferred(page, "/rows"), heap_mib(page), page.locator("[role=treeitem]").count())
    ctx.close()
    return out


def measure_one_document(browser, t, trace_id):
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{t.query}/healthz")
    took = page.evaluate(ONE_DOCUMENT, trace_id) / 1000
    out = (took, took, transferred(page, "/api/correlate/"), heap_mib(page))
    ctx.close()
    return out


def main():
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,50000,100000")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        t = Triad(Path(tmp) / "data").start()
        try:
            for n in sizes:
                trace_id, _ = send_big_trace(t, n)
                wait_until(f"{n} spans stored", lambda: stored_spans(t, trace_id) == n, timeout=300, interval=1)
                # One warm-up of each, so both read the trace from a warm store.
                measure_streamed(browser, t, trace_id, n)
                measure_one_document(browser, t, trace_id)
                streamed = [measure_streamed(browser, t, trace_id, n) for _ in range(args.runs)]
                whole = [measure_one_document(browser, t, trace_id) for _ in range(args.runs)]
                med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
                rows.append((n, "streamed rows (today)", med(streamed, 0), med(streamed, 1), med(streamed, 2),
                             med(streamed, 3), f"{med(streamed, 4):.0f} rows in the DOM"))
                rows.append((n, "one document (before)", med(whole, 0), med(whole, 1), med(whole, 2),
                             med(whole, 3), "parsed and laid out, not rendered"))
                print(f"{n} spans: streamed first rows {med(streamed, 0):.2f} s, loaded {med(streamed, 1):.2f} s; "
                      f"one document {med(whole, 1):.2f} s", flush=True)
        finally:
            t.stop()
            browser.close()
    print("\n| spans | how | first rows | fully loaded | transferred | JS heap after load | notes |")
    print("|---|---|---|---|---|---|---|")
    for n, how, first, loaded, size, heap, note in rows:
        print(f"| {n:,} | {how} | {first:.2f} s | {loaded:.2f} s | {size / 2**20:.1f} MiB | {heap:.0f} MiB | {note} |")


if __name__ == "__main__":
    main()
