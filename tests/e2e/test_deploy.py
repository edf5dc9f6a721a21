"""deploy/ is checked, not just shipped: Kubernetes manifests against Kubernetes' JSON
schemas (kubernetes-validate), the compose file against the Compose specification's
schema, the configs they carry through `triad check-config`, and every triad command
line in compose, Kubernetes and systemd units against the binary's own flags."""

import configparser
import json
import re
import shlex
import subprocess
from importlib import resources

import pytest
import yaml

from conftest import BIN, ROOT

DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"


def help_of(sub):
    return subprocess.run([str(BIN), sub, "--help"], capture_output=True, text=True, check=True).stdout


def check_command(args):
    """`args` (after `triad`) name a real subcommand and only flags it has."""
    assert args and args[0] in {"up", "agent", "collector", "query", "demo", "check-config"}, args
    text = help_of(args[0])
    for a in args[1:]:
        if a.startswith("--"):
            assert a.split("=")[0] in text, f"triad {args[0]} has no flag {a}"


def check_config_text(tmp_path, name, text, extra_files=()):
    d = tmp_path / name.replace(".", "_")
    d.mkdir()
    for fname, content in extra_files:
        (d / fname).parent.mkdir(parents=True, exist_ok=True)
        (d / fname).write_text(content)
    (d / name).write_text(text)
    out = subprocess.run([str(BIN), "check-config", str(d / name)], capture_output=True, text=True)
    assert out.returncode == 0, f"{name}: {out.stderr}"


