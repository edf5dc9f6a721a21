"""Per-tenant retention, end to end: tenant `brief` keeps an hour of logs and traces and
two hours of metrics (`limits.tenants.brief.*_retention_secs`), tenant `keep` the
defaults (a week and more). Both send the same records stamped now and two and a half
hours ago; `brief` reads only the recent ones on every read path, `keep` both. (That
the old records are then deleted — a metric block at its tenant's retention, a split
when the longest retention of its tenants is over — is tested in the stores' own tests
with their clocks moved, which a running binary cannot do.)"""

import json
import subprocess
import time
import urllib.parse

import pytest
from conftest import BIN, Triad, auth_yaml, gauge_request, logs_request, new_token, wait_until
from test_security import call

HOUR_NS = 3600 * 10**9
TENANTS = ("brief", "keep")


def spans_request(service, trace_hex, start_ns):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    s = rs.scope_spans.add().spans.add()
    s.trace_id = bytes.fromhex(trace_hex)
    s.span_id = bytes.fromhex(trace_hex[:16])
    s.name = "op"
    s.kind = 2
    s.start_time_unix_nano = start_ns
    s.end_time_unix_nano = start_ns + 1_000_000
    return req


OLD_TRACE, NEW_TRACE = "01d" * 10 + "01", "0e0" * 10 + "02"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("retention")
    tokens, entries = {}, []
    for tenant in TENANTS:
        for role in ("write", "read"):
            tokens[(tenant, role)], entry = new_token(tenant, role, f"{tenant}-{role}")
            entries.append(entry)
    cfg = d / "triad.yaml"
    cfg.write_text(auth_yaml(entries) +
                   "limits:\n  tenants:\n    brief:\n      logs_retention_secs: 3600\n"
                   "      traces_retention_secs: 3600\n      metrics_retention_secs: 7200\n")
    t = Triad(d / "data", config=cfg).start()
    now = time.time_ns()
    old = now - 5 * HOUR_NS // 2
    proto = {"Content-Type": "application/x-protobuf"}
    try:
        for tenant in TENANTS:
            w = tokens[(tenant, "write")]
            for stamp, word in ((old, "ancient"), (now, "fresh")):
                body = logs_request("svc", [f"retained {word} line"], time_ns=stamp).SerializeToString()
                assert call(t.http + "/v1/logs", w, "POST", body, proto)[0] == 200
                trace = OLD_TRACE if stamp == old else NEW_TRACE
                assert call(t.http + "/v1/traces", w, "POST", spans_request("svc", trace, stamp)
                            .SerializeToString(), proto)[0] == 200
            gauge = gauge_request("retained_gauge", [({"at": "old"}, old, 1.0), ({"at": "new"}, now, 2.0)])
            assert call(t.http + "/v1/metrics", w, "POST", gauge.SerializeToString(), proto)[0] == 200
        for tenant in TENANTS:
            r = tokens[(tenant, "read")]
            wait_until(f"{tenant}'s fresh records searchable",
                       lambda: logs(t, r, "fresh") == 1 and traces(t, r) and gauge_at(t, r, now))
        yield {"t": t, "tk": tokens, "now": now, "old": old}
    finally:
        t.stop()


def logs(t, token, word):
    q = urllib.parse.urlencode({"q": f"retained AND {word}", "start": time.time() - 3 * 3600,
                                "end": time.time() + 60})
    return json.loads(call(f"{t.query}/api/logs/search?{q}", token)[1])["total"]


def traces(t, token):
    q = urllib.parse.urlencode({"service": "svc", "start": int((time.time() - 3 * 3600) * 1e6),
                                "end": int((time.time() + 60) * 1e6), "limit": 20})
    return {tr["traceID"] for tr in json.loads(call(f"{t.query}/api/traces?{q}", token)[1])["data"] or []}


def gauge_at(t, token, at_ns):
    q = urllib.parse.urlencode({"query": "retained_gauge", "time": at_ns / 1e9})
    return [r["metric"]["at"] for r in json.loads(call(f"{t.query}/api/v1/query?{q}", token)[1])["data"]["result"]]


def test_a_tenant_reads_nothing_past_its_own_retention(stack):
    t, tk, old = stack["t"], stack["tk"], stack["old"]
    brief, keep = tk[("brief", "read")], tk[("keep", "read")]
    # Logs.
    assert logs(t, keep, "ancient") == 1
    assert logs(t, brief, "ancient") == 0
    assert logs(t, brief, "fresh") == 1
    # Traces: search and by ID.
    assert traces(t, keep) == {OLD_TRACE, NEW_TRACE}
    assert traces(t, brief) == {NEW_TRACE}
    assert call(f"{t.query}/api/traces/{OLD_TRACE}", keep)[0] == 200
    assert call(f"{t.query}/api/traces/{OLD_TRACE}", brief)[0] == 404
    # Metrics: the sample of two and a half hours ago, at its time.
    assert gauge_at(t, keep, old) == ["old"]
    assert gauge_at(t, brief, old) == []
    assert gauge_at(t, brief, stack["now"]) == ["new"]


def test_a_retention_shorter_than_what_retention_drops_is_refused(tmp_path):
    cfg = tmp_path / "triad.yaml"
    cfg.write_text("limits:\n  tenants:\n    brief:\n      logs_retention_secs: 60\n")
    out = subprocess.run([str(BIN), "check-config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "limits.tenants.brief.logs_retention_secs" in out.stderr + out.stdout, out.stderr
