"""Transactions through ADBC, as a PostgreSQL application runs them: BEGIN ... COMMIT and
ROLLBACK on a connection that keeps its session cookie, another connection seeing nothing
until COMMIT, pandas reading the committed state, and a statement text committing all or
nothing."""

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight
import pyarrow as pa
import pytest


def with_sessions(url):
    """A connection whose client keeps the session cookie (ADBC's cookie middleware)."""
    return flight.connect(
        url,
        db_kwargs={adbc_driver_flightsql.DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true"},
        autocommit=True,
    )


def scalar(cur, sql):
    cur.execute(sql)
    return cur.fetchone()[0]


def test_begin_commit_and_rollback_through_adbc(local_cluster):
    with with_sessions(local_cluster) as conn, conn.cursor() as cur, \
            with_sessions(local_cluster) as other_conn, other_conn.cursor() as other:
        cur.execute("CREATE TABLE ledger (tenant BIGINT NOT NULL, id BIGINT NOT NULL, "
                    "amount DOUBLE)")
        cur.execute("SELECT create_distributed_table('ledger', 'tenant', shard_count => 4)")
        cur.execute("INSERT INTO ledger VALUES (1, 1, 10.0), (2, 2, 20.0), (3, 3, 30.0)")

        cur.execute("BEGIN")
        cur.execute("INSERT INTO ledger VALUES (1, 4, 40.0)")
        cur.execute("UPDATE ledger SET amount = amount * 2 WHERE tenant = 2")
        cur.execute("DELETE FROM ledger WHERE id = 3")
        assert scalar(cur, "SELECT sum(amount) FROM ledger") == 90.0
        assert scalar(other, "SELECT sum(amount) FROM ledger") == 60.0
        cur.execute("ROLLBACK")
        assert scalar(cur, "SELECT sum(amount) FROM ledger") == 60.0

        cur.execute("BEGIN")
        cur.execute("INSERT INTO ledger VALUES (1, 4, 40.0)")
        cur.execute("UPDATE ledger SET amount = amount * 2 WHERE tenant = 2")
        assert scalar(other, "SELECT count(*) FROM ledger") == 3
        cur.execute("COMMIT")
        frame = other.execute("SELECT tenant, id, amount FROM ledger ORDER BY id") \
            .fetch_df()
        assert frame["id"].tolist() == [1, 2, 3, 4]
        assert frame["amount"].tolist() == [10.0, 40.0, 30.0, 40.0]

        # Bulk ingest in a transaction waits for its COMMIT, and goes with its ROLLBACK.
        cur.execute("BEGIN")
        cur.adbc_ingest("ledger", pa.table({
            "tenant": pa.array([6, 7], pa.int64()),
            "id": pa.array([6, 7], pa.int64()),
            "amount": pa.array([1.0, 2.0]),
        }), mode="append")
        assert scalar(cur, "SELECT count(*) FROM ledger") == 6
        assert scalar(other, "SELECT count(*) FROM ledger") == 4
        cur.execute("ROLLBACK")
        assert scalar(other, "SELECT count(*) FROM ledger") == 4

        # A failed statement aborts the transaction until ROLLBACK.
        cur.execute("BEGIN")
        cur.execute("INSERT INTO ledger VALUES (5, 5, 50.0)")
        with pytest.raises(Exception, match="not-null"):
            cur.execute("INSERT INTO ledger VALUES (NULL, 6, 1.0)")
        with pytest.raises(Exception, match="current transaction is aborted"):
            cur.execute("SELECT 1")
            cur.fetchall()
        cur.execute("ROLLBACK")
        assert scalar(other, "SELECT count(*) FROM ledger") == 4

        # A text of several statements is one transaction: all or nothing.
        with pytest.raises(Exception, match="not-null"):
            other.execute("INSERT INTO ledger VALUES (7, 7, 1.0); "
                          "INSERT INTO ledger VALUES (8, NULL, 1.0)")
        assert scalar(other, "SELECT count(*) FROM ledger") == 4

