"""`triad up` receives Zipkin v2 on its own port, as Jaeger's all-in-one does: spans from
the OpenTelemetry SDK's Zipkin exporter are found through the Jaeger API; malformed
input gets a clear 400 and is counted."""

import urllib.error
import urllib.request

from conftest import Triad, metric_value, wait_until


def test_zipkin_spans_reach_triad_up(tmp_path):
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind

    t = Triad(tmp_path / "data").start()
    try:
        assert t.zipkin, "triad up listens for Zipkin"
        provider = TracerProvider(resource=Resource.create({"service.name": "zipkin-shop"}))
        provider.add_span_processor(SimpleSpanProcessor(ZipkinExporter(endpoint=f"{t.zipkin}/api/v2/spans")))
        tracer = provider.get_tracer("e2e")
        with tracer.start_as_current_span("GET /basket", kind=SpanKind.SERVER) as root:
            root.set_attribute("http.status_code", 200)
            with tracer.start_as_current_span("SELECT basket", kind=SpanKind.CLIENT):
                pass
        provider.shutdown()
        trace_id = format(root.get_span_context().trace_id, "032x")

        trace = wait_until("the Zipkin trace", lambda: t.get(f"/api/traces/{trace_id}")["data"], timeout=30)[0]
        assert sorted(s["operationName"] for s in trace["spans"]) == ["GET /basket", "SELECT basket"]
        assert {p["serviceName"] for p in trace["processes"].values()} == {"zipkin-shop"}
        child = next(s for s in trace["spans"] if s["operationName"] == "SELECT basket")
        assert child["references"][0]["spanID"] == format(root.get_span_context().span_id, "016x")
        assert "zipkin-shop" in t.get("/api/services")["data"]

        bad = urllib.request.Request(t.zipkin + "/api/v2/spans", data=b"[{\"traceId\": ",
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(bad, timeout=10)
            raise AssertionError("malformed JSON accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and b"malformed Zipkin v2 JSON" in e.read()
        text = t.metrics()
        assert metric_value(text, 'triad_collector_requests_total{signal="traces",transport="zipkin",outcome="invalid"}') == 1, \
            [line for line in text.splitlines() if "zipkin" in line]
    finally:
        t.stop()
