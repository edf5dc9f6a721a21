"""Loki's query API with LogQL on `triad up`: lines sent by a real Loki logging handler
(`python-logging-loki`) and by the OpenTelemetry SDK's log bridge inside a span are read
back through `/loki/api/v1/*` as Grafana's Loki data source asks (Save & test's
`vector(1)+vector(1)`, labels and values, streams, metric queries, volume), the trace
ID correlates, and `/loki/api/v1/tail` streams new lines over a WebSocket (the
`websockets` client). Every LogQL query the tests use parses with Grafana's own grammar
(`@grafana/lezer-logql`)."""

import asyncio
import json
import logging
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from conftest import ROOT, Triad, wait_until

QUERIES = [
    '{service_name="loki-py"} |= "order"',
    'sum by (level) (count_over_time({service_name="loki-py"}[10m]))',
    '{service_name="cart"} | trace_id != ""',
    '{service_name="loki-py"} | logfmt | qty > 3 | line_format "{{.sku}} x{{.qty}}"',
    'sum(rate({service_name=~"cart|loki-py"} |= "order" [10m]))',
    '{service_name="loki-py", level="warn"}',
    'vector(1)+vector(1)',
]


def traces_to_logs_query(trace_id):
    """The LogQL query the provisioned Tempo data source runs for a trace's logs."""
    import yaml

    path = ROOT / "deploy/grafana/provisioning/datasources/triad.yaml"
    ds = yaml.safe_load(path.read_text())["datasources"]
    tempo = next(d for d in ds if d["type"] == "tempo")
    # `$$` is the provisioning file's escape for a literal `$`.
    return tempo["jsonData"]["tracesToLogsV2"]["query"].replace("$${__trace.traceId}", trace_id)


def grammar_rejects(queries):
    """Queries Grafana's own LogQL grammar (`@grafana/lezer-logql`) rejects."""
    out = subprocess.run(["node", str(ROOT / "tests/grammars/check.mjs"), "logql"], input="\n".join(queries),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    return [json.loads(line)["query"] for line in out.stdout.splitlines()]


def test_grafana_accepts_every_logql_query_triad_is_tested_with():
    golden = json.loads((ROOT / "query/tests/fixtures/logql_golden.json").read_text())
    queries = [c["query"] for c in golden["cases"]] + QUERIES + [traces_to_logs_query("0af7651916cd43dd8448eb211c80319c")]
    assert len(queries) > 40
    assert grammar_rejects(queries) == []
    assert grammar_rejects(['{a="b"} | json | x >>> 3']) == ['{a="b"} | json | x >>> 3'], "the check can fail"


def loki(t, path, **params):
    url = f"{t.query}/loki/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=20) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        return json.loads(r.read())


def lines(answer):
    assert answer["status"] == "success" and answer["data"]["resultType"] == "streams", answer
    return sorted((v[1], s["stream"]) for s in answer["data"]["result"] for v in s["values"])


async def tail_until(url, want, timeout):
    """Reads tail messages until a line containing `want` arrives; all lines read."""
    import websockets

    seen = []
    async with websockets.connect(url, open_timeout=10) as ws:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=deadline - time.monotonic()))
            except TimeoutError:
                break
            assert msg["dropped_entries"] is None, msg
            for s in msg["streams"]:
                for ts, line in s["values"]:
                    seen.append((int(ts), line, s["stream"]))
            if any(want in line for _, line, _ in seen):
                break
    return seen


