"""The web UI in headless Chromium (Debian's `chromium`, driven by Playwright) against a
real `triad up` holding real OpenTelemetry data: search logs, open a trace from a log
line, see the span's log lines, open a service page, see a firing alert and its
evidence, create and expire a silence. Screenshots go to target/ui-screenshots/."""

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, Triad, logs_request, post_protobuf, wait_until

SHOTS = ROOT / "target" / "ui-screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def send_traffic(t, n=60):
    """checkout → payments calls; every third fails, with an error log line per failure
    (over OTLP and in a file the agent tails) carrying the trace and span IDs."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    providers = {}
    for svc in ("checkout", "payments"):
        p = TracerProvider(resource=Resource.create({"service.name": svc, "host.name": "node-1"}))
        p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{t.grpc}", insecure=True)))
        providers[svc] = p
    errors = []
    for i in range(n):
        with providers["checkout"].get_tracer("ui").start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as root:
            with providers["checkout"].get_tracer("ui").start_as_current_span("call payments", kind=SpanKind.CLIENT):
                with providers["payments"].get_tracer("ui").start_as_current_span("POST /charge", kind=SpanKind.SERVER) as s:
                    s.set_attribute("amount", 10 + i)
                    if i % 3 == 0:
                        s.set_status(Status(StatusCode.ERROR, "card declined"))
                        s.add_event("fraud check", {"score": 0.9})
                        ctx = s.get_span_context()
                        req = logs_request("payments", [f"card declined for order {i}"])
                        rec = req.resource_logs[0].scope_logs[0].log_records[0]
                        rec.trace_id, rec.span_id = ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big")
                        rec.severity_text = "ERROR"
                        post_protobuf(t.http + "/v1/logs", req)
                        errors.append((format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")))
                    time.sleep(0.002)
            if i % 3 == 0:
                root.set_status(Status(StatusCode.ERROR, "payment failed"))
        # Spread over a few span-metric flushes, so rates have two samples to compare.
        time.sleep(0.05)
    for p in providers.values():
        p.shutdown()
    return errors


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    (tmp / "logs").mkdir()
    with open(tmp / "logs" / "worker.log", "w") as f:
        base = time.time() - 120
        for i in range(40):
            at = base + i * 0.5
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
            f.write(json.dumps({"ts": ts, "level": "warn" if i == 20 else "info", "msg": f"worker step {i}",
                                "service": "worker"}) + "\n")
    cfg = tmp / "triad.yaml"
    cfg.write_text(f"""
agent:
  include: ['{tmp / "logs"}/*.log']
""" + """
collector:
  metrics:
    span_metrics_interval_secs: 1
  logs:
    commit_interval_ms: 200
  traces:
    commit_interval_ms: 200
alerting:
  evaluation_interval_secs: 1
  golden_signals:
    services:
      payments:
        errors: {ratio_threshold: 0.1, window_secs: 30, for_secs: 1}
