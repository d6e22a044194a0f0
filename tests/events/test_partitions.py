"""The events table is partitioned by month; event ids stay unique through the key table."""

import datetime as dt
import importlib
import json
from types import SimpleNamespace

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from recommendations.events import partitions
from recommendations.events.importers import import_event_file
from recommendations.events.ingestion import copy_rows, ingest, insert_rows
from recommendations.events.rows import EventRow
from recommendations.events.validation import Origin
from recommendations.models import Event, EventKey
from tests.waiting import run_behind_lock

pytestmark = pytest.mark.django_db
TABLE = Event._meta.db_table


def row(event_id, when, **fields):
    values = dict.fromkeys(EventRow._fields, "")
    values.update(event_id=event_id, event_type="search", user_id=None, query="mug", value=None)
    values.update(revenue=None, timestamp=when, context={})
    return EventRow(**{**values, **fields})


def partition_of(event_id):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {TABLE} WHERE event_id = %s", [event_id])
        return [name for (name,) in cursor.fetchall()]


def test_the_table_is_partitioned_by_month_of_timestamp_with_a_default():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.partstrat, a.attname FROM pg_partitioned_table p "
            "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
            "WHERE p.partrelid = %s::regclass",
            [TABLE],
        )
        assert cursor.fetchall() == [("r", "timestamp")]
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            [TABLE],
        )
        assert cursor.fetchone()[0] == 'PRIMARY KEY (id, "timestamp")'
    assert partitions.is_partitioned()
    assert partitions.default_partition() == f"{TABLE}_default"
    # The migration made the current month and the next three.
    month = partitions.month_of(timezone.now())
    upcoming = partitions.months_between(month, month + dt.timedelta(days=95))
    assert set(upcoming[:4]) <= partitions.month_partitions().keys()


