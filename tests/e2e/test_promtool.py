"""Debian's `promtool` (Prometheus 2.42) queries Triad as it queries a Prometheus:
`query instant`, `query range`, `query series`, `query labels`, over gauges sent with
OTLP."""

import subprocess
import time

from conftest import Triad, gauge_request, post_protobuf, wait_until


def promtool(*args):
    out = subprocess.run(["promtool", "query", *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def test_promtool_queries_triad(tmp_path):
    t = Triad(tmp_path / "data").start()
    try:
        now = time.time_ns()
        # Oldest first: a series' samples are appended in time order, as Prometheus'.
        points = [({"pod": pod}, now - k * 15 * 10**9, float(i * 10 + k))
                  for i, pod in enumerate(("a", "b")) for k in reversed(range(20))]
        post_protobuf(f"{t.http}/v1/metrics", gauge_request("promtool_gauge", points, service="tool"))
        wait_until("the gauge", lambda: len(t.get("/api/v1/query", query="promtool_gauge")["data"]["result"]) == 2)

        instant = promtool("instant", t.query, 'sum(promtool_gauge{job="tool"})')
        assert instant.startswith("{} => 10 @["), instant

        start, end = str(now // 10**9 - 240), str(now // 10**9)
        ranged = promtool("range", "--start", start, "--end", end, "--step", "60s", t.query, 'promtool_gauge{pod="b"}')
        assert ranged.startswith('promtool_gauge{job="tool", pod="b"} =>'), ranged
        assert ranged.count("@[") == 5 and "\n27 @[" in ranged and "\n11 @[" in ranged, ranged

        series = promtool("series", "--match", "promtool_gauge", t.query)
        assert series.count("promtool_gauge") == 2 and 'pod="a"' in series and 'pod="b"' in series, series

        labels = promtool("labels", t.query, "pod").split()
        assert labels == ["a", "b"], labels
        names = promtool("labels", t.query, "__name__").split()
        assert "promtool_gauge" in names
    finally:
        t.stop()
