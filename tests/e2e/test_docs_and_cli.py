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
