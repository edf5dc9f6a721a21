"""Several collectors sharing one store (SeaweedFS + PostgreSQL, started here): each
registers a lease in the metastore, a query server with no collector address finds them
all there and asks every one for what it has not published; a trace whose spans went to
two collectors is whole, counts add up, PromQL covers both; a collector that dies makes
answers say they are partial until it returns; a collector paused past its lease is
fenced off once a successor registered as its node; an agent with two collectors spreads its
batches over both and delivers everything through the one left when the other dies; tokens
kept in the metastore work in every process without a restart."""

import json
import re
import subprocess
import time

import pytest
import yaml

from conftest import BIN, Triad, logs_request, metric_value, post_protobuf, wait_until
from engines import Postgres, SeaweedFS
from test_object_storage import batch_total, gauge_request, write_config


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    weed = SeaweedFS(tmp_path_factory.mktemp("weed")).start()
    pg = Postgres().start()
    yield weed, pg
    weed.kill()
    pg.close()


def configs(tmp_path, weed, pg, prefix, nodes):
    """The shared object-storage configuration with short leases: one per collector
    `nodes` (as that node), and one for query servers."""
    base = write_config(tmp_path / "query.yaml", weed, pg, prefix)
    doc = yaml.safe_load(base.read_text())
    doc["storage"]["lease_secs"] = 3
    base.write_text(yaml.safe_dump(doc))
    out = {}
    for node in nodes:
        doc["collector"]["node_id"] = node
        out[node] = tmp_path / f"{node}.yaml"
        out[node].write_text(yaml.safe_dump(doc))
    return base, out


