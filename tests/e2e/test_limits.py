"""Every limit hit once, against the real binary: its error (naming the key), its status
and its counter. Tenant `small` has the defaults of the file; tenant `big` overrides them.
"""

import json
import re
import socket
import subprocess
import time
import urllib.parse

import pytest
from conftest import Triad, auth_yaml, gauge_request, logs_request, new_token, wait_until
from test_security import call


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("limits")
    tokens, entries = {}, []
    for tenant in ("small", "big"):
        for role in ("write", "read"):
            tokens[(tenant, role)], entry = new_token(tenant, role, f"{tenant}-{role}")
            entries.append(entry)
    cfg = d / "triad.yaml"
    cfg.write_text(auth_yaml(entries) +
                   "limits:\n  ingest_rate: 20\n  ingest_burst: 40\n  max_labels_per_series: 6\n"
                   "  max_label_bytes: 64\n  max_query_range_secs: 3600\n  max_concurrent_queries: 1\n"
                   "  query_queue_secs: 1\n  max_tail_streams: 1\n  max_header_bytes: 16384\n  header_read_timeout_secs: 2\n"
                   "  tenants:\n    small:\n      max_query_samples: 1000\n    big:\n      ingest_rate: 100000\n      max_concurrent_queries: 8\n      max_series: 20\n")
    t = Triad(d / "data", config=cfg).start()
    try:
        yield {"t": t, "tk": tokens}
    finally:
        t.stop()


def refused(t, limit, tenant):
    m = call(t.query + "/metrics")[1].decode()
    found = re.search(rf'triad_limits_refused_total\{{limit="{limit}",tenant="{tenant}"\}} (\d+)', m)
    return int(found.group(1)) if found else 0


def post_logs(t, token, n, service="svc"):
    body = logs_request(service, [f"line {i}" for i in range(n)]).SerializeToString()
    return call(t.http + "/v1/logs", token, "POST", body, {"Content-Type": "application/x-protobuf"})


def test_ingest_rate_refuses_with_a_retry_hint_and_a_bigger_tenant_passes(stack):
    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc

    t, tk = stack["t"], stack["tk"]
    assert post_logs(t, tk[("small", "write")], 40)[0] == 200
    status, body = post_logs(t, tk[("small", "write")], 40)
    assert status == 429, body
    assert b"limits.ingest_rate" in body
    # gRPC: RESOURCE_EXHAUSTED with RetryInfo, which OTLP clients and the agent retry on.
    stub = logs_service_pb2_grpc.LogsServiceStub(grpc.insecure_channel(t.grpc))
    with pytest.raises(grpc.RpcError) as e:
        stub.Export(logs_request("svc", ["x"] * 40), timeout=10,
                    metadata=(("authorization", f"Bearer {tk[('small', 'write')]}"),))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(e.value.trailing_metadata() or ())
    assert "grpc-status-details-bin" in details and b"RetryInfo" in details["grpc-status-details-bin"]
    assert refused(t, "ingest_rate", "small") >= 80
    # The override: `big` sends ten times more at once.
    assert post_logs(t, tk[("big", "write")], 400)[0] == 200
    # The bucket refills: after the hint, `small` sends again.
    time.sleep(2.1)
    assert post_logs(t, tk[("small", "write")], 20)[0] == 200


def test_series_shape(stack):
    t, tk = stack["t"], stack["tk"]
    now = time.time_ns()
    req = gauge_request("too_many_labels", [({f"l{i}": "v" for i in range(8)}, now, 1.0)])
    m2 = gauge_request("long_value", [({"l": "x" * 100}, now, 1.0)])
    m3 = gauge_request("fine", [({"l": "v"}, now, 1.0)])
    req.resource_metrics.extend(m2.resource_metrics)
    req.resource_metrics.extend(m3.resource_metrics)
    time.sleep(2.1)  # the ingest bucket of the test before refills
    status, body = call(t.http + "/v1/metrics", tk[("small", "write")], "POST", req.SerializeToString(),
                        {"Content-Type": "application/x-protobuf", "Accept": "application/json"})
    assert status == 200, body
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    resp = metrics_service_pb2.ExportMetricsServiceResponse.FromString(body)
    assert resp.partial_success.rejected_data_points == 2
    assert "limits.max_labels_per_series" in resp.partial_success.error_message
    assert refused(t, "max_labels_per_series", "small") == 2
    wait_until("the fitting series", lambda: json.loads(call(
        t.query + "/api/v1/query?query=fine", tk[("small", "read")])[1])["data"]["result"])


