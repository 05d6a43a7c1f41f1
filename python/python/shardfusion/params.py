"""Query parameters: placeholders in SQL text replaced by safely quoted SQL literals.

Positional parameters (a list or tuple) fill ``$1``, ``$2``, ... or ``?`` in order; named ones (a
dict) fill ``$name``. Placeholders inside string literals, quoted identifiers and comments are
left alone. Values become literals of their SQL type: ``None`` → ``NULL``, ``bool``, ``int``,
``float``, ``Decimal``, ``str`` (quotes doubled), ``bytes``, ``date``, ``datetime``, ``time``.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
from typing import Any, Mapping, Sequence, Union

Params = Union[Sequence[Any], Mapping[str, Any]]

_NUMBERED = re.compile(r"\$(\d+)")
_NAMED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def bind(sql: str, params: Params) -> str:
    """``sql`` with every placeholder replaced by the literal of its parameter."""
    named = isinstance(params, Mapping)
    if not named and isinstance(params, (str, bytes)):
        raise TypeError("params must be a list, a tuple or a dict, not a single string")
    values = params if named else list(params)
    used = set()
    next_question_mark = 0
    out = []
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            end = _closing_quote(sql, i)
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = len(sql) if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
        elif ch == "?" and not named:
            if next_question_mark >= len(values):
                raise IndexError(f"the query has more ? placeholders than the {len(values)} params")
            out.append(literal(values[next_question_mark]))
            used.add(next_question_mark)
            next_question_mark += 1
            i += 1
        elif ch == "$":
            match = (_NAMED if named else _NUMBERED).match(sql, i)
            if match is None:
                out.append(ch)
                i += 1
                continue
            key = match.group(1)
            if named:
                if key not in values:
                    raise KeyError(f"no value for parameter ${key}")
                out.append(literal(values[key]))
                used.add(key)
            else:
                index = int(key) - 1
                if not 0 <= index < len(values):
                    raise IndexError(f"${key} has no value: {len(values)} params were given")
                out.append(literal(values[index]))
                used.add(index)
            i = match.end()
        else:
            out.append(ch)
            i += 1
    unused = (set(values) if named else set(range(len(values)))) - used
    if unused:
        names = sorted(f"${k}" if named else f"${k + 1}" for k in unused)
        raise ValueError(f"params not used by the query: {', '.join(names)}")
    return "".join(out)


def _closing_quote(sql: str, start: int) -> int:
    """The index just past the quoted text starting at ``start`` (doubled quotes escape)."""
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        if sql[i] == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)


def literal(value: Any) -> str:
    """The SQL literal for ``value``."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "CAST('NaN' AS DOUBLE)"
        if math.isinf(value):
            return "CAST('Infinity' AS DOUBLE)" if value > 0 else "CAST('-Infinity' AS DOUBLE)"
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be a SQL decimal")
        sign, digits, exponent = value.as_tuple()
        scale = max(0, -exponent)
        precision = min(38, max(len(digits), scale + 1))
        return f"CAST('{value}' AS DECIMAL({precision}, {scale}))"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "X'" + bytes(value).hex() + "'"
    if isinstance(value, datetime.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, datetime.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, datetime.time):
        return f"TIME '{value.isoformat()}'"
    raise TypeError(f"cannot pass a {type(value).__name__} as a query parameter")
