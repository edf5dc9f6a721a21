"""Authentication, roles and tenants, end to end, against the real binary.

Tokens are made with `triad token new` and configured by their hashes. Two tenants send
through every receiver — OTLP/HTTP and OTLP/gRPC (the OpenTelemetry SDK), Zipkin, Loki
push — even a trace with the *same trace ID* in both. Then two walks are generated from
the route tables the servers publish (`/api/v1/status/routes`, the table the gate
enforces, so a new route cannot escape them):

- the auth walk: every route and method without a token (401), with a token of the wrong
  role (403) and of the right one (neither);
- the tenant walk: every read route of the query server and of the collector's internal
  API as tenant B, asking for tenant A's trace, service, logs and metrics by name — not
  one byte of A comes back — and the same walk as A as the control that it would.
"""

import base64
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import BIN, Triad, auth_yaml, gauge_request, logs_request, new_token, wait_until
from test_alerting import Webhook

A, B = "acme", "bravo"
# A tenant with tokens but without alerting.
C = "charlie"
MARK = {A: "zqalpha", B: "zqbravo"}
SHARED_TRACE = "5ec0de5ec0de5ec0de5ec0de5ec0de01"


def call(url, token=None, method="GET", body=None, headers=None, timeout=10, basic=None, status_only=False):
    """(status, body bytes); with `status_only` the body is not read (a stream)."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if basic:
        h["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
    req = urllib.request.Request(url, data=body, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, b"" if status_only else r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def read_stream(url, token, seconds):
    """(status, what a stream sends within `seconds`), with curl."""
    r = subprocess.run(["curl", "-s", "-N", "--max-time", str(seconds), "-w", "\n%{http_code}",
                        "-H", f"Authorization: Bearer {token}", url], capture_output=True, timeout=seconds + 10)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), body


def trace_request(service, mark, trace_hex, span_ids):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    ss = rs.scope_spans.add()
    now = time.time_ns()
    for i, sid in enumerate(span_ids):
        s = ss.spans.add()
        s.trace_id = bytes.fromhex(trace_hex)
        s.span_id = bytes.fromhex(sid)
        if i:
            s.parent_span_id = bytes.fromhex(span_ids[0])
        s.name = f"{mark}-op-{i}"
        s.kind = 2
        s.start_time_unix_nano = now - 5_000_000
        s.end_time_unix_nano = now
        a = s.attributes.add()
        a.key, a.value.string_value = "secret", mark
    return req


def send_tenant_data(t, tenant, token, grpc_token):
    """Everything a tenant sends, through every receiver, with its write token."""
    mark = MARK[tenant]
    svc = f"{mark}-svc"
    spans = [f"{mark[2:4].encode().hex()}{i:012x}" for i in range(1, 4)]
    proto = {"Content-Type": "application/x-protobuf"}
    # OTLP/HTTP: a trace (with the ID both tenants use), logs carrying it, a gauge.
    assert call(t.http + "/v1/traces", token, "POST", trace_request(svc, mark, SHARED_TRACE, spans)
                .SerializeToString(), proto)[0] == 200
    logs = logs_request(svc, [f"{mark} secret line one", f"{mark} secret line two"])
    for r in logs.resource_logs[0].scope_logs[0].log_records:
        r.trace_id = bytes.fromhex(SHARED_TRACE)
        r.span_id = bytes.fromhex(spans[0])
    assert call(t.http + "/v1/logs", token, "POST", logs.SerializeToString(), proto)[0] == 200
    gauge = gauge_request(f"{mark}_queue_depth", [({"secret": mark}, time.time_ns(), 7.0)], service=svc)
    assert call(t.http + "/v1/metrics", token, "POST", gauge.SerializeToString(), proto)[0] == 200
    # Zipkin.
    zipkin = [{"traceId": f"{mark[2:4].encode().hex()}{'0' * 28}", "id": "00000000000000a1",
               "name": f"{mark}-zipkin", "timestamp": int(time.time() * 1e6), "duration": 100,
               "localEndpoint": {"serviceName": f"{mark}-zipkin-svc"}}]
    assert call(t.zipkin + "/api/v2/spans", token, "POST", json.dumps(zipkin).encode(),
                {"Content-Type": "application/json"})[0] == 202
    # Loki push (JSON).
    push = {"streams": [{"stream": {"service_name": f"{mark}-loki"},
                         "values": [[str(time.time_ns()), f"{mark} loki line"]]}]}
    assert call(t.http + "/loki/api/v1/push", token, "POST", json.dumps(push).encode(),
                {"Content-Type": "application/json"})[0] == 204
    # OTLP/gRPC from the OpenTelemetry SDK, its token as a header.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"{mark}-grpc-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=t.grpc, insecure=True, headers=(("authorization", f"Bearer {grpc_token}"),))))
    with provider.get_tracer("e2e").start_as_current_span(f"{mark}-grpc-op"):
        pass
    provider.shutdown()
    return spans


def searchable(t, token, tenant):
    mark = MARK[tenant]
    _, body = call(t.query + "/api/logs/search?" + urllib.parse.urlencode({"q": mark}), token)
    if json.loads(body)["total"] < 2:
        return False
    _, body = call(t.query + "/api/services", token)
    services = json.loads(body)["data"] or []
    if not {f"{mark}-svc", f"{mark}-zipkin-svc", f"{mark}-grpc-svc"} <= set(services):
        return False
    _, body = call(t.query + "/api/v1/query?" + urllib.parse.urlencode({"query": f"{mark}_queue_depth"}), token)
    return bool(json.loads(body)["data"]["result"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("security")
    tokens, entries = {}, []
    for tenant in (A, B):
        for role in ("write", "read", "admin"):
            tok, entry = new_token(tenant, role, f"{tenant}-{role}")
            tokens[(tenant, role)] = tok
            entries.append(entry)
    gateway, entry = new_token("default", "read", "gateway", trusted=True)
    entries.append(entry)
    tokens["gateway"] = gateway
    tokens[(C, "admin")], entry = new_token(C, "admin", "charlie-admin")
    entries.append(entry)
    (d / "rules.yaml").write_text(
        "groups:\n- name: marker\n  interval: 1s\n  rules:\n"
        "  - alert: ZqalphaMarker\n    expr: vector(1)\n    labels: {marker: zqalpha}\n")
    # B's rule reads B's gauge: it fires only if B's rules are evaluated on B's metrics.
    (d / "rules-b.yaml").write_text(
        "groups:\n- name: marker\n  interval: 1s\n  rules:\n"
        "  - alert: ZqbravoDepth\n    expr: zqbravo_queue_depth > 0\n    labels: {marker: zqbravo}\n")
    hooks = {A: Webhook(), B: Webhook()}
    cfg = d / "triad.yaml"
    cfg.write_text(auth_yaml(entries) + f"""
