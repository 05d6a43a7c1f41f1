"""Zero-copy export through the Arrow PyCapsule stream interface."""

import pyarrow as pa
import pytest


@pytest.fixture()
def numbers(session, table_name):
    session.sql(f"CREATE TABLE {table_name} (id BIGINT NOT NULL, label TEXT)").to_arrow()
    session.create_distributed_table(table_name, "id")
    data = pa.table({"id": pa.array(range(50_000), pa.int64()), "label": [f"x{i % 13}" for i in range(50_000)]})
    session.ingest(table_name, data)
    return table_name, data


def test_pyarrow_table_reads_the_stream(session, numbers):
    table, data = numbers
    result = session.sql(f"SELECT * FROM {table}")
    streamed = pa.table(result)
    assert streamed.num_rows == 50_000
    assert streamed.sort_by("id").cast(data.schema).equals(data)


def test_record_batch_reader(session, numbers):
    table, _ = numbers
    reader = pa.RecordBatchReader.from_stream(session.sql(f"SELECT id FROM {table}"))
    assert reader.schema.names == ["id"]
    assert sum(b.num_rows for b in reader) == 50_000


def test_duckdb_reads_a_result(session, numbers):
    duckdb = pytest.importorskip("duckdb")
    table, _ = numbers
    result = session.sql(f"SELECT * FROM {table}")  # noqa: F841 (duckdb finds it by name)
    counts = duckdb.sql("SELECT label, count(*) AS n FROM result GROUP BY label ORDER BY label").fetchall()
    assert len(counts) == 13 and sum(n for _, n in counts) == 50_000


def test_polars_reads_a_result(session, numbers):
    polars = pytest.importorskip("polars")
    table, _ = numbers
    frame = polars.DataFrame(session.sql(f"SELECT id, label FROM {table}"))
    assert frame.shape == (50_000, 2)
