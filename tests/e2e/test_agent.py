"""The standalone node agent against the real collector: at-least-once delivery of
tailed files through rotation (both kinds), `kill -9` of the agent (twice) and a
collector outage of 20 s; span receivers (OTLP, Zipkin) forwarding with the host's
resource attributes; backpressure answers when the buffer is full."""

import json
import os
import re
import shutil
import threading
import time
import urllib.request

from conftest import Triad, logs_request, metric_value, post_protobuf, wait_until

TOTAL = 100_000
GROUPS = 10  # lines carry "groupK" so each group can be fetched in one query


def line(i):
    return json.dumps({"level": "info", "service": "rotor", "msg": f"e2e seq{i}x group{i * GROUPS // TOTAL} payload {'z' * 120}"})


class Writer(threading.Thread):
    """Writes TOTAL lines, rotating every 10k lines: rename-and-create and
    copytruncate in turn, as logrotate does. Rotated files stay (none is deleted), and
    the agent's glob includes them: copytruncate copies are new files, read again
    (duplicates), which is the price of copytruncate everywhere."""

    def __init__(self, path, rate):
        super().__init__(daemon=True)
        self.path, self.rate, self.written, self.rotations = path, rate, 0, 0
        self.error = None

    def rotate(self):
        self.rotations += 1
        rotated = self.path.with_name(f"{self.path.name}.{self.rotations}")
        if self.rotations % 2:
            os.rename(self.path, rotated)  # rename + create
            self.f.close()
            self.f = open(self.path, "a")
        else:
            self.f.flush()
            shutil.copyfile(self.path, rotated)  # copytruncate
            os.truncate(self.path, 0)

    def run(self):
        try:
            self.f = open(self.path, "a")
            started = time.monotonic()
            for i in range(TOTAL):
                if i and i % 10_000 == 0:
                    self.rotate()
                self.f.write(line(i) + "\n")
                self.written = i + 1
                if i % 500 == 0:
                    self.f.flush()
                    ahead = self.written / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)  # pacing the writer, not waiting on a result
            self.f.close()
        except Exception as e:  # surfaced by the test
            self.error = e


def seqs(query, group):
    hits = query.get("/api/logs/search", q=f"group{group}", start="0", limit="100000")["hits"]
    return [int(m.group(1)) for h in hits if (m := re.search(r"seq(\d+)x", h["body"]))]


def delivered(query):
    got = []
    for g in range(GROUPS):
        got += seqs(query, g)
    return got