class Exporters:
    """`n` Prometheus exporters on loopback serving gauge `name`: scrape targets."""

    def __init__(self, n, name):
        import http.server
        import threading

        class Exporter(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = f"# TYPE {name} gauge\n{name} 1\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exporter) for _ in range(n)]
        for srv in self.servers:
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.targets = [f"127.0.0.1:{srv.server_address[1]}" for srv in self.servers]

    def close(self):
        for srv in self.servers:
            srv.shutdown()


def send_lines(t, n, tag):
    post_protobuf(f"{t.http}/v1/logs", logs_request("batch", [f"{tag} line {j}" for j in range(n)]))


def send_split_trace(first, second):
    """One trace: the root span sent to `first`, its child to `second`."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    providers = []
    for svc, t in (("edge", first), ("ledger", second)):
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{t.http}/v1/traces")))
        providers.append(p)
    with providers[0].get_tracer("e2e").start_as_current_span("GET /pay") as root:
        with providers[1].get_tracer("e2e").start_as_current_span(
            "ledger.write", context=trace.set_span_in_context(root)
        ):
            pass
    for p in providers:
        p.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def trace_spans(q, trace_id):
    """Spans of the trace a query server finds (0 while it finds none)."""
    import urllib.error

    try:
        return len(q.get(f"/api/traces/{trace_id}")["data"][0]["spans"])
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return 0
        raise


def pods_count(q, at):
    r = q.get("/api/v1/query", query="count(count_over_time(spread_gauge[30m]))", time=str(at))
    value = float(r["data"]["result"][0]["value"][1]) if r["data"]["result"] else 0.0
    return value, r.get("warnings", [])


def test_collectors_share_one_store_and_queries_ask_every_live_one(tmp_path, engines):
    weed, pg = engines
    query_cfg, cfgs = configs(tmp_path, weed, pg, "spread", ("c1", "c2"))
    collectors = {
        n: Triad(tmp_path / n, config=cfgs[n], command="collector", log_path=tmp_path / f"{n}.log").start()
        for n in ("c1", "c2")
    }
    q = Triad(tmp_path / "q", config=query_cfg, command="query").start()
    try:
        send_lines(collectors["c1"], 100, "one")
        send_lines(collectors["c2"], 100, "two")
        trace_id = send_split_trace(collectors["c1"], collectors["c2"])
        now = time.time_ns()
        for i, n in enumerate(("c1", "c2")):
            points = [({"pod": f"{n}-{k}"}, now - 60 * 10**9, 1.0) for k in range(5)]
            post_protobuf(f"{collectors[n].http}/v1/metrics", gauge_request("spread_gauge", points))
        at = now / 1e9
        wait_until("the lines of both collectors", lambda: batch_total(q) == 200, timeout=30)
        wait_until("the spans of both collectors", lambda: trace_spans(q, trace_id) == 2, timeout=30)
        r = q.get(f"/api/traces/{trace_id}")
        assert r["partial"] is False, r
        assert {p["serviceName"] for p in r["data"][0]["processes"].values()} == {"edge", "ledger"}
        assert {"edge", "ledger"} <= set(q.get("/api/services")["data"])
        assert pods_count(q, at) == (10.0, [])
        # Loki's API through the same fan-out: LogQL over both, the label values of both.
        logql = q.get("/loki/api/v1/query", query='sum(count_over_time({service_name="batch"}[1h]))')
        assert logql["data"]["result"][0]["value"][1] == "200" and "warnings" not in logql, logql
        assert "batch" in q.get("/loki/api/v1/label/service_name/values")["data"]

        # A collector dies: answers carry on with what is there, and say what is missing.
        collectors["c2"].kill9()
        r = q.get("/api/logs/search", q="service:batch", start="0", limit="1")
        assert r["partial"] is True and any("c2" in w for w in r["warnings"]), r
        assert r["total"] >= 100
        logql = q.get("/loki/api/v1/query", query='sum(count_over_time({service_name="batch"}[1h]))')
        assert any("c2" in w for w in logql["warnings"]), logql
        # Once its lease expired it is no longer asked, and still reported as missing.
        wait_until("c2's lease expired",
                   lambda: any("down for" in w for w in
                               q.get("/api/logs/search", q="service:batch", start="0", limit="1")["warnings"]),
                   timeout=30)
        count, warnings = pods_count(q, at)
        assert warnings and any("c2" in w for w in warnings), warnings

        # It returns (same node, same disk): everything is there again, nothing partial.
        collectors["c2"].start()
        wait_until("c2 back", lambda: batch_total(q) == 200 and not q.get(
            "/api/logs/search", q="service:batch", start="0", limit="1")["partial"], timeout=30)
        assert trace_spans(q, trace_id) == 2
        assert pods_count(q, at) == (10.0, [])
    finally:
        for t in [*collectors.values(), q]:
            if t.proc.poll() is None:
                t.kill9()


def test_a_collector_paused_past_its_lease_cannot_publish_over_its_successor(tmp_path, engines):
    """SIGSTOP past the lease, a successor registers as the same node, SIGCONT: the
    first is fenced off, the successor publishes."""
    import signal

    weed, pg = engines
    cfg = configs(tmp_path, weed, pg, "fence", ("same",))[1]["same"]
    first = Triad(tmp_path / "first", config=cfg, command="collector", log_path=tmp_path / "first.log").start()
    second = None
    try:
        send_lines(first, 50, "before")
        wait_until("the first publishes", lambda: metric_value(
            first.metrics(first.http), 'triad_publish_splits_total{signal="logs"}') >= 1, timeout=60)
        published = metric_value(first.metrics(first.http), 'triad_publish_splits_total{signal="logs"}')
        send_lines(first, 50, "after")
        first.proc.send_signal(signal.SIGSTOP)
        time.sleep(4)  # past its 3 s lease
        second = Triad(tmp_path / "second", config=cfg, command="collector", log_path=tmp_path / "second.log").start()
        first.proc.send_signal(signal.SIGCONT)
        wait_until("the first is fenced off",
                   lambda: metric_value(first.metrics(first.http), "triad_publish_fenced") == 1, timeout=30)
        send_lines(second, 50, "successor")
        wait_until("the successor publishes", lambda: metric_value(
            second.metrics(second.http), 'triad_publish_splits_total{signal="logs"}') >= 1, timeout=60)
        # The first's split of "after" lines seals (5 s) and is refused.
        wait_until("the fenced one tried", lambda: metric_value(
            first.metrics(first.http), 'triad_publish_errors_total{signal="logs",stage="publish"}') >= 1,
            timeout=60)
        assert metric_value(first.metrics(first.http), 'triad_publish_splits_total{signal="logs"}') == published
        assert metric_value(second.metrics(second.http), "triad_publish_fenced") == 0
    finally:
        for t in (first, second):
            if t is not None and t.proc.poll() is None:
                t.proc.send_signal(signal.SIGCONT)
                t.kill9()


def test_an_agent_spreads_batches_over_collectors_and_fails_over(tmp_path, engines):
    weed, pg = engines
    query_cfg, cfgs = configs(tmp_path, weed, pg, "failover", ("f1", "f2"))
    collectors = {
        n: Triad(tmp_path / n, config=cfgs[n], command="collector", log_path=tmp_path / f"{n}.log").start()
        for n in ("f1", "f2")
    }
    q = Triad(tmp_path / "q", config=query_cfg, command="query").start()
    endpoints = ",".join(f"http://{c.grpc}" for c in collectors.values())
    agent = Triad(tmp_path / "agent", command="agent", args=["--collector", endpoints]).start()

    def found(word):
        return q.get("/api/logs/search", q=word, start="0", limit="1")["total"]

    def received(n):
        return metric_value(collectors[n].metrics(collectors[n].http),
                            'triad_collector_requests_total{signal="logs",transport="grpc",outcome="ok"}')

    try:
        for i in range(10):
            post_protobuf(f"{agent.http}/v1/logs", logs_request("agent", [f"spreada line {i}-{j}" for j in range(10)]))
        wait_until("every line of the first half", lambda: found("spreada") == 100, timeout=30)
        assert received("f1") > 0 and received("f2") > 0, "batches go to both collectors"

        collectors["f1"].kill9()
        for i in range(10):
            post_protobuf(f"{agent.http}/v1/logs", logs_request("agent", [f"spreadb line {i}-{j}" for j in range(10)]))
        wait_until("every line of the second half, through the collector left", lambda: found("spreadb") == 100,
                   timeout=60)
        assert received("f2") >= 10, "the collector left took the second half"
    finally:
        for t in [agent, *collectors.values(), q]:
            if t.proc.poll() is None:
                t.kill9()


def test_of_several_triad_up_one_evaluates_rules_and_another_takes_over(tmp_path, engines):
    """One evaluator at a time; when it dies another takes over with the notification
    log and silences of the metastore: an alert still firing is not notified again, one
    that ended resolves once, and a silence added on one process mutes on the other."""
    from test_alerting import Webhook

    weed, pg = engines
    hook = Webhook()
    _, cfgs = configs(tmp_path, weed, pg, "leader", ("u1", "u2"))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "toggles", "rules": [
        {"alert": name, "expr": f"{gauge} > 0"}
        for name, gauge in (("Kept", "kept_gauge"), ("Vanished", "vanished_gauge"), ("Muted", "muted_gauge"))
    ]}]}))
    for path in cfgs.values():
        doc = yaml.safe_load(path.read_text())
        doc["alerting"] = {
            "evaluation_interval_secs": 1,
            "rule_files": [str(tmp_path / "rules.yml")],
            "receivers": [{"name": "hook", "url": hook.url}],
            "route": {"receiver": "hook", "group_wait_secs": 1, "group_interval_secs": 1,
                      "repeat_interval_secs": 3600},
        }
        path.write_text(yaml.safe_dump(doc))
    ups = {n: Triad(tmp_path / n, config=cfgs[n], log_path=tmp_path / f"{n}.log").start() for n in ("u1", "u2")}

    def evaluations(t):
        return sum(float(line.rsplit(" ", 1)[1]) for line in t.metrics().splitlines()
                   if line.startswith("triad_alerting_rule_group_evaluations_total{"))

    def push(t, gauge, value):
        post_protobuf(f"{t.http}/v1/metrics", gauge_request(gauge, [({}, time.time_ns(), value)]))

    def count(status, name):
        return len(hook.bodies(status=status, alertname=name))

    try:
        wait_until("one evaluator", lambda: max(evaluations(t) for t in ups.values()) >= 3, timeout=30)
        leader = max(ups, key=lambda n: evaluations(ups[n]))
        other = "u2" if leader == "u1" else "u1"
        assert evaluations(ups[other]) == 0, "only the leader evaluates"
        # `Kept` and `Muted` hold on both processes' data, `Vanished` only on the leader's.
        for t in ups.values():
            push(t, "kept_gauge", 1)
            push(t, "muted_gauge", 1)
        push(ups[leader], "vanished_gauge", 1)
        wait_until("the alerts notified", lambda: count("firing", "Kept") == 1
                   and count("firing", "Vanished") == 1 and count("firing", "Muted") == 1, timeout=30)
        # Both show the evaluator's alerts.
        wait_until("the alerts on both", lambda: all(
            {"Kept", "Vanished", "Muted"} <= {a["labels"]["alertname"] for a in t.get("/api/v1/alerts")["data"]["alerts"]
                                              if a["state"] == "firing"} for t in ups.values()), timeout=30)
        # A silence added through the process that does not evaluate.
        silence = ups[other].post("/api/v2/silences", {
            "matchers": [{"name": "alertname", "value": "Muted", "isRegex": False}],
            "endsAt": "2099-01-01T00:00:00Z", "createdBy": "e2e", "comment": "maintenance"})
        assert silence["silenceID"]
        time.sleep(2)
        assert count("firing", "Kept") == 1, "notified once, by one process"

        ups[leader].kill9()
        wait_until("the other takes over", lambda: evaluations(ups[other]) >= 3, timeout=30)
        # The leader's unpublished `vanished_gauge` went with it: that alert ended.
        wait_until("the vanished alert resolved", lambda: count("resolved", "Vanished") == 1, timeout=30)
        push(ups[other], "kept_gauge", 0)
        push(ups[other], "muted_gauge", 0)
        wait_until("the kept alert resolved", lambda: count("resolved", "Kept") == 1, timeout=30)
        time.sleep(3)
        assert (count("firing", "Kept"), count("firing", "Vanished")) == (1, 1), \
            "the new evaluator repeats nothing the first one notified"
        assert (count("resolved", "Kept"), count("resolved", "Vanished")) == (1, 1)
        assert count("resolved", "Muted") == 0, "silenced through the other process"
    finally:
        hook.close()
        for t in ups.values():
            if t.proc.poll() is None:
                t.kill9()


def test_scrape_targets_are_shared_out_and_move_when_a_collector_dies(tmp_path, engines):
    exporters = Exporters(12, "shard_demo")
    targets = exporters.targets
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "shard", "static_configs": [{"targets": targets}]}],
    }))
    weed, pg = engines
    query_cfg, cfgs = configs(tmp_path, weed, pg, "shard", ("s1", "s2"))
    for path in cfgs.values():
        doc = yaml.safe_load(path.read_text())
        doc["collector"]["metrics"]["scrape_config_file"] = str(tmp_path / "prometheus.yml")
        path.write_text(yaml.safe_dump(doc))
    collectors = {
        n: Triad(tmp_path / n, config=cfgs[n], command="collector", log_path=tmp_path / f"{n}.log").start()
        for n in ("s1", "s2")
    }
    q = Triad(tmp_path / "q", config=query_cfg, command="query").start()

    def scraping(n):
        return metric_value(collectors[n].metrics(collectors[n].http), 'triad_scrape_targets{job="shard"}')

    def up_series():
        r = q.get("/api/v1/query", query='count(up{job="shard"} == 1)')
        return float(r["data"]["result"][0]["value"][1]) if r["data"]["result"] else 0.0

    try:
        wait_until("the targets shared out", lambda: scraping("s1") + scraping("s2") == 12
                   and scraping("s1") > 0 and scraping("s2") > 0, timeout=30)
        wait_until("every target up, once", lambda: up_series() == 12, timeout=30)
        collectors["s2"].kill9()
        wait_until("the survivor takes every target", lambda: scraping("s1") == 12, timeout=30)
        # Each target's newest `up` comes from the survivor now.
        wait_until("every target scraped by the survivor",
                   lambda: float(q.get("/api/v1/query", query='count(up{job="shard"} == 1)')["data"]["result"][0]
                                 ["value"][1]) == 12, timeout=30)
    finally:
        for t in [*collectors.values(), q]:
            if t.proc.poll() is None:
                t.kill9()
        exporters.close()


BLOCK = 200  # lines per block of the soak test


def write_block(path, agent, block):
    import json

    with open(path, "a") as f:
        for i in range(BLOCK):
            f.write(json.dumps({"level": "info", "msg": f"soak {agent} blk{block} line {i}",
                                "service": f"soak-{agent}", "seq": i}) + "\n")


def block_state(q, agent, block):
    """(hits in total, lines missing) of one block through query server `q`."""
    r = q.get("/api/logs/search", q=f"service:soak-{agent} blk{block}", start="0", limit="1000")
    seqs = {h["attributes"].get("seq") for h in r["hits"]}
    return r["total"], len(set(range(BLOCK)) - seqs)


def send_traces(providers, n):
    """`n` traces of three spans each: the root through the first agent, two children
    through the second. Returns their IDs."""
    from opentelemetry import trace

    ids = []
    for _ in range(n):
        with providers[0].get_tracer("soak").start_as_current_span("GET /checkout") as root:
            ctx = trace.set_span_in_context(root)
            for name in ("reserve", "charge"):
                with providers[1].get_tracer("soak").start_as_current_span(name, context=ctx):
                    pass
        ids.append(format(root.get_span_context().trace_id, "032x"))
    for p in providers:
        p.force_flush()
    return ids


def test_three_collectors_two_query_servers_two_agents_through_a_kill_and_a_join(tmp_path, engines):
    """The whole scale-out: two agents tail files and take OpenTelemetry SDK spans and
    spread them over three collectors; two query servers answer. One collector — the one
    evaluating rules — is killed mid-stream: the agents carry on through the others, its
    scrape targets move within a lease, another collector evaluates without notifying
    again; it restarts from its disk and nothing acknowledged is missing (duplicates
    counted). A fourth collector joins: it takes a share of the targets, the others only
    give theirs up, and no series doubles."""
    import threading

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from test_alerting import Webhook

    weed, pg = engines
    hook = Webhook()
    # Enough targets that every collector owns some (with 4 collectors, none of 40 for
    # one of them has a chance of (3/4)^40, about 1e-5).
    targets = 40
    exporters = Exporters(targets, "soak_demo")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "soak", "static_configs": [{"targets": exporters.targets}]}],
    }))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "beat", "rules": [
        {"alert": "Heartbeat", "expr": "vector(1)"}]}]}))
    names = ("k1", "k2", "k3", "k4")
    query_cfg, cfgs = configs(tmp_path, weed, pg, "soak", names)
    for path in cfgs.values():
        doc = yaml.safe_load(path.read_text())
        doc["collector"]["metrics"]["scrape_config_file"] = str(tmp_path / "prometheus.yml")
        doc["alerting"] = {
            "evaluation_interval_secs": 1,
            "rule_files": [str(tmp_path / "rules.yml")],
            "receivers": [{"name": "hook", "url": hook.url}],
            "route": {"receiver": "hook", "group_wait_secs": 1, "group_interval_secs": 1,
                      "repeat_interval_secs": 3600},
        }
        path.write_text(yaml.safe_dump(doc))

    def start_collector(n):
        return Triad(tmp_path / n, config=cfgs[n], command="collector", log_path=tmp_path / f"{n}.log").start()

    collectors = {n: start_collector(n) for n in names[:3]}
    queries = [Triad(tmp_path / f"q{i}", config=query_cfg, command="query", log_path=tmp_path / f"q{i}.log").start()
               for i in (1, 2)]
    endpoints = ",".join(f"http://{collectors[n].grpc}" for n in names[:3])
    logs = {a: tmp_path / f"logs-{a}" for a in ("a", "b")}
    agents = {}
    for a, d in logs.items():
        d.mkdir()
        agents[a] = Triad(tmp_path / f"agent-{a}", command="agent", log_path=tmp_path / f"agent-{a}.log",
                          args=["--collector", endpoints, "--include", f"{d}/*.log"]).start()
    providers = []
    for svc, a in (("front", "a"), ("back", "b")):
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{agents[a].http}/v1/traces")))
        providers.append(p)

    def scraping(n):
        t = collectors[n]
        return metric_value(t.metrics(t.http), 'triad_scrape_targets{job="soak"}')

    def evaluations(n):
        t = collectors[n]
        return sum(float(line.rsplit(" ", 1)[1]) for line in t.metrics(t.http).splitlines()
                   if line.startswith("triad_alerting_rule_group_evaluations_total{"))

    def received(n):
        t = collectors[n]
        return sum(float(line.rsplit(" ", 1)[1]) for line in t.metrics(t.http).splitlines()
                   if line.startswith("triad_collector_requests_total{") and 'outcome="ok"' in line)

    def blocks_complete(blocks, exact):
        for q in queries:
            for a in agents:
                for b in blocks:
                    total, missing = block_state(q, a, b)
                    if missing or (total != BLOCK if exact else total < BLOCK):
                        return False
        return True

    def traces_complete(ids):
        return all(trace_spans(q, t) == 3 for q in queries for t in ids)

    def heartbeat_firing(q):
        alerts = q.get("/api/v1/alerts")["data"]["alerts"]
        return [a["state"] for a in alerts if a["labels"]["alertname"] == "Heartbeat"] == ["firing"]

    def up_count(query):
        r = queries[0].get("/api/v1/query", query=query)
        return float(r["data"]["result"][0]["value"][1]) if r["data"]["result"] else 0.0

    try:
        # Steady: every line and span once, through both query servers.
        for a in agents:
            for b in range(3):
                write_block(logs[a] / "app.log", a, b)
        trace_ids = send_traces(providers, 10)
        wait_until("every line exactly once", lambda: blocks_complete(range(3), exact=True), timeout=60)
        wait_until("every trace whole", lambda: traces_complete(trace_ids), timeout=60)
        assert sum(received(n) > 0 for n in names[:3]) >= 2, "batches spread over the collectors"
        wait_until("the targets shared out", lambda: sum(scraping(n) for n in names[:3]) == targets, timeout=30)
        wait_until("every target up once", lambda: up_count('count(up{job="soak"} == 1)') == targets, timeout=30)
        wait_until("the heartbeat notified", lambda: len(hook.bodies(status="firing")) == 1, timeout=30)
        leaders = [n for n in names[:3] if evaluations(n) > 0]
        assert len(leaders) == 1, f"one evaluator: {leaders}"
        # Query servers show the evaluating collector's rules and alerts.
        wait_until("the alert on both query servers", lambda: all(heartbeat_firing(q) for q in queries), timeout=30)
        groups = queries[1].get("/api/v1/rules")["data"]["groups"]
        assert [(g["name"], g["rules"][0]["health"]) for g in groups] == [("beat", "ok")], groups
        victim = leaders[0]
        survivors = [n for n in names[:3] if n != victim]

        # Mid-stream, the evaluating collector dies.
        def writer(a):
            for b in range(3, 11):
                write_block(logs[a] / "app.log", a, b)
                time.sleep(0.3)

        writers = [threading.Thread(target=writer, args=(a,)) for a in agents]
        for w in writers:
            w.start()
        time.sleep(1)
        collectors[victim].kill9()
        killed = time.monotonic()
        trace_ids += send_traces(providers, 10)
        for w in writers:
            w.join()
        # Lines written after the kill reach the others within seconds.
        wait_until("the last lines through the others", lambda: blocks_complete([10], exact=False), timeout=60)
        print(f"agents' last block searchable {time.monotonic() - killed:.1f} s after the kill")
        wait_until("the survivors scrape every target", lambda: sum(scraping(n) for n in survivors) == targets,
                   timeout=30)
        moved = time.monotonic() - killed
        print(f"scrape targets moved {moved:.1f} s after the kill")
        assert moved < 8, "within a lease (3 s), a listing and a re-assignment (1 s each), and slack for a busy machine"
        base = {n: evaluations(n) for n in survivors}
        wait_until("another collector evaluates", lambda: any(evaluations(n) > base[n] for n in survivors),
                   timeout=30)
        wait_until("the new evaluator's alert on the query servers",
                   lambda: all(heartbeat_firing(q) for q in queries), timeout=30)
        time.sleep(3)
        assert len(hook.bodies(status="firing")) == 1, "the new evaluator does not notify again"

        # It restarts from its disk: nothing acknowledged is missing.
        collectors[victim].start()
        wait_until("every line, none missing", lambda: blocks_complete(range(11), exact=False), timeout=90)
        wait_until("every trace whole", lambda: traces_complete(trace_ids), timeout=60)
        duplicates = sum(block_state(queries[0], a, b)[0] - BLOCK for a in agents for b in range(11))
        print(f"{duplicates} duplicate lines of {2 * 11 * BLOCK} (at-least-once across the kill)")
        for q in queries:
            r = q.get("/api/logs/search", q="blk3", start="0", limit="1")
            assert r["partial"] is False, r
        # `up` of every target has no gap longer than a lease and its re-assignment.
        r = queries[0].get("/api/v1/query", query='up{job="soak"}[2m]')
        assert len(r["data"]["result"]) == targets
        for series in r["data"]["result"]:
            times = [float(t) for t, _ in series["values"]]
            gap = max(b - a for a, b in zip(times, times[1:]))
            assert gap <= 8, f"{series['metric']['instance']}: a gap of {gap:.1f} s in up"

        # A fourth collector joins: it takes its share, the others only give theirs up.
        wait_until("the targets shared out again", lambda: sum(scraping(n) for n in names[:3]) == targets
                   and scraping(victim) > 0, timeout=30)
        before = {n: scraping(n) for n in names[:3]}
        collectors["k4"] = start_collector("k4")
        wait_until("the fourth takes a share", lambda: scraping("k4") > 0
                   and sum(scraping(n) for n in names) == targets, timeout=30)
        assert all(scraping(n) <= before[n] for n in names[:3]), "only the newcomer's share moved"
        time.sleep(2)
        assert up_count('count(up{job="soak"})') == targets, "no series doubled"
        assert up_count('count(count_over_time(up{job="soak"}[1m]))') == targets
        assert len(hook.bodies(status="firing")) == 1 and not hook.bodies(status="resolved")
    finally:
        for p in providers:
            p.shutdown()
        hook.close()
        exporters.close()
        for t in [*agents.values(), *collectors.values(), *queries]:
            if t.proc is not None and t.proc.poll() is None:
                t.kill9()


def token_cli(*args):
    out = subprocess.run([str(BIN), "token", *map(str, args)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def test_tokens_kept_in_the_metastore_work_everywhere_without_a_restart(tmp_path, engines):
    """With a PostgreSQL metastore, `triad token add` keeps a token's hash there and
    every process accepts it within seconds; `triad token remove` makes every process
    refuse it. The configuration names no token at all."""
    from test_security import call

    weed, pg = engines
    query_cfg, cfgs = configs(tmp_path, weed, pg, "tokens", ("c1",))
    for path in (query_cfg, cfgs["c1"]):
        doc = yaml.safe_load(path.read_text())
        doc["auth"] = {"tokens": []}
        path.write_text(yaml.safe_dump(doc))

    def new(*args):
        out = token_cli("add", "--config", query_cfg, *args)
        return re.search(r"shown once; give it to the client\): (\S+)", out).group(1)

    ops = new("--tenant", "acme", "--role", "admin", "--name", "ops")
    # The query server reads the collectors for every tenant: a trusted token.
    (tmp_path / "query-token").write_text(new("--tenant", "acme", "--role", "read", "--name", "query-servers",
                                              "--trusted"))
    doc = yaml.safe_load(query_cfg.read_text())
    doc["client_token_file"] = str(tmp_path / "query-token")
    query_cfg.write_text(yaml.safe_dump(doc))
    c1 = Triad(tmp_path / "c1", config=cfgs["c1"], command="collector", log_path=tmp_path / "c1.log").start()
    q = Triad(tmp_path / "q", config=query_cfg, command="query", log_path=tmp_path / "q.log").start()
    try:
        body = logs_request("tokens-svc", ["kept by the metastore's token"]).SerializeToString()
        proto = {"Content-Type": "application/x-protobuf"}
        assert call(c1.http + "/v1/logs", None, "POST", body, proto)[0] == 401
        assert call(c1.http + "/v1/logs", ops, "POST", body, proto)[0] == 200

        def found(token):
            status, out = call(q.query + "/api/logs/search?q=metastore", token)
            return status, (json.loads(out)["total"] if status == 200 else None)

        wait_until("the line, read with the metastore's token", lambda: found(ops) == (200, 1))
        # Added while they run: accepted by both within seconds.
        reader = new("--tenant", "acme", "--role", "read", "--name", "dashboards")
        wait_until("the new token accepted", lambda: found(reader) == (200, 1), timeout=30)
        listed = token_cli("list", "--config", query_cfg)
        assert all(n in listed for n in ("ops", "query-servers", "dashboards")) and ops not in listed
        # Removed: refused everywhere within seconds.
        token_cli("remove", "--config", query_cfg, "ops")
        wait_until("the removed token refused by the query server", lambda: found(ops)[0] == 401, timeout=30)
        wait_until("the removed token refused by the collector",
                   lambda: call(c1.http + "/v1/logs", ops, "POST", body, proto)[0] == 401, timeout=30)
        assert found(reader) == (200, 1)
    finally:
        q.stop()
        c1.stop()
