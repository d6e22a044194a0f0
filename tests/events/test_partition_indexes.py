"""Migrations 0026 and 0027 add their indexes to the partitioned events table without blocking
event writes (`events.partition_indexes`), and a run that was interrupted is finished by
running it again."""

import datetime as dt
import threading
import time
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from recommendations.events import partitions
from recommendations.events.tracking import track
from recommendations.models import Event

pytestmark = pytest.mark.django_db(transaction=True)
APP = "recommendations"
TABLE = Event._meta.db_table
#: Each index, the migration that adds it, and how PostgreSQL names its copy on a partition
#: (`<partition>_<suffix>`): both index an upper(), so the second to take the name gets a 1.
MIGRATIONS = {
    "rec_event_query_trgm": ("0026_event_query_trigram_index", "upper_idx"),
    "rec_event_product_upper": ("0027_event_product_id_any_case_index", "upper_idx1"),
}


def apply_migration(index):
    """Run the database operations of `index`'s migration on this thread's connection, as
    `migrate` does."""
    name = MIGRATIONS[index][0]
    loader = MigrationLoader(connection)
    migration = loader.get_migration(APP, name)
    state = loader.project_state((APP, name), at_end=False)
    with connection.schema_editor(atomic=migration.atomic) as editor:
        migration.apply(state, editor)


@pytest.fixture(params=MIGRATIONS)
def index(request):
    """One of the indexes, dropped: the events table as before its migration, with the other
    index in place; it is built again afterwards for the next tests."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {request.param}")
    yield request.param
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {request.param}")
    apply_migration(request.param)


def this_month():
    return partitions.partition_name(partitions.month_of(timezone.now()))


@contextmanager
def writer_of_this_month():
    """Another session's transaction, left open, holding the lock that writing an event takes
    on this month's partition (ROW EXCLUSIVE, not on the table: that would hold up the
    migration's first step instead); yields its server process id."""
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        other.execute(f"LOCK TABLE {this_month()} IN ROW EXCLUSIVE MODE")
        yield other.info.backend_pid
    finally:
        other.close()


class Migrating(threading.Thread):
    """Applies `index`'s migration on a connection of its own; `pid` is that connection's
    server process."""

    def __init__(self, index):
        super().__init__()
        self.index, self.pid, self.error = index, None, None
        self.connected = threading.Event()

    def run(self):
        try:
            connection.ensure_connection()
            self.pid = connection.connection.info.backend_pid
            self.connected.set()
            apply_migration(self.index)
        except Exception as error:  # reported by the test
            self.error = error
        finally:
            self.connected.set()
            connection.close()

    def wait_for(self, writer):
        """Returns once the migration waits for the `writer` session's transaction."""
        assert self.connected.wait(10)
        deadline = time.monotonic() + 30
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [writer, self.pid])
                if cursor.fetchone()[0]:
                    return
                assert self.is_alive() and time.monotonic() < deadline, "the migration never waited"
                time.sleep(0.001)


def partition_names():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", [TABLE]
        )
        return {name for (name,) in cursor.fetchall()}


def index_state(index):
    """Whether `index` is valid (None: there is none), and each partition's index attached to
    it: {partition: (oid, name, valid)}."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [index])
        parent = cursor.fetchone()
        cursor.execute(
            "SELECT i.indrelid::regclass::text, i.indexrelid, i.indexrelid::regclass::text, i.indisvalid "
            "FROM pg_index i JOIN pg_inherits a ON a.inhrelid = i.indexrelid "
            "WHERE a.inhparent = to_regclass(%s)",
            [index],
        )
        attached = {table: (oid, name, valid) for table, oid, name, valid in cursor.fetchall()}
    return (parent[0] if parent else None), attached


def half_built():
    """The partitions' indexes that are not valid: left by an interrupted build."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid "
            "AND indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)",
            [TABLE],
        )
        return [name for (name,) in cursor.fetchall()]


def assert_built(index):
    """Valid, on every partition, each copy named as PostgreSQL names the ones it makes."""
    valid, attached = index_state(index)
    assert valid is True
    suffix = MIGRATIONS[index][1]
    assert {table: (name, valid) for table, (_, name, valid) in attached.items()} == {
        table: (f"{table}_{suffix}", True) for table in partition_names()
    }
    assert half_built() == []


def test_events_are_written_while_the_migration_builds_the_index(index):
    # A plain CREATE INDEX takes a SHARE lock on the table, then on each partition, and keeps
    # them until the migration commits: held up here by a transaction writing this month's
    # events, it held up every event write behind it (the lock timeout ends the wait with an
    # error). Now the build of this month's index waits for that transaction alone.
    migrating = Migrating(index)
    try:
        with writer_of_this_month() as writer:
            migrating.start()
            migrating.wait_for(writer)
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '100ms'")
            try:
                written = track(None, "search", query="red mug")
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("RESET lock_timeout")
    finally:
        migrating.join(60)
    assert not migrating.is_alive() and migrating.error is None
    assert_built(index)
    assert Event.objects.filter(event_id=written).exists()


def test_a_rerun_finishes_an_interrupted_build_and_later_partitions_get_the_index(index):
    default = partitions.default_partition()
    migrating = Migrating(index)
    try:
        with writer_of_this_month() as writer:
            migrating.start()
            migrating.wait_for(writer)
            with connection.cursor() as cursor:  # as a Ctrl-C or a lost connection would
                cursor.execute("SELECT pg_cancel_backend(%s)", [migrating.pid])
            migrating.join(60)
    finally:
        migrating.join(60)
    assert isinstance(migrating.error, OperationalError), migrating.error
    valid, attached = index_state(index)
    assert valid is False  # not used by queries until every partition has its index
    assert default in attached and this_month() not in attached
    assert half_built() == [f"{this_month()}_{MIGRATIONS[index][1]}"]

    apply_migration(index)
    assert_built(index)
    built = index_state(index)
    apply_migration(index)  # nothing left to do
    assert index_state(index) == built

    month = dt.date(2041, 1, 1)  # one made later, as the daily task and importers make them
    assert partitions.ensure_partitions([month]) == [month]
    try:
        valid, attached = index_state(index)
        assert valid is True and attached.keys() == partition_names()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {partitions.partition_name(month)}")
