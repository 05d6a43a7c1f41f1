"""Errors are exceptions of the right class, with messages a person can act on."""

import socket

import pytest

import shardfusion


def test_hierarchy():
    for cls in (shardfusion.ProgrammingError, shardfusion.OperationalError, shardfusion.IntegrityError):
        assert issubclass(cls, shardfusion.Error)
    assert issubclass(shardfusion.Error, Exception)


def test_bad_sql_is_a_programming_error(session):
    with pytest.raises(shardfusion.ProgrammingError) as raised:
        session.sql("SELEC 1")
    assert raised.value.grpc_code == "InvalidArgument"
    with pytest.raises(shardfusion.ProgrammingError, match="no_such_table"):
        session.sql("SELECT * FROM no_such_table")
    # The session keeps working.
    assert session.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]


def test_duplicate_table_is_a_programming_error(session, table_name):
    session.sql(f"CREATE TABLE {table_name} (a INT)").to_arrow()
    with pytest.raises(shardfusion.ProgrammingError, match="already exists"):
        session.sql(f"CREATE TABLE {table_name} (a INT)").to_arrow()


def test_bad_cast_is_an_integrity_error(session):
    with pytest.raises(shardfusion.IntegrityError):
        session.sql("SELECT CAST('twelve' AS INT)").to_arrow()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_an_operational_error():
    with pytest.raises(shardfusion.OperationalError, match="cannot connect"):
        shardfusion.connect(f"grpc://127.0.0.1:{free_port()}")


def test_bad_url_is_a_programming_error():
    with pytest.raises(shardfusion.ProgrammingError, match="grpc://"):
        shardfusion.connect("postgres://localhost:5432")


def test_closed_session(cluster):
    session = cluster.connect()
    session.close()
    with pytest.raises(shardfusion.OperationalError, match="closed"):
        session.sql("SELECT 1")