def test_kubernetes_manifests_are_valid(tmp_path):
    import kubernetes_validate

    docs = [d for f in sorted((DEPLOY / "kubernetes").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"DaemonSet", "StatefulSet", "Deployment", "Service", "ConfigMap", "ServiceAccount", "PersistentVolumeClaim"} <= kinds
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    # The agent reads node logs through hostPath and is reachable on the node's ports.
    ds = by_name[("DaemonSet", "triad-agent")]["spec"]["template"]["spec"]
    paths = {v["hostPath"]["path"] for v in ds["volumes"] if "hostPath" in v}
    assert {"/var/log/containers", "/var/log/pods"} <= paths
    # The configs in the ConfigMaps pass check-config, with the files they name.
    collector = by_name[("ConfigMap", "triad-collector")]["data"]
    rules = by_name[("ConfigMap", "triad-rules")]["data"]
    check_config_text(tmp_path, "triad.yaml", collector["triad.yaml"],
                      [("prometheus.yml", collector["prometheus.yml"])] + [(f"rules/{k}", v) for k, v in rules.items()])
    check_config_text(tmp_path, "query.yaml", collector["query.yaml"])
    check_config_text(tmp_path, "agent.yaml", by_name[("ConfigMap", "triad-agent")]["data"]["agent.yaml"])
    for d in docs:
        if d["kind"] in ("DaemonSet", "StatefulSet", "Deployment"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                check_command(c["args"])


def compose_schema():
    return json.loads(resources.files("compose").joinpath("config/compose_spec.json").read_text())


def test_compose_file_matches_the_compose_specification():
    import jsonschema

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    jsonschema.validate(compose, compose_schema())
    services = compose["services"]
    assert {"agent", "collector", "query", "demo", "grafana"} <= set(services)
    for name, s in services.items():
        if s.get("image", "").startswith("triad") or "build" in s:
            check_command(s["command"])
            for a in s["command"]:
                if a.startswith("/etc/triad/"):
                    assert (DEPLOY / "config" / a.removeprefix("/etc/triad/")).exists(), a
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/triad.yaml").read_text())["datasources"]
    assert {d["type"] for d in ds} == {"prometheus", "loki", "jaeger", "tempo", "alertmanager"}
    uids = {d["uid"] for d in ds}
    assert len(uids) == len(ds)

    def links(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "datasourceUid":
                    yield v
                else:
                    yield from links(v)
        elif isinstance(node, list):
            for v in node:
                yield from links(v)

    assert set(links(ds)) <= uids, "every link between data sources names a provisioned one"
    for d in ds:
        assert d["url"].startswith("http://") and d["access"] == "proxy", d


def test_systemd_units_run_real_commands_with_checked_configs():
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.stem for u in units} == {"triad-agent", "triad-collector", "triad-query"}
    for u in units:
        p = configparser.ConfigParser(strict=False, interpolation=None)
        p.read_string(u.read_text())
        for key in ("ExecStart", "ExecStartPre"):
            args = shlex.split(p["Service"][key])
            assert args[0] == "/usr/local/bin/triad"
            check_command(args[1:])
            for a in args:
                if a.startswith("/etc/triad/"):
                    f = DEPLOY / "config" / a.removeprefix("/etc/triad/")
                    assert f.exists(), a
                    out = subprocess.run([str(BIN), "check-config", str(f)], capture_output=True, text=True)
                    assert out.returncode == 0, out.stderr
        assert p["Install"]["WantedBy"] == "multi-user.target"


def test_dockerfile_builds_one_image_for_every_subcommand():
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    stages = [m.group(1) for l in lines if (m := re.match(r"FROM \S+ AS (\w+)", l))]
    assert stages == ["node", "build"], stages
    for l in lines:
        if (m := re.match(r"COPY --from=(\w+)", l)):
            assert m.group(1) in stages
        elif (m := re.match(r"COPY (\S+) ", l)) and m.group(1) != ".":
            assert (ROOT / m.group(1)).exists(), l
    assert any("cargo build --release --locked" in l for l in lines)
    assert 'ENTRYPOINT ["triad"]' in lines
    check_command(json.loads(lines[-1].removeprefix("CMD ")))


def test_object_storage_variants_are_valid(tmp_path):
    """Compose and Kubernetes with object storage and PostgreSQL: valid against their
    schemas, the configs they carry pass check-config and name an s3:// bucket and a
    postgres:// metastore, query servers are stateless and two."""
    import jsonschema
    import kubernetes_validate

    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes/object-storage/triad.yaml").read_text()) if d]
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert by_name[("Deployment", "triad-query")]["spec"]["replicas"] == 2
    assert by_name[("Service", "triad-collector")]["spec"]["clusterIP"] == "None"
    sts = by_name[("StatefulSet", "triad-collector")]["spec"]
    assert sts["replicas"] == 3 and sts["serviceName"] == "triad-collector"
    assert sts["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    args = sts["template"]["spec"]["containers"][0]["args"]
    assert "http://$(POD_NAME).triad-collector.triad:4318" in args, "each pod advertises its own name"
    query_volumes = by_name[("Deployment", "triad-query")]["spec"]["template"]["spec"]["volumes"]
    assert not any("persistentVolumeClaim" in v for v in query_volumes), "query servers keep no data"
    for name, text in by_name[("ConfigMap", "triad-object-storage")]["data"].items():
        check_config_text(tmp_path, name, text)
        cfg = yaml.safe_load(text)
        assert cfg["storage"]["url"].startswith("s3://") and cfg["metastore"]["url"].startswith("postgres://")
    for d in docs:
        if d["kind"] in ("StatefulSet", "Deployment"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                check_command(c["args"])
                assert c["envFrom"] == [{"secretRef": {"name": "triad-storage"}}]
    query_cfg = yaml.safe_load(by_name[("ConfigMap", "triad-object-storage")]["data"]["query.yaml"])
    assert "collector_url" not in query_cfg["query"], "query servers find collectors by their leases"

    compose = yaml.safe_load((DEPLOY / "docker-compose.object-storage.yml").read_text())
    jsonschema.validate(compose, compose_schema())
    services = compose["services"]
    assert {"seaweedfs", "postgres", "collector-1", "collector-2", "query"} <= set(services)
    assert services["collector-1"]["hostname"] != services["collector-2"]["hostname"], "distinct node IDs"
    assert services["query"]["deploy"]["replicas"] == 2
    for s in services.values():
        if s.get("image", "").startswith("triad"):
            check_command(s["command"])
            for a in s["command"]:
                if a.startswith("/etc/triad/"):
                    f = DEPLOY / "config" / a.removeprefix("/etc/triad/")
                    out = subprocess.run([str(BIN), "check-config", str(f)], capture_output=True, text=True)
                    assert out.returncode == 0, out.stderr
