"""Triad speaks Alertmanager's API v2: a real Prometheus (Debian `prometheus` 2.42)
sends its alerts to Triad as to its Alertmanager and they are routed and notified like
Triad's own; `amtool` (Debian `prometheus-alertmanager`) lists alerts, reads the
status, adds, queries and expires silences against it."""

import json
import subprocess
import urllib.request

import pytest

from conftest import Triad, wait_until
from test_alerting import Webhook, write_config
from test_metrics import free_port

RULES = """
groups:
  - name: triad
    rules:
      - alert: TriadRule
        expr: vector(1)
        labels: {severity: page}
"""


def amtool(t, *args):
    out = subprocess.run(["amtool", f"--alertmanager.url={t.query}", *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def test_prometheus_sends_alerts_and_amtool_manages_them(tmp_path, webhook):
    cfg = write_config(tmp_path, webhook, rules=RULES)
    t = Triad(tmp_path / "data", config=cfg).start()
    host = t.query.removeprefix("http://")
    prom_port = free_port()
    (tmp_path / "prom-rules.yml").write_text("""
groups:
  - name: prom
    interval: 1s
    rules:
      - alert: FromPrometheus
        expr: vector(1)
        labels: {service: checkout}
        annotations: {summary: sent by Prometheus}
""")
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{evaluation_interval: 1s}}
rule_files: [{tmp_path / "prom-rules.yml"}]
alerting:
  alertmanagers:
    - api_version: v2
      static_configs: [{{targets: ["{host}"]}}]
""")
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
         # Alertmanagers are discovered after about 5 s; re-send every second, not minute.
         "--rules.alert.resend-delay=1s"],
        stdout=log, stderr=log)
    try:
        def alerts(**params):
            url = t.query + "/api/v2/alerts"
            if params:
                url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())

        def names(listed):
            return sorted(a["labels"]["alertname"] for a in listed)

        # Prometheus' alert arrives over /api/v2/alerts; Triad's own is listed beside it.
        wait_until("both alerts", lambda: names(alerts()) == ["FromPrometheus", "TriadRule"], timeout=60)
        posted = next(a for a in alerts() if a["labels"]["alertname"] == "FromPrometheus")
        assert posted["annotations"] == {"summary": "sent by Prometheus"}
        assert posted["receivers"] == [{"name": "hook"}] and posted["status"]["state"] == "active"
        assert posted["generatorURL"].startswith(f"http://127.0.0.1:{prom_port}/") or posted["generatorURL"]
        # ... and is notified through Triad's route, like Triad's own.
        wait_until("the posted alert notified",
                   lambda: webhook.bodies("firing", alertname="FromPrometheus"), timeout=30)

        # amtool reads the status (it validates the shapes against Alertmanager's spec).
        assert "hook" in amtool(t, "config", "show")
        queried = json.loads(amtool(t, "alert", "query", "-o", "json"))
        assert names(queried) == ["FromPrometheus", "TriadRule"]
        only = json.loads(amtool(t, "alert", "query", "-o", "json", "alertname=FromPrometheus"))
        assert names(only) == ["FromPrometheus"]

        # Silences: add, query (filtered), see the alert suppressed, expire.
        sid = amtool(t, "silence", "add", "alertname=FromPrometheus", "--comment=maintenance",
                     "--author=e2e", "--duration=1h").strip()
        assert len(sid) == 36, sid
        assert amtool(t, "silence", "query", "-q").split() == [sid]
        assert amtool(t, "silence", "query", "-q", "alertname=FromPrometheus").split() == [sid]
        assert amtool(t, "silence", "query", "-q", "alertname=Other").split() == []
        silenced = next(a for a in alerts() if a["labels"]["alertname"] == "FromPrometheus")
        assert silenced["status"] == {"state": "suppressed", "silencedBy": [sid], "inhibitedBy": []}
        assert names(alerts(silenced="false")) == ["TriadRule"]
        amtool(t, "silence", "expire", sid)
        assert amtool(t, "silence", "query", "-q").split() == []
        assert sid in amtool(t, "silence", "query", "-q", "--expired").split()

        groups = json.loads(urllib.request.urlopen(t.query + "/api/v2/alerts/groups", timeout=10).read())
        assert {g["labels"]["alertname"] for g in groups} == {"FromPrometheus", "TriadRule"}
        assert all(g["receiver"] == {"name": "hook"} for g in groups)
        receivers = json.loads(urllib.request.urlopen(t.query + "/api/v2/receivers", timeout=10).read())
        assert receivers == [{"name": "hook"}]
        status = json.loads(urllib.request.urlopen(t.query + "/api/v2/status", timeout=10).read())
        assert status["cluster"]["status"] == "disabled" and "s3cret" not in status["config"]["original"]

        # Bad input: a clear 400, counted.
        bad = urllib.request.Request(t.query + "/api/v2/alerts", data=b'[{"labels": {}}]',
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(bad, timeout=10)
            raise AssertionError("an alert without labels was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and b"label" in e.read()
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        t.stop()
