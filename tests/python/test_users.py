"""Users through ADBC, against `shardfusion local --password ...` (issue 13, Security).

ADBC logs in with its `username`/`password` options (the Flight SQL handshake) and sends the
bearer token it gets on every call. Without them, or with a wrong password, nothing runs; a
read-only user's writes are refused and change nothing.
"""

import adbc_driver_flightsql.dbapi as flight
import pyarrow as pa
import pytest

from conftest import free_port, wait_for_port

ADMIN_PASSWORD = "pytest admin password"


@pytest.fixture
def secured_cluster(processes, tmp_path):
    port = free_port()
    processes.start("local", "--workers", "2", "--listen", f"127.0.0.1:{port}",
                    "--data-dir", str(tmp_path / "cluster"),
                    env={"SHARDFUSION_PASSWORD": ADMIN_PASSWORD},
                    log=tmp_path / "local.log")
    wait_for_port(port)
    return f"grpc://127.0.0.1:{port}"


def connect(url, user=None, password=None):
    kwargs = {}
    if user is not None:
        kwargs["db_kwargs"] = {"username": user, "password": password}
    return flight.connect(url, **kwargs)


def scalar(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_logins_and_read_only_users(secured_cluster):
    url = secured_cluster
    # No credentials: every statement is refused.
    with connect(url) as anonymous:
        with pytest.raises(Exception, match="(?i)unauthenticated|log in"):
            scalar(anonymous, "SELECT 1")
    # A wrong password: the login fails.
    with pytest.raises(Exception, match="(?i)unauthenticated|password authentication failed"):
        with connect(url, "admin", "wrong") as conn:
            scalar(conn, "SELECT 1")

    with connect(url, "admin", ADMIN_PASSWORD) as admin:
        with admin.cursor() as cur:
            cur.execute("CREATE TABLE payments (account_id BIGINT NOT NULL, amount DOUBLE)")
            cur.execute("SELECT create_distributed_table('payments', 'account_id', shard_count => 4)")
            cur.execute("INSERT INTO payments VALUES (1, 10.5), (2, 20.0), (3, 30.25)")
            cur.execute("CREATE USER analyst WITH PASSWORD 'analyst-pw'")
            cur.execute("GRANT SELECT ON payments TO analyst")
        admin.commit()

        with connect(url, "analyst", "analyst-pw") as analyst:
            assert scalar(analyst, "SELECT sum(amount) FROM payments") == pytest.approx(60.75)
            for sql in [
                "INSERT INTO payments VALUES (4, 1.0)",
                "DROP TABLE payments",
                "CREATE TABLE mine (x BIGINT)",
                "COPY payments FROM '/etc/passwd'",
                "SELECT citus_add_node('127.0.0.1', 1)",
            ]:
                with pytest.raises(Exception, match="(?i)permission denied"):
                    scalar(analyst, sql)
            with analyst.cursor() as cur:
                table = pa.table({"account_id": [7, 8], "amount": [1.0, 2.0]})
                with pytest.raises(Exception, match="(?i)permission denied"):
                    cur.adbc_ingest("payments", table, mode="append")
            # Their own statements only.
            with analyst.cursor() as cur:
                cur.execute("SELECT DISTINCT usename FROM shardfusion_stat_statements")
                assert [r[0] for r in cur.fetchall()] == ["analyst"]

        # Nothing the analyst tried changed the table.
        assert scalar(admin, "SELECT count(*) FROM payments") == 3
        with admin.cursor() as cur:
            cur.execute("SELECT DISTINCT usename FROM shardfusion_stat_statements ORDER BY 1")
            assert [r[0] for r in cur.fetchall()] == ["admin", "analyst"]
