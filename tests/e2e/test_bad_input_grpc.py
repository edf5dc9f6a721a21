"""Hostile input on the OTLP/gRPC receiver: clear status codes, counters, no data lost."""

import gzip
import time

import grpc
import pytest
from conftest import Triad, metric_value, wait_until
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def span_request(trace_id, name="op"):
    now = time.time_ns()
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "grpc-bad-input"
    s = rs.scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = trace_id, b"\x01" * 8, name
    s.kind = trace_pb2.Span.SPAN_KIND_SERVER
    s.start_time_unix_nano, s.end_time_unix_nano = now, now + 1000
    return req


def raw_call(channel, method, payload, compression=None):
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    return call(payload, timeout=10, compression=compression)


@pytest.fixture
def small_limits(tmp_path):
    cfg = tmp_path / "triad.yaml"
    cfg.write_text("collector:\n  max_request_bytes: 65536\n  max_decompressed_bytes: 1048576\n")
    t = Triad(tmp_path / "data", config=cfg).start()
    yield t
    t.stop()


def test_grpc_hostile_input(small_limits):
    t = small_limits
    channel = grpc.insecure_channel(t.grpc)
    good_id = bytes(range(1, 17))
    raw_call(channel, TRACE_EXPORT, span_request(good_id, "good").SerializeToString())

    def code_of(method, payload, compression=None):
        with pytest.raises(grpc.RpcError) as e:
            raw_call(channel, method, payload, compression)
        return e.value.code(), e.value.details()

    code, details = code_of(TRACE_EXPORT, b"\x0a\xff\xff\xff\x01garbage")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "malformed protobuf" in details
    code, _ = code_of(LOGS_EXPORT, b"\xff" * 64)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details = code_of(TRACE_EXPORT, span_request(b"\x02" * 9).SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "trace_id must be 16 bytes" in details
    # 2 MiB of zeros, gzip-compressed by the client: a bomb past the 1 MiB limit.
    code, _ = code_of(TRACE_EXPORT, b"\x00" * (2 << 20), grpc.Compression.Gzip)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    code, _ = code_of(METRICS_EXPORT, b"\xff\xff\xff")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of("/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export", b"")
    assert code == grpc.StatusCode.UNIMPLEMENTED

    # A mixed batch is accepted with partial success.
    mixed = span_request(b"\x03" * 16, "kept")
    bad = mixed.resource_spans[0].scope_spans[0].spans.add()
    bad.CopyFrom(mixed.resource_spans[0].scope_spans[0].spans[0])
    bad.trace_id = b"\x00" * 16
    resp = trace_service_pb2.ExportTraceServiceResponse.FromString(raw_call(channel, TRACE_EXPORT, mixed.SerializeToString()))
    assert resp.partial_success.rejected_spans == 1 and "all zeros" in resp.partial_success.error_message

    # Earlier data intact; counters show every refusal.
    wait_until("good trace", lambda: t.get_status("/api/traces/" + good_id.hex())[0] == 200)
    wait_until("kept trace", lambda: t.get_status("/api/traces/" + ("03" * 16))[0] == 200)
    m = t.metrics(base=t.http)
    assert metric_value(m, 'triad_collector_requests_total{signal="traces",transport="grpc",outcome="invalid"}') == 2
    assert metric_value(m, 'triad_collector_requests_total{signal="logs",transport="grpc",outcome="invalid"}') == 1
    assert metric_value(m, 'triad_collector_requests_total{signal="traces",transport="grpc",outcome="too_large"}') == 1
    assert metric_value(m, 'triad_collector_requests_total{signal="traces",transport="grpc",outcome="partial"}') == 1
    assert t.proc.poll() is None, "still running"


def test_http_json_logs_and_gzip(triad):
    import json
    import urllib.request

    now = time.time_ns()
    body = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-logs"}}]},
             "scopeLogs": [{"logRecords": [{"timeUnixNano": str(now), "severityText": "WARN",
                                            "body": {"stringValue": "disk /var/lib/db at 91% on 10.1.2.3"},
                                            "attributes": [{"key": "disk.pct", "value": {"intValue": "91"}}]}]}]}]}
    req = urllib.request.Request(triad.http + "/v1/logs", data=gzip.compress(json.dumps(body).encode()),
                                 headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and json.loads(r.read()) == {}
    hit = wait_until("json log", lambda: triad.get("/api/logs/search", q='"10.1.2.3" level:warn')["total"] == 1
                     and triad.get("/api/logs/search", q='"/var/lib/db" attributes.disk.pct:91'))
    assert hit["hits"][0]["service"] == "json-logs"
    assert hit["hits"][0]["attributes"]["disk.pct"] == 91


def test_regression_oversized_grpc_message_is_resource_exhausted(small_limits):
    """A message over the limit before any decoding was answered OUT_OF_RANGE (tonic's
    code); gRPC servers and the OTLP specification say RESOURCE_EXHAUSTED, which
    exporters know not to retry without a RetryInfo."""
    channel = grpc.insecure_channel(small_limits.grpc)
    with pytest.raises(grpc.RpcError) as e:
        raw_call(channel, TRACE_EXPORT, b"\x00" * (2 << 20))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.value.code(), e.value.details())
    assert "too large" in e.value.details()
