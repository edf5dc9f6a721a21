#!/usr/bin/env python3
"""Writes receiver/tests/fixtures/loki/*: Loki push bodies in the wire forms Promtail and
Alloy's `loki.write` send — `logproto.PushRequest` (Loki's pkg/push/push.proto field
numbers) compressed with snappy's block format (`application/x-protobuf`) — and the JSON
form Loki's HTTP clients send. The receiver's tests decode them.

    python3 scripts/loki-push-fixtures.py      (needs protobuf and cramjam from pip)
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import cramjam  # noqa: E402
from test_loki_push import push_class  # noqa: E402

OUT = ROOT / "receiver" / "tests" / "fixtures" / "loki"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def protobuf(streams):
    msg = push_class()()
    for labels, entries in streams:
        s = msg.streams.add(labels=labels)
        for ts, line, metadata in entries:
            e = s.entries.add(line=line)
            e.timestamp.FromNanoseconds(ts)
            for k, v in metadata.items():
                e.structuredMetadata.add(name=k, value=v)
    return bytes(cramjam.snappy.compress_raw(msg.SerializeToString()))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    # Promtail: a file target and a Kubernetes pod target; its labels as its relabeling
    # writes them (sorted, `filename` from the path).
    lines = [f'level=info msg="request served" path=/api/v1/cart status=200 took={i}ms' for i in range(40)]
    (OUT / "promtail.pb.snappy").write_bytes(protobuf([
        ('{filename="/var/log/app.log", host="node-1", job="varlogs"}',
         [(T0 + i * 1_000_000, line, {}) for i, line in enumerate(lines)]),
        ('{container="api", job="prod/api", namespace="prod", pod="api-7d9f8-x2x4q", stream="stderr"}',
         [(T0 + 5, "panic: runtime error: index out of range [3] with length 3", {}),
          (T0 + 6, "goroutine 1 [running]:", {})]),
    ]))
    # Alloy's loki.write with structured metadata (trace and span IDs from OTLP).
    (OUT / "alloy.pb.snappy").write_bytes(protobuf([
        ('{level="error", service_name="checkout"}',
         [(T0 + 7, "payment declined", {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                                        "span_id": "00f067aa0ba902b7", "user": "42"})]),
    ]))
    (OUT / "push.json").write_text(json.dumps({"streams": [
        {"stream": {"app": "web", "env": "prod"},
         "values": [[str(T0 + 8), "GET / 200"],
                    [str(T0 + 9), "GET /missing 404", {"traceID": "a3ce929d0e0e4736"}]]},
    ]}, indent=1) + "\n")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
