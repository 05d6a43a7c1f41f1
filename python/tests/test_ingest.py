"""Session.ingest from pandas, polars and pyarrow, with NULLs, dates, decimals and strings."""

import datetime
import decimal

import pyarrow as pa
import pytest

import shardfusion


def frame_data(rows: int = 500) -> dict:
    return {
        "id": list(range(rows)),
        "day": [datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 366) for i in range(rows)],
        "price": [None if i % 9 == 0 else decimal.Decimal(i) / 100 for i in range(rows)],
        "name": [None if i % 7 == 0 else f"name-{i}-é" for i in range(rows)],
    }


def expected_table(rows: int = 500) -> pa.Table:
    return pa.table(
        frame_data(rows),
        schema=pa.schema(
            [
                ("id", pa.int64()),
                ("day", pa.date32()),
                ("price", pa.decimal128(10, 2)),
                ("name", pa.string()),
            ]
        ),
    )


def test_pandas_create_then_distribute_then_append(session, table_name):
    pd = pytest.importorskip("pandas")
    expected = expected_table()
    frame = expected.to_pandas()
    frame.index = frame.index + 1000  # a non-default index is not a column
    assert session.ingest(table_name, frame, mode="create") == 500
    session.create_distributed_table(table_name, "id", shard_count=3)
    got = session.sql(f"SELECT * FROM {table_name} ORDER BY id").to_arrow()
    assert got.num_rows == 500
    assert got.column("price").to_pylist() == expected.column("price").to_pylist()
    assert got.column("name").to_pylist() == expected.column("name").to_pylist()
    assert got.column("day").cast(pa.date32()).to_pylist() == expected.column("day").to_pylist()
    assert session.ingest(table_name, pd.DataFrame(frame_data(10))) == 10
    assert session.sql(f"SELECT count(*) AS n FROM {table_name}").to_pylist() == [{"n": 510}]


def test_polars_append(session, table_name):
    pl = pytest.importorskip("polars")
    session.sql(
        f"CREATE TABLE {table_name} (id BIGINT NOT NULL, day DATE, price DECIMAL(10, 2), name TEXT)"
    ).to_arrow()
    session.create_distributed_table(table_name, "id")
    frame = pl.from_arrow(expected_table())
    assert session.ingest(table_name, frame) == 500
    got = session.sql(
        f"SELECT count(*) AS n, count(price) AS priced, count(name) AS named, min(day) AS first "
        f"FROM {table_name}"
    ).to_pylist()
    assert got == [{"n": 500, "priced": 444, "named": 428, "first": datetime.date(2024, 1, 1)}]


def test_pyarrow_reader_and_replace(session, table_name):
    table = expected_table()
    assert session.ingest(table_name, table, mode="create") == 500
    reader = pa.RecordBatchReader.from_batches(table.schema, table.slice(0, 20).to_batches())
    assert session.ingest(table_name, reader, mode="replace") == 20
    assert session.sql(f"SELECT count(*) AS n FROM {table_name}").to_pylist() == [{"n": 20}]


def test_a_single_64_mib_batch_loads(session, table_name):
    # One batch far over gRPC's usual 4-16 MiB message limits: it goes out in smaller messages.
    rows = 4 << 20
    ids = pa.array(range(rows), pa.int64())
    table = pa.table({"id": ids, "name": pa.array([f"row-{i % 1000:04}" for i in range(rows)])})
    assert len(table.to_batches()) == 1 and table.nbytes >= 64 << 20
    session.sql(f"CREATE TABLE {table_name} (id BIGINT NOT NULL, name TEXT)").to_arrow()
    session.create_distributed_table(table_name, "id", shard_count=4)
    assert session.ingest(table_name, table) == rows
    got = session.sql(
        f"SELECT count(*) AS n, sum(id) AS total, count(DISTINCT name) AS names FROM {table_name}"
    ).to_pylist()
    assert got == [{"n": rows, "total": rows * (rows - 1) // 2, "names": 1000}]


def test_a_null_distribution_key_is_an_integrity_error(session, table_name):
    session.sql(f"CREATE TABLE {table_name} (id BIGINT, name TEXT)").to_arrow()
    session.create_distributed_table(table_name, "id")
    bad = pa.table({"id": [1, None, 3], "name": ["a", "b", "c"]})
    with pytest.raises(shardfusion.IntegrityError, match="NULL") as raised:
        session.ingest(table_name, bad)
    assert raised.value.sqlstate == "23502"
    # Nothing was written, and the session still works.
    assert session.sql(f"SELECT count(*) AS n FROM {table_name}").to_pylist() == [{"n": 0}]


def test_bad_inputs(session, table_name):
    with pytest.raises(shardfusion.ProgrammingError, match="ingest mode"):
        session.ingest(table_name, expected_table(), mode="upsert")
    with pytest.raises(shardfusion.ProgrammingError, match="cannot load"):
        session.ingest(table_name, [1, 2, 3])
    with pytest.raises(shardfusion.ProgrammingError):
        session.ingest(f"{table_name}_missing", expected_table())
