"""Helpers for the SQL the app writes by hand: key lists as one parameter, and the raw
psycopg connection under Django's for the bulk paths (COPY, binary parameters, pipelines)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from django.db.backends.base.base import BaseDatabaseWrapper


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


def raw_connection(connection: BaseDatabaseWrapper) -> psycopg.Connection:
    """The psycopg connection under Django's `connection`, checked as Django's own cursors are.

    `ensure_connection()` alone skips the health check (`CONN_HEALTH_CHECKS`) that
    `connection.cursor()` runs once per request: after a database restart, a thread whose
    first statement used the raw connection kept the dropped one and failed every request.
    """
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    return connection.connection
