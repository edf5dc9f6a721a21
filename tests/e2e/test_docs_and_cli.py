"""The README's worked example runs as written, and the CLI reports config errors."""

import os
import re
import subprocess
import sys

from conftest import BIN, ROOT, wait_until


def test_readme_example_sends_a_trace_that_is_found(triad):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{triad.grpc}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    trace_id = out.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    wait_until("trace by ID", lambda: triad.get_status(f"/api/traces/{trace_id}")[0] == 200)
    found = triad.get("/api/traces", service="hello", tags='{"greeting":"hi"}')
    assert [t["traceID"] for t in found["data"]] == [trace_id]


def test_unknown_paths_answer_json_404_and_ui_routes_the_ui(triad):
    """A Loki or Tempo data source pointed at Triad's query port gets a clear JSON error,
    not the UI's HTML; the UI's own routes still load it."""
    import json

    for path in ("/loki/api/v1/nothing", "/api/nothing", "/nothing"):
        status, body = triad.get_status(path)
        assert status == 404, path
        assert path in json.loads(body)["error"], body
    status, body = triad.get_status("/traces/0123")
    assert status == 200 and b"<html" in body.lower()


def test_check_config_names_the_file_and_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("collector:\n  logs:\n    retention_secs: 10\n")
    out = subprocess.run([str(BIN), "check-config", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert str(bad) in out.stderr and "collector.logs.retention_secs" in out.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text("query:\n  lisen: 0.0.0.0:1\n")
    out = subprocess.run([str(BIN), "check-config", str(typo)], capture_output=True, text=True)
    assert out.returncode == 1 and "lisen" in out.stderr and "line 2" in out.stderr
    ok = subprocess.run([str(BIN), "check-config", str(ROOT / "deploy/config/triad.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    for cmd in (["--help"], ["up", "--help"], ["collector", "--help"], ["query", "--help"]):
        assert subprocess.run([str(BIN), *cmd], capture_output=True).returncode == 0


def test_readme_metrics_example_scrapes_triad_itself(tmp_path):
    """The README's prometheus.yml and triad.yaml, as written (only the port differs)."""
    import socket
    from conftest import Triad

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Metrics"):]
    prom_yml, triad_yaml = re.findall(r"```yaml\n(.*?)```", section, re.S)[:2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "prometheus.yml").write_text(prom_yml.replace("localhost:7070", f"127.0.0.1:{port}"))
    (tmp_path / "triad.yaml").write_text(triad_yaml)
    t = Triad(tmp_path / "data", config=tmp_path / "triad.yaml", args=["--query-listen", f"127.0.0.1:{port}"]).start()
    try:
        for q in re.findall(r"curl -s '[^?]*\?query=([^']*)'", section):
            def answered():
                r = t.get("/api/v1/query", query=q)
                return r["status"] == "success" and r["data"]["result"]
            wait_until(f"README query {q}", answered, timeout=40, interval=0.5)
        up = t.get("/api/v1/query", query="up")["data"]["result"][0]
        assert up["metric"] == {"__name__": "up", "instance": f"127.0.0.1:{port}", "job": "triad"}
    finally:
        t.stop()


def test_alerting_guide_config_and_rules_pass_check_config(tmp_path):
    """docs/alerting.md's triad.yaml and rule file, as written."""
    guide = (ROOT / "docs" / "alerting.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", guide, re.S)
    triad_yaml, rules = blocks[0], blocks[1]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "payments.yml").write_text(rules)
    (tmp_path / "triad.yaml").write_text(triad_yaml)
    out = subprocess.run([str(BIN), "check-config", str(tmp_path / "triad.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # Two golden-signal groups (checkout, default) and the file's group.
    assert "3 rule groups" in out.stdout, out.stdout
    broken = rules.replace("> 0.1", "> > 0.1")
    (tmp_path / "rules" / "payments.yml").write_text(broken)
    out = subprocess.run([str(BIN), "check-config", str(tmp_path / "triad.yaml")], capture_output=True, text=True)
    assert out.returncode != 0 and "payments.yml:10:" in out.stderr and "PaymentsFailing" in out.stderr, out.stderr


def test_readme_alerts_example_passes_check_config(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Alerts"):]
    triad_yaml = re.findall(r"```yaml\n(.*?)```", section, re.S)[0]
    (tmp_path / "triad.yaml").write_text(triad_yaml)
    out = subprocess.run([str(BIN), "check-config", str(tmp_path / "triad.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "1 rule groups, 2 rules" in out.stdout, out.stdout
