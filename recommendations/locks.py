"""Cluster-wide locks for the training pipeline, held as PostgreSQL advisory locks.

Workers on several machines share only the database, so the database holds the lock. It is
a transaction-level lock (`pg_try_advisory_xact_lock`) taken in a transaction of its own, on
a connection of its own, which stays open while the work runs and is rolled back when it ends.
A transaction, unlike a session, is something every connection pooler keeps to one client:
PgBouncer in transaction mode pins a server connection to its client until the transaction
ends, so the lock cannot be inherited by another client and is gone the moment the block
ends. (A session lock stayed on PgBouncer's pooled server connection after `close()`, where
the next client that got that connection held it too.) It is also released when the worker
dies: the server, or the pooler, ends a dead client's transaction, so a SIGKILLed retrain never
leaves the pipeline locked.

The holder's transaction is idle for as long as the work runs. It turns off PostgreSQL's
`idle_in_transaction_session_timeout` and `transaction_timeout` for itself (SET LOCAL), so a
role's default cannot end it mid-retrain; a pooler's own limit (PgBouncer's
`idle_transaction_timeout`) must be off or longer than a retrain (README, "Production").

`transaction_lock` takes a lock inside the caller's own transaction instead, for a short
critical section that must commit together with the lock (activating a model version). Both
use `lock_key`, so `is_locked` sees either.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.transaction import TransactionManagementError

logger = logging.getLogger(__name__)

PIPELINE_LOCK = "recommendations.pipeline"
# Limits that would end the holder's idle transaction, and with it the lock, mid-run.
_TIMEOUTS = ("idle_in_transaction_session_timeout", "transaction_timeout")
_TRANSACTION_TIMEOUT_SINCE = 170000  # PostgreSQL 17 added transaction_timeout
WAIT_INTERVAL = 0.25  # seconds between tries of a waiting lock


def lock_key(name: str) -> int:
    """A stable 32-bit key for an advisory lock name."""
    return zlib.crc32(name.encode("utf-8"))


@contextmanager
def advisory_lock(name: str = PIPELINE_LOCK, using: str = "default", *, wait: bool = False) -> Iterator[bool]:
    """Take the named lock for the length of the block; yields whether it was acquired.

    Without `wait` it does not queue: the caller decides what to do when another holder has
    it (a second retrain exits with a logged reason rather than queueing behind a run that may
    take an hour). With `wait` it tries again every `WAIT_INTERVAL` seconds until the holder
    lets go, and yields True (for work that must not run twice at once, such as building one
    version's indexes). It polls rather than block in `pg_advisory_xact_lock`: a statement
    that waits keeps a snapshot, and the holder's `CREATE INDEX CONCURRENTLY` waits for every
    older snapshot to end, a deadlock PostgreSQL cannot see.
    """
    holder = connections.create_connection(using)
    try:
        holder.set_autocommit(False)  # the first statement opens the transaction that holds it
        _hold_no_snapshot(holder)
        with holder.cursor() as cursor:
            for setting in _TIMEOUTS:
                if setting != "transaction_timeout" or holder.pg_version >= _TRANSACTION_TIMEOUT_SINCE:
                    cursor.execute(f"SELECT set_config('{setting}', '0', true)")
            while True:
                cursor.execute(f"SELECT pg_try_advisory_xact_lock({int(lock_key(name))})")
                acquired = cursor.fetchone()[0]
                if acquired or not wait:
                    break
                time.sleep(WAIT_INTERVAL)
        yield acquired
    finally:
        _release(holder, name)


def transaction_lock(name: str, using: str = "default") -> None:
    """Take the named lock in the caller's transaction: it is released when that transaction
    commits or rolls back. Waits for another holder, polling as `advisory_lock` does (a
    statement that waits keeps a snapshot a concurrent index build would wait for)."""
    connection = connections[using]
    if not connection.in_atomic_block:
        raise TransactionManagementError(
            f"transaction_lock({name!r}) holds its lock until the transaction ends; call it inside "
            "transaction.atomic() (outside one, autocommit would release it at once)."
        )
    with connection.cursor() as cursor:
        while True:
            cursor.execute(f"SELECT pg_try_advisory_xact_lock({int(lock_key(name))})")
            if cursor.fetchone()[0]:
                return
            time.sleep(WAIT_INTERVAL)


def _hold_no_snapshot(holder: BaseDatabaseWrapper) -> None:
    """Keep the holder's idle transaction from pinning a snapshot (`backend_xmin`).

    A `CREATE INDEX CONCURRENTLY`, such as the retrain's own index builds, waits for every
    transaction that has a snapshot to end: a lock holder with one would make it wait for the
    lock, which waits for the build. A statement run with bound parameters, or prepared,
    leaves its unnamed portal, and the portal's snapshot, open until the transaction ends, so
    the holder sends only literal statements (the simple protocol) and never prepares them.
    """
    raw = holder.connection
    if hasattr(raw, "prepare_threshold"):  # psycopg 3; psycopg2 never prepares
        raw.prepare_threshold = None


def _release(holder: BaseDatabaseWrapper, name: str) -> None:
    """End the holder's transaction (which releases the lock), then its connection.

    Never raises: when the database went away the transaction, and the lock, went with it.
    """
    try:
        if holder.connection is not None:
            holder.rollback()
    except DatabaseError as exc:
        logger.warning("Releasing lock %s: %s (the database ended its transaction already)", name, exc)
    finally:
        with suppress(DatabaseError):  # a connection the server dropped has nothing to close
            holder.close()


def is_locked(name: str = PIPELINE_LOCK, using: str = "default") -> bool:
    """Whether some session holds the named lock now (for the admin and tests)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND "
            "granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            [lock_key(name)],
        )
        return cursor.fetchone()[0]