def test_active_series(stack):
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    t, tk = stack["t"], stack["tk"]
    now = time.time_ns()
    req = gauge_request("many_series", [({"i": str(i)}, now, 1.0) for i in range(30)])
    status, body = call(t.http + "/v1/metrics", tk[("big", "write")], "POST", req.SerializeToString(),
                        {"Content-Type": "application/x-protobuf"})
    assert status == 200, body
    resp = metrics_service_pb2.ExportMetricsServiceResponse.FromString(body)
    assert resp.partial_success.rejected_data_points == 10
    assert "limits.max_series" in resp.partial_success.error_message
    assert refused(t, "max_series", "big") == 10
    # The series it has still take samples.
    again = gauge_request("many_series", [({"i": str(i)}, now + 1_000_000_000, 2.0) for i in range(20)])
    status, body = call(t.http + "/v1/metrics", tk[("big", "write")], "POST", again.SerializeToString(),
                        {"Content-Type": "application/x-protobuf"})
    assert metrics_service_pb2.ExportMetricsServiceResponse.FromString(body).partial_success.rejected_data_points == 0


def test_query_range(stack):
    t, tk = stack["t"], stack["tk"]
    now = time.time()
    for url in [t.query + "/api/v1/query_range?" + urllib.parse.urlencode(
                    {"query": "up", "start": now - 7200, "end": now, "step": 60}),
                t.query + "/api/logs/search?" + urllib.parse.urlencode({"q": "x", "start": now - 7200, "end": now}),
                t.query + "/loki/api/v1/query_range?" + urllib.parse.urlencode(
                    {"query": '{service_name="svc"}', "start": int((now - 7200) * 1e9), "end": int(now * 1e9)})]:
        status, body = call(url, tk[("small", "read")])
        assert status == 400 and b"limits.max_query_range_secs" in body, (url, status, body)
    assert refused(t, "max_query_range_secs", "small") == 3
    status, _ = call(t.query + "/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": "up", "start": now - 600, "end": now, "step": 60}), tk[("small", "read")])
    assert status == 200


def test_samples_per_query(stack):
    t, tk = stack["t"], stack["tk"]
    wait_until("the series", lambda: json.loads(call(
        t.query + "/api/v1/query?query=fine", tk[("small", "read")])[1])["data"]["result"])
    now = time.time()
    q = urllib.parse.urlencode({"query": "fine", "start": now - 3000, "end": now, "step": 1})
    status, body = call(t.query + "/api/v1/query_range?" + q, tk[("small", "read")])
    assert status == 422 and b"too many samples" in body, (status, body)


def hold_a_query(t, token):
    """A query whose body arrives slowly: it holds its slot while the server waits."""
    host, port = t.query.split("://")[1].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall((f"POST /api/v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nquery=").encode())
    return s


def test_concurrent_queries(stack):
    t, tk = stack["t"], stack["tk"]
    held = hold_a_query(t, tk[("small", "read")])
    try:
        time.sleep(0.3)
        status, body = call(t.query + "/api/v1/query?query=1", tk[("small", "read")])
        assert status == 429 and b"limits.max_concurrent_queries" in body, (status, body)
        # Another tenant is not affected.
        assert call(t.query + "/api/v1/query?query=1", tk[("big", "read")])[0] == 200
    finally:
        held.close()
    wait_until("the slot released", lambda: call(t.query + "/api/v1/query?query=1", tk[("small", "read")])[0] == 200)
    assert refused(t, "max_concurrent_queries", "small") >= 1


def test_live_tails(stack):
    t, tk = stack["t"], stack["tk"]
    first = subprocess.Popen(["curl", "-s", "-N", "-H", f"Authorization: Bearer {tk[('small', 'read')]}",
                              t.query + "/api/logs/tail?q=x"], stdout=subprocess.DEVNULL)
    try:
        def refused_now():
            status, body = call(t.query + "/api/logs/tail?q=x", tk[("small", "read")], status_only=True)
            return status == 429

        wait_until("a second tail refused", refused_now)
        assert refused(t, "max_tail_streams", "small") >= 1
    finally:
        first.terminate()
        first.wait()


def test_header_size_and_slow_clients(stack):
    t = stack["t"]
    status, _ = call(t.query + "/healthz", headers={"X-Big": "a" * 40_000})
    assert status == 431
    # A client that starts its headers and never finishes them is cut off after the
    # timeout (2 s here), not held for ever.
    host, port = t.query.split("://")[1].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: a")
        started = time.monotonic()
        answer = s.recv(1024)
        waited = time.monotonic() - started
    finally:
        s.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
    assert 1.5 < waited < 6, waited
