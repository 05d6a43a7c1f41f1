"""A real Flight SQL client (ADBC, as pandas and notebooks use it) against real processes."""

import threading
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest


def payments(start: int, count: int) -> pa.Table:
    ids = pa.array(range(start, start + count), pa.int64())
    return pa.table({
        "account_id": pc.add(pc.divide(ids, 10), 1),
        "payment_id": ids,
        "amount": pc.multiply(pc.cast(pc.add(pc.bit_wise_and(ids, 1023), 1), pa.float64()), 0.5),
        "status": pc.if_else(
            pc.equal(pc.subtract(ids, pc.multiply(pc.divide(ids, 7), 7)), 0), "failed", "ok"),
    })


def scalar(cur, sql):
    cur.execute(sql)
    return cur.fetchone()[0]


def exercise(url: str, tmp_path) -> None:
    first = payments(0, 50_000)
    second = payments(50_000, 20_000)
    path = tmp_path / "payments.parquet"
    pq.write_table(first, path)
    expected = pa.concat_tables([first, second])

    with flight.connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE payments (account_id BIGINT NOT NULL, payment_id BIGINT NOT NULL, amount DOUBLE, status TEXT)")
        cur.execute("SELECT create_distributed_table('payments', 'account_id', shard_count => 4)")
        cur.execute(f"COPY payments FROM '{path}' WITH (FORMAT parquet)")
        assert cur.fetchall() == [(50_000,)]
        cur.adbc_ingest("payments", second, mode="append")
        conn.commit()

        assert scalar(cur, "SELECT count(*) FROM payments") == expected.num_rows
        assert scalar(cur, "SELECT sum(payment_id) FROM payments") == pc.sum(expected["payment_id"]).as_py()
        assert scalar(cur, "SELECT sum(amount) FROM payments") == pytest.approx(pc.sum(expected["amount"]).as_py())

        cur.execute("SELECT status, count(*) AS n, sum(amount) AS total FROM payments GROUP BY status ORDER BY status")
        got = cur.fetch_arrow_table().to_pylist()
        want = expected.group_by("status").aggregate([("status", "count"), ("amount", "sum")]).sort_by("status").to_pylist()
        assert [(r["status"], r["n"]) for r in got] == [(r["status"], r["status_count"]) for r in want]
        for g, w in zip(got, want):
            assert g["total"] == pytest.approx(w["amount_sum"])

        cur.execute("SELECT * from pg_dist_shard;")
        shards = cur.fetch_arrow_table()
        assert shards.num_rows == 4
        assert shards.column_names == ["logicalrelid", "shardid", "shardstorage", "shardminvalue", "shardmaxvalue"]
        shard_id = shards["shardid"][0].as_py()
        cur.execute(
            "SELECT shardid, node.nodename, node.nodeport FROM pg_dist_placement placement JOIN pg_dist_node node "
            "ON placement.groupid = node.groupid AND node.noderole = 'primary'::noderole WHERE shardid = "
            f"{shard_id};")
        rows = cur.fetchall()
        assert len(rows) == 1 and rows[0][0] == shard_id and rows[0][1] == "127.0.0.1"

        # One tenant's rows come back exactly.
        cur.execute("SELECT count(*), sum(payment_id) FROM payments WHERE account_id = 42")
        tenant = expected.filter(pc.equal(expected["account_id"], 42))
        assert cur.fetchone() == (tenant.num_rows, pc.sum(tenant["payment_id"]).as_py())

        # A clear error for bad input, and the connection keeps working.
        with pytest.raises(Exception, match="(?i)not found|does not exist"):
            cur.execute("SELECT * FROM missing_table")
        assert scalar(cur, "SELECT count(*) FROM payments") == expected.num_rows


def test_local_cluster_through_adbc(local_cluster, tmp_path):
    exercise(local_cluster, tmp_path)


def test_separate_processes_through_adbc(separate_cluster, tmp_path):
    url, _, _ = separate_cluster
    exercise(url, tmp_path)