alerting:
  tenant: {A}
  evaluation_interval_secs: 1
  rule_files: [rules.yaml]
  tenants:
    {B}:
      rule_files: [rules-b.yaml]
  receivers:
    - {{name: hook-a, url: "{hooks[A].url}"}}
    - {{name: hook-b, url: "{hooks[B].url}"}}
  route:
    receiver: hook-a
    group_wait_secs: 1
    group_interval_secs: 1
    routes:
      - {{receiver: hook-b, matchers: ['tenant="{B}"']}}
""")
    t = Triad(d / "data", config=cfg).start()
    spans = {}
    try:
        for tenant in (A, B):
            spans[tenant] = send_tenant_data(t, tenant, tokens[(tenant, "write")], tokens[(tenant, "write")])
        for tenant in (A, B):
            wait_until(f"{tenant}'s data searchable", lambda: searchable(t, tokens[(tenant, "read")], tenant),
                       timeout=60)
        admin_a = tokens[(A, "admin")]
        # A's alert fires, and A silences something.
        wait_until("A's alert", lambda: b"ZqalphaMarker" in call(t.query + "/api/v1/alerts", admin_a)[1])
        silence = {"matchers": [{"name": "marker", "value": "zqalpha-other", "isRegex": False}],
                   "endsAt": "2099-01-01T00:00:00Z", "createdBy": "zqalpha-admin", "comment": "zqalpha silence"}
        status, body = call(t.query + "/api/v2/silences", admin_a, "POST", json.dumps(silence).encode(),
                            {"Content-Type": "application/json"})
        assert status == 200, body
        silence_id = json.loads(body)["silenceID"]
        fp = json.loads(call(t.query + "/api/alerts", admin_a)[1])[0]["fingerprint"]
        yield {"t": t, "tokens": tokens, "spans": spans, "silence": silence_id, "fingerprint": fp,
               "hooks": hooks}
    finally:
        t.stop()
        for h in hooks.values():
            h.close()


def routes(base, admin):
    status, body = call(base + "/api/v1/status/routes", admin)
    assert status == 200, body
    return json.loads(body)["data"]


def concrete(path, s, tenant=A):
    """A route pattern with its parameters filled with tenant A's things."""
    values = {
        "id": SHARED_TRACE, "trace_id": SHARED_TRACE, "span": s["spans"][tenant][0],
        "service": f"{MARK[tenant]}-svc", "tag": "secret", "fingerprint": s["fingerprint"],
        "name": "service_name" if path.startswith("/loki/") else "__name__",
    }
    if path.startswith("/api/v2/silence/"):
        values["id"] = s["silence"]
    if path.startswith("/api/v2/search/tag/"):
        values["tag"] = "span.secret"
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def expected_for_wrong_role(access, s):
    """A token whose role is not enough for `access` (None: every role is)."""
    tk = s["tokens"]
    return {"read": tk[(A, "write")], "write": tk[(A, "read")], "admin": tk[(A, "read")]}.get(access)


