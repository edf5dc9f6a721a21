"""A real OpenTelemetry SDK sends a trace across three services and logs with trace
context; everything is found through the Jaeger and log APIs, before and after a restart."""

import json
import logging

from conftest import Triad, wait_until
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def provider(service, exporter):
    p = TracerProvider(resource=Resource.create({"service.name": service, "host.name": "e2e-host"}))
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


def send_trace_and_logs(t):
    frontend = provider("frontend", GrpcSpanExporter(endpoint=f"http://{t.grpc}", insecure=True))
    cart = provider("cart", GrpcSpanExporter(endpoint=f"http://{t.grpc}", insecure=True))
    inventory = provider("inventory", HttpSpanExporter(endpoint=f"{t.http}/v1/traces"))

    logs = LoggerProvider(resource=Resource.create({"service.name": "cart"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"http://{t.grpc}", insecure=True)))
    log = logging.getLogger("cart-e2e")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logs))

    with frontend.get_tracer("e2e").start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/checkout")
        ctx = trace.set_span_in_context(root)
        with cart.get_tracer("e2e").start_as_current_span("cart.checkout", context=ctx, kind=SpanKind.SERVER) as c:
            c.set_attribute("cart.items", 3)
            log.info("cart has 3 items")
            log.error("payment declined by issuer code=E4012")
            with inventory.get_tracer("e2e").start_as_current_span(
                "inventory.reserve", context=trace.set_span_in_context(c), kind=SpanKind.SERVER
            ) as inv:
                inv.set_attribute("sku", "A-113")
            c.set_status(Status(StatusCode.ERROR, "payment declined"))
            c.add_event("retry", {"attempt": 2})
        ids = {
            "trace": format(root.get_span_context().trace_id, "032x"),
            "root": format(root.get_span_context().span_id, "016x"),
            "cart": format(c.get_span_context().span_id, "016x"),
            "inventory": format(inv.get_span_context().span_id, "016x"),
        }
    for p in (frontend, cart, inventory):
        p.shutdown()
    logs.shutdown()
    return ids


def check_everything_is_found(t, ids):
    tid = ids["trace"]
    data = wait_until("trace by ID", lambda: len(t.get(f"/api/traces/{tid}")["data"][0]["spans"]) == 3 and t.get(f"/api/traces/{tid}"))
    tr = data["data"][0]
    assert tr["traceID"] == tid
    services = {p["serviceName"] for p in tr["processes"].values()}
    assert services == {"frontend", "cart", "inventory"}
    by_id = {s["spanID"]: s for s in tr["spans"]}
    assert by_id[ids["root"]]["references"] == []
    assert by_id[ids["cart"]]["references"] == [{"refType": "CHILD_OF", "traceID": tid, "spanID": ids["root"]}]
    assert by_id[ids["inventory"]]["references"][0]["spanID"] == ids["cart"]
    cart_tags = {tg["key"]: tg for tg in by_id[ids["cart"]]["tags"]}
    assert cart_tags["error"]["value"] is True
    assert cart_tags["cart.items"] == {"key": "cart.items", "type": "int64", "value": 3}
    assert cart_tags["span.kind"]["value"] == "server"
    assert by_id[ids["cart"]]["logs"][0]["fields"][0] == {"key": "event", "type": "string", "value": "retry"}
    assert tr["processes"][by_id[ids["cart"]]["processID"]]["serviceName"] == "cart"
    assert isinstance(by_id[ids["root"]]["startTime"], int) and by_id[ids["root"]]["duration"] >= 0

    services = t.get("/api/services")
    assert {"frontend", "cart", "inventory"} <= set(services["data"])
    assert t.get("/api/services/cart/operations")["data"] == ["cart.checkout"]

    def found(**params):
        return [x["traceID"] for x in t.get("/api/traces", **params)["data"]]

    assert tid in found(service="cart", tags=json.dumps({"error": "true"}))
    assert tid in found(service="inventory", tags=json.dumps({"sku": "A-113"}), operation="inventory.reserve")
    assert tid not in found(service="inventory", tags=json.dumps({"sku": "nope"}))
    assert tid in found(service="frontend", minDuration="0ms", lookback="1h")
    assert tid not in found(service="frontend", minDuration="1h")
    deps = {(d["parent"], d["child"]) for d in t.get("/api/dependencies")["data"]}
    assert {("frontend", "cart"), ("cart", "inventory")} <= deps

    logs = wait_until("logs by trace ID", lambda: t.get("/api/logs/search", q=f"trace_id:{tid}", start="0")["total"] == 2 and t.get("/api/logs/search", q=f"trace_id:{tid}", start="0"))
    bodies = {h["body"] for h in logs["hits"]}
    assert bodies == {"cart has 3 items", "payment declined by issuer code=E4012"}
    assert all(h["span_id"] == ids["cart"] and h["service"] == "cart" for h in logs["hits"])
    hit = t.get("/api/logs/search", q="declined E4012 level:error", start="0")
    assert hit["total"] == 1 and hit["hits"][0]["trace_id"] == tid
    assert sum(b["count"] for b in hit["histogram"]) == 1


def test_sdk_trace_and_logs_round_trip_and_survive_restart(tmp_path):
    t = Triad(tmp_path / "data").start()
    assert t.ready_seconds < 2.0, f"ready after {t.ready_seconds:.2f}s"
    try:
        ids = send_trace_and_logs(t)
        check_everything_is_found(t, ids)
    finally:
        t.stop()
    t2 = Triad(tmp_path / "data").start()
    try:
        check_everything_is_found(t2, ids)
    finally:
        t2.stop()


def test_unknown_trace_and_bad_parameters(triad):
    code, body = triad.get_status("/api/traces/" + "f" * 32)
    assert code == 404 and json.loads(body)["errors"][0]["code"] == 404
    code, body = triad.get_status("/api/traces/not-hex")
    assert code == 400
    code, body = triad.get_status("/api/traces")
    assert code == 200, "without a service: every service's traces"
    code, body = triad.get_status("/api/traces?order=fastest")
    assert code == 400 and b"order" in body
    code, body = triad.get_status("/api/logs/search?q=service:(")
    assert code == 400 and b"invalid query" in body
    assert triad.get_status("/healthz")[0] == 200
    assert triad.get_status("/readyz")[0] == 200
    assert triad.get_status("/readyz", base=triad.http)[0] == 200
    assert "triad_query_http_requests_total" in triad.metrics()
