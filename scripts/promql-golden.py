#!/usr/bin/env python3
"""Produces the expected answers of the golden PromQL cases with real Prometheus.

Reads promql/tests/promql/cases.test (series in Prometheus' `load` notation and `eval`
lines), writes the series as OpenMetrics, turns them into TSDB blocks with
`promtool tsdb create-blocks-from openmetrics`, starts Prometheus (Debian's 2.42) on
those blocks, runs every `eval` through its HTTP API and writes the answers to
promql/tests/promql/expected.json. promql/tests/promql_golden.rs checks Triad against them.

Usage: scripts/promql-golden.py   (needs `prometheus` and `promtool` on PATH)
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(ROOT, "promql/tests/promql/cases.test")
EXPECTED = os.path.join(ROOT, "promql/tests/promql/expected.json")

DUR = re.compile(r"^(\d+)(ms|s|m|h|d)$")
SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)?(\{.*\})?\s+(.*)$')
EXPAND = re.compile(r"^(-?(?:\d+\.?\d*(?:e\d+)?|Inf|NaN))([+-])(\d+\.?\d*(?:e\d+)?)x(\d+)$")


def dur_ms(s):
    m = DUR.match(s)
    if not m:
        raise ValueError(f"bad duration {s!r}")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}[unit]


def values(tokens):
    """Expands load notation into a list of floats or None (missing)."""
    out = []
    for tok in tokens:
        if tok == "_":
            out.append(None)
        elif tok.startswith("_x"):
            out.extend([None] * int(tok[2:]))
        elif m := EXPAND.match(tok):
            start, sign, step, n = float(m.group(1)), m.group(2), float(m.group(3)), int(m.group(4))
            step = step if sign == "+" else -step
            out.extend(start + i * step for i in range(n + 1))
        else:
            out.append(float(tok))
    return out


def parse_cases(path):
    """Returns (series, evals): series = [(name, labels_text, [(t_ms, v)])]."""
    series, evals = [], []
    interval = None
    for line in open(path):
        raw = line.rstrip("\n")
        s = raw.strip()
        if not s or s.startswith("#"):
            interval = None if not raw.startswith("  ") else interval
            continue
        if s.startswith("load "):
            interval = dur_ms(s.split()[1])
        elif s.startswith("eval "):
            interval = None
            evals.append(s)
        elif interval is not None and raw.startswith("  "):
            m = SERIES.match(s)
            name, labels, rest = m.group(1), m.group(2) or "{}", m.group(3)
            samples = [(i * interval, v) for i, v in enumerate(values(rest.split())) if v is not None]
            series.append((name, labels, samples))
        else:
            raise ValueError(f"cannot read line {raw!r}")
    return series, evals


def fmt(v):
    if v != v:
        return "NaN"
    if v == float("inf"):
        return "+Inf"
    if v == float("-inf"):
        return "-Inf"
    return repr(v)


LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def om_labels(text):
    """`{a="1", b="2"}` as OpenMetrics wants it: no spaces."""
    pairs = LABEL.findall(text[1:-1])
    return "{" + ",".join(f'{n}="{v}"' for n, v in pairs) + "}" if pairs else ""


def openmetrics(series):
    by_name = {}
    for name, labels, samples in series:
        by_name.setdefault(name, []).append((labels, samples))
    out = []
    for name, group in by_name.items():
        out.append(f"# TYPE {name} unknown")
        for labels, samples in group:
            for t, v in samples:
                out.append(f"{name}{om_labels(labels)} {fmt(v)} {t / 1000:.3f}")
    out.append("# EOF")
    return "\n".join(out) + "\n"


EVAL_INSTANT = re.compile(r"^eval instant at (\S+) (.*)$")
EVAL_RANGE = re.compile(r"^eval range from (\S+) to (\S+) step (\S+) (.*)$")


def parse_eval(line):
    if m := EVAL_INSTANT.match(line):
        return {"kind": "instant", "time_ms": dur_ms(m.group(1)), "query": m.group(2)}
    if m := EVAL_RANGE.match(line):
        return {
            "kind": "range",
            "start_ms": dur_ms(m.group(1)),
            "end_ms": dur_ms(m.group(2)),
            "step_ms": dur_ms(m.group(3)),
            "query": m.group(4),
        }
    raise ValueError(f"bad eval line {line!r}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    series, evals = parse_cases(CASES)
    with tempfile.TemporaryDirectory() as tmp:
        om = os.path.join(tmp, "data.om")
        with open(om, "w") as f:
            f.write(openmetrics(series))
        data = os.path.join(tmp, "tsdb")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, data],
                       check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {}\n")
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
             "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/-/ready", timeout=1)
                    break
                except Exception:
                    time.sleep(0.2)
            version = json.load(urllib.request.urlopen(base + "/api/v1/status/buildinfo"))["data"]["version"]
            results = []
            for line in evals:
                case = parse_eval(line)
                if case["kind"] == "instant":
                    params = {"query": case["query"], "time": case["time_ms"] / 1000}
                    url = base + "/api/v1/query?" + urllib.parse.urlencode(params)
                else:
                    params = {"query": case["query"], "start": case["start_ms"] / 1000,
                              "end": case["end_ms"] / 1000, "step": case["step_ms"] / 1000}
                    url = base + "/api/v1/query_range?" + urllib.parse.urlencode(params)
                try:
                    body = json.load(urllib.request.urlopen(url))
                except urllib.error.HTTPError as e:
                    body = json.load(e)
                case["response"] = body
                results.append(case)
        finally:
            prom.terminate()
            prom.wait()
    with open(EXPECTED, "w") as f:
        json.dump({"prometheus_version": version, "cases": results}, f, indent=1, sort_keys=True)
        f.write("\n")
    errors = sum(1 for r in results if r["response"]["status"] != "success")
    print(f"{len(results)} cases from Prometheus {version} ({errors} errors) -> {EXPECTED}")


if __name__ == "__main__":
    sys.exit(main())
