#!/usr/bin/env python3
"""Chaos soak: agent, collector and query server under steady load while a schedule
breaks them, then an exact account of what was sent, acknowledged and stored.

    scripts/soak.py [minutes]          (default 30; scripts/soak.sh wraps it)

Load: a writer appends JSON lines to a log file the agent tails, rotating it the way
logrotate does (rename, create); the OpenTelemetry SDK sends log records to the agent
over OTLP/gRPC, and every batch the agent acknowledges is remembered.

Faults, spread over the run: `kill -9` of the agent, of the collector and of the query
server (each restarted); the collector frozen (SIGSTOP) so that it is unreachable while
its port stays open; the collector's data volume — a small tmpfs — filled to its last
byte and then freed.

At the end it waits for the agent to drain and prints: lines and records sent,
acknowledged, stored, lost (must be 0 for acknowledged ones, and for the tailed file's
lines), duplicates (at-least-once delivery may repeat, never lose), each process's peak
RSS, and how long each fault took to recover from (a probe line written when the fault
ends, until it is searchable). Exits non-zero on any loss.
"""

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import Triad, wait_until  # noqa: E402

VOLUME_MB = 512


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rss:
    """Peak resident memory per role, sampled every half second (pids change on restart)."""

    def __init__(self):
        self.peak, self.procs, self.stop = {}, {}, threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stop.wait(0.5):
            for role, t in list(self.procs.items()):
                try:
                    for line in Path(f"/proc/{t.proc.pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            kb = int(line.split()[1])
                            self.peak[role] = max(self.peak.get(role, 0), kb)
                except (OSError, ValueError, AttributeError):
                    pass


class FileWriter(threading.Thread):
    """JSON lines at a steady rate, rotated by rename + create every `rotate` lines."""

    def __init__(self, path, rate, rotate=3000):
        super().__init__(daemon=True)
        self.path, self.rate, self.rotate = path, rate, rotate
        self.sent, self.stop, self.lock = 0, threading.Event(), threading.Lock()

    def write(self, body):
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps({"level": "info", "msg": body}) + "\n")

    def run(self):
        while not self.stop.is_set():
            started = time.monotonic()
            for _ in range(max(1, self.rate // 10)):
                self.write(f"soakfile {self.sent}")
                self.sent += 1
                if self.sent % self.rotate == 0:
                    with self.lock:
                        os.replace(self.path, f"{self.path}.{self.sent // self.rotate}")
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))


def sdk_sender(endpoint, rate, acked, stop):
    """The OpenTelemetry SDK's logging handler and OTLP/gRPC exporter; the exporter is
    wrapped so that the records of every batch the agent acknowledged are remembered."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    inner = OTLPLogExporter(endpoint=endpoint, insecure=True, timeout=10)

    class Recording:
        def export(self, batch):
            result = inner.export(batch)
            # The exporter's result enum is not the processor's in every SDK version.
            if getattr(result, "name", None) == "SUCCESS":
                for item in batch:
                    rec = getattr(item, "log_record", item)
                    m = re.match(r"soakotel (\d+)", str(rec.body))
                    if m:
                        acked.add(int(m.group(1)))
            return result

        def shutdown(self):
            inner.shutdown()

        def force_flush(self, timeout_millis=30000):
            return True

    provider = LoggerProvider(resource=Resource.create({"service.name": "soak-sdk"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(Recording(), schedule_delay_millis=200,
                                                              max_export_batch_size=256))
    log = logging.getLogger("soak")
    log.propagate = False
    log.addHandler(LoggingHandler(logger_provider=provider))
    log.setLevel(logging.INFO)
    sent = 0
    while not stop.is_set():
        started = time.monotonic()
        for _ in range(max(1, rate // 10)):
            log.info("soakotel %d", sent)
            sent += 1
        time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
    provider.shutdown()
    return sent


# Hits one search answers (the query server's `query.max_log_hits` in the soak's config).
MAX_HITS = 100_000


def rfc3339_ns(ns):
    """RFC 3339 with nanoseconds: exact, unlike Unix seconds in a float."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def search(query_url, q, limit=MAX_HITS, start_ns=None, end_ns=None):
    """A log search over [start_ns, end_ns] (both included; the last 6 hours by default)."""
    start_ns = start_ns if start_ns is not None else time.time_ns() - 6 * 3600 * 10**9
    params = {"q": q, "limit": limit, "start": rfc3339_ns(start_ns)}
    if end_ns is not None:
        params["end"] = rfc3339_ns(end_ns)
    with urllib.request.urlopen(f"{query_url}/api/logs/search?{urllib.parse.urlencode(params)}", timeout=60) as r:
        return json.loads(r.read())


