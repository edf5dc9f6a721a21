"""A very large trace sent over OTLP/HTTP, for the trace page's tests and benchmark.

Shape: a root, 99 children (each a service call) with the leaves spread over them
(more than 200 children each, so the page starts them collapsed), and under one leaf a
chain of 40 spans whose last one carries the attribute `needle=found-me`."""

import os
import random
import time

from conftest import post_protobuf

CHAIN = 40
CALLS = 99


def send_big_trace(t, n_spans, batch=5_000):
    """Sends a trace of exactly `n_spans` spans (at least 1,000); returns (trace ID hex,
    needle span ID hex)."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    assert n_spans >= 1_000
    trace_id = os.urandom(16)
    rnd = random.Random(n_spans)
    now = time.time_ns() - 60 * 10**9
    ids = iter(range(1, 10**9))

    def sid():
        return next(ids).to_bytes(8, "big")

    spans = []  # (service, name, span id, parent id, start, end, attrs, error)
    root = sid()
    spans.append(("gateway", "GET /big", root, b"", now, now + 5 * 10**9, {}, False))
    calls = [sid() for _ in range(CALLS)]
    for i, c in enumerate(calls):
        start = now + i * 40 * 10**6
        spans.append((f"svc-{i % 10}", f"call {i}", c, root, start, start + 40 * 10**6, {}, i % 17 == 0))
    leaves = n_spans - 1 - CALLS - CHAIN
    needle_parent = None
    for k in range(leaves):
        parent = calls[k % CALLS]
        start = now + (k % CALLS) * 40 * 10**6 + rnd.randrange(30 * 10**6)
        s = sid()
        if needle_parent is None and k % CALLS == 50:
            needle_parent = s
        spans.append((f"svc-{k % 10}", f"query {k % 13}", s, parent, start, start + rnd.randrange(1, 10**6),
                      {"db.rows": k % 100}, k % 997 == 0))
    parent = needle_parent
    needle = None
    for d in range(CHAIN):
        s = sid()
        start = now + 50 * 40 * 10**6 + d * 1000
        attrs = {"needle": "found-me"} if d == CHAIN - 1 else {}
        spans.append(("deep", f"level {d}", s, parent, start, start + 500, attrs, False))
        parent, needle = s, s
    assert len(spans) == n_spans

    for i in range(0, len(spans), batch):
        req = trace_service_pb2.ExportTraceServiceRequest()
        by_service = {}
        for svc, name, s, p, start, end, attrs, err in spans[i:i + batch]:
            if svc not in by_service:
                rs = req.resource_spans.add()
                kv = rs.resource.attributes.add()
                kv.key, kv.value.string_value = "service.name", svc
                by_service[svc] = rs.scope_spans.add()
            sp = by_service[svc].spans.add()
            sp.trace_id, sp.span_id, sp.parent_span_id = trace_id, s, p
            sp.name, sp.kind = name, 2
            sp.start_time_unix_nano, sp.end_time_unix_nano = start, end
            for k, v in attrs.items():
                a = sp.attributes.add()
                a.key = k
                if isinstance(v, int):
                    a.value.int_value = v
                else:
                    a.value.string_value = v
            if err:
                sp.status.code = 2
        post_protobuf(t.http + "/v1/traces", req)
    return trace_id.hex(), needle.hex()


def stored_spans(t, trace_id):
    """The span count the rows stream's summary reports (0 while not found)."""
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{t.query}/api/traces/{trace_id}/rows", timeout=60) as r:
            return json.loads(r.readline())["spanCount"]
    except urllib.error.HTTPError:
        return 0
