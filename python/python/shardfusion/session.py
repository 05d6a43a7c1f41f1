"""`Session`: a connection to a ShardFusion coordinator, and `connect`."""

from __future__ import annotations

from typing import Any, Optional

import pyarrow as pa

from shardfusion._native import NativeSession, ProgrammingError
from shardfusion.params import Params, bind, literal
from shardfusion.result import Result

DEFAULT_URL = "grpc://127.0.0.1:50050"


def connect(
    url: str = DEFAULT_URL, user: Optional[str] = None, password: Optional[str] = None
) -> "Session":
    """Connects to the coordinator at ``url`` (Flight SQL, ``grpc://host:port``)."""
    return Session(NativeSession(url, user, password))


class Session:
    """A connection to a coordinator. Statements run one at a time; each returns a
    :class:`Result`. Sessions hold no server-side state, so a closed one loses nothing."""

    def __init__(self, native: NativeSession) -> None:
        self._native = native

    @property
    def url(self) -> str:
        return self._native.url

    def sql(self, query: str, params: Optional[Params] = None) -> Result:
        """Runs one SQL statement — a query, DDL, DML, ``COPY`` or a Citus function such as
        ``create_distributed_table`` — and returns its result.

        ``params`` fill ``$1``/``?`` placeholders (a list or tuple) or ``$name`` ones (a
        dict) with properly quoted literals.
        """
        if params is not None:
            query = bind(query, params)
        return Result(self, query, self._native.execute(query))

    def execute(self, query: str, params: Optional[Params] = None) -> pa.Table:
        """Runs a statement and returns its whole result as a ``pyarrow.Table``."""
        return self.sql(query, params).to_arrow()

    def create_distributed_table(
        self,
        table: str,
        column: str,
        shard_count: Optional[int] = None,
        colocate_with: Optional[str] = None,
    ) -> None:
        """Citus's ``create_distributed_table``: hash-distributes ``table`` on ``column``
        (moving any rows it already has), optionally with ``shard_count`` shards and in the
        colocation group of ``colocate_with`` (or ``"none"`` for a new one)."""
        args = [literal(table), literal(column)]
        if shard_count is not None:
            args.append(f"shard_count => {int(shard_count)}")
        if colocate_with is not None:
            args.append(f"colocate_with => {literal(colocate_with)}")
        self.execute(f"SELECT create_distributed_table({', '.join(args)})")

    def create_reference_table(self, table: str) -> None:
        """Citus's ``create_reference_table``: replicates ``table`` to every worker."""
        self.execute(f"SELECT create_reference_table({literal(table)})")

    def ingest(self, table: str, data: Any, mode: str = "append") -> int:
        """Loads ``data`` into ``table`` and returns the number of rows loaded.

        ``data`` is anything that exports the Arrow C stream interface — a pyarrow ``Table``
        or ``RecordBatchReader``, a polars DataFrame — or a pandas DataFrame. ``mode`` is
        ``"append"`` (the table exists), ``"create"`` (create it from the data's schema) or
        ``"replace"`` (swap all rows at once). A load is all or nothing, and batches of any
        size load: each is sent as Flight messages of about 2 MiB.
        """
        return self._native.ingest(table, _arrow_stream(data), mode)

    def tables(self) -> pa.Table:
        """The distributed and reference tables (Citus's ``citus_tables`` view)."""
        return self.execute("SELECT * FROM citus_tables ORDER BY table_name")

    def shards(self, table: Optional[str] = None) -> pa.Table:
        """The shards of ``table`` (or of every table) and where they live (``citus_shards``)."""
        where = "" if table is None else f" WHERE table_name = {literal(table)}"
        return self.execute(f"SELECT * FROM citus_shards{where} ORDER BY table_name, shardid")

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session(url={self.url!r})"


def _arrow_stream(data: Any) -> Any:
    """``data`` as an object with ``__arrow_c_stream__``."""
    module = type(data).__module__
    if module.startswith("pandas"):
        # The index is not a column of the table.
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "to_arrow"):
        return data.to_arrow()
    raise ProgrammingError(
        f"cannot load a {type(data).__name__}: pass a pyarrow Table or RecordBatchReader, a "
        "pandas or polars DataFrame, or anything with __arrow_c_stream__"
    )
