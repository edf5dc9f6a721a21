"""Alerting end to end: the OpenTelemetry SDK drives errors into a service, a
golden-signal rule fires, a local webhook receiver gets Alertmanager's payload with
evidence whose traces open through the Jaeger API and whose log lines exist; the errors
stop and a resolved notification follows. Also: a receiver that is down (retries, one
delivery, no storm), kill -9 mid-alert (nothing lost, nothing repeated), rule errors with
file and line, silences."""

import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import BIN, Triad, logs_request, post_protobuf, wait_until


class Webhook:
    """A webhook receiver that records every POST; `status` is what it answers."""

    def __init__(self):
        self.posts = []
        self.attempts = 0
        self.status = 200
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                code = hook.status
                if code == 200:
                    hook.posts.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": json.loads(body)})
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, status=None, alertname=None):
        out = [p["body"] for p in self.posts]
        if status:
            out = [b for b in out if b["status"] == status]
        if alertname:
            out = [b for b in out if b["groupLabels"].get("alertname") == alertname]
        return out

    def close(self):
        self.server.shutdown()



def rule_evaluations(t):
    """Evaluations so far, per rule group."""
    return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in t.metrics().splitlines()
            if l.startswith("triad_alerting_rule_group_evaluations_total")}


def later(t, evaluations):
    """Waits until every rule group was evaluated `evaluations` more times: time passes
    by the engine's own clock, not a blind sleep."""
    start = rule_evaluations(t)

    def done():
        now = rule_evaluations(t)
        return bool(start) and all(now.get(g, 0) >= n + evaluations for g, n in start.items())
    wait_until(f"{evaluations} more evaluations of every rule group", done, timeout=60)


@pytest.fixture

def webhook():
    w = Webhook()
    yield w
    w.close()


def write_config(tmp_path, webhook, extra="", rules="", route=""):
    (tmp_path / "rules.yml").write_text(rules or "groups: []\n")
    cfg = tmp_path / "triad.yaml"
    cfg.write_text(f"""
collector:
  metrics:
    span_metrics_interval_secs: 1
  logs:
    commit_interval_ms: 200
  traces:
    commit_interval_ms: 200
alerting:
  evaluation_interval_secs: 1
  rule_files: [rules.yml]
  external_url: http://triad.example:7070
  receivers:
    - name: hook
      url: {webhook.url}
      bearer_token: s3cret
      headers: {{X-Env: e2e}}
      timeout_secs: 2
  route:
    receiver: hook
    group_by: [alertname, service]
    group_wait_secs: 1
    group_interval_secs: 2
    repeat_interval_secs: 3600
{route}
{extra}
""")
    return cfg


