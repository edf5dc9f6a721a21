"""Tempo's trace-by-ID API beside Jaeger's on the query port: Grafana's Tempo data
source asks `/api/v2/traces/{id}` (and falls back to `/api/traces/{id}`) with `Accept:
application/protobuf`; the answers decode with the OTLP protobuf types. Jaeger's data
source keeps getting Jaeger JSON from `/api/traces/{id}`."""

import json
import urllib.error
import urllib.request

from conftest import wait_until
from test_scale_out import send_split_trace


def get(t, path, accept=None):
    req = urllib.request.Request(t.query + path, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def field_one(buf):
    """The bytes of field 1 (length-delimited) of a protobuf message: Tempo's
    `TraceByIDResponse.trace`."""
    assert buf[0] == 0x0A, buf[:4]
    length, shift, i = 0, 0, 1
    while True:
        b = buf[i]
        length |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            break
        shift += 7
    return buf[i:i + length]


def test_tempo_and_jaeger_clients_read_traces_on_one_port(triad):
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    trace_id = send_split_trace(triad, triad)
    wait_until("the trace", lambda: get(triad, f"/api/traces/{trace_id}")[0] == 200, timeout=30)

    def services(data):
        return sorted(attr.value.string_value for rs in data.resource_spans for attr in rs.resource.attributes
                      if attr.key == "service.name")

    # Tempo v1 path, protobuf: `Trace` = OTLP TracesData.
    status, ctype, body = get(triad, f"/api/traces/{trace_id}", "application/protobuf")
    assert (status, ctype) == (200, "application/protobuf")
    v1 = TracesData.FromString(body)
    assert services(v1) == ["edge", "ledger"]
    spans = [s for rs in v1.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert {s.trace_id.hex() for s in spans} == {trace_id} and len(spans) == 2
    child = next(s for s in spans if s.name == "ledger.write")
    assert child.parent_span_id == next(s for s in spans if s.name == "GET /pay").span_id

    # Tempo v2 path: protobuf TraceByIDResponse, and OTLP JSON.
    status, ctype, body = get(triad, f"/api/v2/traces/{trace_id}", "application/protobuf")
    assert (status, ctype) == (200, "application/protobuf")
    assert services(TracesData.FromString(field_one(body))) == ["edge", "ledger"]
    status, ctype, body = get(triad, f"/api/v2/traces/{trace_id}")
    assert status == 200 and ctype.startswith("application/json")
    doc = json.loads(body)
    json_spans = [s for rs in doc["trace"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert {s["traceId"] for s in json_spans} == {trace_id}
    assert sorted(s["name"] for s in json_spans) == ["GET /pay", "ledger.write"]

    # Jaeger's data source: unchanged.
    status, ctype, body = get(triad, f"/api/traces/{trace_id}")
    assert status == 200 and json.loads(body)["data"][0]["traceID"] == trace_id

    # Unknown trace: 404 on both paths, whatever the format.
    missing = "0" * 31 + "1"
    assert get(triad, f"/api/v2/traces/{missing}")[0] == 404
    assert get(triad, f"/api/v2/traces/{missing}", "application/protobuf")[0] == 404
    assert get(triad, f"/api/traces/{missing}", "application/protobuf")[0] == 404
    assert get(triad, "/api/v2/traces/nothex")[0] == 400

    assert get(triad, "/api/echo")[2] == b"echo"
    assert json.loads(get(triad, "/api/status/buildinfo")[2])["version"]
