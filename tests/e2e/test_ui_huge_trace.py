"""A 100,000-span trace in the trace page (headless Chromium, real `triad up`, spans over
OTLP): the first rows show before the trace has arrived, the DOM holds only the rows in
view, a click is answered at once while rows load, large subtrees start collapsed and
expand, and a span 40 levels deep inside a collapsed subtree is found by the in-trace
search and revealed."""

import re
import time

from big_trace import CHAIN, send_big_trace, stored_spans
from conftest import Triad, wait_until
from test_ui import SHOTS, browser, page  # noqa: F401  (fixtures)

SPANS = 100_000


def test_a_100k_span_trace_opens_at_once(tmp_path, page):  # noqa: F811
    t = Triad(tmp_path / "data").start()
    try:
        trace_id, needle = send_big_trace(t, SPANS)
        wait_until("the whole trace stored", lambda: stored_spans(t, trace_id) == SPANS, timeout=120, interval=1)

        started = time.monotonic()
        page.goto(f"{t.query}/traces/{trace_id}")
        rows = page.locator("[role=treeitem]")
        rows.first.wait_for()
        first_rows = time.monotonic() - started
        # A click answered while the rest loads: the selection moves at once.
        loading = "loading" in page.get_by_label("Span count").inner_text()
        clicked = time.monotonic()
        rows.nth(1).click()
        page.wait_for_selector("[role=treeitem][aria-selected=true] >> nth=0")
        assert rows.nth(1).get_attribute("aria-selected") == "true"
        click_ms = (time.monotonic() - clicked) * 1000
        page.get_by_label("Span count").get_by_text(f"{SPANS:,} spans").wait_for(timeout=60_000)
        loaded = time.monotonic() - started
        print(f"100k spans: first rows {first_rows:.2f} s, loaded {loaded:.2f} s, click {click_ms:.0f} ms "
              f"(while loading: {loading})")
        assert click_ms < 200, click_ms

        # Only the rows in view are in the DOM; the calls (1,000+ children each) start
        # collapsed, so the tree shows the root and its 99 calls.
        assert rows.count() < 200, rows.count()
        call = page.locator("[role=treeitem][aria-level='2']").first
        assert call.get_attribute("aria-expanded") == "false"
        tree = page.get_by_role("tree")
        height = tree.evaluate("e => e.scrollHeight")
        call.locator("button.twisty").click()
        assert call.get_attribute("aria-expanded") == "true"
        assert tree.evaluate("e => e.scrollHeight") > height + 500 * 26, "its children are listed"
        assert rows.count() < 200

        # A span 40 levels down in a collapsed subtree: found and revealed.
        page.get_by_label("Find in trace").fill("needle=found-me")
        page.get_by_label("Find in trace").press("Enter")
        hit = page.locator(f"[role=treeitem][data-span='{needle}']")
        hit.wait_for()
        assert hit.get_attribute("aria-selected") == "true"
        assert hit.get_attribute("aria-level") == str(3 + CHAIN)
        assert hit.is_visible()
        details = page.get_by_label("Span details")
        details.get_by_text("found-me").wait_for()
        assert "deep: level 39" in details.inner_text()
        assert "1 of 1" in page.get_by_role("search").inner_text()
        # Failed spans are found too.
        page.get_by_label("Find in trace").fill("error")
        page.get_by_label("Find in trace").press("Enter")
        page.get_by_role("search").get_by_text(re.compile(r"^1 of \d{2,}$")).wait_for()
        assert page.locator("[role=treeitem][aria-selected=true].err").count() == 1
        page.screenshot(path=str(SHOTS / "trace-100k.png"))
    finally:
        t.stop()