def test_grafana_loki_data_source_reads_triad(tmp_path):
    import logging_loki
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    t = Triad(tmp_path / "data").start()
    try:
        # Grafana's "Save & test".
        ans = loki(t, "query", query="vector(1)+vector(1)")
        assert ans["data"]["resultType"] == "vector" and ans["data"]["result"][0]["value"][1] == "2", ans

        # A real Loki logging handler: logfmt lines.
        handler = logging_loki.LokiHandler(url=f"{t.http}/loki/api/v1/push", tags={"application": "loki-py"},
                                           version="1")
        log = logging.getLogger("loki-query-e2e")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.info("order placed sku=A1 qty=2")
        log.info("order placed sku=B7 qty=5")
        log.warning("stock low sku=B7 qty=1")

        # The OpenTelemetry SDK's log bridge inside a span: the line carries the trace ID.
        tp = TracerProvider(resource=Resource.create({"service.name": "cart"}))
        lp = LoggerProvider(resource=Resource.create({"service.name": "cart"}))
        lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"http://{t.grpc}", insecure=True)))
        otel = logging.getLogger("cart-e2e")
        otel.addHandler(LoggingHandler(level=logging.INFO, logger_provider=lp))
        otel.setLevel(logging.INFO)
        with tp.get_tracer("e2e").start_as_current_span("checkout") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            otel.error("order failed: card declined")
        lp.shutdown()

        now = time.time_ns()
        window = dict(start=str(now - 600 * 10**9), end=str(now + 60 * 10**9))
        wait_until("the lines through LogQL", lambda: len(lines(loki(t, "query_range", query='{service_name=~"cart|loki-py"}', **window))) == 4, timeout=30)

        # Labels and values, as Grafana's label browser asks.
        names = loki(t, "labels", **window)["data"]
        assert {"service_name", "level", "source", "trace_id", "application"} <= set(names), names
        assert {"cart", "loki-py"} <= set(loki(t, "label/service_name/values", **window)["data"])
        assert loki(t, "label/level/values", query='{service_name="loki-py"}', **window)["data"] == ["info", "warn"]

        # Streams: a line filter, a label filter over logfmt, line_format.
        got = lines(loki(t, "query_range", query=QUERIES[0], **window))
        assert [g[0] for g in got] == ["order placed sku=A1 qty=2", "order placed sku=B7 qty=5"], got
        assert got[0][1]["service_name"] == "loki-py" and got[0][1]["level"] == "info", got
        got = lines(loki(t, "query_range", query=QUERIES[3], **window))
        assert [g[0] for g in got] == ["B7 x5"], got
        got = lines(loki(t, "query_range", query='{service_name="loki-py", level="warn"}', direction="forward", **window))
        assert [g[0] for g in got] == ["stock low sku=B7 qty=1"], got

        # The trace ID is a label: the line of a trace (with the query Grafana's Tempo data
        # source is provisioned with), and the trace of a line.
        got = lines(loki(t, "query_range", query=traces_to_logs_query(trace_id), **window))
        assert [g[0] for g in got] == ["order failed: card declined"], got
        assert got[0][1]["service_name"] == "cart" and got[0][1]["level"] == "error", got
        got = lines(loki(t, "query_range", query=QUERIES[2], **window))
        assert [g[1]["trace_id"] for g in got] == [trace_id]

        # Metric queries, as panels and the logs volume ask.
        ans = loki(t, "query_range", query=QUERIES[1], step="60", **window)
        assert ans["data"]["resultType"] == "matrix", ans
        per_level = {s["metric"]["level"]: max(float(v[1]) for v in s["values"]) for s in ans["data"]["result"]}
        assert per_level == {"info": 2.0, "warn": 1.0}, ans
        ans = loki(t, "query", query='sum(count_over_time({service_name=~"cart|loki-py"} |= "order" [10m]))')
        assert ans["data"]["result"][0]["value"][1] == "3", ans
        assert ans["data"]["stats"]["summary"]["totalLinesProcessed"] >= 3
        vol = loki(t, "index/volume", query='{service_name=~".+"}', targetLabels="service_name", **window)
        assert {r["metric"]["service_name"] for r in vol["data"]["result"]} >= {"cart", "loki-py"}, vol
        stats = loki(t, "index/stats", query='{service_name="loki-py"}', **window)
        assert stats["entries"] == 3 and stats["bytes"] > 0, stats

        # The same lines through Triad's own search.
        assert t.get("/api/logs/search", q="service:loki-py", start="0")["total"] == 3

        # Live tail over a WebSocket: the last lines first, then a new one.
        url = t.query.replace("http://", "ws://") + "/loki/api/v1/tail?" + urllib.parse.urlencode(
            {"query": '{service_name="loki-py"} |= "tail"', "start": str(now - 600 * 10**9)})
        log.info("before tail sku=T0")

        async def run():
            task = asyncio.create_task(tail_until(url, "after tail", 30))
            await asyncio.sleep(1.0)
            log.info("after tail sku=T1")
            return await task

        wait_until("the line before the tail", lambda: t.get("/api/logs/search", q='"before tail"', start="0")["total"] == 1)
        seen = asyncio.run(run())
        texts = [s[1] for s in seen]
        assert texts == ["before tail sku=T0", "after tail sku=T1"], seen
        assert all(s[2]["service_name"] == "loki-py" for s in seen)

        # Mistakes: Loki's plain-text 400s.
        for q, want in (('{service_name="x"', "parse error"), ("{}", "at least one")):
            try:
                loki(t, "query_range", query=q)
                raise AssertionError(f"{q} was accepted")
            except urllib.error.HTTPError as e:
                assert e.code == 400 and want in e.read().decode(), q
    finally:
        t.stop()
