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


SEARCHES = {
    "{ status = error }": ["failing"],
    '{ resource.service.name = "shop" && span.http.status_code >= 500 }': ["failing"],
    "{ duration > 40ms && kind = client }": ["failing"],
    '{ name =~ "GET.*" && status != error }': ["passing"],
    '{ span.db.system = "postgresql" } && { kind = server }': ["failing"],
    "{ kind = server } | select(span.http.route)": ["failing", "passing"],
}


def grammar_rejects(queries):
    """Queries Grafana's own TraceQL grammar (`@grafana/lezer-traceql`) rejects."""
    import subprocess

    from conftest import ROOT

    out = subprocess.run(["node", str(ROOT / "tests/grammars/check.mjs"), "traceql"], input="\n".join(queries),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    return [json.loads(line)["query"] for line in out.stdout.splitlines()]


def test_grafana_accepts_every_traceql_query_triad_is_tested_with():
    from conftest import ROOT

    fixture = (ROOT / "query/tests/fixtures/traceql.txt").read_text().splitlines()
    assert grammar_rejects([q for q in fixture if q.strip()] + list(SEARCHES)) == []
    assert grammar_rejects(["{ nope nope }"]) == ["{ nope nope }"], "the check can fail"


def test_tempo_search_with_traceql_and_tags(triad):
    import time
    import urllib.parse

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{triad.http}/v1/traces")))
    tracer = provider.get_tracer("e2e")
    ids = {}
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/cart")
        root.set_attribute("http.status_code", 500)
        root.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("SELECT cart", kind=SpanKind.CLIENT) as db:
            db.set_attribute("db.system", "postgresql")
            time.sleep(0.06)
    ids["failing"] = format(root.get_span_context().trace_id, "032x")
    with tracer.start_as_current_span("GET /health", kind=SpanKind.SERVER) as ok:
        ok.set_attribute("http.route", "/health")
        ok.set_attribute("http.status_code", 200)
    ids["passing"] = format(ok.get_span_context().trace_id, "032x")
    provider.shutdown()
    names = {v: k for k, v in ids.items()}
    now = int(time.time())

    def search(**params):
        params.setdefault("start", str(now - 600))
        params.setdefault("end", str(now + 60))
        status, _, body = get(triad, "/api/search?" + urllib.parse.urlencode(params))
        assert status == 200, body
        return json.loads(body)

    def found(**params):
        return sorted(names.get(t["traceID"], t["traceID"]) for t in search(**params)["traces"])

    wait_until("both traces searchable", lambda: found(tags="service.name=shop") == ["failing", "passing"],
               timeout=30)
    for q, want in SEARCHES.items():
        assert found(q=q) == want, q
    r = search(q='{ resource.service.name = "shop" && span.http.status_code >= 500 }')["traces"][0]
    assert r["rootServiceName"] == "shop" and r["rootTraceName"] == "GET /cart"
    assert r["durationMs"] >= 60 and r["spanSets"][0]["matched"] == 1
    assert r["spanSets"][0]["spans"][0]["name"] == "GET /cart"
    selected = search(q="{ kind = server } | select(span.http.route)")["traces"]
    routes = {a["value"]["stringValue"] for t in selected for s in t["spanSets"][0]["spans"]
              for a in s["attributes"] if a["key"] == "http.route"}
    assert routes == {"/cart", "/health"}
    assert found(tags="http.status_code=200") == ["passing"]
    assert found(q="{ status = error }", minDuration="1s") == []
    assert found(q="{}", limit="1") in (["failing"], ["passing"])
    status, _, body = get(triad, "/api/search?q=" + urllib.parse.quote("{ nope }"))
    assert status == 400 and b"invalid TraceQL" in body

    # Tags and their values, as Grafana's query builder asks them.
    window = f"start={now - 600}&end={now + 60}"
    names_v1 = json.loads(get(triad, f"/api/search/tags?{window}")[2])["tagNames"]
    assert {"service.name", "http.route", "db.system", "http.status_code"} <= set(names_v1), names_v1
    assert "span.kind" not in names_v1, "Jaeger's synthetic tags are not attributes"
    scopes = {sc["name"]: sc["tags"] for sc in json.loads(get(triad, f"/api/v2/search/tags?{window}")[2])["scopes"]}
    assert "service.name" in scopes["resource"] and "http.route" in scopes["span"]
    assert {"duration", "name", "status", "kind"} <= set(scopes["intrinsic"])
    only = json.loads(get(triad, f"/api/v2/search/tags?scope=intrinsic&{window}")[2])["scopes"]
    assert [sc["name"] for sc in only] == ["intrinsic"]
    assert get(triad, "/api/v2/search/tags?scope=nope")[0] == 400
    assert json.loads(get(triad, f"/api/search/tag/http.route/values?{window}")[2])["tagValues"] == ["/cart", "/health"]
    assert "shop" in json.loads(get(triad, f"/api/search/tag/service.name/values?{window}")[2])["tagValues"]
    typed = json.loads(get(triad, f"/api/v2/search/tag/span.http.status_code/values?{window}")[2])["tagValues"]
    assert typed == [{"type": "int", "value": "200"}, {"type": "int", "value": "500"}], typed
    names_typed = json.loads(get(triad, "/api/v2/search/tag/name/values")[2])["tagValues"]
    assert {"GET /cart", "SELECT cart", "GET /health"} <= {v["value"] for v in names_typed}
    statuses = json.loads(get(triad, "/api/v2/search/tag/status/values")[2])["tagValues"]
    assert {"type": "keyword", "value": "error"} in statuses
