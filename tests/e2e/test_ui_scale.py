"""The UI with a million log lines stored: the first paint stays under a second and the
newest hits of a search over all of them show within a few seconds."""

import json
import time

from conftest import Triad, wait_until
from test_ui import browser, page  # noqa: F401  (fixtures)

LINES = 1_000_000


def test_first_paint_and_search_with_a_million_lines(tmp_path, page):  # noqa: F811
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "big.log", "w") as f:
        for i in range(LINES):
            f.write(json.dumps({"level": "error" if i % 50 == 0 else "info", "msg": f"request {i} served in {i % 997} ms",
                                "service": f"svc-{i % 7}", "trace_id": f"{i + 1:032x}"}) + "\n")
    cfg = tmp_path / "triad.yaml"
    cfg.write_text(f"agent:\n  include: ['{logs}/*.log']\n")
    t = Triad(tmp_path / "data", config=cfg).start()
    try:
        wait_until("a million lines indexed",
                   lambda: t.get("/api/logs/search", q="", start="0", limit="1")["total"] >= LINES, timeout=600, interval=1)
        started = time.monotonic()
        page.goto(f"{t.query}/logs?q=served&start=now-1h")
        page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
        first_paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
        page.locator("ol[aria-label='Log lines'] > li").first.wait_for()
        hits_after = time.monotonic() - started
        summary = page.locator(".summary").inner_text()
        print(f"1M lines: first paint {first_paint:.0f} ms, hits after {hits_after:.2f} s ({summary})")
        assert first_paint < 1000, first_paint
        assert "1,000,000" in summary, summary
        assert page.locator("ol[aria-label='Log lines'] > li").count() == 200
        assert hits_after < 10, hits_after
    finally:
        t.stop()