def right_token(access, s):
    tk = s["tokens"]
    return {"read": tk[(A, "read")], "write": tk[(A, "write")], "admin": tk[(A, "admin")]}[access]


def servers(s):
    t = s["t"]
    return {"query": t.query, "collector": t.http, "zipkin": t.zipkin}


def test_every_route_asks_for_a_token_of_the_right_role(stack):
    s = stack
    walked = 0
    for server, base in servers(s).items():
        for r in routes(base, s["tokens"][(A, "admin")]):
            path, access = r["path"], r["access"]
            methods = ["GET", "POST", "DELETE"] if r["method"] == "*" else [r["method"]]
            if path.startswith("/api/v2/silence/"):
                url = base + path.replace("{id}", "00000000-0000-0000-0000-000000000000")
            else:
                url = base + concrete(path, s)
            served = False
            for m in methods:
                body = b"" if m == "POST" else None
                no_token, _ = call(url, None, m, body, timeout=5, status_only=True)
                if access == "open" or access == "metrics":
                    assert no_token not in (401, 403), f"{server} {m} {path}: {no_token}"
                    served |= no_token != 405
                    continue
                if no_token == 405:
                    continue
                assert no_token == 401, f"{server} {m} {path} without a token: {no_token}"
                wrong = expected_for_wrong_role(access, s)
                status, _ = call(url, wrong, m, body, timeout=5, status_only=True)
                assert status == 403, f"{server} {m} {path} with a token of the wrong role: {status}"
                status, text = call(url, right_token(access, s), m, body, timeout=5, status_only=True)
                assert status not in (401, 403), f"{server} {m} {path} with a {access} token: {status} {text[:200]}"
                served |= status != 405
                walked += 1
            assert served, f"{server} {path}: no method answered"
    assert walked > 60, walked


def params_for(path):
    """Query parameters that ask a route for everything it can give."""
    now = time.time()
    ns = lambda t: str(int(t * 1e9))
    if path.startswith("/loki/"):
        q = '{service_name=~".+"}'
        if path == "/loki/api/v1/query":
            q = 'sum by (service_name) (count_over_time({service_name=~".+"}[1h]))'
        return {"query": q, "match[]": '{service_name=~".+"}', "start": ns(now - 3600), "end": ns(now + 60),
                "limit": "1000", "step": "60"}
    if path.startswith("/api/v1/"):
        return {"query": '{__name__=~".+"}', "match[]": '{__name__=~".+"}', "start": str(now - 3600),
                "end": str(now + 60), "step": "15"}
    if path in ("/api/search",) or path.startswith("/api/search/") or path.startswith("/api/v2/search/"):
        return {"q": "{}", "start": str(int(now - 3600)), "end": str(int(now + 60)), "limit": "100"}
    if path == "/api/logs/context":
        return {"timestamp_ns": ns(now), "service": "zqalpha-svc", "before": "100", "after": "100"}
    if path == "/api/traces/{id}/find":
        return {"q": "zq"}
    return {"q": "zqalpha OR zqbravo", "service": "zqalpha-svc", "lookback": "1h", "limit": "100",
            "endTs": str(int(now * 1000) + 60_000)}


