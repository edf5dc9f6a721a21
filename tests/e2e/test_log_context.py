"""Logs in context: the lines just before and after a line from the same source — the
same tailed file, or for OTLP lines the same service and host — oldest first, with more
to load from either end."""

import json
import time

from conftest import Triad, logs_request, post_protobuf, wait_until


def test_context_around_a_tailed_line_and_an_otlp_line(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "triad.yaml"
    cfg.write_text(f"agent:\n  include: ['{logs}/*.log']\n")
    base = time.time() - 60
    with open(logs / "app.log", "w") as f:
        for i in range(100):
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + i * 0.01)) + f".{int((base + i * 0.01) % 1 * 1000):03d}Z"
            f.write(json.dumps({"ts": ts, "level": "info", "msg": f"step {i}", "service": "ctx"}) + "\n")
    with open(logs / "other.log", "w") as f:
        for i in range(10):
            f.write(json.dumps({"level": "info", "msg": f"other {i}", "service": "ctx"}) + "\n")
    t = Triad(tmp_path / "data", config=cfg).start()
    try:
        wait_until("the lines", lambda: t.get("/api/logs/search", q="service:ctx", start="0")["total"] == 110)
        hit = t.get("/api/logs/search", q='"step 50"', start="0")["hits"][0]

        def context(**params):
            return t.get("/api/logs/context", **params)

        def bodies(lines):
            return [h["body"] for h in lines]

        c = context(timestamp_ns=hit["timestamp_ns"], source=hit["source"], before="5", after="5")
        assert bodies(c["before"]) == [f"step {i}" for i in range(45, 50)]
        assert bodies(c["at"]) == ["step 50"]
        assert bodies(c["after"]) == [f"step {i}" for i in range(51, 56)], "the other file's lines are not context"
        # More, from the last line shown.
        more = context(timestamp_ns=c["after"][-1]["timestamp_ns"], source=hit["source"], before="0", after="3")
        assert bodies(more["after"]) == ["step 56", "step 57", "step 58"]
        edge = context(timestamp_ns=c["at"][0]["timestamp_ns"], source=hit["source"], before="100", after="0")
        assert len(edge["before"]) == 50 and edge["before"][0]["body"] == "step 0"

        # Lines without a time of their own read in one go: in their file's order.
        other = t.get("/api/logs/search", q='"other 5"', start="0")["hits"][0]
        c = context(timestamp_ns=other["timestamp_ns"], source=other["source"], before="10", after="10")
        assert [b for b in bodies(c["before"] + c["at"] + c["after"])] == [f"other {i}" for i in range(10)]

        # OTLP lines: the same service and host.
        for svc, host in (("api", "h1"), ("api", "h2")):
            req = logs_request(svc, [f"{host} line {i}" for i in range(6)])
            for k, rec in enumerate(req.resource_logs[0].scope_logs[0].log_records):
                rec.time_unix_nano = time.time_ns() - (10 - k) * 1_000_000
            attr = req.resource_logs[0].resource.attributes.add()
            attr.key, attr.value.string_value = "host.name", host
            post_protobuf(f"{t.http}/v1/logs", req)
        wait_until("the OTLP lines", lambda: t.get("/api/logs/search", q="service:api", start="0")["total"] == 12)
        mid = t.get("/api/logs/search", q='"h1 line 3"', start="0")["hits"][0]
        c = context(timestamp_ns=mid["timestamp_ns"], source=mid["source"], service=mid["service"], host=mid["host"],
                    before="2", after="5")
        assert bodies(c["before"]) == ["h1 line 1", "h1 line 2"]
        assert bodies(c["after"]) == ["h1 line 4", "h1 line 5"]

        status, body = t.get_status("/api/logs/context?timestamp_ns=1&source=otlp")
        assert status == 400 and b"no context" in body
    finally:
        t.stop()
