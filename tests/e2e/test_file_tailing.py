"""`triad up` tails log files in-process: JSON lines and Docker json-file are mapped to
the log model, rotation by rename-and-create loses nothing, and after `kill -9` the
agent resumes from its checkpoints (at-least-once: no line lost)."""

import json
import os

from conftest import Triad, wait_until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def write(path, lines):
    with open(path, "a") as f:
        for line in lines:
            f.write(line + "\n")


def json_line(i, phase):
    return json.dumps({"ts": "2026-01-01T00:00:00Z", "level": "error" if i % 10 == 0 else "info",
                       "msg": f"{phase} line {i}", "service": "tail-e2e", "trace_id": TRACE, "user_id": i})


def total(t, q):
    return t.get("/api/logs/search", q=q, start="0", limit="1")["total"]


def test_tailing_rotation_and_kill9(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "triad.yaml"
    cfg.write_text(f"agent:\n  include: ['{logs}/*.log']\n  labels: {{env: e2e}}\n")
    app = logs / "app.log"
    write(app, [json_line(i, "before") for i in range(300)])
    write(app, ["plain text, not JSON"])

    t = Triad(tmp_path / "data", config=cfg).start()
    try:
        wait_until("first lines", lambda: total(t, "service:tail-e2e before") == 300)
        hit = t.get("/api/logs/search", q="\"before line 10\"", start="0")["hits"][0]
        assert hit["level"] == "error" and hit["trace_id"] == TRACE and hit["service"] == "tail-e2e"
        assert hit["attributes"]["user_id"] == 10 and hit["attributes"]["env"] == "e2e"
        assert hit["source"] == str(app) and hit["timestamp"].startswith("2026-01-01T00:00:00")
        assert total(t, "\"plain text, not JSON\"") == 1

        # Docker json-file with a line split in two entries.
        write(logs / "ctr.log", [
            json.dumps({"log": "{\"msg\":\"split ", "stream": "stdout", "time": "2026-01-01T00:00:01Z"}),
            json.dumps({"log": "container line\"}\n", "stream": "stdout", "time": "2026-01-01T00:00:01Z"}),
        ])
        wait_until("docker line", lambda: total(t, "\"split container line\"") == 1)

        # logrotate without copytruncate: rename, create, keep writing.
        write(app, [json_line(i, "lastbefore") for i in range(50)])
        os.rename(app, logs / "app.log.1")
        write(app, [json_line(i, "after") for i in range(200)])
        wait_until("rotation", lambda: total(t, "service:tail-e2e lastbefore") == 50
                   and total(t, "service:tail-e2e after") == 200)
    finally:
        t.kill9()

    # Lines written while Triad is down are read after the restart; nothing is lost.
    write(app, [json_line(i, "whiledown") for i in range(100)])
    t2 = Triad(tmp_path / "data", config=cfg).start()
    try:
        wait_until("lines written while down", lambda: total(t2, "service:tail-e2e whiledown") == 100)
        for phase, n in (("before", 300), ("lastbefore", 50), ("after", 200)):
            got = total(t2, f"service:tail-e2e {phase}")
            assert got >= n, f"{phase}: {got} < {n}"
            if got > n:
                print(f"{phase}: {got - n} duplicates after kill -9 (at-least-once)")
        assert os.path.exists(tmp_path / "data" / "agent" / "checkpoints.json")
    finally:
        t2.stop()
