"""Migration 0026 builds the search-query index of the partitioned events table without
blocking event writes, and a run that was interrupted is finished by running it again."""

import datetime as dt
import importlib
import threading
import time

import pytest
from django.apps import apps
from django.db import IntegrityError, connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from recommendations.events import partitions
from recommendations.events.tracking import track
from recommendations.models import Event

pytestmark = pytest.mark.django_db(transaction=True)
APP, NAME = "recommendations", "0026_event_query_trigram_index"
INDEX = "rec_event_query_trgm"
TABLE = Event._meta.db_table


def apply_migration():
    """Run 0026's database operations on this thread's connection, as `migrate` does."""
    loader = MigrationLoader(connection)
    migration = loader.get_migration(APP, NAME)
    state = loader.project_state((APP, NAME), at_end=False)
    with connection.schema_editor(atomic=migration.atomic) as editor:
        migration.apply(state, editor)


@pytest.fixture
def without_index():
    """The events table as before 0026; the index is rebuilt afterwards for the next tests."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")
    apply_migration()


def partition_names():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", [TABLE]
        )
        return {name for (name,) in cursor.fetchall()}


def index_state():
    """Whether the events index is valid (None: there is none), and each partition's index
    attached to it: {partition: (index oid, valid)}."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [INDEX])
        parent = cursor.fetchone()
        cursor.execute(
            "SELECT i.indrelid::regclass::text, i.indexrelid, i.indisvalid FROM pg_index i "
            "JOIN pg_inherits a ON a.inhrelid = i.indexrelid WHERE a.inhparent = to_regclass(%s)",
            [INDEX],
        )
        attached = {table: (oid, valid) for table, oid, valid in cursor.fetchall()}
    return (parent[0] if parent else None), attached


def assert_built():
    valid, attached = index_state()
    assert valid is True
    assert attached.keys() == partition_names()
    assert all(valid for _, valid in attached.values())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid "
            "AND indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)",
            [TABLE],
        )
        assert cursor.fetchall() == []  # no half-built index left behind


def fill_search_events(count):
    """`count` searches of this month, written straight in SQL: enough rows that building
    their index takes a while (about 0.4 s for 100,000)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (event_id, event_type, session_id, product_id, store_id, query, "
            "context, recommendation_id, timestamp, created_at) "
            "SELECT 'fill-' || n, 'search', '', '', '', 'red mug ' || n, '{}', '', now(), now() "
            "FROM generate_series(1, %s) n",
            [count],
        )


class Migrating(threading.Thread):
    """Applies 0026 on a connection of its own; `pid` is that connection's server process."""

    def __init__(self):
        super().__init__()
        self.pid, self.error = None, None
        self.connected = threading.Event()

    def run(self):
        try:
            connection.ensure_connection()
            self.pid = connection.connection.info.backend_pid
            self.connected.set()
            apply_migration()
        except Exception as error:  # reported by the test
            self.error = error
        finally:
            self.connected.set()
            connection.close()

    def building(self):
        """Whether it is running a CREATE INDEX now."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s "
                "AND state = 'active' AND query LIKE 'CREATE INDEX%%')",
                [self.pid],
            )
            return cursor.fetchone()[0]


def test_events_are_written_while_the_migration_builds_the_index(without_index):
    # A plain CREATE INDEX held a SHARE lock on every partition until the migration committed:
    # this write waited for the whole build, and the lock timeout ends the wait with an error.
    fill_search_events(100_000)
    migrating = Migrating()
    migrating.start()
    try:
        assert migrating.connected.wait(10)
        deadline = time.monotonic() + 60
        while not migrating.building():
            assert migrating.is_alive() and time.monotonic() < deadline, "the build was never seen running"
            time.sleep(0.001)
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
    assert_built()
    assert Event.objects.filter(event_id=written).exists()


def test_a_rerun_finishes_an_interrupted_build_and_later_partitions_get_the_index(without_index):
    migration = importlib.import_module(f"recommendations.migrations.{NAME}")
    this_month = partitions.partition_name(partitions.month_of(timezone.now()))
    default = partitions.default_partition()
    with connection.schema_editor(atomic=False) as editor, connection.cursor() as cursor:
        # A run interrupted while building this month's index: the events index and DEFAULT's
        # are made, and this month's is left invalid (here by a unique build that fails).
        cursor.execute(migration._create_sql(Event, editor, f"ONLY {TABLE}", INDEX))
        cursor.execute(migration._create_sql(Event, editor, default, f"{default}_upper_idx"))
        cursor.execute(f"ALTER INDEX {INDEX} ATTACH PARTITION {default}_upper_idx")
        track(None, "search", query="mug")
        track(None, "search", query="cup")
        with pytest.raises(IntegrityError, match="could not create unique index"):
            cursor.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY {this_month}_upper_idx ON {this_month} (event_type)"
            )
        assert index_state()[0] is False  # not used by queries until every partition has its index

        migration.build_index(apps, editor)
        assert_built()
        built = index_state()
        migration.build_index(apps, editor)  # nothing left to do
        assert index_state() == built

    month = dt.date(2041, 1, 1)  # one made later, as the daily task and importers make them
    assert partitions.ensure_partitions([month]) == [month]
    try:
        assert_built()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {partitions.partition_name(month)}")
