"""LocalCluster starts and stops cleanly: no server threads or listening ports left behind."""

import socket
import threading
from pathlib import Path

import pytest

import shardfusion


def port_is_open(url: str) -> bool:
    host, port = url.removeprefix("grpc://").rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def worker_threads() -> int:
    """Native threads of worker runtimes ("shardfusion-worker-N", cut to 15 characters)."""
    tasks = Path("/proc/self/task")
    if not tasks.exists():
        pytest.skip("needs /proc to count native threads")
    count = 0
    for task in tasks.iterdir():
        try:
            if (task / "comm").read_text().startswith("shardfusion-wor"):
                count += 1
        except OSError:  # the thread ended meanwhile
            pass
    return count


def test_start_query_stop(tmp_path):
    with shardfusion.LocalCluster(workers=3, data_dir=tmp_path / "cluster") as cluster:
        assert cluster.running
        assert port_is_open(cluster.url)
        session = cluster.connect()
        nodes = session.sql("SELECT * FROM pg_dist_node").to_arrow()
        assert nodes.num_rows == 3
        assert "running" in repr(cluster)
    assert not cluster.running
    assert not port_is_open(cluster.url)
    with pytest.raises(shardfusion.OperationalError):
        session.sql("SELECT 1").to_arrow()
    cluster.shutdown()  # twice is fine


def test_data_dir_survives_a_restart(tmp_path):
    directory = tmp_path / "kept"
    with shardfusion.LocalCluster(workers=2, data_dir=directory) as cluster:
        session = cluster.connect()
        session.sql("CREATE TABLE kept (id BIGINT NOT NULL, v TEXT)").to_arrow()
        session.create_distributed_table("kept", "id")
        session.sql("INSERT INTO kept VALUES (1, 'a'), (2, 'b')").to_arrow()
    with shardfusion.LocalCluster(workers=2, data_dir=directory) as cluster:
        rows = cluster.connect().sql("SELECT * FROM kept ORDER BY id").to_pylist()
    assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


def test_no_threads_left_behind():
    before = worker_threads()
    for _ in range(3):
        with shardfusion.LocalCluster(workers=2) as cluster:
            cluster.connect().sql("SELECT 1").to_arrow()
            assert worker_threads() > before
    # Worker runtimes stop in the background; give them a moment.
    for _ in range(50):
        if worker_threads() <= before:
            break
        threading.Event().wait(0.1)
    assert worker_threads() <= before


def test_zero_workers_is_refused():
    with pytest.raises(ValueError):
        shardfusion.LocalCluster(workers=0)
