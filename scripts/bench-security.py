#!/usr/bin/env python3
"""Auth and TLS on next to off, in the same invocation: what tokens, TLS and mutual TLS
cost the server per record ingested and per query.

    scripts/bench.sh security [--seconds N] [--rounds N]

Each round starts `triad up` (release build) twice on fresh data directories — plain,
and with bearer tokens + TLS + client certificates — and runs the same load on each:
OTLP log batches of 1,000 records over OTLP/HTTP and OTLP/gRPC from 4 client threads
(keep-alive connections), then log searches and PromQL queries. The server's CPU time
comes from /proc (user + system); the figure that matters is CPU per record and per
query, on against off. Rounds alternate the order so that drift on a shared machine
falls on both.
"""

import argparse
import http.client
import json
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
os.environ.setdefault("TRIAD_BIN", str(ROOT / "target" / "release" / "triad"))
from conftest import Triad, auth_yaml, logs_request, new_token  # noqa: E402
from test_tls import make_pki  # noqa: E402

BATCH = 1000
THREADS = 4
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Setup:
    def __init__(self, secure, pki, work):
        self.secure, self.pki = secure, pki
        cfg = work / ("on.yaml" if secure else "off.yaml")
        if secure:
            self.write, e1 = new_token("default", "write", "bench-write")
            self.read, e2 = new_token("default", "read", "bench-read")
            cfg.write_text(auth_yaml([e1, e2]) +
                           f"tls:\n  cert_file: {pki / 'server.pem'}\n  key_file: {pki / 'server.key'}\n"
                           f"  client_ca_file: {pki / 'ca.pem'}\n")
        else:
            self.write = self.read = None
            cfg.write_text("auth: none\n")
        self.cfg = cfg
        self.ctx = None
        if secure:
            self.ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
            self.ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))

    def headers(self, token):
        return {"Authorization": f"Bearer {token}"} if token else {}

    def conn(self, url):
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        if self.secure:
            return http.client.HTTPSConnection(host, int(port), context=self.ctx, timeout=60)
        return http.client.HTTPConnection(host, int(port), timeout=60)

    def grpc_stub(self, addr):
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
        if self.secure:
            creds = grpc.ssl_channel_credentials((self.pki / "ca.pem").read_bytes(),
                                                 (self.pki / "client.key").read_bytes(),
                                                 (self.pki / "client.pem").read_bytes())
            ch = grpc.secure_channel(addr, creds)
        else:
            ch = grpc.insecure_channel(addr)
        return logs_service_pb2_grpc.LogsServiceStub(ch)


def ingest(s, t, seconds, transport):
    """Records acknowledged and server CPU seconds for `seconds` of load."""
    body = logs_request("bench", [f"request {i} served in {i % 97} ms user_id={i % 1000}" for i in range(BATCH)])
    raw = body.SerializeToString()
    count = [0] * THREADS
    stop = time.monotonic() + seconds

    def http_worker(i):
        c = s.conn(t.http)
        h = {"Content-Type": "application/x-protobuf", **s.headers(s.write)}
        while time.monotonic() < stop:
            c.request("POST", "/v1/logs", raw, h)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                count[i] += BATCH

    def grpc_worker(i):
        stub = s.grpc_stub(t.grpc)
        md = (("authorization", f"Bearer {s.write}"),) if s.write else ()
        while time.monotonic() < stop:
            stub.Export(body, timeout=60, metadata=md)
            count[i] += BATCH

    worker = http_worker if transport == "http" else grpc_worker
    cpu0 = cpu_seconds(t.proc.pid)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(count), cpu_seconds(t.proc.pid) - cpu0


def queries(s, t, n, keep_alive):
    """Latencies (ms) and server CPU seconds of `n` log searches and PromQL queries, on
    one kept-alive connection (as Grafana's data source proxy) or a new one each (a TLS
    handshake per query)."""
    paths = ["/api/logs/search?" + urllib.parse.urlencode({"q": "user_id=42", "limit": 100}),
             "/api/v1/query?" + urllib.parse.urlencode({"query": "sum(rate(triad_collector_accepted_items_total[1m]))"})]
    lat = []
    cpu0 = cpu_seconds(t.proc.pid)
    c = s.conn(t.query) if keep_alive else None
    for i in range(n):
        started = time.perf_counter()
        conn = c or s.conn(t.query)
        conn.request("GET", paths[i % 2], headers=s.headers(s.read))
        r = conn.getresponse()
        r.read()
        lat.append((time.perf_counter() - started) * 1000)
        if not keep_alive:
            conn.close()
        assert r.status == 200, r.status
    return lat, cpu_seconds(t.proc.pid) - cpu0


def run(secure, pki, work, seconds, nq):
    s = Setup(secure, pki, work)
    data = work / ("on" if secure else "off")
    shutil.rmtree(data, ignore_errors=True)
    t = Triad(data, config=s.cfg, log_path=work / "bench.log").start()
    try:
        out = {}
        for transport in ("http", "grpc"):
            out[transport] = ingest(s, t, seconds, transport)
        # The ingest phase's background work (commits, merges) must not land in the
        # query figures: wait until the server idles (under 5% of a core for a second).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            c0 = cpu_seconds(t.proc.pid)
            time.sleep(1)
            if cpu_seconds(t.proc.pid) - c0 < 0.05:
                break
        out["query"] = queries(s, t, nq, keep_alive=True)
        out["query_new"] = queries(s, t, nq, keep_alive=False)
        return out
    finally:
        t.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15, help="ingest seconds per transport and setup")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="triad-bench-security-"))
    pki = work / "pki"
    pki.mkdir()
    make_pki(pki)
    results = {False: [], True: []}
    for r in range(a.rounds):
        for secure in ((False, True) if r % 2 == 0 else (True, False)):
            results[secure].append(run(secure, pki, work, a.seconds, a.queries))
            print(f"round {r + 1}: {'auth+TLS' if secure else 'plain'} done", file=sys.stderr, flush=True)

    def per_record(setup, transport):
        vals = [(n / cpu if cpu else 0, cpu / n * 1e6 if n else 0) for n, cpu in
                (x[transport] for x in results[setup])]
        return statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals)

    print(f"\n{'':28} {'plain':>12} {'auth+mTLS':>12} {'ratio':>8}")
    for transport in ("http", "grpc"):
        off, on = per_record(False, transport), per_record(True, transport)
        print(f"{'OTLP/' + transport.upper() + ' records/CPU-s':28} {off[0]:>12,.0f} {on[0]:>12,.0f} {on[0] / off[0]:>8.3f}")
        print(f"{'OTLP/' + transport.upper() + ' CPU µs/record':28} {off[1]:>12.2f} {on[1]:>12.2f} {on[1] / off[1]:>8.3f}")
    for key, how in (("query", "kept-alive connection"), ("query_new", "new connection each (handshake)")):
        for setup_name, setup in (("plain", False), ("auth+mTLS", True)):
            lat = [x for run_ in results[setup] for x in run_[key][0]]
            cpu = sum(run_[key][1] for run_ in results[setup]) / sum(len(run_[key][0]) for run_ in results[setup])
            print(f"queries, {how:32} {setup_name:10} p50 {statistics.median(lat):6.2f} ms  p99 "
                  f"{statistics.quantiles(lat, n=100)[98]:6.2f} ms  server CPU {cpu * 1000:5.2f} ms/query")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
