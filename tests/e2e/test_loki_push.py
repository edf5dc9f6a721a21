"""Loki's push API on the receivers: a real Loki logging handler (`python-logging-loki`,
JSON), a snappy-compressed protobuf `PushRequest` built from Loki's push.proto, JSON with
structured metadata; pushed lines are found through Triad's log search, their trace IDs
correlate; pushed through the agent they reach the collector; bad pushes get a clear
400 and are counted."""

import json
import logging
import time
import urllib.error
import urllib.request

from conftest import Triad, metric_value, wait_until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def total(t, q):
    return t.get("/api/logs/search", q=q, start="0", limit="1")["total"]


def push(url, body, content_type, encoding=None):
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    req = urllib.request.Request(url + "/loki/api/v1/push", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def snappy_literal(data):
    """Snappy's raw (block) format with literals only: valid input for any decoder."""
    n, out = len(data), bytearray()
    while True:  # uncompressed length, varint
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        size = len(chunk) - 1
        if size < 60:
            out.append(size << 2)
        elif size < 256:
            out += bytes([60 << 2, size])
        else:
            out += bytes([61 << 2, size & 0xFF, size >> 8])
        out += chunk
    return bytes(out)


def push_class():
    """`logproto.PushRequest` with Loki's field numbers (pkg/push/push.proto), built with
    the protobuf runtime from a descriptor."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

    f = descriptor_pb2.FileDescriptorProto(name="push.proto", package="logproto", syntax="proto3",
                                           dependency=["google/protobuf/timestamp.proto"])
    T = descriptor_pb2.FieldDescriptorProto
    pair = f.message_type.add(name="LabelPairAdapter")
    pair.field.add(name="name", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    pair.field.add(name="value", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    entry = f.message_type.add(name="EntryAdapter")
    entry.field.add(name="timestamp", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                    type_name=".google.protobuf.Timestamp")
    entry.field.add(name="line", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    entry.field.add(name="structuredMetadata", number=3, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                    type_name=".logproto.LabelPairAdapter")
    stream = f.message_type.add(name="StreamAdapter")
    stream.field.add(name="labels", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    stream.field.add(name="entries", number=2, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                     type_name=".logproto.EntryAdapter")
    stream.field.add(name="hash", number=3, type=T.TYPE_UINT64, label=T.LABEL_OPTIONAL)
    req = f.message_type.add(name="PushRequest")
    req.field.add(name="streams", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                  type_name=".logproto.StreamAdapter")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


def push_request(labels, lines, metadata):
    """A `PushRequest` of one stream, its lines timestamped from now."""
    Push = push_class()
    msg = Push()
    s = msg.streams.add(labels=labels)
    now = time.time_ns()
    for i, line in enumerate(lines):
        e = s.entries.add(line=line)
        e.timestamp.FromNanoseconds(now + i)
        for k, v in metadata.items():
            e.structuredMetadata.add(name=k, value=v)
    return msg.SerializeToString()


def test_loki_clients_push_to_triad(tmp_path):
    import logging_loki

    t = Triad(tmp_path / "data").start()
    collector = agent = None
    try:
        # A real Loki logging handler (JSON).
        handler = logging_loki.LokiHandler(url=f"{t.http}/loki/api/v1/push", tags={"application": "loki-py"},
                                           version="1")
        log = logging.getLogger("loki-e2e")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.warning("stock running low", extra={"tags": {"warehouse": "north"}})
        log.error("order failed")
        wait_until("the handler's lines", lambda: total(t, "service:loki-py") == 2, timeout=30)
        hit = t.get("/api/logs/search", q='"order failed"', start="0")["hits"][0]
        assert hit["service"] == "loki-py" and hit["level"] == "error", hit

        # JSON with structured metadata, gzip-compressed: the trace ID correlates.
        import gzip

        now = str(time.time_ns())
        body = json.dumps({"streams": [{"stream": {"service_name": "checkout", "level": "error", "pod": "checkout-7"},
                                        "values": [[now, "payment declined", {"trace_id": TRACE, "user": "42"}]]}]})
        assert push(t.http, gzip.compress(body.encode()), "application/json", "gzip")[0] == 204
        wait_until("the JSON line", lambda: total(t, f"trace_id:{TRACE}") == 1, timeout=30)
        hit = t.get("/api/logs/search", q=f"trace_id:{TRACE}", start="0")["hits"][0]
        assert hit["body"] == "payment declined" and hit["attributes"]["user"] == "42", hit
        assert hit["attributes"]["k8s.pod.name"] == "checkout-7"

        # Snappy protobuf, as Promtail and Alloy send.
        raw = push_request('{job="varlogs", host="node-1", filename="/var/log/app.log"}',
                           ["proto line one", "proto line two"], {"traceID": TRACE})
        status, text = push(t.http, snappy_literal(raw), "application/x-protobuf")
        assert status == 204, text
        wait_until("the protobuf lines", lambda: total(t, "service:varlogs") == 2, timeout=30)
        assert total(t, f"trace_id:{TRACE}") == 3

        # Bad pushes: a clear 400, counted; nothing else lost.
        for body, ct in ((b"{", "application/json"), (b"\xff\xff\xff", "application/x-protobuf"),
                         (b'{"streams":[{"stream":{},"values":[["soon","x"]]}]}', "application/json")):
            status, text = push(t.http, body, ct)
            assert status == 400 and text, (body, status, text)
        assert push(t.http, b"x", "text/plain")[0] == 415
        m = t.metrics()
        assert metric_value(m, 'triad_collector_requests_total{signal="logs",transport="loki",outcome="invalid"}') == 3
        assert total(t, "service:varlogs") == 2

        # Through the agent: forwarded to its collector like any other log.
        collector = Triad(tmp_path / "c", command="collector").start()
        query = Triad(tmp_path / "c", command="query").start()
        agent = Triad(tmp_path / "agent", command="agent", args=["--collector", f"http://{collector.grpc}"]).start()
        body = json.dumps({"streams": [{"stream": {"app": "via-agent"}, "values": [[str(time.time_ns()), "hop"]]}]})
        assert push(agent.http, body.encode(), "application/json")[0] == 204
        wait_until("the line through the agent", lambda: total(query, "service:via-agent") == 1, timeout=30)
        query.kill9()
    finally:
        for p in (agent, collector):
            if p is not None and p.proc.poll() is None:
                p.kill9()
        t.stop()