def leaked(body, mark, asked):
    """Whether `body` names `mark` beyond echoing what was asked."""
    text = body.decode(errors="replace").lower()
    for a in asked:
        text = text.replace(a.lower(), "")
    return mark in text


def walk_as(s, token, mark):
    """Every read route of the query server with A's names: which answers name `mark`."""
    t = s["t"]
    hits, answers = set(), 0
    for r in routes(t.query, s["tokens"][(A, "admin")]):
        if r["access"] not in ("read", "admin") or r["method"] not in ("*", "GET"):
            continue
        path = r["path"]
        p = params_for(path)
        url = t.query + concrete(path, s) + "?" + urllib.parse.urlencode(p)
        if path == "/api/logs/tail":
            status, body = read_stream(url, token, 2)
        else:
            status, body = call(url, token, "GET", timeout=10)
        assert status < 500, f"{path}: {status} {body[:300]}"
        answers += 1
        if leaked(body, mark, [url, *p.values(), concrete(path, s)]):
            hits.add(path)
    return hits, answers


def test_tenant_b_sees_nothing_of_tenant_a_on_any_route(stack):
    s = stack
    seen_by_b, answers = walk_as(s, s["tokens"][(B, "admin")], MARK[A])
    assert answers > 40
    assert not seen_by_b, f"tenant {B} sees tenant {A}'s data on {sorted(seen_by_b)}"
    # The control: the same walk as A finds A everywhere it should.
    seen_by_a, _ = walk_as(s, s["tokens"][(A, "admin")], MARK[A])
    must = {"/api/services", "/api/traces", "/api/traces/{id}", "/api/traces/{id}/rows", "/api/logs/search",
            "/api/correlate/{trace_id}", "/api/v2/traces/{id}", "/api/search", "/api/v1/query",
            "/api/v1/series", "/api/v1/label/{name}/values", "/api/v1/alerts", "/api/v1/rules",
            "/api/v2/silences", "/api/v2/silence/{id}", "/api/alerts", "/loki/api/v1/query_range",
            "/loki/api/v1/label/{name}/values", "/loki/api/v1/series", "/api/search/tag/{tag}/values"}
    assert must <= seen_by_a, f"the walk as {A} misses {sorted(must - seen_by_a)}: it could not catch a leak there"


def test_same_trace_id_in_two_tenants_is_two_traces(stack):
    s, t = stack, stack["t"]
    for tenant in (A, B):
        _, body = call(f"{t.query}/api/traces/{SHARED_TRACE}", s["tokens"][(tenant, "read")])
        names = {sp["operationName"] for sp in json.loads(body)["data"][0]["spans"]}
        assert names == {f"{MARK[tenant]}-op-{i}" for i in range(3)}, names
        # The trace page's rows (its cache is per tenant too).
        _, rows = call(f"{t.query}/api/traces/{SHARED_TRACE}/rows", s["tokens"][(tenant, "read")])
        assert MARK[tenant].encode() in rows and MARK[A if tenant == B else B].encode() not in rows