def test_partitions_are_named_and_bounded_by_utc_month():
    assert partitions.partition_name(dt.date(2019, 3, 1)) == f"{TABLE}_p2019_03"
    late_evening = dt.datetime(2019, 3, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert partitions.month_of(late_evening) == dt.date(2019, 4, 1)  # already April in UTC
    assert partitions.months_of([late_evening, dt.datetime(2019, 3, 2, tzinfo=dt.UTC)]) == {
        dt.date(2019, 3, 1),
        dt.date(2019, 4, 1),
    }
    assert partitions.months_between(dt.date(2019, 11, 20), dt.date(2020, 2, 1)) == [
        dt.date(2019, 11, 1),
        dt.date(2019, 12, 1),
        dt.date(2020, 1, 1),
        dt.date(2020, 2, 1),
    ]
    assert partitions.month_bounds(dt.date(2019, 12, 1)) == (
        dt.datetime(2019, 12, 1, tzinfo=dt.UTC),
        dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )


def test_an_import_creates_the_months_of_its_rows_before_writing_them(tmp_path):
    path = tmp_path / "events.jsonl"
    stamps = ["2019-03-04T10:00:00+00:00", "2019-03-31T23:59:59+00:00", "2021-07-01T00:00:00+00:00"]
    lines = [
        {"event_type": "search", "query": f"q{i}", "session_id": "s", "timestamp": t}
        for i, t in enumerate(stamps)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    assert import_event_file(path).stored == 3

    months = partitions.month_partitions()
    assert {dt.date(2019, 3, 1), dt.date(2021, 7, 1)} <= months.keys()
    assert dt.date(2020, 1, 1) not in months  # only the months the rows need
    assert sorted(
        name
        for event_id in Event.objects.values_list("event_id", flat=True)
        for name in partition_of(event_id)
    ) == [
        f"{TABLE}_p2019_03",
        f"{TABLE}_p2019_03",
        f"{TABLE}_p2021_07",
    ]


def test_an_event_far_in_the_past_or_future_is_kept_and_moves_into_its_month_when_that_is_made():
    past, future = dt.datetime(1971, 2, 3, tzinfo=dt.UTC), dt.datetime(2200, 5, 6, tzinfo=dt.UTC)
    assert insert_rows([row("old", past), row("far", future)]) == 2
    assert partition_of("old") == partition_of("far") == [f"{TABLE}_default"]

    assert partitions.ensure_partitions([dt.date(2200, 5, 1)]) == [dt.date(2200, 5, 1)]
    assert partition_of("far") == [f"{TABLE}_p2200_05"]
    assert partitions.ensure_partitions([dt.date(2200, 5, 1)]) == []  # made once
    # Moved, not re-written: its id is still claimed, so a replay stores nothing.
    assert insert_rows([row("far", future)]) == 0
    assert Event.objects.count() == EventKey.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_runs_needing_the_same_new_month_take_turns():
    """Two imports of events of one new month at once: the second `CREATE TABLE` met the
    first's uncommitted table and failed (a unique violation in pg_type), failing its import."""
    month = dt.date(2003, 5, 1)
    name = partitions.partition_name(month)
    assert insert_rows([row("early", dt.datetime(2003, 5, 2, tzinfo=dt.UTC))]) == 1  # in DEFAULT
    try:
        # Another connection's long read of DEFAULT holds the attach back until both are at it.
        created, errors = run_behind_lock(
            lambda: partitions.ensure_partitions([month]),
            f"SELECT 1 FROM {partitions.default_partition()} LIMIT 1",
            lock=f"recommendations.events.partition.{name}",
        )
        assert not errors, errors
        assert sorted(created) == [[], [month]]
        assert partition_of("early") == [name]
    finally:
        # A transactional test keeps the tables it made.
        if month in partitions.month_partitions():
            assert partitions.detach_partition(month)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.parametrize("write", [insert_rows, copy_rows])
def test_a_replay_with_another_timestamp_in_another_month_is_stored_once(write):
    first, replay = (
        dt.datetime(2024, 1, 31, 23, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 2, 1, 1, 0, tzinfo=dt.UTC),
    )
    partitions.ensure_partitions([dt.date(2024, 1, 1), dt.date(2024, 2, 1)])
    assert write([row("same", first)]) == 1
    assert write([row("same", replay), row("other", replay)]) == 1
    assert Event.objects.get(event_id="same").timestamp == first
    assert sorted(EventKey.objects.values_list("event_id", flat=True)) == ["other", "same"]


def test_a_beacon_replay_without_a_timestamp_is_stored_once():
    """A client that sends no timestamp gets the server's clock, so each send carries another one."""
    raw = {"event_id": "beacon-1", "event_type": "search", "query": "mugs"}
    origin = Origin(trusted=True, session_id="s")
    assert ingest([dict(raw)], origin).stored == 1
    assert ingest([dict(raw)], origin).stored == 0
    assert Event.objects.filter(event_id="beacon-1").count() == 1


def test_the_orm_claims_ids_too():
    when = timezone.now()
    Event.objects.create(event_id="orm-1", event_type="view", timestamp=when)
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(event_id="orm-1", event_type="view", timestamp=when + dt.timedelta(days=40))
    made = Event.objects.bulk_create(
        [Event(event_id=e, event_type="view", timestamp=when) for e in ("orm-1", "orm-2", "orm-2")],
        ignore_conflicts=True,
    )
    assert [event.event_id for event in made] == ["orm-2"]
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["orm-1", "orm-2"]
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.bulk_create([Event(event_id="orm-2", event_type="view", timestamp=when)])


def test_deleting_events_releases_their_ids_and_moving_one_between_months_does_not():
    partitions.ensure_partitions([dt.date(2024, 1, 1), dt.date(2024, 3, 1)])
    january = dt.datetime(2024, 1, 10, tzinfo=dt.UTC)
    insert_rows([row("a", january), row("b", january), row("c", january)])

    Event.objects.filter(event_id="c").update(timestamp=dt.datetime(2024, 3, 5, tzinfo=dt.UTC))
    assert partition_of("c") == [f"{TABLE}_p2024_03"]
    Event.objects.filter(event_id__in=["a", "b"]).delete()

    assert list(EventKey.objects.values_list("event_id", flat=True)) == ["c"]
    assert insert_rows([row("a", january), row("c", january)]) == 1  # a deleted event may come back


def test_migration_converts_a_filled_table_both_ways_keeping_rows_ids_and_the_sequence():
    migration = importlib.import_module("recommendations.migrations.0013_partition_events")
    editor = SimpleNamespace(connection=connection)
    partitions.ensure_partitions([dt.date(2023, 5, 1)])
    for event_id, when in [("m-1", dt.datetime(2023, 5, 1)), ("m-2", dt.datetime(1999, 1, 1)), ("m-3", None)]:
        insert_rows([row(event_id, (when or dt.datetime(2023, 5, 2)).replace(tzinfo=dt.UTC))])
    last = Event.objects.get(event_id="m-3").pk
    Event.objects.filter(event_id="m-3").delete()  # the sequence is now past max(id)
    before = sorted(Event.objects.values_list("id", "event_id", "timestamp"))

    migration.unpartition_events(None, editor)
    assert not partitions.is_partitioned()
    assert sorted(Event.objects.values_list("id", "event_id", "timestamp")) == before
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
            "AND contype IN ('p', 'u', 'f') ORDER BY contype, conname",
            [TABLE],
        )
        kinds = [definition.split(" REFERENCES")[0] for _, definition in cursor.fetchall()]
    # The user column has no database constraint since migration 0014.
    assert kinds == ["PRIMARY KEY (id)", "UNIQUE (event_id)"]

    EventKey.objects.all().delete()  # the key table stays (its own operation): empty it for the way back
    migration.partition_events(None, editor)
    assert partitions.is_partitioned()
    assert sorted(Event.objects.values_list("id", "event_id", "timestamp")) == before
    assert sorted(EventKey.objects.values_list("event_id", flat=True)) == ["m-1", "m-2"]
    assert {dt.date(2023, 5, 1), dt.date(1999, 1, 1)} <= partitions.month_partitions().keys()
    assert partition_of("m-2") == [f"{TABLE}_p1999_01"]
    insert_rows([row("m-4", dt.datetime(2023, 5, 3, tzinfo=dt.UTC))])
    assert Event.objects.get(event_id="m-4").pk == last + 1  # the sequence went on, past the deleted id
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", [TABLE]
        )
        indexes = {name for (name,) in cursor.fetchall()}
    assert {
        "rec_event_session",
        "rec_event_user_time",
        "rec_event_product_type",
        "rec_event_recommendation",
    } <= indexes
