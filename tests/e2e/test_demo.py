"""`triad up --demo`: the simulated services fill all three signals — traces across
services over OTLP, log lines from JSON, Docker json-file and CRI files, scraped /metrics
with exemplars — and the scheduled faults make golden-signal alerts fire and resolve.
`triad demo` drives a Triad that runs elsewhere."""

import json
import subprocess
import time

from conftest import BIN, Triad, wait_until

FAST = """
alerting:
  evaluation_interval_secs: 2
  golden_signals:
    default:
      latency: {threshold_seconds: 0.5, window_secs: 10, for_secs: 3}
      errors: {ratio_threshold: 0.05, window_secs: 10, for_secs: 3}
      saturation: {cpu_ratio: 0.9, window_secs: 10, for_secs: 3}
"""


def active(t):
    return {(a["labels"]["alertname"], a["labels"].get("service"), a["state"])
            for a in t.get("/api/v1/alerts")["data"]["alerts"]}


def test_up_demo_fills_everything_and_alerts_fire_and_resolve(tmp_path):
    cfg = tmp_path / "triad.yaml"
    cfg.write_text(FAST)
    t = Triad(tmp_path / "data", config=cfg, args=["--demo", "--demo-cycle-secs", "60", "--demo-rate", "30"]).start()
    started = time.monotonic()
    try:
        wait_until("five services", lambda: t.get("/api/services")["data"] == ["account", "feed", "gateway", "profile", "topic"])
        # A trace crosses services, with its log lines (one per service hop).
        tid = wait_until("a feed trace", lambda: t.get("/api/traces", service="gateway", operation="GET /api/feed", limit="1")["data"])[0]["traceID"]
        c = wait_until("trace with logs", lambda: (lambda c: c if len(c["logs"]) >= 3 else None)(t.get(f"/api/correlate/{tid}")))
        assert {"gateway", "feed", "profile", "topic"} <= set(c["services"]), c["services"]
        # Lines from all three file formats were read (JSON, Docker json-file, CRI).
        sources = {h["source"].rsplit("/", 2)[-2] + "/" + h["service"] for h in c["logs"]}
        for svc, fmt in [("gateway", "app"), ("feed", "containers"), ("profile", "containers")]:
            assert f"{fmt}/{svc}" in sources, sources
        cri = t.get("/api/logs/search", q="service:account", start="0", limit="1")["hits"][0]
        assert cri["trace_id"] and cri["attributes"]["log.iostream"] == "stdout", cri
        assert cri["body"].split()[0] in ("GET", "POST"), "the CRI envelope is unwrapped and the JSON mapped"
        # Every demo /metrics endpoint is scraped, with exemplars that open traces.
        ups = wait_until("demo targets up", lambda: (lambda r: r if len(r) == 6 else None)(
            t.get("/api/v1/query", query='up{job=~"demo-.*"} == 1')["data"]["result"]))
        assert {u["metric"]["job"] for u in ups} == {"demo-gateway", "demo-feed", "demo-profile", "demo-topic", "demo-account", "demo-hosts"}
        now = time.time()
        ex = wait_until("exemplars", lambda: t.get("/api/v1/query_exemplars", query='http_server_request_duration_seconds_bucket{service="profile"}',
                                                    start=now - 60, end=time.time() + 5)["data"])
        ex_trace = ex[0]["exemplars"][0]["labels"]["trace_id"]
        wait_until("exemplar trace", lambda: t.get(f"/api/traces/{ex_trace}")["data"])
        # The faults: latency on profile, errors on account, node-c (account's host) hot.
        wanted = {("GoldenSignalLatency", "profile"), ("GoldenSignalErrors", "account"), ("GoldenSignalCPU", "account")}
        seen = set()

        def all_fired():
            seen.update((n, s) for n, s, st in active(t) if st == "firing")
            return wanted <= seen

        wait_until("all three faults alert", all_fired, timeout=50, interval=0.5)
        wait_until("alerts resolve", lambda: not any((n, s) in wanted for n, s, _ in active(t)), timeout=40, interval=0.5)
        print(f"demo: alerts fired and resolved within {time.monotonic() - started:.0f}s")
    finally:
        t.stop()


def test_demo_command_against_a_running_triad(tmp_path):
    t = Triad(tmp_path / "data").start()
    demo = subprocess.Popen([str(BIN), "demo", "--otlp-endpoint", f"http://{t.grpc}", "--log-dir", str(tmp_path / "demo"),
                             "--metrics-listen", "127.0.0.1:0", "--demo-rate", "50"], stdout=subprocess.PIPE, text=True)
    try:
        out = []
        for line in demo.stdout:
            out.append(line)
            if line.startswith("ready:"):
                break
        assert any("/metrics/hosts" in l for l in out), out
        wait_until("demo spans arrive", lambda: "account" in t.get("/api/services")["data"])
        assert (tmp_path / "demo" / "app" / "gateway.log").stat().st_size > 0
    finally:
        demo.terminate()
        assert demo.wait(timeout=20) == 0
        t.stop()


def test_api_reference_examples_answer(tmp_path):
    """Every curl line of docs/api.md, against `triad up --demo` (placeholders filled)."""
    import re
    import urllib.parse
    import urllib.request

    from conftest import ROOT

    t = Triad(tmp_path / "data", args=["--demo", "--demo-rate", "30"]).start()
    try:
        tid = wait_until("a trace", lambda: t.get("/api/traces", service="gateway", limit="1")["data"])[0]["traceID"]
        wait_until("its logs", lambda: t.get("/api/logs/search", q=f"trace_id:{tid}", start="0")["total"] > 0)
        wait_until("scraped", lambda: t.get("/api/v1/query", query="up")["data"]["result"])
        now = time.time()
        text = (ROOT / "docs" / "api.md").read_text()
        lines = re.findall(r"^curl -s '([^']+)'$", text, re.M)
        # `curl -sG 'url' --data-urlencode 'k=v' …`: the pairs join the query string.
        for url, rest in re.findall(r"^curl -sG '([^']+)'((?: --data-urlencode '[^']*')+)$", text, re.M):
            pairs = [tuple(p.replace("<trace-id>", tid).split("=", 1)) for p in re.findall(r"--data-urlencode '([^']*)'", rest)]
            lines.append(url + "?" + urllib.parse.urlencode(pairs))
        assert len(lines) >= 30, lines
        for line in lines:
            url = (line.replace("localhost:7070", t.query.removeprefix("http://"))
                   .replace("<trace-id>", tid).replace("<now-ms>", str(int(now * 1000)))
                   .replace("now-5m", str(int(now - 300))).replace("end=now", f"end={int(now)}"))
            parts = urllib.parse.urlsplit("http://" + url)
            query = urllib.parse.urlencode(urllib.parse.parse_qsl(parts.query), safe="")
            full = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
            with urllib.request.urlopen(full, timeout=30) as r:
                assert r.status == 200, line
                body = r.read()
                if parts.path.startswith(("/api/v1/", "/loki/api/v1/")) and not parts.path.endswith("/buildinfo"):
                    assert json.loads(body)["status"] == "success", (line, body[:200])
                if parts.path.startswith("/loki/api/v1/query"):
                    assert json.loads(body)["data"]["result"], (line, body[:200])
    finally:
        t.stop()