def test_adbc_ingest_creates_a_table(local_cluster):
    data = pa.table({"k": pa.array([1, 2, 3], pa.int32()), "v": pa.array(["a", None, "c"])})
    with flight.connect(local_cluster) as conn, conn.cursor() as cur:
        cur.adbc_ingest("fresh", data, mode="create")
        conn.commit()
        cur.execute("SELECT k, v FROM fresh ORDER BY k")
        assert cur.fetchall() == [(1, "a"), (2, None), (3, "c")]
        with pytest.raises(Exception, match="(?i)already exists"):
            cur.adbc_ingest("fresh", data, mode="create")

        # Replace swaps all rows at once, also on a distributed table.
        cur.execute("SELECT create_distributed_table('fresh', 'k', shard_count => 3)")
        newer = pa.table({"k": pa.array([7, 8], pa.int32()), "v": pa.array(["x", "y"])})
        cur.adbc_ingest("fresh", newer, mode="replace")
        cur.execute("SELECT k, v FROM fresh ORDER BY k")
        assert cur.fetchall() == [(7, "x"), (8, "y")]
        # A replace that fails (NULL distribution key) leaves the table as it was.
        bad = pa.table({"k": pa.array([9, None], pa.int32()), "v": pa.array(["z", "w"])})
        with pytest.raises(Exception, match="(?i)null"):
            cur.adbc_ingest("fresh", bad, mode="replace")
        cur.execute("SELECT k, v FROM fresh ORDER BY k")
        assert cur.fetchall() == [(7, "x"), (8, "y")]


def test_killing_a_worker_during_copy_keeps_the_row_count(separate_cluster, tmp_path):
    url, start_worker, workers = separate_cluster
    small = payments(0, 1000)
    big = payments(1000, 12_000_000)  # several seconds of COPY
    pq.write_table(small, tmp_path / "small.parquet")
    pq.write_table(big, tmp_path / "big.parquet")
    with flight.connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE p (account_id BIGINT NOT NULL, payment_id BIGINT NOT NULL, amount DOUBLE, status TEXT)")
        cur.execute("SELECT create_distributed_table('p', 'account_id', shard_count => 8)")
        cur.execute(f"COPY p FROM '{tmp_path / 'small.parquet'}' WITH (FORMAT parquet)")
        assert scalar(cur, "SELECT count(*) FROM p") == 1000

    errors = []

    def load():
        try:
            with flight.connect(url) as c2, c2.cursor() as cur2:
                cur2.execute(f"COPY p FROM '{tmp_path / 'big.parquet'}' WITH (FORMAT parquet)")
                cur2.fetchall()
        except Exception as e:  # noqa: BLE001 - the failure is what we test
            errors.append(e)

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(0.4)
    proc, port = workers[2]
    proc.kill()  # SIGKILL, mid-COPY
    proc.wait(timeout=10)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert errors, "the COPY should have failed"

    start_worker(2, port)  # same data directory and port: the node comes back
    with flight.connect(url) as conn, conn.cursor() as cur:
        deadline = time.time() + 30
        while True:
            try:
                assert scalar(cur, "SELECT count(*) FROM p") == 1000
                break
            except AssertionError:
                raise
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)


def readme_in_chunks():
    """The `in_chunks` recipe exactly as README.md shows it for `adbc_ingest`."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("def in_chunks(")
    source = readme[start:readme.index("\n\n", start)]
    namespace = {}
    exec(source, namespace)
    return namespace["in_chunks"]


def test_adbc_ingest_of_a_64_mib_batch_through_the_readme_recipe(local_cluster):
    rows = 4 << 20  # two BIGINT columns: 64 MiB in one batch
    ids = pa.array(range(rows), pa.int64())
    table = pa.table({"k": ids, "v": pc.multiply(ids, 3)})
    assert len(table.to_batches()) == 1 and table.nbytes >= 64 << 20
    in_chunks = readme_in_chunks()
    with flight.connect(local_cluster) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE wide (k BIGINT NOT NULL, v BIGINT)")
        cur.execute("SELECT create_distributed_table('wide', 'k', shard_count => 4)")
        cur.adbc_ingest("wide", in_chunks(table), mode="append")
        conn.commit()
        assert scalar(cur, "SELECT count(*) FROM wide") == rows
        assert scalar(cur, "SELECT sum(v) FROM wide") == pc.sum(table["v"]).as_py()
