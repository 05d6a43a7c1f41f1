"""A real multi-host deployment (issue 13): a coordinator, two workers and a client, each in its
own Linux network namespace with its own address, joined by veth pairs to a bridge in a "hub"
namespace. Authentication and TLS are on: the client logs in over TLS, the coordinator and the
workers talk over TLS, and the test loads, queries and bulk-ingests across the namespaces.

The namespaces, links and processes are created by the test and removed at its end. Where
namespaces cannot be created (not root, no iproute2, a sandbox without CAP_SYS_ADMIN), the test
is skipped with the reason.
"""

import os
import shutil
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import binary

PASSWORD = "multi-host admin password"
SECRET = "multi-host cluster secret"
SUBNET = "10.213.{}.{}"


def run(*args, check=True, timeout=30):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout)


class Hosts:
    """Namespaces named `<prefix>-<host>`, each with one address on a shared bridge."""

    def __init__(self):
        self.prefix = "sf" + uuid.uuid4().hex[:6]
        # A /24 per test run, so runs never collide.
        self.net = int(uuid.uuid4().int % 200) + 20
        self.names = []

    def ns(self, host):
        return f"{self.prefix}-{host}"

    def address(self, index):
        return SUBNET.format(self.net, index)

    def create(self, hosts):
        hub = self.ns("hub")
        run("ip", "netns", "add", hub)
        self.names.append(hub)
        run("ip", "-n", hub, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", hub, "link", "set", "br0", "up")
        for index, host in enumerate(hosts, start=1):
            ns = self.ns(host)
            run("ip", "netns", "add", ns)
            self.names.append(ns)
            inside, outside = f"{self.prefix}{index}a", f"{self.prefix}{index}b"
            run("ip", "link", "add", inside, "netns", ns, "type", "veth",
                "peer", "name", outside, "netns", hub)
            run("ip", "-n", hub, "link", "set", outside, "master", "br0")
            run("ip", "-n", hub, "link", "set", outside, "up")
            run("ip", "-n", ns, "addr", "add", f"{self.address(index)}/24", "dev", inside)
            run("ip", "-n", ns, "link", "set", inside, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")

    def remove(self):
        for ns in reversed(self.names):
            run("ip", "netns", "del", ns, check=False)


def namespaces_unavailable():
    if os.geteuid() != 0:
        return "not root: creating network namespaces needs CAP_SYS_ADMIN"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if shutil.which("openssl") is None:
        return "openssl is not installed (the test makes its certificates with it)"
    probe = f"sfprobe{uuid.uuid4().hex[:6]}"
    done = run("ip", "netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    run("ip", "netns", "del", probe, check=False)
    return None


def make_certificates(directory: Path, addresses):
    """A CA, and one node certificate (signed by it) naming every host's address."""
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "node.key", directory / "node.csr", directory / "node.pem"
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "2",
        "-subj", "/CN=ShardFusion multi-host test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=shardfusion node")
    extensions = directory / "node.ext"
    sans = ",".join(f"IP:{a}" for a in addresses)
    extensions.write_text(
        f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions))
    return ca_cert, cert, key


def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} after {timeout}s")


CLIENT_SCRIPT = textwrap.dedent(
    """
    import sys
    import adbc_driver_flightsql.dbapi as flight
    import pyarrow as pa

    url, password, ca = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
    options = {
        "username": "admin",
        "password": password,
        "adbc.flight.sql.client_option.tls_root_certs": ca,
    }
    with flight.connect(url, db_kwargs=options) as conn, conn.cursor() as cur:
        cur.execute("SELECT nodename FROM pg_dist_node ORDER BY nodeid")
        print("nodes", ",".join(r[0] for r in cur.fetchall()))
        cur.execute("CREATE TABLE events (id BIGINT NOT NULL, kind TEXT, amount BIGINT)")
        cur.execute("SELECT create_distributed_table('events', 'id', shard_count => 8)")
        cur.execute(
            "INSERT INTO events SELECT value, 'k' || (value % 4), value * 1 "
            "FROM generate_series(1, 20000) AS t(value)"
        )
        table = pa.table({
            "id": pa.array(range(20001, 30001), pa.int64()),
            "kind": pa.array(["ingested"] * 10000),
            "amount": pa.array([1] * 10000, pa.int64()),
        })
        cur.adbc_ingest("events", table, mode="append")
        cur.execute("SELECT count(*), sum(amount) FROM events")
        print("totals", *cur.fetchone())
        cur.execute(
            "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind"
        )
        print("kinds", ";".join(f"{k}={n}" for k, n in cur.fetchall()))
        cur.execute("SELECT nodename, count(*) FROM citus_shards GROUP BY nodename ORDER BY 1")
        print("placements", ";".join(f"{n}={c}" for n, c in cur.fetchall()))
    conn.close()
    """
)


