"""Live tail: a client following /api/logs/tail receives matching lines as server-sent
events, and only matching ones."""

import json
import threading
import urllib.request

from conftest import logs_request, post_protobuf


def send_logs(t, bodies, service="tailed"):
    post_protobuf(t.http + "/v1/logs", logs_request(service, bodies))


def test_tail_streams_matching_lines(triad):
    send_logs(triad, ["old line before the tail started"])
    events = []
    opened = threading.Event()

    def follow():
        with urllib.request.urlopen(triad.query + "/api/logs/tail?q=service:tailed+checkout", timeout=30) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            opened.set()
            event = None
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "log":
                    events.append(json.loads(line.split(":", 1)[1]))
                    if len(events) == 2:
                        return

    th = threading.Thread(target=follow, daemon=True)
    th.start()
    assert opened.wait(10)
    send_logs(triad, ["checkout started", "unrelated line", "checkout finished"])
    th.join(30)
    assert [e["body"] for e in events] == ["checkout started", "checkout finished"]
    assert all(e["service"] == "tailed" for e in events)


def test_tail_rejects_a_bad_query(triad):
    code, body = triad.get_status("/api/logs/tail?q=service:(")
    assert code == 400 and b"invalid query" in body
