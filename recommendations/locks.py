"""Cluster-wide locks for the training pipeline, held as PostgreSQL advisory locks.

Workers on several machines share only the database, so the database holds the lock. It is
a session lock on a connection of its own: it is released when the work ends, and also when
the worker dies (the server drops a dead client's session), so a SIGKILLed retrain never
leaves the pipeline locked.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

logger = logging.getLogger(__name__)

PIPELINE_LOCK = "recommendations.pipeline"


def lock_key(name: str) -> int:
    """A stable 32-bit key for an advisory lock name."""
    return zlib.crc32(name.encode("utf-8"))


@contextmanager
def advisory_lock(name: str = PIPELINE_LOCK, using: str = "default") -> Iterator[bool]:
    """Try to take the named lock without waiting; yields whether it was acquired.

    The caller decides what to do when another holder has it (a second retrain exits with a
    logged reason rather than queueing behind a run that may take an hour).
    """
    holder = connections.create_connection(using)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(name)])
            (acquired,) = cursor.fetchone()
        yield acquired
    finally:
        holder.close()  # closing the session releases the lock


def is_locked(name: str = PIPELINE_LOCK, using: str = "default") -> bool:
    """Whether some session holds the named lock now (for the admin and tests)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND "
            "granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            [lock_key(name)],
        )
        return cursor.fetchone()[0]