def test_collector_internal_api_answers_for_the_callers_tenant(stack):
    """A query server's calls: the tenant in the body is overridden by the token's, and
    only a trusted token chooses one with X-Scope-OrgID."""
    s, t = stack, stack["t"]
    tk = s["tokens"]
    listed = {"exclude": [], "published_through": {}}
    bodies = {
        "/internal/v1/logs/search": {"request": {"tenant": A, "query": "", "start_ns": 0, "end_ns": 2 ** 62,
                                                 "limit": 100, "histogram_buckets": 0, "oldest_first": False},
                                     **listed},
        "/internal/v1/logs/tail": {"tenant": A, "query": "", "cursor": 0, "limit": 100},
        "/internal/v1/logs/values": {"tenant": A, "field": "service", "start_ns": 0, "end_ns": 2 ** 62,
                                     "limit": 100},
        "/internal/v1/traces": {"request": {"Services": {"tenant": A}}, **listed},
    }
    for path, body in bodies.items():
        data = json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        as_b = call(t.http + path, tk[(B, "read")], "POST", data, h)
        as_a = call(t.http + path, tk[(A, "read")], "POST", data, h)
        assert as_b[0] == 200 and as_a[0] == 200, (path, as_b, as_a)
        assert b"zqalpha" not in as_b[1] and b"zqalpha" in as_a[1], path
        # X-Scope-OrgID: refused for B's own token, honoured for the trusted gateway's.
        assert call(t.http + path, tk[(B, "read")], "POST", data, {**h, "X-Scope-OrgID": A})[0] == 403
        gw = call(t.http + path, tk["gateway"], "POST", data, {**h, "X-Scope-OrgID": A})
        assert gw[0] == 200 and b"zqalpha" in gw[1], path
    _, snap = call(t.http + "/internal/v1/alerting", tk[(B, "read")])
    assert b"Zqalpha" not in snap
    wait_until("B's rule group in B's snapshot",
               lambda: b"ZqbravoDepth" in call(t.http + "/internal/v1/alerting", tk[(B, "read")])[1])
    assert b"Zqalpha" in call(t.http + "/internal/v1/alerting", tk[(A, "read")])[1]


def test_alerting_belongs_to_its_tenant(stack):
    s, t = stack, stack["t"]
    tk = s["tokens"]
    sid = s["silence"]
    # B cannot see or expire A's silence; A's silence survives B's attempt.
    assert call(f"{t.query}/api/v2/silence/{sid}", tk[(B, "admin")], "DELETE")[0] == 404
    assert call(f"{t.query}/api/v2/silence/{sid}", tk[(B, "read")])[0] == 404
    _, body = call(f"{t.query}/api/v2/silence/{sid}", tk[(A, "read")])
    assert json.loads(body)["status"]["state"] == "active"
    # A tenant without alerting cannot add silences, and is told how to get alerting.
    status, body = call(t.query + "/api/v2/silences", tk[(C, "admin")], "POST",
                        json.dumps({"matchers": [{"name": "a", "value": "b", "isRegex": False}],
                                    "endsAt": "2099-01-01T00:00:00Z"}).encode(),
                        {"Content-Type": "application/json"})
    assert status == 403 and b"alerting.tenants" in body and A.encode() not in body and B.encode() not in body, body
    assert json.loads(call(t.query + "/api/v1/rules", tk[(C, "admin")])[1])["data"]["groups"] == []


def alert_names(t, token):
    return {a["labels"]["alertname"]: a for a in json.loads(call(t.query + "/api/alerts", token)[1])}


