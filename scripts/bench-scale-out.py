#!/usr/bin/env python3
"""`scripts/bench.sh scale-out`: several collectors sharing one store, on this machine.

Starts SeaweedFS and PostgreSQL on loopback and, for 1, 2 and 3 collectors (release
binary, object-storage mode), sends the same logs and spans over OTLP/HTTP spread over
the collectors and reports:
- the collectors' CPU-seconds per GB of log lines and per million spans (summed over
  the collectors, from /proc): on two cores the figures show the overhead of running
  several, not scaling;
- log search latency through a query server that fans out to every live collector,
  p50/p99;
- agent fail-over: an agent forwarding to all collectors, one collector killed, the time
  until a line sent after the kill is searchable.

Usage: scripts/bench.sh scale-out [--quick]
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TRIAD_BIN", str(ROOT / "target" / "release" / "triad"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import yaml  # noqa: E402
from conftest import Triad, logs_request, post_protobuf, wait_until  # noqa: E402
from engines import Postgres, SeaweedFS  # noqa: E402

QUICK = "--quick" in sys.argv
BATCHES = 40 if QUICK else 200  # per signal
LINES_PER_BATCH = 2000
SPANS_PER_BATCH = 2000
QUERIES = 30 if QUICK else 100


def cpu_seconds(pid):
    """User + system CPU of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spans_request(batch, n):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "bench"
    spans = rs.scope_spans.add()
    now = time.time_ns()
    for i in range(n):
        s = spans.spans.add()
        s.trace_id = (batch * 1_000_000 + i // 8 + 1).to_bytes(16, "big")
        s.span_id = (batch * 1_000_000 + i + 1).to_bytes(8, "big")
        s.name = ["GET /cart", "charge", "lookup", "render"][i % 4]
        s.kind = 2
        s.start_time_unix_nano = now + i * 1000
        s.end_time_unix_nano = now + i * 1000 + 5_000_000
        a = s.attributes.add()
        a.key, a.value.string_value = "http.route", "/cart"
    return req


def config(tmp, weed, db, prefix, node):
    doc = {
        "storage": {**weed.storage_config(prefix), "seal_after_secs": 30, "lease_secs": 3},
        "metastore": {"url": db},
        "collector": {"node_id": node} if node else {},
    }
    path = tmp / f"{prefix}-{node or 'query'}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run(n, tmp, weed, pg):
    prefix = f"scale{n}"
    db = pg.database(prefix)
    query_cfg = config(tmp, weed, db, prefix, None)
    collectors = [Triad(tmp / f"{prefix}-c{i}", config=config(tmp, weed, db, prefix, f"c{i}"),
                        command="collector", log_path=tmp / f"{prefix}-c{i}.log").start() for i in range(n)]
    q = Triad(tmp / f"{prefix}-q", config=query_cfg, command="query", log_path=tmp / f"{prefix}-q.log").start()
    out = {}
    try:
        lines = [f"GET /api/v1/cart/{j} answered in {j % 97} ms for user u{j % 1013} bench" for j in range(LINES_PER_BATCH)]
        log_req = logs_request("bench", lines)
        log_bytes = sum(len(x) for x in lines) * BATCHES
        before = sum(cpu_seconds(c.proc.pid) for c in collectors)
        for b in range(BATCHES):
            post_protobuf(f"{collectors[b % n].http}/v1/logs", log_req)
        wait_until("every line searchable", lambda: q.get("/api/logs/search", q="bench", start="0", limit="1")["total"]
                   == BATCHES * LINES_PER_BATCH, timeout=600, interval=0.5)
        mid = sum(cpu_seconds(c.proc.pid) for c in collectors)
        out["log_cpu_per_gb"] = (mid - before) / (log_bytes / 1e9)
        for b in range(BATCHES):
            post_protobuf(f"{collectors[b % n].http}/v1/traces", spans_request(b, SPANS_PER_BATCH))
        time.sleep(2)
        after = sum(cpu_seconds(c.proc.pid) for c in collectors)
        out["span_cpu_per_million"] = (after - mid) / (BATCHES * SPANS_PER_BATCH / 1e6)
        lat = []
        for i in range(QUERIES):
            t = time.monotonic()
            q.get("/api/logs/search", q=f"u{i % 1013}", start="0", limit="20")
            lat.append((time.monotonic() - t) * 1e3)
        lat.sort()
        out["query_p50_ms"] = statistics.median(lat)
        out["query_p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        if n > 1:
            endpoints = ",".join(f"http://{c.grpc}" for c in collectors)
            agent = Triad(tmp / f"{prefix}-agent", command="agent", args=["--collector", endpoints],
                          log_path=tmp / f"{prefix}-agent.log").start()
            try:
                post_protobuf(f"{agent.http}/v1/logs", logs_request("bench", ["failoverwarm"]))
                wait_until("agent warm", lambda: q.get("/api/logs/search", q="failoverwarm", start="0")["total"] == 1,
                           timeout=60, interval=0.05)
                collectors[0].kill9()
                t = time.monotonic()
                for k in range(5):
                    post_protobuf(f"{agent.http}/v1/logs", logs_request("bench", [f"failovermark line {k}"]))
                wait_until("lines after the kill", lambda: q.get("/api/logs/search", q="failovermark", start="0")
                           ["total"] >= 5, timeout=120, interval=0.05)
                out["failover_s"] = time.monotonic() - t
            finally:
                agent.kill9()
    finally:
        for c in [*collectors, q]:
            if c.proc.poll() is None:
                c.kill9()
    return out


def main():
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        weed = SeaweedFS(tmp / "weed").start()
        pg = Postgres().start()
        try:
            results = {n: run(n, tmp, weed, pg) for n in (1, 2, 3)}
        finally:
            weed.kill()
            pg.close()
    base = results[1]
    print(f"\n| collectors | log CPU-s per GB | vs 1 | span CPU-s per 1M | vs 1 | search p50 | p99 | agent fail-over |")
    print("|---|---|---|---|---|---|---|---|")
    for n, r in results.items():
        fo = f"{r['failover_s']:.2f} s" if "failover_s" in r else "—"
        print(f"| {n} | {r['log_cpu_per_gb']:.1f} | {r['log_cpu_per_gb'] / base['log_cpu_per_gb']:.2f}× "
              f"| {r['span_cpu_per_million']:.1f} | {r['span_cpu_per_million'] / base['span_cpu_per_million']:.2f}× "
              f"| {r['query_p50_ms']:.1f} ms | {r['query_p99_ms']:.1f} ms | {fo} |")


if __name__ == "__main__":
    main()
