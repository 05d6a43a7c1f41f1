"""Ctrl-C (KeyboardInterrupt) stops a running query, and the session stays usable."""

import _thread
import threading
import time

import pyarrow as pa
import pytest


@pytest.fixture()
def big(session, table_name):
    session.sql(f"CREATE TABLE {table_name} (id BIGINT NOT NULL)").to_arrow()
    session.create_distributed_table(table_name, "id")
    session.ingest(table_name, pa.table({"id": pa.array(range(20_000), pa.int64())}))
    return table_name


def interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


def test_ctrl_c_cancels_a_running_query(session, big):
    # 20,000 × 20,000 rows through a cross join: minutes of work unless cancelled.
    query = f"SELECT count(*) FROM {big} a CROSS JOIN {big} b WHERE a.id + b.id < 0"
    timer = interrupt_after(0.5)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        session.sql(query).to_arrow()
    elapsed = time.monotonic() - started
    timer.cancel()
    assert elapsed < 5, f"took {elapsed:.1f}s to stop"
    # The session (and the cluster) still answer.
    assert session.sql(f"SELECT count(*) AS n FROM {big}").to_pylist() == [{"n": 20_000}]
    statements = session.sql(
        "SELECT query FROM shardfusion_stat_statements WHERE query LIKE '%CROSS JOIN%'"
    ).to_pylist()
    assert statements, "the cancelled statement was not seen by the coordinator"
