"""Waiting, in a test, until other connections are stuck where a race needs them."""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, connections, transaction

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


def run_behind_lock(
    fn: Callable[[], Any], holding: str, params: Sequence[Any] = (), lock: str | None = None, runs: int = 2
) -> tuple[list[Any], list[Exception]]:
    """Run `fn` in `runs` threads at once while another connection, in an open transaction,
    holds what the statement `holding` locks; let go once all of them wait (`wait_for_waiters`
    with `lock`), so they go on together. Returns what they returned, in the order they
    finished, and what they raised."""
    reader = connections.create_connection("default")
    reader.set_autocommit(False)
    results, errors = [], []

    def run():
        try:
            results.append(fn())
        except Exception as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(runs)]
    try:
        with reader.cursor() as cursor:
            cursor.execute(holding, params)
        for thread in threads:
            thread.start()
        wait_for_waiters(runs, lock)
    finally:
        reader.rollback()
        reader.close()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def run_behind_transaction(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Run `first` in a transaction that stays open until `second`, in another thread, has
    returned or waits for a lock; returns what each returned, once both did. Fails the test
    when either raised."""
    started, release, result, errors = threading.Event(), threading.Event(), {}, []

    def run_first():
        try:
            with transaction.atomic():
                result["first"] = first()
                started.set()
                release.wait(timeout=30)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            started.set()
        finally:
            connection.close()

    def run_second():
        try:
            started.wait(timeout=30)
            result["second"] = second()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while threads[1].is_alive() and time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.02)
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return result.get("first"), result.get("second")
