"""Limits, cancellation and session options through ADBC (adbc-driver-flightsql from PyPI),
as issue 13 asks: `adbc_cancel` stops a running query within a second, `statement_timeout`
set as a Flight session option (or with SET) ends a runaway query with a clear error, and a
server started with `--max-running-statements` queues and refuses as documented.
"""

import json
import os
import threading
import time

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight
import pytest

from conftest import free_port, wait_for_port

# A query that keeps both workers busy for minutes: every row meets a tenth of the others.
BUSY = "SELECT count(*) FROM big a JOIN big b ON a.v = b.v"
RUNAWAY = "SELECT sum(value) FROM generate_series(1, 1000000000000)"


def with_sessions(url):
    """A connection whose client keeps the session cookie (ADBC's cookie middleware)."""
    return flight.connect(
        url,
        db_kwargs={adbc_driver_flightsql.DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true"},
    )


def running_statements(conn, like):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM shardfusion_stat_activity "
            f"WHERE query LIKE '%{like}%' AND query NOT LIKE '%shardfusion_stat_activity%'"
        )
        return cur.fetchone()[0]


def wait_until(condition, what, timeout=30.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_adbc_cancel_stops_a_running_query(local_cluster):
    with flight.connect(local_cluster) as conn, flight.connect(local_cluster) as watcher:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE big (k BIGINT NOT NULL, v BIGINT NOT NULL)")
            cur.execute("INSERT INTO big SELECT value, value % 10 FROM generate_series(1, 60000)")
            cur.execute("SELECT create_distributed_table('big', 'k')")

        cur = conn.cursor()
        outcome = {}

        def run():
            try:
                cur.execute(BUSY)
                outcome["rows"] = cur.fetchall()
            except Exception as error:  # the driver's cancellation error
                outcome["error"] = error

        thread = threading.Thread(target=run)
        thread.start()
        wait_until(lambda: running_statements(watcher, "JOIN big b") == 1, "the query runs")
        cancelled = time.time()
        cur.adbc_cancel()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the cancelled query returned"
        assert "error" in outcome, f"the query was not cancelled: {outcome}"
        assert "cancel" in str(outcome["error"]).lower(), outcome["error"]
        wait_until(lambda: running_statements(watcher, "JOIN big b") == 0,
                   "the coordinator forgets the query", timeout=5)
        took = time.time() - cancelled
        assert took < 1.0, f"the query stopped {took:.2f}s after adbc_cancel"
        cur.close()

        # The server goes on serving.
        with conn.cursor() as other:
            other.execute("SELECT count(*) FROM big")
            assert other.fetchone()[0] == 60000


def test_statement_timeout_as_a_session_option_and_with_set(local_cluster):
    with with_sessions(local_cluster) as conn:
        conn.adbc_connection.set_options(
            **{"adbc.flight.sql.session.option.statement_timeout": "1s"}
        )
        options = json.loads(conn.adbc_connection.get_option("adbc.flight.sql.session.options"))
        assert options["statement_timeout"] == "1s", options
        with conn.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone()[0] == "1s"
            started = time.time()
            with pytest.raises(Exception, match="statement timeout"):
                cur.execute(RUNAWAY)
                cur.fetchall()
            assert time.time() - started < 10
            # SET lasts for the session, as in PostgreSQL.
            cur.execute("SET statement_timeout = '2min'")
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone()[0] == "120s"
            cur.execute("SELECT count(*) FROM generate_series(1, 100000)")
            assert cur.fetchone()[0] == 100000

    # Another connection has a session of its own.
    with with_sessions(local_cluster) as conn, conn.cursor() as cur:
        cur.execute("SHOW statement_timeout")
        assert cur.fetchone()[0] == "0"


def test_memory_limit_is_a_session_setting(local_cluster):
    with with_sessions(local_cluster) as conn, conn.cursor() as cur:
        cur.execute("SET datafusion.runtime.memory_limit = '1M'")
        with pytest.raises(Exception, match="(?i)resources exhausted|memory"):
            cur.execute("SELECT array_length(array_agg(value), 1) FROM generate_series(1, 2000000)")
            cur.fetchall()
        cur.execute("RESET datafusion.runtime.memory_limit")
        cur.execute("SELECT array_length(array_agg(value), 1) FROM generate_series(1, 2000000)")
        assert cur.fetchone()[0] == 2000000


def test_a_full_statement_queue_refuses(processes, tmp_path):
    port = free_port()
    processes.start("local", "--workers", "1", "--listen", f"127.0.0.1:{port}",
                    "--data-dir", str(tmp_path / "cluster"),
                    "--max-running-statements", "1", "--max-queued-statements", "0",
                    log=tmp_path / "local.log")
    wait_for_port(port)
    url = f"grpc://127.0.0.1:{port}"
    with flight.connect(url) as busy, flight.connect(url) as other:
        cur = busy.cursor()
        # The runaway and a probe race for the one slot: when a probe holds it, the runaway is
        # the one refused, so it is started again until it holds the slot.
        outcome = {}
        thread = _start_runaway(cur, outcome)
        refused = None
        deadline = time.time() + 60
        while refused is None and time.time() < deadline:
            if not thread.is_alive():
                assert "too many statements" in str(outcome.get("error")), outcome
                thread = _start_runaway(cur, outcome)
            time.sleep(0.2)
            try:
                with other.cursor() as probe:
                    probe.execute("SELECT 1")
                    probe.fetchall()
            except Exception as error:
                refused = error
        assert refused is not None, "the second statement was never refused"
        assert "too many statements" in str(refused), refused
        assert thread.is_alive(), outcome
        cur.adbc_cancel()
        thread.join(timeout=30)
        assert not thread.is_alive()
        cur.close()
        with other.cursor() as probe:
            wait_until(lambda: _answers(probe), "the slot is free again")


def _start_runaway(cur, outcome):
    def run():
        try:
            cur.execute(RUNAWAY)
            cur.fetchall()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _answers(cur):
    try:
        cur.execute("SELECT 1")
        return cur.fetchone()[0] == 1
    except Exception:
        return False


def _cpu_seconds(pid):
    """User + system CPU time of process `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_timed_out_join_stops_burning_cpu(processes, local_cluster):
    """A three-way join whose probe rows each meet ~30,000 rows emits many batches per input
    batch; before joins yielded, the workers' tasks ran on after the statement timed out."""
    pid = processes.procs[-1].pid
    with flight.connect(local_cluster) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (k BIGINT NOT NULL, v BIGINT NOT NULL)")
        cur.execute("INSERT INTO t SELECT value, value % 10 FROM generate_series(1, 300000)")
        cur.execute("SELECT create_distributed_table('t', 'k', shard_count => 32)")
        with pytest.raises(Exception, match="statement timeout"):
            cur.execute("SET statement_timeout = '2s'; "
                        "SELECT count(*) FROM t a JOIN t b ON a.v = b.v JOIN t c ON b.v = c.v")
            cur.fetchall()
    time.sleep(1.0)
    before = _cpu_seconds(pid)
    time.sleep(3.0)
    burned = _cpu_seconds(pid) - before
    assert burned < 0.5, f"the cluster used {burned:.2f} s of CPU in the 3 s after the timeout"
