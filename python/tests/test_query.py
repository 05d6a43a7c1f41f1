"""Session.sql and Result: every way to read a result, checked against ADBC and pyarrow."""

import decimal

import pyarrow as pa
import pytest

import shardfusion


@pytest.fixture()
def payments(session, table_name):
    session.sql(
        f"CREATE TABLE {table_name} (account_id BIGINT NOT NULL, amount DECIMAL(12, 2), note TEXT)"
    ).to_arrow()
    session.create_distributed_table(table_name, "account_id", shard_count=4)
    data = pa.table(
        {
            "account_id": pa.array(range(1, 1001), pa.int64()),
            "amount": pa.array(
                [decimal.Decimal(i) / 4 for i in range(1000)], pa.decimal128(12, 2)
            ),
            "note": [None if i % 10 == 0 else f"n{i % 7}" for i in range(1000)],
        }
    )
    assert session.ingest(table_name, data) == 1000
    return table_name, data


def test_to_arrow_pandas_pylist_polars(session, payments):
    table, data = payments
    result = session.sql(f"SELECT * FROM {table} ORDER BY account_id")
    assert result.schema.names == ["account_id", "amount", "note"]
    arrow = result.to_arrow()
    # The table's NOT NULL key comes back as a non-nullable field; the values are the same.
    assert arrow.cast(data.schema).equals(data)
    assert result.to_arrow() is arrow  # materialized once, kept
    assert result.num_rows == 1000
    frame = result.to_pandas()
    assert list(frame.columns) == ["account_id", "amount", "note"]
    assert frame["note"].isna().sum() == 100
    assert result.to_pylist()[0] == {"account_id": 1, "amount": decimal.Decimal("0.00"), "note": None}
    polars = pytest.importorskip("polars")
    pl_frame = result.to_polars()
    assert isinstance(pl_frame, polars.DataFrame)
    assert pl_frame.height == 1000


def test_iterating_batches(session, payments):
    table, _ = payments
    result = session.sql(f"SELECT account_id FROM {table}")
    batches = list(result)
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert sum(b.num_rows for b in batches) == 1000
    with pytest.raises(shardfusion.Error, match="already been read"):
        result.to_arrow()


def test_same_answer_as_adbc(cluster, session, payments):
    dbapi = pytest.importorskip("adbc_driver_flightsql.dbapi")
    table, _ = payments
    query = (
        f"SELECT note, count(*) AS n, sum(amount) AS total FROM {table} "
        "GROUP BY note ORDER BY note NULLS FIRST"
    )
    ours = session.sql(query).to_arrow()
    with dbapi.connect(cluster.url) as conn, conn.cursor() as cur:
        cur.execute(query)
        theirs = cur.fetch_arrow_table()
    assert ours.equals(theirs)


def test_params(session, payments):
    table, _ = payments
    rows = session.sql(
        f"SELECT account_id, note FROM {table} WHERE account_id IN ($1, $2) AND note <> $3 "
        "ORDER BY account_id",
        [5, 6, "it's"],
    ).to_pylist()
    assert rows == [{"account_id": 5, "note": "n4"}, {"account_id": 6, "note": "n5"}]
    named = session.sql(
        f"SELECT count(*) AS n FROM {table} WHERE amount >= $low AND note = '$low'",
        {"low": decimal.Decimal("100.25")},
    ).to_pylist()
    assert named == [{"n": 0}]
    question = session.sql(f"SELECT count(*) AS n FROM {table} WHERE account_id <= ?", (10,))
    assert question.to_pylist() == [{"n": 10}]
    with pytest.raises(IndexError):
        session.sql("SELECT $2", [1])
    with pytest.raises(ValueError, match="not used"):
        session.sql("SELECT $1", [1, 2])


def test_explain_and_html(session, payments):
    table, _ = payments
    result = session.sql(f"SELECT note, count(*) FROM {table} GROUP BY note")
    plan = result.explain()
    assert "DistributedExec" in plan and "ShardScanExec" in plan
    analyzed = result.explain(analyze=True)
    assert "rows_sent=" in analyzed
    page = result._repr_html_()
    assert "<table>" in page and "8 rows × 2 columns" in page
    assert "8 rows" in repr(result)


def test_tables_and_shards(session, payments, table_name):
    reference = f"{table_name}_ref"
    table, _ = payments
    tables = session.tables().to_pylist()
    mine = [t for t in tables if t["table_name"] == table]
    assert mine and mine[0]["distribution_column"] == "account_id"
    shards = session.shards(table)
    assert shards.num_rows == 4
    assert set(shards.column("table_name").to_pylist()) == {table}
    session.sql(f"CREATE TABLE {reference} (code TEXT, label TEXT)").to_arrow()
    session.create_reference_table(reference)
    kinds = {t["table_name"]: t["citus_table_type"] for t in session.tables().to_pylist()}
    assert kinds[reference] == "reference"
