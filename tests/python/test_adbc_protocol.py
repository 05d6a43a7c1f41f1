"""The Flight SQL protocol as ADBC (adbc-driver-flightsql from PyPI) uses it (issue 13):
parameters bound in the plan, metadata (get_info, get_objects, get_table_schema, table types),
bulk ingest in every mode, and a large result fetched as one Arrow table.
"""

import adbc_driver_flightsql.dbapi as flight
import pyarrow as pa
import pytest


def test_parameters_metadata_ingest_and_large_results(local_cluster):
    with flight.connect(local_cluster) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE items (id BIGINT NOT NULL, name TEXT, price DOUBLE)")
            cur.execute("SELECT create_distributed_table('items', 'id', shard_count => 4)")
            cur.execute(
                "INSERT INTO items SELECT value, 'item ' || value, value * 1.5 "
                "FROM generate_series(1, 300000) AS t(value)"
            )

            # Parameters: bound as Arrow values, typed by their placeholders.
            cur.execute("SELECT name, price FROM items WHERE id = $1", parameters=(42,))
            assert cur.fetchall() == [("item 42", 63.0)]
            cur.execute(
                "SELECT count(*) FROM items WHERE id BETWEEN $1 AND $2 AND name <> $3",
                parameters=(10, 19, "item 15"),
            )
            assert cur.fetchone()[0] == 9
            # A value is a value, never SQL.
            cur.execute("SELECT count(*) FROM items WHERE name = $1",
                        parameters=("x' OR '1'='1",))
            assert cur.fetchone()[0] == 0
            # JDBC-style placeholders, numbered in order; a '?' in a string stays text.
            cur.execute("SELECT name, '?' FROM items WHERE id = ? OR id = ? ORDER BY id",
                        parameters=(7, 8))
            assert cur.fetchall() == [("item 7", "?"), ("item 8", "?")]
            # Placeholders DataFusion cannot type take their values' types.
            cur.execute("SELECT ? + ?", parameters=(1, 2))
            assert cur.fetchone()[0] == 3
            cur.executemany(
                "INSERT INTO items VALUES ($1, $2, $3)",
                [(300001, "extra a", 1.0), (300002, "extra b", 2.0), (300003, None, None)],
            )
            cur.execute("SELECT count(*) FROM items WHERE id > 300000")
            assert cur.fetchone()[0] == 3

            # A large result, fetched whole: every row, the announced schema.
            cur.execute("SELECT id, name, price FROM items")
            table = cur.fetch_arrow_table()
            assert table.num_rows == 300003
            assert table.schema.names == ["id", "name", "price"]
            assert pa.compute.sum(table["id"]).as_py() == sum(range(1, 300001)) + 900006

        # Metadata.
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "ShardFusion", info
        assert info["vendor_version"], info
        assert set(conn.adbc_get_table_types()) >= {"TABLE", "VIEW"}
        schema = conn.adbc_get_table_schema("items")
        assert schema.names == ["id", "name", "price"]
        assert schema.field("id").type == pa.int64()
        objects = conn.adbc_get_objects(depth="all", table_name_filter="items").read_all()
        catalogs = objects.to_pylist()
        tables = [
            table
            for catalog in catalogs
            for db_schema in catalog["catalog_db_schemas"] or []
            for table in db_schema["db_schema_tables"] or []
        ]
        assert [t["table_name"] for t in tables] == ["items"], catalogs
        columns = [c["column_name"] for c in tables[0]["table_columns"]]
        assert columns == ["id", "name", "price"]

        # Bulk ingest in every mode.
        batch = pa.table({"k": pa.array([1, 2, 3], pa.int64()), "v": ["a", "b", "c"]})
        with conn.cursor() as cur:
            assert cur.adbc_ingest("fresh", batch, mode="create") == 3
            with pytest.raises(Exception, match="(?i)already exists"):
                cur.adbc_ingest("fresh", batch, mode="create")
            assert cur.adbc_ingest("fresh", batch, mode="append") == 3
            assert cur.adbc_ingest("fresh", batch.slice(0, 1), mode="replace") == 1
            assert cur.adbc_ingest("fresh", batch, mode="create_append") == 3
            assert cur.adbc_ingest("other", batch, mode="create_append") == 3
            with pytest.raises(Exception, match="(?i)does not exist|not found"):
                cur.adbc_ingest("missing", batch, mode="append")
            cur.execute("SELECT count(*) FROM fresh")
            assert cur.fetchone()[0] == 4
            cur.execute("SELECT count(*) FROM other")
            assert cur.fetchone()[0] == 3