def test_each_tenant_has_its_own_rules_alerts_silences_and_notifications(stack):
    """alerting.tenants: B's rules run on B's metrics, B sees B's alerts only (with the
    tenant label), B's notifications route by that label, B's silences mute B's alerts
    and not A's, and alerts B posts to the Alertmanager API are B's."""
    s, t = stack, stack["t"]
    tk = s["tokens"]
    hooks = s["hooks"]
    wait_until("B's alert fires", lambda: "ZqbravoDepth" in alert_names(t, tk[(B, "read")]))
    b_alerts = alert_names(t, tk[(B, "read")])
    assert set(b_alerts) == {"ZqbravoDepth"}, b_alerts
    assert b_alerts["ZqbravoDepth"]["labels"]["tenant"] == B
    assert set(alert_names(t, tk[(A, "read")])) == {"ZqalphaMarker"}
    rules_b = json.loads(call(t.query + "/api/v1/rules", tk[(B, "read")])[1])["data"]["groups"]
    assert [r["name"] for g in rules_b for r in g["rules"]] == ["ZqbravoDepth"]

    # Notifications: B's alerts go to B's hook through the route on `tenant`, A's to A's.
    def notified(tenant, name):
        return any(a["labels"]["alertname"] == name for b in hooks[tenant].bodies() for a in b["alerts"])
    wait_until("both tenants notified", lambda: notified(A, "ZqalphaMarker") and notified(B, "ZqbravoDepth"))
    a_posts = json.dumps(hooks[A].bodies())
    b_posts = json.dumps(hooks[B].bodies())
    assert MARK[B] not in a_posts and MARK[A] not in b_posts
    assert all(a["labels"]["tenant"] == B for b in hooks[B].bodies() for a in b["alerts"])

    # B's silence mutes B's alert only; A does not see it.
    silence = {"matchers": [{"name": "alertname", "value": "Zq.*", "isRegex": True}],
               "endsAt": "2099-01-01T00:00:00Z", "createdBy": "bravo-admin", "comment": "bravo"}
    status, body = call(t.query + "/api/v2/silences", tk[(B, "admin")], "POST", json.dumps(silence).encode(),
                        {"Content-Type": "application/json"})
    assert status == 200, body
    b_sid = json.loads(body)["silenceID"]
    assert alert_names(t, tk[(B, "read")])["ZqbravoDepth"]["silencedBy"] == [b_sid]
    assert alert_names(t, tk[(A, "read")])["ZqalphaMarker"]["silencedBy"] == []
    assert b_sid not in call(t.query + "/api/v2/silences", tk[(A, "read")])[1].decode()
    assert call(f"{t.query}/api/v2/silence/{b_sid}", tk[(A, "admin")], "DELETE")[0] == 404
    assert call(f"{t.query}/api/v2/silence/{b_sid}", tk[(B, "admin")], "DELETE")[0] == 200

    # Alerts B posts (as its Prometheus would) are B's, with B's tenant label.
    posted = [{"labels": {"alertname": "ZqbravoPosted"}}]
    status, body = call(t.query + "/api/v2/alerts", tk[(B, "admin")], "POST", json.dumps(posted).encode(),
                        {"Content-Type": "application/json"})
    assert status == 200, body
    mine = json.loads(call(t.query + "/api/v2/alerts", tk[(B, "read")])[1])
    assert {"alertname": "ZqbravoPosted", "tenant": B} in [a["labels"] for a in mine]
    theirs = json.loads(call(t.query + "/api/v2/alerts", tk[(A, "read")])[1])
    assert not [a for a in theirs if "zqbravo" in json.dumps(a).lower()], theirs


def test_basic_auth_and_the_ui_session(stack):
    s, t = stack, stack["t"]
    tk = s["tokens"]
    q = t.query + "/api/v1/query?query=" + urllib.parse.quote("zqalpha_queue_depth")
    # Grafana's and Prometheus clients' Basic auth: user = tenant, password = token.
    status, body = call(q, basic=(A, tk[(A, "read")]))
    assert status == 200 and b"zqalpha" in body
    assert call(q, basic=(B, tk[(A, "read")]))[0] == 403
    assert call(q, basic=(A, "not-a-token"))[0] == 401
    # The UI: sign in sets an HttpOnly cookie that carries the requests; sign out clears it.
    status, _ = call(t.query + "/api/session", None, "POST", json.dumps({"token": "wrong"}).encode())
    assert status == 401
    req = urllib.request.Request(t.query + "/api/session", method="POST",
                                 data=json.dumps({"token": tk[(A, "read")]}).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        who = json.loads(r.read())
        cookie = r.headers["Set-Cookie"]
    assert who["tenant"] == A and who["role"] == "read" and who["auth"] is True
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": cookie.split(";")[0]}
    status, body = call(t.query + "/api/logs/search?q=zqalpha", headers=jar)
    assert status == 200 and json.loads(body)["total"] >= 2
    assert json.loads(call(t.query + "/api/session", headers=jar)[1])["tenant"] == A
    req = urllib.request.Request(t.query + "/api/session", method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert "Max-Age=0" in r.headers["Set-Cookie"]
    # The token never reaches the log.
    log = t.log_path.read_text(errors="replace")
    assert all(tok not in log for tok in tk.values())
    # Refusals are counted.
    metrics = call(t.query + "/metrics")[1].decode()
    assert re.search(r'triad_auth_refused_requests_total\{reason="forbidden"\} [1-9]', metrics), metrics[:2000]


def test_grpc_without_a_token_is_unauthenticated(stack):
    t = stack["t"]
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(t.grpc))
    with pytest.raises(grpc.RpcError) as e:
        stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=10,
                    metadata=(("authorization", f"Bearer {stack['tokens'][(A, 'read')]}"),))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_agent_forwards_with_its_token_into_its_tenant(stack, tmp_path):
    s, t = stack, stack["t"]
    token_file = tmp_path / "token"
    token_file.write_text(s["tokens"][(B, "write")] + "\n")
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"client_token_file: {token_file}\n")
    agent = Triad(tmp_path / "agent-data", config=cfg, command="agent",
                  args=["--collector", f"http://{t.grpc}"]).start()
    try:
        from conftest import post_protobuf
        post_protobuf(agent.http + "/v1/logs", logs_request("zqbravo-agent-svc", ["zqbravo via the agent"]))
        wait_until("the agent's line in tenant B", lambda: json.loads(call(
            t.query + "/api/logs/search?q=agent", s["tokens"][(B, "read")])[1])["total"] >= 1)
        assert json.loads(call(t.query + "/api/logs/search?q=agent", s["tokens"][(A, "read")])[1])["total"] == 0
    finally:
        agent.stop()