""")
    t = Triad(tmp / "data", config=cfg).start()
    errors = send_traffic(t)
    wait_until("alert firing", lambda: any(a["state"] == "firing" for a in t.get("/api/v1/alerts")["data"]["alerts"]), timeout=60)
    wait_until("logs searchable", lambda: t.get("/api/logs/search", q="declined", start="0")["total"] >= 20)
    yield t, errors
    t.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    p = ctx.new_page()
    errors = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    ctx.close()
    assert not errors, f"JavaScript errors: {errors}"


def test_logs_to_trace_to_span_logs(stack, page):
    t, errors = stack
    page.goto(f"{t.query}/logs?start=now-1h")
    page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
    first_paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
    assert 0 < first_paint < 1000, first_paint
    page.get_by_label("Log query").fill("declined")
    page.get_by_label("Log query").press("Enter")
    hits = page.locator("ol[aria-label='Log lines'] > li")
    hits.first.wait_for()
    assert hits.count() >= 20
    assert "q=declined" in page.url, "the URL holds the search"
    page.get_by_role("img", name="Log volume; drag across to zoom").wait_for()
    hits.first.locator("button.row").click()
    assert '"trace_id"' in hits.first.locator("pre.json").inner_text()
    page.screenshot(path=str(SHOTS / "logs.png"))

    # Open the trace from the line: the waterfall, and the span's own log line inline.
    hits.first.locator("a.tracelink").click()
    page.wait_for_url("**/traces/*")
    page.get_by_role("tree").wait_for()
    assert page.locator("[role=treeitem]").count() == 3
    details = page.get_by_label("Span details")
    details.get_by_text("card declined for order").wait_for()
    assert "payments: POST /charge" in details.inner_text()
    assert "fraud check" in details.inner_text(), "span events are shown"
    assert page.locator(".bar.critical").count() >= 2, "critical path highlighted"
    # The span's log line reads as on the logs page: the message has the panel's width
    # on a line of its own, the level badge is one line high.
    line = details.locator("ol[aria-label='Span log lines'] > li").first
    panel_width = details.locator("ol[aria-label='Span log lines']").bounding_box()["width"]
    body = line.locator(".body").bounding_box()
    badge = line.locator(".badge").bounding_box()
    assert body["width"] >= 0.6 * panel_width, (body, panel_width)
    assert badge["height"] <= 24, badge
    assert body["y"] > badge["y"], "the message under time, level and service"
    page.screenshot(path=str(SHOTS / "trace-span-logs.png"))
    # Keyboard: arrow up selects the parent span.
    page.get_by_role("tree").focus()
    page.keyboard.press("ArrowUp")
    assert "call payments" in page.get_by_label("Span details").inner_text()
    page.screenshot(path=str(SHOTS / "trace.png"))


def test_services_and_service_page(stack, page):
    t, _ = stack
    page.goto(f"{t.query}/services?start=now-15m")
    table = page.get_by_label("Golden signals")
    table.get_by_role("link", name="payments").wait_for()
    wait_until("rates shown", lambda: "%" in table.inner_text(), timeout=20)
    page.get_by_label("Service dependency graph").wait_for()
    page.screenshot(path=str(SHOTS / "services.png"))
    table.get_by_role("link", name="payments").click()
    page.wait_for_url("**/services/payments*")
    page.get_by_role("img", name="latency with exemplars").wait_for()
    link = page.get_by_label("Exemplars").get_by_role("link").first
    link.wait_for()
    link.click()
    page.wait_for_url("**/traces/*")
    page.get_by_role("tree").wait_for()


def test_firing_alert_evidence_and_silence(stack, page):
    t, errors = stack
    page.goto(f"{t.query}/alerts")
    card = page.locator("li.alert.firing").first
    card.wait_for()
    assert "GoldenSignalErrors" in card.inner_text()
    card.get_by_role("button", name="Evidence").click()
    ev = card.get_by_label("Evidence")
    ev.get_by_role("link").first.wait_for()
    known = {tid for tid, _ in errors}
    hrefs = [a.get_attribute("href") for a in ev.get_by_role("link").all()]
    assert any(h.split("/traces/")[1].split("?")[0] in known for h in hrefs), hrefs
    assert "card declined" in ev.inner_text()
    page.screenshot(path=str(SHOTS / "alerts.png"))
    # An evidence line's context: the service's lines around it.
    ev.get_by_role("button", name="context").first.click()
    context = ev.get_by_label("Context lines")
    context.locator("[aria-current=true]").wait_for()
    assert context.locator("li").count() >= 2

    # Silence it from the card: the form comes prefilled with the alert's matchers.
    card.get_by_role("link", name="Silence…").click()
    page.wait_for_url("**tab=silences**")
    form = page.get_by_label("New silence")
    assert 'alertname="GoldenSignalErrors"' in form.locator("input[name=matchers]").input_value()
    form.locator("input[name=comment]").fill("from the browser test")
    form.get_by_role("button", name="Create silence").click()
    row = page.get_by_label("Silences").get_by_role("row").filter(has_text="from the browser test")
    row.wait_for()
    assert "active" in row.inner_text()
    assert t.get("/api/v2/silences")[0]["comment"] == "from the browser test"
    page.goto(f"{t.query}/alerts")
    page.locator("li.alert.firing").first.get_by_text("silenced").wait_for()
    page.goto(f"{t.query}/alerts?tab=silences")
    row = page.get_by_label("Silences").get_by_role("row").filter(has_text="from the browser test")
    row.get_by_role("button", name="Expire").click()
    wait_until("expired", lambda: t.get("/api/v2/silences")[0]["status"]["state"] == "expired")


def test_metrics_completion_graph_table_and_dark_theme(stack, page):
    t, _ = stack
    page.goto(f"{t.query}/graph")
    box = page.get_by_label("PromQL expression")
    box.fill("")
    box.type("triad_span_req")
    page.get_by_role("listbox", name="Completions").get_by_text("triad_span_requests_total").wait_for()
    box.press("Tab")
    assert box.input_value() == "triad_span_requests_total"
    box.type("{serv")
    page.get_by_role("listbox", name="Completions").get_by_text("service").wait_for()
    box.press("Tab")
    box.type('="payments"}')
    box.press("Enter")
    page.wait_for_url("**g0.expr=**")
    page.locator("[aria-label='query result'], [role=alert], .empty").first.wait_for()
    assert page.get_by_role("img", name="query result").count() == 1, (page.url, page.locator("main").inner_text())
    page.get_by_role("tab", name="Table").click()
    page.get_by_label("Query result").get_by_text('service="payments"').first.wait_for()
    page.get_by_role("button", name="Switch to dark theme").click()
    page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    page.get_by_role("button", name="Switch to light theme").wait_for()
    page.screenshot(path=str(SHOTS / "metrics-dark.png"))
    # Errors are shown, not swallowed.
    box.fill("sum(")
    box.press("Enter")
    page.get_by_role("alert").wait_for()


def test_trace_search_across_services_lists_failed_then_slowest(stack, page):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    t, errors = stack
    # A slow, successful trace of another service.
    p = TracerProvider(resource=Resource.create({"service.name": "inventory"}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{t.http}/v1/traces")))
    with p.get_tracer("ui").start_as_current_span("GET /stock"):
        time.sleep(0.3)
    p.shutdown()
    wait_until("the inventory trace", lambda: t.get("/api/traces", service="inventory")["data"])

    page.goto(f"{t.query}/traces?start=now-1h")
    rows = page.get_by_label("Traces found").locator("tbody tr")
    rows.first.wait_for()
    page.get_by_role("img", name="Trace durations over time; click a dot to open the trace").wait_for()
    failed = [rows.nth(i).get_attribute("class") == "err" for i in range(rows.count())]
    n_failed = len({trace for trace, _ in errors})
    assert failed[:n_failed] == [True] * n_failed and not any(failed[n_failed:]), failed
    roots = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())]
    assert roots[n_failed].startswith("inventory: GET /stock"), "the slowest successful trace first"
    assert any(r.startswith("checkout: POST /checkout") for r in roots[n_failed:])
    page.screenshot(path=str(SHOTS / "traces.png"))
    # Choosing a service narrows the search to it.
    page.get_by_label("Service").select_option("inventory")
    page.wait_for_url("**service=inventory*")
    wait_until("one trace", lambda: rows.count() == 1 and "inventory" in rows.first.inner_text(), timeout=10)


def test_log_lines_show_their_context(stack, page):
    t, _ = stack
    wait_until("the worker's file", lambda: t.get("/api/logs/search", q="service:worker", start="0")["total"] == 40)

    def open_context(query, text):
        page.goto(f"{t.query}/logs?start=now-1h")
        page.get_by_label("Log query").fill(query)
        page.get_by_label("Log query").press("Enter")
        hit = page.locator("ol[aria-label='Log lines'] > li").filter(has_text=text).first
        hit.locator("button.row").click()
        hit.get_by_role("button", name="Show context").click()
        lines = hit.get_by_label("Context lines").locator("li")
        lines.first.wait_for()
        return hit, lines

    # A tailed file's line: the lines around it in the file, it highlighted.
    hit, lines = open_context('"worker step 20"', "worker step 20")
    texts = [lines.nth(i).inner_text() for i in range(lines.count())]
    assert [x.split("worker step ")[1] for x in texts] == [str(i) for i in range(10, 31)], texts
    assert "worker step 20" in hit.locator("[aria-current=true]").inner_text()
    hit.get_by_role("button", name="Earlier lines").click()
    wait_until("earlier lines", lambda: lines.count() == 31)
    assert "worker step 0" in lines.first.inner_text()
    page.screenshot(path=str(SHOTS / "log-context.png"))

    # An OTLP line: the same service's lines around it.
    hit, lines = open_context("declined", "declined")
    anchor = hit.locator("[aria-current=true]").inner_text()
    assert "card declined for order" in anchor
    assert lines.count() >= 3 and all("declined" in lines.nth(i).inner_text() for i in range(lines.count()))


def test_empty_states_and_unknown_trace(stack, page):
    t, _ = stack
    page.goto(f"{t.query}/traces/0123456789abcdef0123456789abcdef")
    assert "nothing carries trace ID" in page.get_by_role("alert").inner_text()
    page.goto(f"{t.query}/logs?q=nosuchwordanywhere")
    page.get_by_text("No log lines match").wait_for()


def big_trace_request(trace_id: bytes, n: int):
    """One trace of `n` spans: a root with fan-out children, each with a grandchild."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "fanout"
    spans = rs.scope_spans.add().spans
    t0 = time.time_ns() - 10_000_000_000
    for i in range(n):
        s = spans.add()
        s.trace_id, s.span_id = trace_id, (i + 1).to_bytes(8, "big")
        if i > 0:
            parent = 1 if i % 2 == 1 else i  # odd: child of the root; even: child of the previous span
            s.parent_span_id = parent.to_bytes(8, "big")
        s.name = "root" if i == 0 else f"step {i}"
        s.kind = trace_pb2.Span.SPAN_KIND_SERVER if i == 0 else trace_pb2.Span.SPAN_KIND_INTERNAL
        s.start_time_unix_nano = t0 + i * 100_000
        s.end_time_unix_nano = t0 + (i * 100_000 + 5_000_000 if i else n * 100_000 + 10_000_000)
    return req