def stored_seqs(query_url, word):
    """The sequence numbers of every stored record of `word` (a duplicate twice). More
    than one answer holds: the time range is halved until each part's hits fit in one."""
    seqs = []

    def collect(start_ns, end_ns):
        r = search(query_url, word, start_ns=start_ns, end_ns=end_ns)
        if r["total"] > len(r["hits"]) and end_ns > start_ns:
            mid = (start_ns + end_ns) // 2
            collect(start_ns, mid)
            collect(mid + 1, end_ns)
            return
        seqs.extend(int(m.group(1)) for h in r["hits"] if (m := re.match(rf"{word} (\d+)", h["body"])))

    now = time.time_ns()
    collect(now - 6 * 3600 * 10**9, now + 60 * 10**9)
    return seqs


def main():
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    duration = minutes * 60
    work = Path(tempfile.mkdtemp(prefix="triad-soak-"))
    volume = work / "volume"
    volume.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={VOLUME_MB}m", "tmpfs", str(volume)],
                             capture_output=True).returncode == 0
    logs = work / "logs"
    logs.mkdir()
    grpc_port, http_port, query_port = free_port(), free_port(), free_port()
    agent_grpc, agent_http = free_port(), free_port()
    # The SDK's own retry warnings would drown the report.
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    cfg = work / "triad.yaml"
    cfg.write_text(f"query:\n  max_log_hits: {MAX_HITS}\n"
                   "collector:\n  logs: {commit_interval_ms: 500}\n"
                   f"agent:\n  include: ['{logs}/app.log*']\n  read_from: beginning\n  scan_interval_secs: 1\n"
                   "  max_buffer_bytes: 268435456\n")
    collector_args = ["--otlp-grpc-listen", f"127.0.0.1:{grpc_port}", "--otlp-http-listen",
                      f"127.0.0.1:{http_port}", "--zipkin-listen", ""]
    rss = Rss()
    procs = {}

    def start(role):
        if role == "collector":
            t = Triad(volume / "data", config=cfg, command="collector", args=collector_args,
                      log_path=work / "collector.log")
        elif role == "query":
            t = Triad(volume / "data", config=cfg, command="query",
                      args=["--query-listen", f"127.0.0.1:{query_port}"], log_path=work / "query.log")
        else:
            t = Triad(work / "agent", config=cfg, command="agent",
                      args=["--collector", f"http://127.0.0.1:{grpc_port}", "--zipkin-listen", "",
                            "--metrics-listen", "", "--otlp-grpc-listen", f"127.0.0.1:{agent_grpc}",
                            "--otlp-http-listen", f"127.0.0.1:{agent_http}"], log_path=work / "agent.log")
        procs[role] = rss.procs[role] = t.start()
        return procs[role]

    for role in ("collector", "query", "agent"):
        start(role)
    query_url = procs["query"].query
    writer = FileWriter(logs / "app.log", rate=200)
    writer.start()
    acked, stop_sdk = set(), threading.Event()
    sdk_result = {}
    sdk = threading.Thread(target=lambda: sdk_result.update(
        sent=sdk_sender(procs["agent"].grpc, 200, acked, stop_sdk)), daemon=True)
    sdk.start()

    recoveries = []
    failures = []

    def recovered(what):
        probe = f"probe{len(recoveries)}"
        writer.write(f"{probe} after {what}")
        began = time.monotonic()
        wait_until(f"recovery from {what}", lambda: search(query_url, probe)["total"] >= 1,
                   timeout=300, interval=0.25)
        recoveries.append((what, time.monotonic() - began))
        print(f"  recovered from {what} in {recoveries[-1][1]:.1f}s", flush=True)

    def kill9(role):
        procs[role].kill9()
        start(role)

    def freeze_collector(seconds):
        os.kill(procs["collector"].proc.pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(procs["collector"].proc.pid, signal.SIGCONT)

    def store_counter(name):
        """The sum of a counter of the collector's stores, from its /metrics."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return "?"
        return int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{")))

    def fill_volume(seconds):
        if not mounted:
            print("  (skipped: no tmpfs could be mounted here, so the volume is the machine's disk)")
            return
        filler = volume / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        print(f"  volume full ({shutil.disk_usage(volume).free} bytes free)", flush=True)
        time.sleep(seconds)
        filler.unlink()
        # A store whose write-ahead log failed stops taking writes (nothing unwritten is
        # acknowledged) and /readyz says 503; the collector restarts the store itself once
        # the disk takes writes again. Should it not within 30 s, the collector is
        # restarted as a liveness probe on /readyz would — and the soak fails.
        def ready():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False

        freed = time.monotonic()
        deadline = freed + 30
        while time.monotonic() < deadline and not ready():
            time.sleep(0.5)
        if ready():
            print(f"  collector ready {time.monotonic() - freed:.1f}s after the disk was freed, without a restart "
                  f"(its stores restarted themselves {store_counter('triad_store_restarts_total')} times; "
                  f"{store_counter('triad_store_errors_total')} storage errors)", flush=True)
        else:
            failures.append("the collector did not recover in-process from the full volume")
            print("  collector still unready 30 s after the disk was freed: restarted, as a liveness "
                  "probe on /readyz would", flush=True)
            kill9("collector")

    hold = max(10.0, duration * 0.06)
    schedule = [
        (0.12, "kill -9 agent", lambda: kill9("agent")),
        (0.27, f"collector frozen (SIGSTOP) {hold:.0f}s", lambda: freeze_collector(hold)),
        (0.45, "kill -9 collector", lambda: kill9("collector")),
        (0.60, f"collector volume full {hold:.0f}s", lambda: fill_volume(hold)),
        (0.78, "kill -9 query server", lambda: kill9("query")),
    ]
    began = time.monotonic()
    print(f"soak: {minutes:g} min, data volume {'tmpfs ' + str(VOLUME_MB) + ' MiB' if mounted else 'on disk'}, "
          f"work dir {work}", flush=True)
    for at, what, fault in schedule:
        time.sleep(max(0.0, began + at * duration - time.monotonic()))
        print(f"t={time.monotonic() - began:5.0f}s {what}", flush=True)
        fault()
        recovered(what)
    time.sleep(max(0.0, began + 0.9 * duration - time.monotonic()))
    writer.stop.set()
    stop_sdk.set()
    writer.join()
    sdk.join(timeout=120)
    print("load stopped; waiting for the agent to drain", flush=True)

    def settled():
        f = set(stored_seqs(query_url, "soakfile"))
        o = set(stored_seqs(query_url, "soakotel"))
        return len(f) >= writer.sent and acked <= o

    try:
        wait_until("everything stored", settled, timeout=300, interval=2)
    except AssertionError:
        pass
    files = stored_seqs(query_url, "soakfile")
    otel = stored_seqs(query_url, "soakotel")
    rss.stop.set()
    file_lost = writer.sent - len(set(files))
    otel_lost = len(acked - set(otel))
    rows = [
        ("tailed file lines", writer.sent, writer.sent, len(set(files)), file_lost, len(files) - len(set(files))),
        ("OTel SDK records", sdk_result.get("sent", 0), len(acked), len(set(otel) & acked), otel_lost,
         len(otel) - len(set(otel))),
    ]
    print(f"\n{'':20} {'sent':>9} {'acked':>9} {'stored':>9} {'lost':>6} {'dupes':>7}")
    for r in rows:
        print(f"{r[0]:20} {r[1]:>9} {r[2]:>9} {r[3]:>9} {r[4]:>6} {r[5]:>7}")
    print("\npeak RSS: " + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in sorted(rss.peak.items())))
    print("recovery: " + ", ".join(f"{w}: {s:.1f}s" for w, s in recoveries))
    for t in procs.values():
        if t.proc.poll() is None:
            t.stop()
    if mounted:
        subprocess.run(["umount", str(volume)], capture_output=True)
    ok = file_lost == 0 and otel_lost == 0 and not failures
    for f in failures:
        print(f"FAILED: {f}")
    print("\nsoak: " + ("ok, nothing acknowledged was lost" if ok else
                        "LOSS" if file_lost or otel_lost else "FAILED"), flush=True)
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
