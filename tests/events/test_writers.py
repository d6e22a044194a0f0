"""The two event writers: INSERT ... ON CONFLICT for batches, binary COPY after an id lookup for bulk."""

import datetime as dt
from decimal import Decimal

import pytest

from recommendations.events.ingestion import copy_rows, encode_json, existing_event_ids, insert_rows
from recommendations.events.rows import EventRow
from recommendations.models import Event

NOW = dt.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)


def row(event_id, context=None, **fields):
    values = dict.fromkeys(EventRow._fields, "")
    values.update(event_id=event_id, event_type="search", user_id=None, query="mug", value=None)
    values.update(revenue=None, timestamp=NOW, context={} if context is None else context)
    return EventRow(**{**values, **fields})


@pytest.mark.django_db
@pytest.mark.parametrize("write", [insert_rows, copy_rows])
def test_every_column_arrives_intact(write, shopper):
    context = {"page": "/p/", "when": NOW, "price": Decimal("1.50"), "big": 2**70, "nested": {"a": [1, None]}}
    rows = [
        row("w-1", context, user_id=shopper.pk, value=2.5, revenue=Decimal("10.05"), session_id="s"),
        row("w-2", timestamp=NOW.astimezone(dt.timezone(dt.timedelta(hours=-3)))),
    ]
    assert write(rows) == 2
    first = Event.objects.get(event_id="w-1")
    assert (first.user_id, first.value, first.revenue, first.session_id) == (
        shopper.pk,
        2.5,
        Decimal("10.05"),
        "s",
    )
    assert first.timestamp == NOW and Event.objects.get(event_id="w-2").timestamp == NOW
    assert first.context == {
        "page": "/p/",
        "when": "2024-03-01T12:30:15.123456+00:00",
        "price": "1.50",
        "big": 2**70,
        "nested": {"a": [1, None]},
    }
    assert write(rows) == 0  # a replay stores nothing


@pytest.mark.django_db
def test_copy_shares_one_encoding_of_a_shared_context_and_keeps_repeated_ids_once():
    shared = {"source": "bench"}
    assert copy_rows([row(f"s-{i}", shared) for i in range(3)] + [row("s-0", shared)]) == 3
    assert list(Event.objects.values_list("context", flat=True)) == [shared] * 3


@pytest.mark.django_db
def test_stored_ids_are_found_whether_or_not_other_ids_share_their_range():
    copy_rows([row(event_id) for event_id in ("b-1", "b-3", "b-5")])
    assert existing_event_ids(["a-1", "a-2"]) == set()  # nothing stored in the range: the probe alone
    assert existing_event_ids(["b-2", "b-4"]) == set()  # others in the range, none of these
    assert existing_event_ids(["a-9", "b-3", "c-1"]) == {"b-3"}


def test_json_falls_back_for_integers_orjson_refuses():
    assert encode_json({"n": 2**70, 1: "x"}) == b'{"n":1180591620717411303424,"1":"x"}'
    assert encode_json({"n": float("nan")}) == b'{"n":null}'  # jsonb has no NaN


@pytest.mark.django_db
def test_ids_copy_writes_and_finds_verbatim_whatever_their_characters():
    # Valid ids go as one text COPY and one text lookup; others (unvalidated callers) in binary.
    odd = ["o\\N", "o\tx", "o\ny", "o,z", "o z", 'o"q', "o{}"]
    assert copy_rows([row(event_id) for event_id in ["v-1", "v:2", *odd]]) == 9
    assert set(Event.objects.values_list("event_id", flat=True)) == {"v-1", "v:2", *odd}
    assert existing_event_ids(["v-1", "v-9", "v:2"]) == {"v-1", "v:2"}
    assert existing_event_ids(["o\\N", "o\tx", "o\ny", "o,z", "o-9"]) == {"o\\N", "o\tx", "o\ny", "o,z"}
    assert copy_rows([row("v-1"), row("o\\N"), row("v-3")]) == 1


@pytest.mark.django_db
def test_copy_skips_stored_ids_found_by_the_sample_or_by_the_copy_itself(caplog):
    caplog.set_level("INFO", logger="recommendations.events.ingestion")
    ids = [f"m-{i:05}" for i in range(3000)]
    # A sample of 256 spread ids sees a third of them stored: every id is looked up.
    assert copy_rows([row(event_id) for event_id in ids[::3]]) == 1000
    assert copy_rows([row(event_id) for event_id in ids]) == 2000
    # One stored id among 3,000 new ones is missed by the sample: the key COPY meets it and the
    # batch is written with ON CONFLICT instead, storing the others once.
    assert copy_rows([row("n-01500")]) == 1
    assert "ON CONFLICT" not in caplog.text
    assert copy_rows([row(f"n-{i:05}") for i in range(3000)]) == 2999
    assert "missed by the sampled lookup); writing 3000 rows with ON CONFLICT" in caplog.text
    assert Event.objects.filter(event_id__startswith="n-").count() == 3000
