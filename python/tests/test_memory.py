"""A million-row result streams into pyarrow without the client holding much more than the
table itself (the issue's bound: about twice its Arrow size)."""

import gc
import resource
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import shardfusion

ROWS = 1_000_000


@pytest.fixture(scope="module")
def remote_cluster():
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("serve_cluster.py")), str(ROWS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("grpc://"), "the cluster process did not start"
        yield url
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_streaming_a_million_rows_stays_near_the_table_size(remote_cluster):
    session = shardfusion.connect(remote_cluster)
    session.sql("SELECT 1").to_arrow()  # warm up the connection and the runtime
    gc.collect()
    before = peak_rss_bytes()
    table = pa.table(session.sql("SELECT * FROM big"))
    grown = peak_rss_bytes() - before
    assert table.num_rows == ROWS
    size = table.nbytes
    print(f"arrow size {size / 2**20:.1f} MiB, client peak grew {grown / 2**20:.1f} MiB")
    assert grown <= 2 * size + 32 * 2**20, (
        f"peak RSS grew {grown / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB table"
    )
