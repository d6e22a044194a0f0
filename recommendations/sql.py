"""Parameters for the SQL that serving writes by hand (`= ANY(%s)` over a list of keys)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def array_literal(values: Iterable[Any]) -> str:
    """`values` as one PostgreSQL array literal, `{"1","2"}`, for `column = ANY(%s)`.

    psycopg adapts a Python list element by element in Python code: for the keys a request
    sends (a few dozen to a few hundred) that was about 5% of a web worker's CPU
    (docs/benchmarks.md). A string goes through as it is and PostgreSQL casts it to the
    column's array type. Every element is quoted, so any key (digits, UUIDs, text with commas,
    braces or quotes) reads back exactly.
    """
    quoted = ('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"
