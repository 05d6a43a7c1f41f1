"""Server-side COPY reaches the coordinator host's files only under granted directories.

Regression tests for issue 10 #1: `COPY t FROM '/etc/passwd'` returned the file to any client,
and `COPY (...) TO '/tmp/x.csv'` wrote a file with the client's content.
"""

import os

import adbc_driver_flightsql.dbapi as flight
import adbc_driver_manager
import pytest

from conftest import free_port, wait_for_port


def start_coordinator(processes, tmp_path, *grants):
    port = free_port()
    args = ["coordinator", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "coordinator")]
    for grant in grants:
        args += ["--allow-file-access", str(grant)]
    processes.start(*args, env={"SHARDFUSION_CLUSTER_SECRET": "pytest-secret"},
                    log=tmp_path / "coordinator.log")
    wait_for_port(port)
    return f"grpc://127.0.0.1:{port}"


def refused(cur, sql):
    """Runs `sql`, which must fail as PermissionDenied; returns the message."""
    with pytest.raises(adbc_driver_manager.Error) as info:
        cur.execute(sql)
        cur.fetchall()
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED, info.value
    return str(info.value)


def test_no_host_files_without_a_grant(processes, tmp_path):
    url = start_coordinator(processes, tmp_path)
    target = tmp_path / "written-by-a-client.csv"
    with flight.connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE lines (line TEXT)")
        for path in ["/etc/passwd", "/etc/shadow", str(tmp_path / "coordinator" / "catalog.db")]:
            message = refused(cur, f"COPY lines FROM '{path}' WITH (FORMAT text)")
            assert "--allow-file-access" in message
        message = refused(cur, f"COPY (SELECT 'owned' AS x) TO '{target}' STORED AS CSV")
        assert "--allow-file-access" in message
        refused(cur, f"COPY (SELECT 'owned' AS x) TO 'file://{target}' STORED AS CSV")
        refused(cur, f"COPY lines TO '{target}' WITH (FORMAT csv)")
        assert not target.exists()
        # Nothing was read, and the server keeps serving.
        cur.execute("SELECT count(*) FROM lines")
        assert cur.fetchone()[0] == 0
        # Client-side ingest always works.
        import pyarrow as pa
        cur.adbc_ingest("lines", pa.table({"line": ["from the client"]}), mode="append")
        cur.execute("SELECT line FROM lines")
        assert cur.fetchall() == [("from the client",)]


def test_only_inside_granted_directories(processes, tmp_path):
    granted = tmp_path / "granted"
    outside = tmp_path / "outside"
    granted.mkdir()
    outside.mkdir()
    (granted / "ok.csv").write_text("alpha\nbeta\n")
    (outside / "private.csv").write_text("secret\n")
    os.symlink(outside / "private.csv", granted / "link.csv")
    os.symlink(outside, granted / "escape")
    url = start_coordinator(processes, tmp_path, granted)
    with flight.connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE lines (line TEXT)")
        cur.execute(f"COPY lines FROM '{granted / 'ok.csv'}' WITH (FORMAT csv)")
        assert cur.fetchall() == [(2,)]
        for path in [outside / "private.csv", granted / "link.csv", granted / "escape" / "private.csv",
                     f"{granted}/../outside/private.csv", "/etc/passwd"]:
            refused(cur, f"COPY lines FROM '{path}' WITH (FORMAT csv)")
        cur.execute("SELECT line FROM lines ORDER BY line")
        assert cur.fetchall() == [("alpha",), ("beta",)]

        cur.execute(f"COPY (SELECT line FROM lines ORDER BY line) TO '{granted / 'out.csv'}' STORED AS CSV")
        cur.fetchall()
        assert (granted / "out.csv").read_text().splitlines() == ["line", "alpha", "beta"]
        for path in [outside / "x.csv", granted / "escape" / "x.csv", granted / "link.csv"]:
            refused(cur, f"COPY (SELECT 'owned' AS x) TO '{path}' STORED AS CSV")
        assert not (outside / "x.csv").exists()
        assert (outside / "private.csv").read_text() == "secret\n"
