"""Fixtures that start real ShardFusion processes for the ADBC tests.

Every process started here is stopped at the end of its test, and every wait is bounded.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def binary() -> str:
    explicit = os.environ.get("SHARDFUSION_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/shardfusion/target"))
    return str(Path(target) / "debug" / "shardfusion")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class Processes:
    def __init__(self):
        self.procs = []

    def start(self, *args, env=None, log=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        out = open(log, "wb") if log else subprocess.DEVNULL
        proc = subprocess.Popen([binary(), *args], stdout=out, stderr=subprocess.STDOUT, env=full_env)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture
def processes():
    procs = Processes()
    yield procs
    procs.stop_all()


@pytest.fixture
def local_cluster(processes, tmp_path):
    """`shardfusion local --workers 2`: yields the Flight SQL URL."""
    port = free_port()
    processes.start("local", "--workers", "2", "--listen", f"127.0.0.1:{port}",
                    "--data-dir", str(tmp_path / "cluster"), log=tmp_path / "local.log")
    wait_for_port(port)
    return f"grpc://127.0.0.1:{port}"


@pytest.fixture
def separate_cluster(processes, tmp_path):
    """A coordinator and two worker processes: yields (url, start_worker, worker procs)."""
    port = free_port()
    secret = {"SHARDFUSION_CLUSTER_SECRET": "pytest-secret"}
    processes.start("coordinator", "--listen", f"127.0.0.1:{port}", "--data-dir",
                    str(tmp_path / "coordinator"), "--allow-file-access", str(tmp_path),
                    env=secret, log=tmp_path / "coordinator.log")
    wait_for_port(port)
    workers = {}

    def start_worker(i, worker_port=None):
        worker_port = worker_port or free_port()
        proc = processes.start("worker", "--listen", f"127.0.0.1:{worker_port}", "--data-dir",
                               str(tmp_path / f"worker-{i}"), "--coordinator",
                               f"http://127.0.0.1:{port}", env=secret,
                               log=tmp_path / f"worker-{i}.log")
        wait_for_port(worker_port)
        workers[i] = (proc, worker_port)
        return proc

    start_worker(1)
    start_worker(2)
    url = f"grpc://127.0.0.1:{port}"
    # Registration happens right after the worker starts listening.
    import adbc_driver_flightsql.dbapi as flight
    deadline = time.time() + 30
    while time.time() < deadline:
        with flight.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_dist_node")
            if cur.fetchone()[0] == 2:
                break
        time.sleep(0.2)
    return url, start_worker, workers
