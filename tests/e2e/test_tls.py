"""TLS end to end: a CA, server and client certificates made with `openssl`; `triad up`
serving TLS only with mutual TLS; real clients over it — Python's `ssl`, the
OpenTelemetry SDK's gRPC exporter, the agent forwarding to an `https://` collector with
its client certificate, a query server reading metrics over `https://` remote read —
and a certificate rotated on disk while a client stays connected.
"""

import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.parse

import pytest
from conftest import Triad, auth_yaml, logs_request, new_token, wait_until


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """ca.pem; server.pem/server.key (CN server-1, for 127.0.0.1 and localhost),
    server2.pem/server2.key (CN server-2, the rotated one), client.pem/client.key, and
    rogue.pem/rogue.key signed by another CA."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=triad-test-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=rogue-ca", "-keyout", "rogue-ca.key", "-out", "rogue-ca.pem", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in [("server", "ca", "server.ext"), ("server2", "ca", "server.ext"),
                          ("client", "ca", "client.ext"), ("rogue", "rogue-ca", "client.ext")]:
        cn = {"server": "server-1", "server2": "server-2"}.get(name, name)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.pem", cwd=d)


def client_ctx(d, cert="client"):
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(d / f"{cert}.pem"), str(d / f"{cert}.key"))
    return ctx


def peer_cn(sock):
    return dict(x[0] for x in sock.getpeercert()["subject"])["commonName"]


def get(addr, path, ctx, token, conn=None):
    """(status, body, connection) over HTTPS, reusing `conn` when given."""
    host, port = addr.rsplit(":", 1)
    conn = conn or http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    r = conn.getresponse()
    return r.status, r.read(), conn


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_pki(d)
    # The files the server reads; rotation replaces them.
    for src, dst in [("server.pem", "live.pem"), ("server.key", "live.key")]:
        (d / dst).write_bytes((d / src).read_bytes())
    return d


@pytest.fixture(scope="module")
def stack(pki, tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    tokens, entries = {}, []
    for name, role, trusted in [("admin", "admin", False), ("agent", "write", False), ("reader", "read", True)]:
        tokens[name], entry = new_token("default", role, name, trusted)
        entries.append(entry)
    cfg = d / "triad.yaml"
    cfg.write_text(auth_yaml(entries) +
                   f"tls:\n  cert_file: {pki / 'live.pem'}\n  key_file: {pki / 'live.key'}\n"
                   f"  client_ca_file: {pki / 'ca.pem'}\n  reload_interval_secs: 1\n")
    t = Triad(d / "data", config=cfg).start()
    try:
        yield {"t": t, "tokens": tokens, "dir": d}
    finally:
        t.stop()


def hostport(url):
    return url.split("://", 1)[1]


def test_servers_speak_tls_only_and_ask_for_a_client_certificate(stack, pki):
    t, tk = stack["t"], stack["tokens"]
    q = hostport(t.query)
    status, body, conn = get(q, "/api/services", client_ctx(pki), tk["admin"])
    assert status == 200, body
    assert peer_cn(conn.sock) == "server-1"
    conn.close()
    # No client certificate, or one from another CA: the handshake is refused.
    for ctx in (client_ctx(pki, cert=None), client_ctx(pki, cert="rogue")):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            get(q, "/api/services", ctx, tk["admin"])
    # Plain HTTP to a TLS port gets no answer.
    host, port = q.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not s.recv(100).startswith(b"HTTP/1.1 200")
    # Every server of the process: the OTLP/HTTP one too.
    status, _, _ = get(hostport(t.http), "/healthz", client_ctx(pki), tk["admin"])
    assert status == 200
    status, body, _ = get(q, "/metrics", client_ctx(pki), tk["admin"])
    assert b"triad_tls_handshake_failures_total" in body


def test_opentelemetry_sdk_exports_over_grpc_with_mutual_tls(stack, pki):
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    t, tk = stack["t"], stack["tokens"]
    creds = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes(),
                                         private_key=(pki / "client.key").read_bytes(),
                                         certificate_chain=(pki / "client.pem").read_bytes())
    provider = TracerProvider(resource=Resource.create({"service.name": "tls-grpc-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"https://{t.grpc}", credentials=creds, headers=(("authorization", f"Bearer {tk['agent']}"),))))
    with provider.get_tracer("e2e").start_as_current_span("over-tls"):
        pass
    provider.shutdown()
    q = hostport(t.query)
    wait_until("the span", lambda: b"tls-grpc-svc" in get(q, "/api/services", client_ctx(pki), tk["admin"])[1])


def test_agent_forwards_to_an_https_collector_with_its_client_certificate(stack, pki, tmp_path):
    t, tk = stack["t"], stack["tokens"]
    (tmp_path / "token").write_text(tk["agent"])
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"client_token_file: {tmp_path / 'token'}\n"
                   f"tls:\n  ca_file: {pki / 'ca.pem'}\n  client_cert_file: {pki / 'client.pem'}\n"
                   f"  client_key_file: {pki / 'client.key'}\n")
    agent = Triad(tmp_path / "agent", config=cfg, command="agent", args=["--collector", f"https://{t.grpc}"]).start()
    try:
        from conftest import post_protobuf
        post_protobuf(agent.http + "/v1/logs", logs_request("tls-agent-svc", ["forwarded over mutual TLS"]))
        q = hostport(t.query)

        def found():
            _, body, _ = get(q, "/api/logs/search?q=forwarded", client_ctx(pki), tk["admin"])
            return json.loads(body)["total"] >= 1

        wait_until("the agent's line", found)
    finally:
        agent.stop()


def handshake_failures(t, pki, token):
    _, body, _ = get(hostport(t.query), "/metrics", client_ctx(pki), token)
    line = [l for l in body.decode().splitlines() if l.startswith("triad_tls_handshake_failures_total")]
    return float(line[0].split()[-1]) if line else 0.0


@pytest.mark.parametrize("renewed", ["client certificate", "CA"])
def test_the_agent_takes_renewed_tls_files_without_a_restart(stack, pki, tmp_path, renewed):
    """The agent starts with a client certificate the collector does not trust (another
    CA: an expired or revoked one is the same to the agent), or with a CA that did not
    sign the collector's certificate; its handshakes fail and it keeps the lines. The
    file is then replaced as a renewal does, and the agent uses the new one on its next
    connection: the lines arrive, without a restart."""
    t, tk = stack["t"], stack["tokens"]
    start, final = {"client certificate": ({"agent-client": "rogue", "agent-ca": "ca"}, {"agent-client": "client"}),
                    "CA": ({"agent-client": "client", "agent-ca": "rogue-ca"}, {"agent-ca": "ca"})}[renewed]
    for dst, src in start.items():
        (tmp_path / f"{dst}.pem").write_bytes((pki / f"{src}.pem").read_bytes())
        if dst == "agent-client":
            (tmp_path / f"{dst}.key").write_bytes((pki / f"{src}.key").read_bytes())
    (tmp_path / "token").write_text(tk["agent"])
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"client_token_file: {tmp_path / 'token'}\n"
                   f"tls:\n  ca_file: {tmp_path / 'agent-ca.pem'}\n"
                   f"  client_cert_file: {tmp_path / 'agent-client.pem'}\n"
                   f"  client_key_file: {tmp_path / 'agent-client.key'}\n  reload_interval_secs: 1\n")
    before = handshake_failures(t, pki, tk["admin"])
    agent = Triad(tmp_path / "agent", config=cfg, command="agent", args=["--collector", f"https://{t.grpc}"]).start()
    mark = "renewedca" if renewed == "CA" else "renewedcert"
    try:
        from conftest import post_protobuf
        post_protobuf(agent.http + "/v1/logs", logs_request("tls-renewal-svc", [f"{mark} sent before the renewal"]))
        q = hostport(t.query)

        def found():
            _, body, _ = get(q, f"/api/logs/search?q={mark}", client_ctx(pki), tk["admin"])
            return json.loads(body)["total"]

        wait_until("the agent's first handshakes failing",
                   lambda: handshake_failures(t, pki, tk["admin"]) > before)
        assert found() == 0
        # Renewed as cert-manager or certbot do: new files written aside, then renamed over.
        for dst, src in final.items():
            exts = ["key", "pem"] if dst == "agent-client" else ["pem"]
            for ext in exts:
                (tmp_path / f"{dst}.{ext}.new").write_bytes((pki / f"{src}.{ext}").read_bytes())
                os.replace(tmp_path / f"{dst}.{ext}.new", tmp_path / f"{dst}.{ext}")
        wait_until("the line, over the renewed file", lambda: found() == 1, timeout=90)
    finally:
        agent.stop()


def post(addr, path, body, ctx, token):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}",
                                                   "Content-Type": "application/x-protobuf"})
    r = conn.getresponse()
    return r.status, r.read()


def test_query_server_reads_metrics_over_https_remote_read(stack, pki, tmp_path):
    from conftest import gauge_request

    t, tk = stack["t"], stack["tokens"]
    gauge = gauge_request("tls_queue_depth", [({}, time.time_ns(), 3.0)])
    assert post(hostport(t.http), "/v1/metrics", gauge.SerializeToString(), client_ctx(pki), tk["agent"])[0] == 200
    (tmp_path / "token").write_text(tk["reader"])
    cfg = tmp_path / "query.yaml"
    cfg.write_text(f"client_token_file: {tmp_path / 'token'}\n"
                   f"tls:\n  ca_file: {pki / 'ca.pem'}\n  client_cert_file: {pki / 'client.pem'}\n"
                   f"  client_key_file: {pki / 'client.key'}\n")
    q = Triad(stack["dir"] / "data", config=cfg, command="query", log_path=tmp_path / "query.log",
              args=["--remote-read-url", f"https://{hostport(t.http)}/api/v1/read"]).start()
    try:
        import urllib.request
        url = q.query + "/api/v1/query?" + urllib.parse.urlencode({"query": "tls_queue_depth"})

        def answered():
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())["data"]["result"]

        wait_until("metrics through https remote read", answered, timeout=60)
    finally:
        q.stop()


def test_a_rotated_certificate_is_served_to_new_connections_while_old_ones_keep_working(stack, pki):
    t, tk = stack["t"], stack["tokens"]
    q = hostport(t.query)
    status, _, old = get(q, "/api/services", client_ctx(pki), tk["admin"])
    assert status == 200 and peer_cn(old.sock) == "server-1"
    # Rotated as cert-manager or certbot do: new files written aside, then renamed over.
    for src, dst in [("server2.key", "live.key"), ("server2.pem", "live.pem")]:
        (pki / (dst + ".new")).write_bytes((pki / src).read_bytes())
        os.replace(pki / (dst + ".new"), pki / dst)

    def rotated():
        _, _, c = get(q, "/healthz", client_ctx(pki), tk["admin"])
        cn = peer_cn(c.sock)
        c.close()
        return cn == "server-2"

    wait_until("new connections get the new certificate", rotated, timeout=20)
    # The connection opened before still works, on its certificate.
    status, _, same = get(q, "/api/services", None, tk["admin"], conn=old)
    assert status == 200 and same is old and peer_cn(old.sock) == "server-1"
    old.close()
    # A broken file (half-written) keeps the current certificate.
    (pki / "live.pem").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n")
    time.sleep(2.5)
    _, _, c = get(q, "/healthz", client_ctx(pki), tk["admin"])
    assert peer_cn(c.sock) == "server-2"
    c.close()
    status, body, _ = get(q, "/metrics", client_ctx(pki), tk["admin"])
    assert b'triad_tls_reloads_total{outcome="ok"} 1' in body, body.decode()[-3000:]
    assert b'triad_tls_reloads_total{outcome="error"}' in body