def test_golden_signal_alert_fires_with_evidence_and_resolves(tmp_path, webhook):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    app_log = logs_dir / "checkout.log"
    app_log.write_text("")
    rules = """
groups:
  - name: user
    rules:
      - record: service:requests:rate10s
        expr: sum by (service) (rate(triad_span_requests_total[10s]))
"""
    extra = f"""
  golden_signals:
    services:
      checkout:
        errors: {{ratio_threshold: 0.2, window_secs: 10, for_secs: 1}}
        latency: {{threshold_seconds: 5, window_secs: 10, for_secs: 1}}
agent:
  include: ['{logs_dir}/*.log']
"""
    cfg = write_config(tmp_path, webhook, extra=extra, rules=rules)
    t = Triad(tmp_path / "data", config=cfg).start()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout", "host.name": "node-1"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{t.grpc}", insecure=True)))
    tracer = provider.get_tracer("e2e")
    failing = threading.Event()
    failing.set()
    stop = threading.Event()
    error_traces = []

    def traffic():
        i = 0
        while not stop.is_set():
            with tracer.start_as_current_span("POST /pay", kind=SpanKind.SERVER) as s:
                ctx = s.get_span_context()
                if failing.is_set() and i % 2 == 0:
                    s.set_status(Status(StatusCode.ERROR, "card declined"))
                    tid, sid = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
                    error_traces.append((tid, sid))
                    # The service logs the failure twice: to a file the agent tails, and
                    # over OTLP.
                    with open(app_log, "a") as f:
                        f.write(json.dumps({"level": "error", "msg": f"payment {i} declined", "service": "checkout",
                                            "trace_id": tid, "span_id": sid}) + "\n")
                    req = logs_request("checkout", [f"declined by issuer, payment {i}"])
                    rec = req.resource_logs[0].scope_logs[0].log_records[0]
                    rec.trace_id, rec.span_id = ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big")
                    rec.severity_text = "ERROR"
                    post_protobuf(t.http + "/v1/logs", req)
            i += 1
            time.sleep(0.05)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        firing = wait_until("firing notification",
                            lambda: webhook.bodies("firing", "GoldenSignalErrors"), timeout=60)[0]
        assert firing["version"] == "4"
        assert firing["receiver"] == "hook"
        assert firing["groupLabels"] == {"alertname": "GoldenSignalErrors", "service": "checkout"}
        assert firing["groupKey"] == '{}:{alertname="GoldenSignalErrors", service="checkout"}'
        assert firing["externalURL"] == "http://triad.example:7070"
        assert firing["truncatedAlerts"] == 0
        assert firing["commonLabels"]["severity"] == "warning"
        assert firing["commonLabels"]["signal"] == "errors"
        alert = firing["alerts"][0]
        assert alert["status"] == "firing"
        assert alert["labels"]["service"] == "checkout"
        assert "% of requests fail" in alert["annotations"]["summary"], alert["annotations"]
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert alert["startsAt"].endswith("Z")
        assert alert["generatorURL"].startswith("http://triad.example:7070/graph?g0.expr=")
        assert len(alert["fingerprint"]) == 16
        headers = webhook.posts[0]["headers"]
        assert headers["authorization"] == "Bearer s3cret"
        assert headers["x-env"] == "e2e"
        assert headers["content-type"] == "application/json"

        # Evidence: traces that open through the Jaeger API, log lines that exist.
        ev = alert["evidence"]
        assert ev["traces"], ev
        known = {tid for tid, _ in error_traces}
        for tr in ev["traces"]:
            assert tr["url"] == f"http://triad.example:7070/traces/{tr['trace_id']}"
            spans = t.get(f"/api/traces/{tr['trace_id']}")["data"][0]["spans"]
            assert spans, tr
        assert any(tr["trace_id"] in known and tr["error"] for tr in ev["traces"]), ev["traces"]
        assert ev["logs"], ev
        for line in ev["logs"]:
            assert line["service"] == "checkout" and line["level"] == "error"
            hits = t.get("/api/logs/search", q=f"trace_id:{line['trace_id']}", start="0")["hits"]
            assert any(h["body"] == line["body"] for h in hits), line
            assert line["url"].endswith(f"/traces/{line['trace_id']}")

        # The Prometheus APIs show the same alert.
        alerts = t.get("/api/v1/alerts")["data"]["alerts"]
        assert any(a["labels"]["alertname"] == "GoldenSignalErrors" and a["state"] == "firing" for a in alerts)
        groups = t.get("/api/v1/rules")["data"]["groups"]
        by_name = {g["name"]: g for g in groups}
        assert by_name["user"]["rules"][0]["type"] == "recording"
        assert by_name["user"]["rules"][0]["health"] == "ok"
        golden = {r["name"]: r for r in by_name["golden_signals/checkout"]["rules"]}
        assert golden["GoldenSignalErrors"]["state"] == "firing"
        assert golden["GoldenSignalLatency"]["state"] == "inactive"
        assert t.get("/api/v1/rules", type="record")["data"]["groups"][0]["name"] == "user"
        firing_series = t.get("/api/v1/query", query='ALERTS{alertstate="firing"}')["data"]["result"]
        assert any(s["metric"]["alertname"] == "GoldenSignalErrors" for s in firing_series)
        recorded = t.get("/api/v1/query", query="service:requests:rate10s")["data"]["result"]
        assert recorded and float(recorded[0]["value"][1]) > 0

        # Correlation: one error trace with its spans, both kinds of log lines attached
        # to the span, RED series and the firing alert.
        tid, sid = error_traces[2]

        def correlated():
            c = t.get(f"/api/correlate/{tid}")
            return c if len(c["logs"]) >= 2 and c["trace"] else None

        c = wait_until("correlation", correlated)
        bodies = {line["body"] for line in c["logs"]}
        assert any(b.startswith("payment ") for b in bodies) and any(b.startswith("declined by") for b in bodies), bodies
        span = next(s for s in c["spans"] if s["spanID"] == sid)
        assert sorted(span["logs"]) == [0, 1] and span["error"]
        assert c["services"] == ["checkout"]
        signals = {s["signal"] for s in c["metrics"]["series"]}
        assert {"requests_per_second", "errors_per_second"} <= signals, signals
        assert any(a["labels"]["alertname"] == "GoldenSignalErrors" and a["related"] for a in c["alerts"])
        search = t.get("/api/logs/search", q=f"trace_id:{tid}", start="0")["hits"]
        assert all(h["links"]["trace"] == f"/api/traces/{tid}" for h in search)

        # Errors stop: the alert resolves and the receiver hears it once.
        failing.clear()
        resolved = wait_until("resolved notification",
                              lambda: webhook.bodies("resolved", "GoldenSignalErrors"), timeout=60)[0]
        assert resolved["alerts"][0]["status"] == "resolved"
        assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
        assert resolved["alerts"][0]["fingerprint"] == alert["fingerprint"]
        assert len(webhook.bodies("firing", "GoldenSignalErrors")) == 1, "no repeats within repeat_interval"
    finally:
        stop.set()
        sender.join()
        provider.shutdown()
        t.stop()


ALWAYS = """
groups:
  - name: always
    rules:
      - alert: Always
        expr: vector(1) > 0
        for: 1s
        labels: {severity: page}
        annotations:
          summary: "value {{ $value }}"
"""


