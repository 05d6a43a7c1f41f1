"""ShardFusion for Python: connect to a cluster (or start one in this process), run SQL, get
Arrow, pandas or polars back, and load data.

>>> import shardfusion
>>> with shardfusion.LocalCluster(workers=2) as cluster:
...     session = cluster.connect()
...     session.sql("SELECT 1 AS one").to_pylist()
[{'one': 1}]
"""

from shardfusion._native import (
    Error,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    __version__,
)
from shardfusion.local_cluster import LocalCluster
from shardfusion.result import Result
from shardfusion.session import Session, connect

__all__ = [
    "Error",
    "IntegrityError",
    "LocalCluster",
    "OperationalError",
    "ProgrammingError",
    "Result",
    "Session",
    "__version__",
    "connect",
]
