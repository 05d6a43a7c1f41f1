"""`Result`: the answer to one statement, arriving as a stream of Arrow record batches."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Iterator, List, Optional

import pyarrow as pa

from shardfusion._native import Error, NativeStream

if TYPE_CHECKING:
    import pandas
    import polars

    from shardfusion.session import Session

#: Rows shown by a result's text and HTML previews.
PREVIEW_ROWS = 10


class Result:
    """The result of :meth:`Session.sql`.

    Rows stay on the server until they are read. Read them once, as a stream — iterate over
    ``pyarrow.RecordBatch`` objects, or hand the result to anything that takes the Arrow C
    stream interface (``pyarrow.table(result)``, ``polars.DataFrame(result)``, DuckDB) — or
    materialize them with :meth:`to_arrow` (also :meth:`to_pandas`, :meth:`to_pylist`,
    :meth:`to_polars`), which keeps the table so it can be read again.
    """

    def __init__(self, session: "Session", query: str, stream: NativeStream) -> None:
        self._session = session
        self._query = query
        self._stream: Optional[NativeStream] = stream
        self._table: Optional[pa.Table] = None

    @property
    def schema(self) -> pa.Schema:
        """The result's Arrow schema (known before any row is read)."""
        if self._table is not None:
            return self._table.schema
        return self._native().schema

    @property
    def query(self) -> str:
        return self._query

    def _native(self) -> NativeStream:
        if self._stream is None:
            raise Error("this result has already been read as a stream; run the query again")
        return self._stream

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        """The record batches, as they arrive. Ctrl-C stops reading and cancels the query."""
        if self._table is not None:
            yield from self._table.to_batches()
            return
        stream = self._native()
        self._stream = None
        while True:
            batch = stream.next_batch()
            if batch is None:
                return
            yield batch

    def __arrow_c_stream__(self, requested_schema: Optional[object] = None) -> object:
        """The Arrow PyCapsule stream interface: batches are handed over without copying, and
        fetched from the server only as the consumer reads them."""
        if self._table is not None:
            return self._table.__arrow_c_stream__(requested_schema)
        reader = self._native().to_reader()
        self._stream = None
        return reader.__arrow_c_stream__(requested_schema)

    def to_arrow(self) -> pa.Table:
        """All rows as a ``pyarrow.Table`` (kept, so later calls return the same table)."""
        if self._table is None:
            schema = self.schema
            batches: List[pa.RecordBatch] = list(iter(self))
            self._table = pa.Table.from_batches(batches, schema=schema)
        return self._table

    def to_pandas(self, **kwargs: Any) -> "pandas.DataFrame":
        """All rows as a pandas DataFrame; ``kwargs`` go to ``pyarrow.Table.to_pandas``."""
        return self.to_arrow().to_pandas(**kwargs)

    def to_pylist(self) -> List[dict]:
        """All rows as a list of ``{column: value}`` dictionaries."""
        return self.to_arrow().to_pylist()

    def to_polars(self) -> "polars.DataFrame":
        """All rows as a polars DataFrame (needs ``polars`` installed)."""
        try:
            import polars
        except ImportError as e:
            raise ImportError(
                "to_polars() needs polars: pip install polars"
            ) from e
        return polars.from_arrow(self.to_arrow())

    def explain(self, analyze: bool = False) -> str:
        """The distributed plan of this query (``EXPLAIN``); with ``analyze=True`` the query runs
        again and the plan shows what each worker task sent and how long it took."""
        keyword = "EXPLAIN ANALYZE" if analyze else "EXPLAIN"
        table = self._session.sql(f"{keyword} {self._query}").to_arrow()
        rows = table.to_pylist()
        return "\n\n".join(f"{row['plan_type']}:\n{row['plan']}" for row in rows)

    @property
    def num_rows(self) -> int:
        """How many rows the result has (reads it all, see :meth:`to_arrow`)."""
        return self.to_arrow().num_rows

    def close(self) -> None:
        """Stops reading: the server stops computing the rest of the result."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _preview(self) -> Optional[pa.Table]:
        try:
            return self.to_arrow()
        except Error:
            return None

    def __repr__(self) -> str:
        table = self._preview()
        if table is None:
            return f"<shardfusion.Result (already read) {self._query!r}>"
        shown = table.slice(0, PREVIEW_ROWS).to_pandas() if _has_pandas() else None
        body = str(shown) if shown is not None else str(table.slice(0, PREVIEW_ROWS))
        return f"{body}\n({_count(table)})"

    def _repr_html_(self) -> str:
        table = self._preview()
        if table is None:
            return f"<pre>{html.escape(repr(self))}</pre>"
        head = "".join(f"<th>{html.escape(name)}</th>" for name in table.schema.names)
        rows = []
        for row in table.slice(0, PREVIEW_ROWS).to_pylist():
            cells = "".join(
                f"<td>{html.escape('NULL' if v is None else str(v))}</td>" for v in row.values()
            )
            rows.append(f"<tr>{cells}</tr>")
        more = table.num_rows - min(table.num_rows, PREVIEW_ROWS)
        footer = f"<p>{_count(table)}" + (f", {more} not shown" if more else "") + "</p>"
        return (
            "<table><thead><tr>"
            + head
            + "</tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
            + footer
        )


def _count(table: pa.Table) -> str:
    rows = table.num_rows
    columns = table.num_columns
    return f"{rows} row{'' if rows == 1 else 's'} × {columns} column{'' if columns == 1 else 's'}"


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True
