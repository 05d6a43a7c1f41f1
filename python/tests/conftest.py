"""Fixtures: one in-process cluster for the whole test session, and a fresh session per test."""

import uuid

import pytest

import shardfusion


@pytest.fixture(scope="session")
def cluster():
    with shardfusion.LocalCluster(workers=2) as cluster:
        yield cluster


@pytest.fixture()
def session(cluster):
    with cluster.connect() as session:
        yield session


@pytest.fixture()
def table_name():
    """A table name no other test uses."""
    return f"t_{uuid.uuid4().hex[:12]}"
