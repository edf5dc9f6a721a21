"""Data acknowledged to a sender survives `kill -9`: it is in the write-ahead log
before the acknowledgement, and replayed at the next start."""

import time

from conftest import Triad, logs_request, post_protobuf, wait_until
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def test_kill9_right_after_ack_loses_nothing(tmp_path):
    # No index commit for 10 minutes: after the kill, the data can only come from the WAL.
    cfg = tmp_path / "no-commit.yaml"
    cfg.write_text("collector:\n  logs: {commit_interval_ms: 600000}\n  traces: {commit_interval_ms: 600000}\n")
    t = Triad(tmp_path / "data", config=cfg).start()
    now = time.time_ns()
    traces = trace_service_pb2.ExportTraceServiceRequest()
    rs = traces.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "crashy"
    spans = rs.scope_spans.add()
    for i in range(200):
        s = spans.spans.add()
        s.trace_id, s.span_id, s.name = bytes([7] * 15 + [i % 256]), bytes([1] * 7 + [i % 250 + 1]), f"op-{i}"
        s.start_time_unix_nano, s.end_time_unix_nano = now, now + 5000
    logs = logs_request("crashy", [f"acknowledged line {i} survives" for i in range(200)], now)
    post_protobuf(t.http + "/v1/traces", traces)
    post_protobuf(t.http + "/v1/logs", logs)
    t.kill9()

    t2 = Triad(tmp_path / "data").start()
    try:
        found = wait_until("replayed logs", lambda: t2.get("/api/logs/search", q="acknowledged survives", start="0")["total"] == 200)
        assert found
        for i in (0, 199):
            tid = bytes([7] * 15 + [i]).hex()
            wait_until(f"trace {tid}", lambda: t2.get_status(f"/api/traces/{tid}")[0] == 200)
        assert "crashy" in t2.get("/api/services")["data"]
    finally:
        t2.stop()


def test_split_deployment_query_reads_what_the_collector_writes(tmp_path):
    collector = Triad(tmp_path / "data", command="collector").start()
    query = Triad(tmp_path / "data", command="query").start()
    try:
        now = time.time_ns()
        logs = logs_request("split", ["written by the collector, read by the query server"], now)
        post_protobuf(collector.http + "/v1/logs", logs)
        hit = wait_until("query server sees the collector's commit",
                         lambda: query.get("/api/logs/search", q="collector query server")["total"] == 1)
        assert hit
        assert query.get_status("/readyz")[0] == 200
    finally:
        query.stop()
        collector.stop()
