"""Start the real `triad` binary on ephemeral ports and talk to it like a user would."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("TRIAD_BIN", ROOT / "target" / "debug" / "triad"))


def wait_until(what, fn, timeout=30.0, interval=0.05):
    """Poll fn until it returns something truthy; tests never sleep blindly."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (urllib.error.URLError, ConnectionError, KeyError, ValueError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Triad:
    """One `triad up` process on 127.0.0.1 with OS-assigned ports."""

    LISTEN_FLAGS = {
        "up": ["--otlp-grpc-listen", "127.0.0.1:0", "--otlp-http-listen", "127.0.0.1:0", "--query-listen", "127.0.0.1:0",
               "--zipkin-listen", "127.0.0.1:0"],
        "collector": ["--otlp-grpc-listen", "127.0.0.1:0", "--otlp-http-listen", "127.0.0.1:0",
                      "--zipkin-listen", "127.0.0.1:0"],
        "query": ["--query-listen", "127.0.0.1:0"],
        "agent": ["--otlp-grpc-listen", "127.0.0.1:0", "--otlp-http-listen", "127.0.0.1:0",
                  "--zipkin-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
    }

    def __init__(self, data_dir, config=None, log_path=None, command="up", args=(), env=None):
        """`args` come after the ephemeral-port flags, so they can pin a port; `env` is
        added to the environment of the process."""
        self.data_dir = Path(data_dir)
        self.env = env
        self.config = config
        self.command = command
        self.args = list(args)
        self.log_path = Path(log_path or self.data_dir.parent / f"triad-{command}.log")
        self.proc = None

    def start(self):
        flags = self.LISTEN_FLAGS[self.command]
        ephemeral = [x for i in range(0, len(flags), 2) if flags[i] not in self.args for x in flags[i:i + 2]]
        args = [str(BIN), self.command, "--data-dir", str(self.data_dir), *ephemeral, *self.args]
        if self.config:
            args += ["--config", str(self.config)]
        self.log = open(self.log_path, "ab")
        started = time.monotonic()
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        addrs = {}
        for line in self.proc.stdout:
            parts = line.split()
            if parts[:1] == ["listening"]:
                addrs[parts[1]] = parts[2]
            if line.startswith("ready:"):
                break
        else:
            raise AssertionError(f"triad exited before ready; see {self.log_path}")
        self.ready_seconds = time.monotonic() - started
        self.grpc = addrs.get("otlp-grpc")
        self.http = "http://" + addrs["otlp-http"] if "otlp-http" in addrs else None
        self.query = "http://" + addrs["query"] if "query" in addrs else None
        self.zipkin = "http://" + addrs["zipkin"] if "zipkin" in addrs else None
        self.ops = "http://" + addrs["metrics"] if "metrics" in addrs else None
        return self

    def stop(self):
        """Graceful stop (SIGTERM): drain, commit, exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        assert code == 0, f"triad exited with {code}; see {self.log_path}"

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()

    def get(self, path, **params):
        url = self.query + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path, doc):
        """POSTs `doc` as JSON to the query server; the answer's JSON."""
        req = urllib.request.Request(self.query + path, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def get_status(self, path, base=None):
        try:
            with urllib.request.urlopen((base or self.query) + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics(self, base=None):
        return self.get_status("/metrics", base)[1].decode()


def new_token(tenant, role, name, trusted=False):
    """A token made with `triad token new`: (token, its `auth.tokens` entry as YAML).
    `triad token hash` agrees with the entry, which holds the hash, not the token."""
    args = [str(BIN), "token", "new", "--tenant", tenant, "--role", role, "--name", name]
    if trusted:
        args.append("--trusted")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    token = out.splitlines()[0].rsplit(" ", 1)[1]
    entry = "\n".join(out.splitlines()[2:])
    hashed = subprocess.run([str(BIN), "token", "hash"], input=token + "\n", capture_output=True, text=True,
                            check=True).stdout.strip()
    assert hashed in entry and token not in entry
    return token, entry


def auth_yaml(entries):
    """The `auth` section of triad.yaml accepting the `new_token` entries."""
    indented = "\n".join("    " + line for e in entries for line in e.splitlines())
    return f"auth:\n  tokens:\n{indented}\n"


def post_protobuf(url, msg):
    """POST an OTLP protobuf message; asserts the 200 that acknowledges it."""
    req = urllib.request.Request(url, data=msg.SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def logs_request(service, bodies, time_ns=None):
    """An OTLP logs export request: one record per body, from `service`."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    kv = rl.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    recs = rl.scope_logs.add()
    for body in bodies:
        r = recs.log_records.add()
        r.time_unix_nano = time_ns or time.time_ns()
        r.body.string_value = body
    return req


def gauge_request(name, points, service="e2e"):
    """An OTLP metrics export request: gauge `name` with (attributes, time ns, value)
    points, from `service` (the series' `job`)."""
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    kv = rm.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    m = rm.scope_metrics.add().metrics.add()
    m.name = name
    for attrs, t, v in points:
        p = m.gauge.data_points.add()
        p.time_unix_nano = t
        p.as_double = v
        for k, val in attrs.items():
            a = p.attributes.add()
            a.key, a.value.string_value = k, val
    return req


def metric_value(text, prefix):
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def triad(tmp_path):
    t = Triad(tmp_path / "data").start()
    yield t
    if t.proc.poll() is None:
        t.kill9()
