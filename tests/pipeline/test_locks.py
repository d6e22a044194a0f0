"""The pipeline lock on the real database: one holder at a time, released exactly when the
block ends, including where a pooler keeps the server connection open after `close()`."""

import threading

import pytest
from django.db import connections, transaction
from django.db.transaction import TransactionManagementError

from recommendations import locks
from recommendations.locks import advisory_lock, is_locked, transaction_lock

pytestmark = pytest.mark.django_db

# Advisory locks are per database; another test run on the same server holds its own.
IN_THIS_DATABASE = " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"


def holder_state(name=locks.PIPELINE_LOCK):
    """The state (pg_stat_activity) of the backend that holds the lock, or None."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # the test's transaction keeps one
        cursor.execute(
            "SELECT a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted" + IN_THIS_DATABASE,
            [locks.lock_key(name)],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def test_a_second_holder_is_refused_and_the_lock_ends_with_the_block():
    with advisory_lock() as first:
        assert first and is_locked()
        with advisory_lock() as second:
            assert not second
        assert is_locked()  # the refused attempt released nothing
    assert not is_locked()
    with advisory_lock() as again:
        assert again
    assert not is_locked()


def test_the_lock_lives_in_a_transaction_not_a_session():
    """What PgBouncer's transaction mode keeps to one client: a transaction."""
    with advisory_lock() as acquired:
        assert acquired
        assert holder_state() == "idle in transaction"
    assert holder_state() is None


def test_the_holder_keeps_no_snapshot_that_a_concurrent_index_build_would_wait_for():
    """CREATE INDEX CONCURRENTLY waits for every transaction with a snapshot: a retrain's own
    index builds would wait forever for its lock holder."""
    for wait in (False, True):
        with advisory_lock(wait=wait) as acquired:
            assert acquired
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_stat_clear_snapshot()")  # the test's transaction keeps one
                cursor.execute(
                    "SELECT a.backend_xmin FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted" + IN_THIS_DATABASE,
                    [locks.lock_key(locks.PIPELINE_LOCK)],
                )
                assert cursor.fetchall() == [(None,)]


def test_the_lock_is_released_when_the_server_connection_outlives_close(monkeypatch):
    """PgBouncer in transaction mode: `close()` ends the client side only; the pooled server
    connection stays open and goes to the next client. The lock must not stay with it."""
    pooled = []
    create = connections.create_connection

    def pooled_connection(alias):
        wrapper = create(alias)
        pooled.append(wrapper)
        monkeypatch.setattr(wrapper, "close", lambda: None)  # the server session survives
        return wrapper

    monkeypatch.setattr(connections, "create_connection", pooled_connection)
    try:
        with advisory_lock() as acquired:
            assert acquired
        assert not is_locked()
        # The next client of that server connection is not handed the lock either.
        with advisory_lock() as again:
            assert again
            assert len(pooled) == 2
    finally:
        for wrapper in pooled:
            type(wrapper).close(wrapper)
    assert not is_locked()


def test_the_lock_is_released_when_the_block_raises():
    with pytest.raises(RuntimeError), advisory_lock() as acquired:
        assert acquired
        raise RuntimeError("the retrain failed")
    assert not is_locked()


def holder_pids(name: str) -> list[int]:
    """The backends that hold the lock now (pg_locks is live, not a snapshot)."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted",
            [locks.lock_key(name)],
        )
        return [pid for (pid,) in cursor.fetchall()]


def test_a_waiting_lock_blocks_until_the_holder_lets_go():
    name = "recommendations.test.waiting"
    got = []

    def second():
        try:
            with advisory_lock(name, wait=True) as acquired:
                got.append((acquired, holder_pids(name)))  # who holds it the moment it is ours
        finally:
            connections.close_all()

    with advisory_lock(name) as first:
        assert first
        [first_pid] = holder_pids(name)
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive() and not got  # waiting for us
    thread.join(10)
    [(acquired, pids)] = got
    # Only the waiter's own backend: it got the lock after the first holder's transaction ended.
    assert acquired and len(pids) == 1 and pids != [first_pid]
    assert not is_locked(name)


@pytest.mark.django_db(transaction=True)
def test_a_transaction_lock_is_seen_by_is_locked_and_ends_with_its_transaction():
    name = "recommendations.test.transaction"
    held, release = threading.Event(), threading.Event()

    def holder():
        try:
            with transaction.atomic():
                transaction_lock(name)
                held.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    assert is_locked(name)
    with advisory_lock(name) as other:  # one key scheme: the two kinds exclude each other
        assert not other
    release.set()
    thread.join(10)
    assert not is_locked(name)


@pytest.mark.django_db(transaction=True)
def test_a_transaction_lock_outside_a_transaction_is_refused():
    with pytest.raises(TransactionManagementError, match="inside transaction.atomic"):
        transaction_lock("recommendations.test.autocommit")
