#!/usr/bin/env python3
"""Refreshes the README's screenshots (docs/images/*.png) from the real UI: starts
`triad up --demo` (debug build; `cargo build` first), waits for the simulated services'
traffic and faults, and photographs a failing trace with its span's log line, the
services page and the alerts page in headless Chromium at 1440x860.

    python3 scripts/screenshots.py
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from conftest import Triad, wait_until  # noqa: E402


def main():
    from playwright.sync_api import sync_playwright

    out = ROOT / "docs" / "images"
    with tempfile.TemporaryDirectory() as tmp:
        t = Triad(Path(tmp) / "data", args=["--demo"]).start()
        try:
            # A failing server span with a log line of its own.
            def failing():
                r = t.get("/api/logs/search", q="level:error", start="0", limit="50")
                return next((h for h in r["hits"] if h.get("trace_id") and h.get("span_id")), None)

            hit = wait_until("a failing request's log line", failing, timeout=180, interval=1)
            wait_until("an alert firing", lambda: any(a["state"] == "firing" for a in
                                                      t.get("/api/v1/alerts")["data"]["alerts"]),
                       timeout=600, interval=2)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                             args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1440, "height": 860})
                page.goto(f"{t.query}/traces/{hit['trace_id']}?span={hit['span_id']}")
                page.get_by_label("Span details").locator("ol[aria-label='Span log lines'] > li").first.wait_for()
                time.sleep(0.5)
                page.screenshot(path=str(out / "trace.png"))
                page.goto(f"{t.query}/services?start=now-15m")
                page.get_by_label("Service dependency graph").wait_for()
                time.sleep(1)
                page.screenshot(path=str(out / "services.png"))
                page.goto(f"{t.query}/alerts")
                page.get_by_role("button", name="Evidence").first.click()
                time.sleep(2)
                page.screenshot(path=str(out / "alerts.png"))
                browser.close()
        finally:
            t.stop()
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main()