def test_100k_lines_rotation_agent_kill9_twice_collector_down_20s(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "triad.yaml"
    cfg.write_text(f"agent:\n  include: ['{logs}/app.log*']\n"
                   "query:\n  max_log_hits: 100000\n")
    collector = Triad(tmp_path / "collector", config=cfg, command="collector").start()
    grpc_port = collector.grpc.rsplit(":", 1)[1]
    query = Triad(tmp_path / "collector", config=cfg, command="query").start()

    def agent():
        return Triad(tmp_path / "agent", config=cfg, command="agent",
                     args=["--collector", f"http://127.0.0.1:{grpc_port}"]).start()

    a = agent()
    writer = Writer(logs / "app.log", rate=2_500)
    writer.start()
    try:
        wait_until("20% written", lambda: writer.written >= 20_000, timeout=60)
        a.kill9()
        a = agent()

        wait_until("40% written", lambda: writer.written >= 40_000, timeout=60)
        collector.stop()
        outage = time.monotonic()
        # While the collector is down the agent keeps reading into its buffer.
        wait_until("agent buffering", lambda: metric_value(a.metrics(a.ops), "triad_agent_buffer_entries") > 0, timeout=30)
        wait_until("20 s of outage", lambda: time.monotonic() - outage >= 20, timeout=30, interval=0.5)
        collector = Triad(tmp_path / "collector", config=cfg, command="collector",
                          args=["--otlp-grpc-listen", f"127.0.0.1:{grpc_port}"]).start()

        wait_until("70% written", lambda: writer.written >= 70_000, timeout=90)
        a.kill9()
        a = agent()

        writer.join(timeout=120)
        assert writer.error is None, writer.error
        assert writer.written == TOTAL

        def complete():
            got = delivered(query)
            return got if len(set(got)) == TOTAL else None

        got = wait_until("every line in the collector", complete, timeout=180, interval=2)
        dups = len(got) - TOTAL
        print(f"\nagent e2e: {TOTAL} lines written, {len(set(got))} distinct delivered, "
              f"0 lost, {dups} duplicates ({dups / TOTAL:.1%}), {writer.rotations} rotations")
        assert set(got) == set(range(TOTAL))
        m = a.metrics(a.ops)
        assert metric_value(m, 'triad_agent_batches_total{signal="logs",outcome="ok"}') > 0
    finally:
        for p in (a, query, collector):
            if p.proc.poll() is None:
                p.kill9()


def test_receivers_forward_spans_with_host_attributes_and_refuse_when_full(tmp_path):
    collector = Triad(tmp_path / "collector", command="collector").start()
    query = Triad(tmp_path / "collector", command="query").start()
    a = Triad(tmp_path / "agent", command="agent", args=["--collector", f"http://{collector.grpc}"]).start()
    try:
        # Zipkin v2 JSON, as a Zipkin tracer sends it.
        now_us = time.time_ns() // 1000
        spans = [{"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a2fb4a1d1a96d312", "name": "get /zipkin",
                  "kind": "SERVER", "timestamp": now_us, "duration": 2500,
                  "localEndpoint": {"serviceName": "zipkin-svc"}, "tags": {"http.status_code": "500", "error": "boom"}}]
        req = urllib.request.Request(a.zipkin + "/api/v2/spans", data=json.dumps(spans).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 202
        # OTLP logs over HTTP.
        post_protobuf(a.http + "/v1/logs", logs_request("otlp-via-agent", ["forwarded by the agent"]))

        trace = wait_until("zipkin trace", lambda: query.get("/api/traces/463ac35c9f6413ad48485a3953bb6124")["data"], timeout=30)
        process = trace[0]["processes"][trace[0]["spans"][0]["processID"]]
        tags = {t["key"]: t["value"] for t in process["tags"]}
        assert process["serviceName"] == "zipkin-svc"
        assert tags["host.name"] and tags["os.type"] == "linux", tags
        span_tags = {t["key"]: t["value"] for t in trace[0]["spans"][0]["tags"]}
        assert span_tags.get("error") is True and span_tags["http.status_code"] == "500", span_tags
        wait_until("forwarded log", lambda: query.get("/api/logs/search", q="\"forwarded by the agent\"", start="0")["total"] == 1, timeout=30)

        # Malformed Zipkin JSON: a clear 400, counted.
        bad = urllib.request.Request(a.zipkin + "/api/v2/spans", data=b"[{\"traceId\": ", headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(bad, timeout=10)
            raise AssertionError("malformed JSON accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and b"malformed Zipkin v2 JSON" in e.read()
        m = a.metrics(a.ops)
        assert metric_value(m, 'triad_agent_requests_total{signal="traces",transport="zipkin",outcome="invalid"}') == 1
        assert metric_value(m, "node_memory_MemAvailable_bytes") > 0
    finally:
        for p in (a, query, collector):
            if p.proc.poll() is None:
                p.kill9()


def test_full_buffer_answers_429_with_retry_after(tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text("agent:\n  max_buffer_bytes: 1048576\n")
    # No collector listens there: everything stays in the buffer.
    a = Triad(tmp_path / "agent", config=cfg, command="agent", args=["--collector", "http://127.0.0.1:9"]).start()
    try:
        big = ["x" * 1000 + str(i) for i in range(300)]  # incompressible enough: varied suffixes
        codes = []
        for i in range(40):
            body = logs_request("filler", [f"{os.urandom(400).hex()} {b}" for b in big]).SerializeToString()
            req = urllib.request.Request(a.http + "/v1/logs", data=body, headers={"Content-Type": "application/x-protobuf"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    codes.append(r.status)
            except urllib.error.HTTPError as e:
                codes.append(e.code)
                assert e.headers["Retry-After"] == "5"
                break
        assert codes[0] == 200 and codes[-1] == 429, codes
        # gRPC: RESOURCE_EXHAUSTED with a google.rpc.RetryInfo, which OTLP exporters honour.
        import grpc
        channel = grpc.insecure_channel(a.grpc)
        call = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                                   request_serializer=None, response_deserializer=None)
        try:
            call(body, timeout=10)
            raise AssertionError("a full buffer accepted a gRPC export")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
            details = dict(e.trailing_metadata() or ())["grpc-status-details-bin"]
            assert b"type.googleapis.com/google.rpc.RetryInfo" in details
        m = a.metrics(a.ops)
        assert metric_value(m, 'triad_agent_requests_total{signal="logs",transport="http",outcome="queue_full"}') == 1
        assert metric_value(m, "triad_agent_buffer_bytes") > 0
    finally:
        a.kill9()


def source_counts(agent):
    m = agent.metrics(agent.ops)
    wakeups = sum(float(l.rsplit(" ", 1)[1]) for l in m.splitlines()
                  if l.startswith("triad_agent_source_wakeups_total{"))
    return wakeups, metric_value(m, "triad_agent_directory_scans_total")


def test_regression_idle_agent_spun_a_core_over_a_directory_glob(tmp_path):
    """Issue: `triad agent --include 'dir/*.log'` used 70-90% of a core with nothing
    written — its own directory listings raised inotify events that woke the next one.
    Counted, not timed: an idle agent wakes a handful of times and lists the directory
    not at all between fallback scans, whether its collector is up or (the second
    agent's) unreachable."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(50):
        (logs / f"svc-{i:02}.log").write_text(line(i) + "\n")
    collector = Triad(tmp_path / "collector", command="collector").start()
    query = Triad(tmp_path / "collector", command="query").start()
    up = Triad(tmp_path / "agent-up", command="agent",
               args=["--collector", f"http://{collector.grpc}", "--include", f"{logs}/*.log"]).start()
    down = Triad(tmp_path / "agent-down", command="agent",
                 args=["--collector", "http://127.0.0.1:9", "--include", f"{logs}/*.log"]).start()
    try:
        wait_until("the 50 lines", lambda: query.get("/api/logs/search", q="service:rotor", start="0")["total"] == 50)
        wait_until("the unreachable agent's lines read", lambda: metric_value(down.metrics(down.ops), "triad_agent_lines_read_total") == 50)
        before = {a: source_counts(a) for a in (up, down)}
        time.sleep(3)  # the measurement window: how often does an idle agent wake?
        for a in (up, down):
            (w0, s0), (w1, s1) = before[a], source_counts(a)
            assert w1 - w0 <= 6, f"{w1 - w0} wake-ups in 3 s of quiet"
            assert s1 == s0, f"{s1 - s0} directory scans in 3 s of quiet"
        # A write is still read at once, from its event.
        with open(logs / "svc-07.log", "a") as f:
            f.write(line(TOTAL - 1) + "\n")
        wait_until("the new line", lambda: query.get("/api/logs/search", q="service:rotor", start="0")["total"] == 51)
    finally:
        for p in (up, down, query, collector):
            if p.proc.poll() is None:
                p.kill9()