def notified_attempts(t):
    text = t.metrics()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("triad_alerting_notifications_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_receiver_down_then_kill9_loses_and_repeats_nothing(tmp_path, webhook):
    cfg = write_config(tmp_path, webhook, rules=ALWAYS)
    webhook.status = 503
    t = Triad(tmp_path / "data", config=cfg).start()
    try:
        wait_until("retries", lambda: webhook.attempts >= 3, timeout=30)
        assert not webhook.posts
        # Crash while the notification is still undelivered.
        t.kill9()
        webhook.status = 200
        t = Triad(tmp_path / "data", config=cfg).start()
        wait_until("delivery after restart", lambda: webhook.bodies("firing"), timeout=30)
        # Several group intervals later (2 s each; evaluations every 1 s): still exactly
        # one delivery, no storm.
        later(t, evaluations=5)
        assert len(webhook.bodies("firing")) == 1, webhook.bodies()
        t.kill9()
        t = Triad(tmp_path / "data", config=cfg).start()
        wait_until("alert firing again", lambda: any(
            a["state"] == "firing" for a in t.get("/api/v1/alerts")["data"]["alerts"]), timeout=30)
        later(t, evaluations=5)
        assert len(webhook.bodies("firing")) == 1, "a restart must not repeat a delivered notification"
        body = webhook.bodies("firing")[0]
        assert body["alerts"][0]["annotations"]["summary"] == "value 1"

        # The alert ends while Triad is down (here: its rule is removed): after the
        # restart, once every rule was evaluated, it is notified resolved, once.
        t.kill9()
        (tmp_path / "rules.yml").write_text("groups: [{name: other, rules: [{alert: Other, expr: vector(0) > 1}]}]\n")
        t = Triad(tmp_path / "data", config=cfg).start()
        wait_until("resolved after the restart", lambda: webhook.bodies("resolved"), timeout=30)
        later(t, evaluations=3)
        resolved = webhook.bodies("resolved")
        assert len(resolved) == 1 and len(webhook.bodies("firing")) == 1, webhook.bodies()
        assert resolved[0]["alerts"][0]["labels"]["alertname"] == "Always"
        assert resolved[0]["alerts"][0]["annotations"]["summary"] == "value 1"
        assert resolved[0]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    finally:
        if t.proc.poll() is None:
            t.stop()


def test_silence_mutes_and_its_expiry_restores(tmp_path, webhook):
    cfg = write_config(tmp_path, webhook, rules=ALWAYS.replace("for: 1s", "for: 3s"))
    t = Triad(tmp_path / "data", config=cfg).start()
    try:
        body = json.dumps({
            "matchers": [{"name": "alertname", "value": "Alw.*", "isRegex": True, "isEqual": True}],
            "endsAt": "2099-01-01T00:00:00Z", "createdBy": "e2e", "comment": "maintenance",
        }).encode()
        req = urllib.request.Request(t.query + "/api/v2/silences", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            sid = json.loads(r.read())["silenceID"]
        listed = t.get("/api/v2/silences")
        assert listed[0]["id"] == sid and listed[0]["status"]["state"] == "active"
        wait_until("alert firing", lambda: any(
            a["state"] == "firing" for a in t.get("/api/v1/alerts")["data"]["alerts"]), timeout=30)
        wait_until("silenced at a flush", lambda: "triad_alerting_silenced_total" in t.metrics()
                   and float([l for l in t.metrics().splitlines()
                              if l.startswith("triad_alerting_silenced_total")][0].split()[-1]) >= 2)
        assert not webhook.posts, "a silenced alert is not notified"

        bad = urllib.request.Request(t.query + "/api/v2/silences", data=b'{"matchers": [], "endsAt": "2099-01-01T00:00:00Z"}',
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(bad, timeout=10)
        assert e.value.code == 400

        req = urllib.request.Request(t.query + f"/api/v2/silence/{sid}", method="DELETE")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        assert t.get(f"/api/v2/silence/{sid}")["status"]["state"] == "expired"
        wait_until("notification after expiry", lambda: webhook.bodies("firing"), timeout=30)
    finally:
        t.stop()


def test_broken_rules_are_reported_with_file_and_line(tmp_path, webhook):
    cases = [
        ("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n",
         ":5: ", "could not parse expression"),
        ("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n"
         "          summary: \"{{ $labels.job \"\n", ":7: ", "template"),
        ("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: soon\n",
         ":6: ", "duration"),
    ]
    for rules, where, why in cases:
        cfg = write_config(tmp_path, webhook, rules=rules)
        out = subprocess.run([str(BIN), "check-config", str(cfg)], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert f"rules.yml{where}" in out.stderr and why in out.stderr, out.stderr
        up = subprocess.run([str(BIN), "up", "--data-dir", str(tmp_path / "d"), "--config", str(cfg),
                             "--otlp-grpc-listen", "127.0.0.1:0", "--otlp-http-listen", "127.0.0.1:0",
                             "--query-listen", "127.0.0.1:0", "--zipkin-listen", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60)
        assert up.returncode != 0 and f"rules.yml{where}" in up.stderr, up.stderr
    cfg = write_config(tmp_path, webhook, rules=ALWAYS)
    out = subprocess.run([str(BIN), "check-config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "1 rules" in out.stdout, out