def test_without_auth_triad_holds_to_loopback(tmp_path):
    # Asked for every interface, it listens on loopback and says so.
    t = Triad(tmp_path / "open", args=["--query-listen", "0.0.0.0:0"])
    t.start()
    try:
        assert t.query.startswith("http://127.0.0.1:")
    finally:
        t.stop()
    out = (tmp_path / "triad-up.log").read_text()
    # A specific address other machines reach is refused, naming the key and the fix.
    r = subprocess.run([str(BIN), "up", "--data-dir", str(tmp_path / "refused"), "--query-listen",
                        "192.0.2.7:7070"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "query.listen" in r.stderr and "auth: none" in r.stderr, r.stderr
    # `auth: none` opens it.
    cfg = tmp_path / "none.yaml"
    cfg.write_text("auth: none\n")
    t = Triad(tmp_path / "none", config=cfg, args=["--query-listen", "0.0.0.0:0"]).start()
    try:
        assert t.query.startswith("http://0.0.0.0:")
        port = t.query.rsplit(":", 1)[1]
        status, _ = call(f"http://127.0.0.1:{port}/api/services")
        assert status == 200
    finally:
        t.stop()
    del out


def test_loopback_notice_is_one_clear_line(tmp_path):
    r = subprocess.Popen([str(BIN), "up", "--data-dir", str(tmp_path / "d"), "--otlp-grpc-listen", "127.0.0.1:0",
                          "--otlp-http-listen", "127.0.0.1:0", "--query-listen", "0.0.0.0:0",
                          "--zipkin-listen", ""], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        for line in r.stdout:
            lines.append(line)
            if line.startswith("ready:"):
                break
        notice = [line for line in lines if "no auth configured" in line]
        assert len(notice) == 1 and "loopback" in notice[0] and "auth: none" in notice[0], lines
    finally:
        r.terminate()
        r.wait(timeout=30)


def test_the_ui_asks_for_a_token_and_signs_out(stack):
    """Headless Chromium: the sign-in form, a refused token, the tenant's pages (live
    tail included, an EventSource carried by the cookie), signing out."""
    import shutil

    from playwright.sync_api import expect, sync_playwright

    t, tk = stack["t"], stack["tokens"]
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = b.new_context().new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(t.query + "/services")
            form = page.get_by_role("form", name="Sign in")
            expect(form).to_be_visible()
            page.get_by_label("Token").fill("not-a-token")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_contain_text("unknown token")
            page.get_by_label("Token").fill(tk[(B, "read")])
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text(f"{B} · read")).to_be_visible()
            expect(page.get_by_text("zqbravo-svc").first).to_be_visible()
            assert page.get_by_text("zqalpha-svc").count() == 0
            # The cookie is HttpOnly: the page's script cannot read the token.
            assert tk[(B, "read")] not in page.evaluate("document.cookie")
            page.goto(t.query + "/logs?q=zqbravo OR zqalpha")
            expect(page.get_by_text("zqbravo secret line one").first).to_be_visible()
            assert page.get_by_text("zqalpha secret line one").count() == 0
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("form", name="Sign in")).to_be_visible()
            page.reload()
            expect(page.get_by_role("form", name="Sign in")).to_be_visible()
            assert not errors, errors
        finally:
            b.close()
