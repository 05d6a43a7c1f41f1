"""Sequences and serial keys through ADBC: a connection that keeps its session cookie is one
session for currval and lastval, another connection has its own; defaults fill what INSERT and
bulk ingest leave out."""

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight
import pyarrow as pa
import pytest


def with_sessions(url):
    """A connection whose client keeps the session cookie (ADBC's cookie middleware)."""
    return flight.connect(
        url,
        db_kwargs={adbc_driver_flightsql.DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true"},
    )


def scalar(cur, sql):
    cur.execute(sql)
    return cur.fetchone()[0]


def test_serial_keys_and_session_values_through_adbc(local_cluster):
    with with_sessions(local_cluster) as first, first.cursor() as cur:
        cur.execute(
            "CREATE TABLE campaigns (id bigserial, company_id BIGINT NOT NULL, "
            "name TEXT NOT NULL, state TEXT DEFAULT 'draft')")
        cur.execute("SELECT create_distributed_table('campaigns', 'company_id', shard_count => 4)")
        cur.execute("INSERT INTO campaigns (company_id, name) VALUES (1, 'a'), (2, 'b')")
        # currval and lastval of this connection's session, across statements.
        assert scalar(cur, "SELECT currval('campaigns_id_seq')") == 2
        assert scalar(cur, "SELECT nextval('campaigns_id_seq')") == 3
        assert scalar(cur, "SELECT lastval()") == 3

        cur.adbc_ingest("campaigns", pa.table({
            "company_id": pa.array([3, 3, 4], pa.int64()),
            "name": ["c", "d", "e"],
        }), mode="append")
        first.commit()
        cur.execute("SELECT id, company_id, name, state FROM campaigns ORDER BY id")
        rows = cur.fetchall()
        assert [r[0] for r in rows] == [1, 2, 4, 5, 6]
        assert {r[3] for r in rows} == {"draft"}

        with with_sessions(local_cluster) as second, second.cursor() as other:
            # Another session has not called nextval: PostgreSQL's 55000.
            with pytest.raises(Exception, match="not yet defined in this session"):
                other.execute("SELECT currval('campaigns_id_seq')")
                other.fetchall()
            assert scalar(other, "SELECT nextval('campaigns_id_seq')") == 7
            # The first session still sees its own last value.
            assert scalar(cur, "SELECT currval('campaigns_id_seq')") == 3
