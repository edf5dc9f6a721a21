"""Metrics end to end, with Prometheus 2.42 as the reference.

Real Prometheus scrapes a prometheus-client exporter and node_exporter every second and
remote-writes everything to Triad; Triad scrapes the same exporters itself, plus targets
that hang, answer garbage or 10 MB. The same PromQL queries on both must give the same
answers over the remote-written data; Triad's own scrape must see the same series; a
kill -9 of Triad must lose no sample Prometheus got acknowledged.
"""

import http.server
import json
import math
import random
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import make_wsgi_app
from wsgiref.simple_server import WSGIRequestHandler, make_server

from conftest import Triad, wait_until


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Exporter:
    """A prometheus-client exporter whose counters move while the test runs."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("app_requests", "Requests served.", ["route", "code"], registry=self.registry)
        self.latency = Histogram("app_latency_seconds", "Request latency.", ["route"],
                                 buckets=(0.01, 0.05, 0.1, 0.5, 1.0), registry=self.registry)
        self.size = Summary("app_response_bytes", "Response sizes.", registry=self.registry)
        self.inflight = Gauge("app_inflight", "Requests in flight.", registry=self.registry)
        self.server = make_server("127.0.0.1", 0, make_wsgi_app(self.registry), handler_class=QuietHandler)
        self.port = self.server.server_address[1]
        self.stop = threading.Event()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self.traffic, daemon=True).start()

    def traffic(self):
        rnd = random.Random(7)
        while not self.stop.is_set():
            for route in ("/feed", "/profile"):
                code = "500" if rnd.random() < 0.1 else "200"
                self.requests.labels(route, code).inc()
                trace = "%032x" % rnd.getrandbits(128)
                self.latency.labels(route).observe(rnd.expovariate(20), exemplar={"trace_id": trace})
                self.size.observe(rnd.randint(100, 5000))
            self.inflight.set(rnd.randint(0, 10))
            time.sleep(0.02)

    def close(self):
        self.stop.set()
        self.server.shutdown()


class BadTarget(http.server.ThreadingHTTPServer):
    """`mode`: hang (answers after 30 s), garbage, big (10 MB of valid lines)."""

    def __init__(self, mode):
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if outer.mode == "hang":
                    time.sleep(30)
                    body = b"late 1\n"
                elif outer.mode == "garbage":
                    body = b"\x00\xffthis is { not an exposition\n}}}\n"
                else:
                    line = b'big_metric{label="%s"} 1\n' % (b"x" * 60)
                    body = line * (10 * 1024 * 1024 // len(line))
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.mode = mode
        self.daemon_threads = True
        super().__init__(("127.0.0.1", 0), H)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


def start_node_exporter(tmp_path):
    port = free_port()
    log = open(tmp_path / "node_exporter.log", "wb")
    proc = subprocess.Popen(
        ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}",
         "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo",
         "--collector.loadavg", "--collector.netdev", "--collector.filesystem", "--collector.stat"],
        stdout=log, stderr=log)
    wait_until("node_exporter", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).status == 200)
    return proc, port


def prom_get(base, path, **params):
    url = base + path + "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def values_equal(a, b):
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    return fa == fb or abs(fa - fb) <= 1e-9 * max(abs(fa), abs(fb))


def normalise(data):
    """A result as {metric-json: [(t, v), ...]} for comparison."""
    kind = data["resultType"]
    if kind in ("scalar", "string"):
        return {"": [tuple(data["result"])]}
    out = {}
    for s in data["result"]:
        key = json.dumps(s["metric"], sort_keys=True)
        out[key] = [tuple(s["value"])] if kind == "vector" else [tuple(v) for v in s["values"]]
    return out


def assert_same(prom, triad, what):
    assert prom["status"] == "success", (what, prom)
    assert triad["status"] == "success", (what, triad)
    assert prom["data"]["resultType"] == triad["data"]["resultType"], what
    p, t = normalise(prom["data"]), normalise(triad["data"])
    assert p.keys() == t.keys(), f"{what}: series differ\n prometheus: {sorted(p)}\n triad: {sorted(t)}"
    for k in p:
        assert len(p[k]) == len(t[k]), f"{what} {k}: {len(p[k])} vs {len(t[k])} samples"
        for (pt, pv), (tt, tv) in zip(p[k], t[k]):
            assert pt == tt and values_equal(pv, tv), f"{what} {k}: prometheus {pt},{pv} triad {tt},{tv}"


@pytest.fixture
def stack(tmp_path):
    if not shutil.which("prometheus") or not shutil.which("prometheus-node-exporter"):
        pytest.fail("Debian's prometheus and prometheus-node-exporter must be installed (scripts/test.sh does)")
    exporter = Exporter()
    node, node_port = start_node_exporter(tmp_path)
    hang, garbage, big = BadTarget("hang"), BadTarget("garbage"), BadTarget("big")
    sd_file = tmp_path / "targets.json"
    sd_file.write_text(json.dumps([{"targets": [f"127.0.0.1:{exporter.port}"], "labels": {"team": "a"}}]))
    triad_scrape = tmp_path / "triad-prometheus.yml"
    triad_scrape.write_text(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
rule_files: [ignored.yml]
scrape_configs:
  - job_name: triad-app
    static_configs: [{{targets: ["127.0.0.1:{exporter.port}"], labels: {{env: test}}}}]
  - job_name: triad-node
    static_configs: [{{targets: ["127.0.0.1:{node_port}"]}}]
  - job_name: filesd
    file_sd_configs: [{{files: ["{sd_file}"], refresh_interval: 1s}}]
    relabel_configs:
      - source_labels: [team]
        target_label: owner
        replacement: team-$1
  - job_name: hang
    static_configs: [{{targets: ["127.0.0.1:{hang.port}"]}}]
  - job_name: garbage
    static_configs: [{{targets: ["127.0.0.1:{garbage.port}"]}}]
  - job_name: big
    body_size_limit: 1MB
    static_configs: [{{targets: ["127.0.0.1:{big.port}"]}}]
""")
    triad_cfg = tmp_path / "triad.yaml"
    triad_cfg.write_text(f"collector:\n  metrics:\n    scrape_config_file: {triad_scrape}\n")
    http_port = free_port()
    triad = Triad(tmp_path / "data", config=triad_cfg, args=["--otlp-http-listen", f"127.0.0.1:{http_port}"]).start()
    prom_port = free_port()
    prom_cfg = tmp_path / "prometheus.yml"
    prom_cfg.write_text(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: app
    static_configs: [{{targets: ["127.0.0.1:{exporter.port}"]}}]
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{node_port}"]}}]
remote_write:
  - url: http://127.0.0.1:{http_port}/api/v1/write
    queue_config: {{batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 500ms}}
""")
    prom_log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={prom_cfg}", f"--storage.tsdb.path={tmp_path / 'prom-data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.remote.flush-deadline=1s"],
        stdout=prom_log, stderr=prom_log)
    prom_base = f"http://127.0.0.1:{prom_port}"
    wait_until("prometheus ready", lambda: urllib.request.urlopen(prom_base + "/-/ready", timeout=2).status == 200)
    state = {"triad": triad, "prom": prom_base, "sd_file": sd_file, "exporter": exporter, "http_port": http_port,
             "config": triad_cfg, "data": tmp_path / "data"}
    yield state
    if state["triad"].proc.poll() is None:
        state["triad"].kill9()
    prom.terminate()
    try:
        prom.wait(timeout=30)
    except subprocess.TimeoutExpired:
        prom.kill()
    node.terminate()
    exporter.close()
    for t in (hang, garbage, big):
        t.shutdown()


def triad_has_until(triad, t):
    """True once Triad holds Prometheus' samples up to time t."""
    r = triad.get("/api/v1/query", query='max(timestamp(up{job="app"}))', time=t + 5)
    res = r["data"]["result"]
    return bool(res) and float(res[0]["value"][1]) >= t


def samples_in(get, query):
    """The value of a one-series PromQL answer (0 when empty)."""
    res = get("/api/v1/query", query=query)["data"]["result"]
    return float(res[0]["value"][1]) if res else 0.0


def history_of(get, job, seconds):
    """True once `up{job}` has a sample for each of the last `seconds` (1 s scrapes)."""
    return samples_in(get, f'count_over_time(up{{job="{job}"}}[{seconds + 2}s])') >= seconds


def test_prometheus_and_triad_agree(stack):
    triad, prom = stack["triad"], stack["prom"]
    # Enough history for 5s windows, then a fixed evaluation time both sides have.
    wait_until("8 s of history in Prometheus",
               lambda: history_of(lambda *a, **k: prom_get(prom, *a, **k), "app", 8), timeout=30)
    t = round(time.time() - 2, 3)
    wait_until("remote-written data in Triad", lambda: triad_has_until(triad, t), timeout=30)
    instant = [
        'up{job=~"app|node"}',
        'app_requests_total{job="app"}',
        'rate(app_requests_total{job="app"}[5s])',
        'sum by (code) (increase(app_requests_total{job="app"}[5s]))',
        'histogram_quantile(0.9, sum by (le) (rate(app_latency_seconds_bucket{job="app"}[5s])))',
        'app_response_bytes{job="app", quantile="0.5"}',
        'avg_over_time(app_inflight{job="app"}[5s])',
        'sum by (mode) (rate(node_cpu_seconds_total{job="node"}[5s]))',
        'node_memory_MemTotal_bytes{job="node"}',
        'count({job="node"})',
        'count by (__name__) ({job="app"})',
        'topk(3, rate(app_requests_total{job="app"}[5s]))',
        'scrape_samples_scraped{job=~"app|node"}',
        '1 + 1',
    ]
    for q in instant:
        assert_same(prom_get(prom, "/api/v1/query", query=q, time=t),
                    triad.get("/api/v1/query", query=q, time=t), q)
    for q in ['rate(app_requests_total{job="app"}[3s])', 'sum(app_inflight{job="app"})', 'up{job="app"}']:
        params = dict(query=q, start=t - 5, end=t, step=1)
        assert_same(prom_get(prom, "/api/v1/query_range", **params), triad.get("/api/v1/query_range", **params), q)

    # Series and label APIs over the remote-written data.
    p = prom_get(prom, "/api/v1/series", **{"match[]": 'app_requests_total{job="app"}'})
    s = triad.get("/api/v1/series", **{"match[]": 'app_requests_total{job="app"}'})
    assert sorted(json.dumps(x, sort_keys=True) for x in p["data"]) == sorted(json.dumps(x, sort_keys=True) for x in s["data"])
    names = triad.get("/api/v1/label/__name__/values")["data"]
    assert {"app_requests_total", "node_cpu_seconds_total", "up"} <= set(names)

    # Triad's own scrape of the same exporters sees the same series (job label aside).
    def triad_series_count():
        r = triad.get("/api/v1/query", query='count({job="triad-app"})')["data"]["result"]
        return r and int(r[0]["value"][1])
    prom_count = int(prom_get(prom, "/api/v1/query", query='count({job="app"})', time=t)["data"]["result"][0]["value"][1])
    wait_until("triad scraped the app", lambda: triad_series_count() == prom_count, timeout=15)
    up = triad.get("/api/v1/query", query='up{job="triad-app"}')["data"]["result"]
    assert up and up[0]["value"][1] == "1" and up[0]["metric"]["env"] == "test"
    meta = triad.get("/api/v1/metadata", metric="app_requests")["data"]
    assert meta["app_requests"][0]["type"] == "counter", meta
    ex = triad.get("/api/v1/query_exemplars", query='app_latency_seconds_bucket{job="triad-app"}',
                   start=time.time() - 60, end=time.time())["data"]
    assert ex and len(ex[0]["exemplars"][0]["labels"]["trace_id"]) == 32, ex

    # Grafana's health check is a form POST of `1+1`.
    req = urllib.request.Request(triad.query + "/api/v1/query", data=b"query=1%2B1&time=" + str(t).encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    body = json.loads(urllib.request.urlopen(req, timeout=10).read())
    assert body == {"status": "success", "data": {"resultType": "scalar", "result": [t, "2"]}}
    bad = prom_get(triad.query, "/api/v1/query", query="sum(")
    assert bad["status"] == "error" and bad["errorType"] == "bad_data"
    assert triad.get("/api/v1/status/buildinfo")["status"] == "success"


def test_prometheus_reads_triad_through_remote_read(stack, tmp_path):
    """A second, empty Prometheus with Triad as its remote_read source, and a separate
    `triad query` reading through the same endpoint, answer PromQL over the series Triad
    scraped itself exactly as Triad does."""
    triad = stack["triad"]
    wait_until("6 s of Triad's own scrapes", lambda: history_of(triad.get, "triad-app", 6), timeout=30)
    port = free_port()
    cfg = tmp_path / "reader.yml"
    cfg.write_text(f"""
global: {{scrape_interval: 1m}}
remote_read:
  - url: http://127.0.0.1:{stack["http_port"]}/api/v1/read
    read_recent: true
""")
    log = open(tmp_path / "reader.log", "wb")
    reader = subprocess.Popen(
        ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'reader-data'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until("reader ready", lambda: urllib.request.urlopen(base + "/-/ready", timeout=2).status == 200)
        t = round(time.time() - 2, 3)
        for q in ['up{job="triad-app"}',
                  'rate(app_requests_total{job="triad-app"}[5s])',
                  'sum by (code) (app_requests_total{job="triad-app"})',
                  'count({job="triad-node"})']:
            assert_same(prom_get(base, "/api/v1/query", query=q, time=t),
                        triad.get("/api/v1/query", query=q, time=t), q)
        params = dict(query='app_inflight{job="triad-app"}', start=t - 4, end=t, step=1)
        assert_same(prom_get(base, "/api/v1/query_range", **params),
                    triad.get("/api/v1/query_range", **params), "range over remote read")
        metrics = urllib.request.urlopen(triad.query + "/metrics", timeout=10).read().decode()
        assert re.search(r'^triad_remote_read_requests_total\{code="200"\} [1-9]', metrics, re.M), metrics[-2000:]
    finally:
        reader.terminate()
        reader.wait(timeout=30)

    # A split query server: the same answers, the same label APIs.
    split = Triad(stack["data"], command="query", log_path=tmp_path / "split-query.log",
                  args=["--remote-read-url", f"http://127.0.0.1:{stack['http_port']}/api/v1/read"]).start()
    try:
        for q in ['rate(app_requests_total{job="triad-app"}[5s])', 'count by (job) (up)',
                  'histogram_quantile(0.9, sum by (le) (rate(app_latency_seconds_bucket{job="triad-app"}[5s])))']:
            assert_same(triad.get("/api/v1/query", query=q, time=t), split.get("/api/v1/query", query=q, time=t), q)
        params = dict(query='sum(app_inflight{job="triad-app"})', start=t - 4, end=t, step=1)
        assert_same(triad.get("/api/v1/query_range", **params), split.get("/api/v1/query_range", **params),
                    "split range query")
        window = dict(start=t - 60, end=t)
        for path in ["/api/v1/labels", "/api/v1/label/job/values"]:
            assert triad.get(path, **window)["data"] == split.get(path, **window)["data"], path
        series = {"match[]": 'up{job=~"triad-.*"}', **window}
        assert sorted(map(str, triad.get("/api/v1/series", **series)["data"])) == \
            sorted(map(str, split.get("/api/v1/series", **series)["data"]))
    finally:
        split.stop()


def test_bad_targets_fail_alone_and_series_go_stale(stack):
    triad = stack["triad"]

    def up(job):
        r = triad.get("/api/v1/query", query=f'up{{job="{job}"}}')["data"]["result"]
        return r[0]["value"][1] if r else None

    for job in ("hang", "garbage", "big"):
        wait_until(f"up of {job}", lambda: up(job) == "0", timeout=15)
    wait_until("good target still scraped", lambda: up("triad-app") == "1")
    failures = triad.metrics()
    for reason in ("timeout", "parse", "too_large"):
        assert f'reason="{reason}"' in failures, reason

    # file_sd + relabeling; removing the target ends its series at once (staleness),
    # not after the 5-minute lookback.
    wait_until("file_sd target", lambda: up("filesd") == "1", timeout=15)
    r = triad.get("/api/v1/query", query='up{job="filesd"}')["data"]["result"]
    assert r[0]["metric"]["owner"] == "team-a"
    stack["sd_file"].write_text("[]")
    wait_until("stale after removal", lambda: up("filesd") is None, timeout=15)


def test_kill9_loses_no_acknowledged_sample(stack, tmp_path):
    triad = stack["triad"]
    prom = lambda *a, **k: prom_get(stack["prom"], *a, **k)  # noqa: E731
    wait_until("3 s of remote-written history", lambda: history_of(triad.get, "app", 3), timeout=30)
    triad.kill9()
    killed = time.time()
    # Prometheus keeps scraping and retries the remote writes Triad could not answer.
    wait_until("3 s of scrapes Triad missed", lambda: samples_in(
        prom, 'max(timestamp(up{job="app"}))') >= killed + 3, timeout=30)
    triad2 = Triad(stack["data"], config=stack["config"], log_path=tmp_path / "triad-2.log",
                   args=["--otlp-http-listen", f"127.0.0.1:{stack['http_port']}"]).start()
    stack["triad"] = triad2
    try:
        # Up to the restart: what Prometheus scraped while Triad was down must arrive.
        t = round(time.time(), 3)
        wait_until("catch-up after restart", lambda: triad_has_until(triad2, t), timeout=60)
        q = 'count_over_time(up{job="app"}[30s])'
        assert_same(prom_get(stack["prom"], "/api/v1/query", query=q, time=t),
                    triad2.get("/api/v1/query", query=q, time=t), q)
        q = 'app_requests_total{job="app", route="/feed", code="200"}'
        params = dict(query=q, start=t - 12, end=t, step=0.5)
        assert_same(prom_get(stack["prom"], "/api/v1/query_range", **params),
                    triad2.get("/api/v1/query_range", **params), q)
    finally:
        triad2.stop()


def test_red_metrics_from_spans(tmp_path):
    """Spans from the OpenTelemetry SDK become triad_span_* series whose exemplars open
    the traces through the Jaeger API."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    cfg = tmp_path / "triad.yaml"
    cfg.write_text("collector:\n  metrics:\n    span_metrics_interval_secs: 1\n")
    t = Triad(tmp_path / "data", config=cfg).start()
    try:
        p = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
        p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{t.grpc}", insecure=True)))
        tracer = p.get_tracer("e2e")
        error_trace = None
        for i in range(20):
            with tracer.start_as_current_span("POST /pay", kind=SpanKind.SERVER) as s:
                if i % 4 == 0:
                    s.set_status(Status(StatusCode.ERROR, "declined"))
                    error_trace = format(s.get_span_context().trace_id, "032x")
                with tracer.start_as_current_span("db.query", kind=SpanKind.CLIENT):
                    time.sleep(0.001)
        p.shutdown()

        def value(q):
            r = t.get("/api/v1/query", query=q)["data"]["result"]
            return float(r[0]["value"][1]) if r else None

        wait_until("RED series", lambda: value('triad_span_requests_total{service="checkout", operation="POST /pay"}') == 20)
        assert value('triad_span_errors_total{service="checkout"}') == 5
        assert value('sum(triad_span_requests_total{operation="db.query"})') is None, "client spans are not requests"
        assert value('triad_span_duration_seconds_count{service="checkout"}') == 20
        assert value('histogram_quantile(0.5, triad_span_duration_seconds_bucket{service="checkout"})') > 0
        now = time.time()
        ex = t.get("/api/v1/query_exemplars", query='triad_span_duration_seconds_bucket{service="checkout"}',
                   start=now - 120, end=now + 5)["data"]
        trace_ids = {e["labels"]["trace_id"] for s in ex for e in s["exemplars"]}
        assert trace_ids, ex
        def trace_spans(tid):
            try:
                return t.get(f"/api/traces/{tid}")["data"][0]["spans"]
            except urllib.error.HTTPError:
                return None  # not searchable yet (index commit interval)
        for tid in trace_ids:
            spans = wait_until(f"trace {tid}", lambda: trace_spans(tid))
            assert any(s["operationName"] == "POST /pay" for s in spans)
        assert error_trace is not None
        meta = t.get("/api/v1/metadata", metric="triad_span_duration_seconds")["data"]
        assert meta["triad_span_duration_seconds"][0]["type"] == "histogram"
    finally:
        t.stop()


def test_otlp_metrics_from_the_sdk(tmp_path):
    """The OpenTelemetry SDK's OTLP metrics (gRPC to the collector, HTTP through the
    agent) arrive as Prometheus series named as Prometheus' OTLP receiver names them."""
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    t = Triad(tmp_path / "data").start()
    agent = Triad(tmp_path / "agent", command="agent", args=["--collector", f"http://{t.grpc}"]).start()
    try:
        def meter(exporter, instance):
            reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
            res = Resource.create({"service.name": "checkout", "service.instance.id": instance, "deployment.environment": "e2e"})
            return MeterProvider(resource=res, metric_readers=[reader])

        for provider in (meter(GrpcExporter(endpoint=f"http://{t.grpc}", insecure=True), "direct"),
                         meter(HttpExporter(endpoint=f"{agent.http}/v1/metrics"), "via-agent")):
            m = provider.get_meter("e2e")
            m.create_counter("app.requests", unit="{request}", description="Requests.").add(7, {"http.route": "/pay"})
            h = m.create_histogram("http.server.duration", unit="ms")
            for v in (5, 20, 300):
                h.record(v, {"http.route": "/pay"})
            m.create_observable_gauge("queue.depth", callbacks=[lambda _: [Observation(3)]], unit="1")
            provider.force_flush()
            provider.shutdown()

        def result(q):
            return t.get("/api/v1/query", query=q)["data"]["result"]

        for inst in ("direct", "via-agent"):
            wait_until(f"counter from {inst}", lambda: result(f'app_requests_total{{job="checkout", instance="{inst}"}}'))
            r = result(f'app_requests_total{{instance="{inst}"}}')[0]
            assert r["value"][1] == "7" and r["metric"]["http_route"] == "/pay"
            assert result(f'http_server_duration_milliseconds_count{{instance="{inst}"}}')[0]["value"][1] == "3"
            assert result(f'http_server_duration_milliseconds_bucket{{instance="{inst}", le="+Inf"}}')[0]["value"][1] == "3"
            assert result(f'queue_depth_ratio{{instance="{inst}"}}')[0]["value"][1] == "3"
            info = result(f'target_info{{instance="{inst}"}}')[0]["metric"]
            assert info["deployment_environment"] == "e2e"
        # The agent adds its host's attributes to what it forwards.
        assert "host_name" in result('target_info{instance="via-agent"}')[0]["metric"]
        meta = t.get("/api/v1/metadata", metric="app_requests")["data"]
        assert meta["app_requests"][0] == {"type": "counter", "help": "Requests.", "unit": ""}
    finally:
        agent.stop()
        t.stop()
