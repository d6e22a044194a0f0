"""Waiting, in a test, until other connections are stuck where a race needs them."""

import time

from django.db import connection

from recommendations.locks import lock_key


def wait_for_waiters(count: int, lock: str | None = None, timeout: float = 20.0) -> None:
    """Return once `count` other connections wait: on a row or table lock, or (with `lock`)
    polling that advisory lock, as `locks.transaction_lock` does (it sleeps between tries, so
    PostgreSQL does not show it waiting). Fails the test after `timeout` seconds."""
    polling = f"SELECT pg_try_advisory_xact_lock({lock_key(lock)})" if lock else None
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND (wait_event_type = 'Lock' "
                "OR (state = 'idle in transaction' AND query = %s))",
                [polling],
            )
            if cursor.fetchone()[0] >= count:
                return
            time.sleep(0.05)
    raise AssertionError(f"{count} connection(s) never waited (lock {lock!r})")