def test_trace_of_10k_spans_renders_progressively(stack, page):
    t, _ = stack
    trace_id = bytes.fromhex("feedfacecafebeef0123456789abcdef")
    for chunk in range(5):  # five exports of 2,000 spans, as an SDK batches them
        req = big_trace_request(trace_id, 10_000)
        del req.resource_spans[0].scope_spans[0].spans[: chunk * 2000]
        del req.resource_spans[0].scope_spans[0].spans[2000:]
        post_protobuf(t.http + "/v1/traces", req)
    wait_until("10k spans stored", lambda: len(t.get(f"/api/traces/{trace_id.hex()}")["data"][0]["spans"]) == 10_000)
    started = time.monotonic()
    page.goto(f"{t.query}/traces/{trace_id.hex()}")
    page.get_by_role("tree").wait_for()
    took = time.monotonic() - started
    rendered = page.locator("[role=treeitem]").count()
    assert rendered < 200, f"only the visible rows are in the DOM, not {rendered}"
    page.get_by_label("Span count").get_by_text("10,000 spans").wait_for()
    # Scroll to the end: the last rows render on demand.
    page.get_by_role("tree").evaluate("el => el.scrollTop = el.scrollHeight")
    page.get_by_text("step 9999").wait_for()
    print(f"10k-span trace: page ready in {took:.2f}s")
    assert took < 15, took


def test_live_tail_shows_new_lines(stack, page):
    t, _ = stack
    page.goto(f"{t.query}/logs?q=tailmarker")
    page.get_by_role("button", name="▶ Live tail").click()
    page.get_by_role("status").filter(has_text="Live tail: live").wait_for()
    post_protobuf(t.http + "/v1/logs", logs_request("tailer", ["tailmarker one", "tailmarker two"]))
    page.get_by_text("tailmarker two").wait_for()
    assert "live=1" in page.url


def test_dragging_the_histogram_zooms_the_range(stack, page):
    t, _ = stack
    page.goto(f"{t.query}/logs?q=declined&start=now-15m")
    over = page.get_by_role("img", name="Log volume; drag across to zoom").locator(".u-over")
    over.wait_for()
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.99, y, steps=5)
    page.mouse.up()
    page.wait_for_url("**start=20*")
    assert "end=20" in page.url, page.url