def test_coordinator_workers_and_client_on_separate_hosts(tmp_path):
    reason = namespaces_unavailable()
    if reason is not None:
        print(f"\n*** SKIPPING the multi-host namespace test: {reason} ***")
        pytest.skip(f"network namespaces unavailable: {reason}")
    hosts = Hosts()
    procs = []
    try:
        hosts.create(["coord", "w1", "w2", "client"])
        coordinator, w1, w2 = hosts.address(1), hosts.address(2), hosts.address(3)
        ca, cert, key = make_certificates(tmp_path, [coordinator, w1, w2])
        tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca)]
        env = dict(os.environ, SHARDFUSION_CLUSTER_SECRET=SECRET)

        def start(host, *args, log):
            out = open(tmp_path / log, "wb")
            proc = subprocess.Popen(
                ["ip", "netns", "exec", hosts.ns(host), binary(), *args],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )
            procs.append(proc)
            return proc

        start("coord", "coordinator", "--listen", f"{coordinator}:50050",
              "--data-dir", str(tmp_path / "coord"), "--password", PASSWORD, *tls,
              log="coordinator.log")
        for host, address in [("w1", w1), ("w2", w2)]:
            start(host, "worker", "--listen", f"{address}:50061",
                  "--data-dir", str(tmp_path / host),
                  "--coordinator", f"https://{coordinator}:50050", *tls,
                  log=f"{host}.log")

        def registered():
            logs = [(tmp_path / f"{h}.log").read_text(errors="replace") for h in ("w1", "w2")]
            for proc in procs:
                if proc.poll() is not None:
                    everything = "\n".join(
                        p.read_text(errors="replace") for p in tmp_path.glob("*.log")
                    )
                    raise AssertionError(f"a process exited early:\n{everything}")
            return all("registered with" in log for log in logs)

        wait_until(registered, 60, "the workers did not register")

        script = tmp_path / "client.py"
        script.write_text(CLIENT_SCRIPT)
        done = subprocess.run(
            ["ip", "netns", "exec", hosts.ns("client"), "python3", str(script),
             f"grpc+tls://{coordinator}:50050", PASSWORD, str(ca)],
            capture_output=True, text=True, timeout=180,
        )
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}" for p in tmp_path.glob("*.log")
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs}"
        lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
        assert sorted(lines["nodes"].split(",")) == sorted([w1, w2]), lines
        expected_sum = sum(range(1, 20001)) + 10000
        assert lines["totals"] == f"30000 {expected_sum}", lines
        assert lines["kinds"] == "ingested=10000;k0=5000;k1=5000;k2=5000;k3=5000", lines
        assert lines["placements"] == ";".join(f"{w}=4" for w in sorted([w1, w2])), lines

        # The client's host cannot bypass the coordinator: plaintext or no credentials fail.
        refused = subprocess.run(
            ["ip", "netns", "exec", hosts.ns("client"), binary(), "sql", "--url",
             f"grpc://{coordinator}:50050", "-c", "SELECT 1"],
            capture_output=True, text=True, timeout=60,
        )
        assert refused.returncode != 0, refused.stdout
        anonymous = subprocess.run(
            ["ip", "netns", "exec", hosts.ns("client"), binary(), "sql", "--url",
             f"grpc+tls://{coordinator}:50050", "--tls-ca", str(ca), "-c", "SELECT 1"],
            capture_output=True, text=True, timeout=60,
        )
        assert anonymous.returncode != 0, anonymous.stdout
        assert "Unauthenticated" in anonymous.stderr or "log in" in anonymous.stderr, (
            anonymous.stderr
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        hosts.remove()
