"""Column-by-column validation of import batches agrees with event-by-event validation.

`validate_columns` and the CSV reader's column path exist only for speed: whatever they accept
must come out exactly as `validate_batch` and the per-row CSV reading make it, and whatever
those reject they must hand back (None) so that the per-row path names the problem.
"""

import csv
import datetime as dt
import gzip
import json
import random

import pytest

from recommendations.events.columns import validate_columns
from recommendations.events.datasets import InteractionBatch, _cells, get_dataset
from recommendations.events.ids import stable_event_id, stable_event_ids
from recommendations.events.importers import (
    _CONTENT_ENCODER,
    ImportFailed,
    _csv_columns,
    _csv_event,
    _json_texts,
    import_event_file,
)
from recommendations.events.textfiles import CsvBatch, csv_batches, read_jsonl
from recommendations.events.validation import EventValidationError, Origin, validate_batch
from recommendations.models import Event

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
ABSENT = object()


def field_choices(catalogue, shopper):
    """Per field: valid values first, then values that are wrong or that only the per-event path handles."""
    product, store = catalogue[0], catalogue[1].store
    return {
        "event_type": [
            ["view", "purchase", "rating", "search", "store_view", "add_to_cart", "click", "campaign_view"],
            [ABSENT, "impression", "bogus", 5, None, ""],
        ],
        "event_id": [["e-1", "import:abc", "x" * 64], [ABSENT, "bad id!", "", "x" * 65, 7]],
        "user_id": [
            [ABSENT, shopper.pk, str(shopper.pk), f" {shopper.pk} ", None],
            ["  ", "", 424242, "424242", True, [1], f"{shopper.pk}\x00"],
        ],
        "session_id": [[ABSENT, "s1", "  s2 ", "", None], ["x" * 65, 3, "s\x00"]],
        "product_id": [
            [ABSENT, product.pk, str(product.pk), f" {product.pk}", str(catalogue[3].pk), ""],
            ["   ", "424242", "x" * 65, 1.5, f"{product.pk}\x00"],
        ],
        "store_id": [[ABSENT, str(store.pk), f"{store.pk} ", ""], [store.pk, "999999", "  ", "x" * 65]],
        "query": [[ABSENT, "mug", " red mug "], ["  ", "x" * 256, 4, "mu\x00g"]],
        "value": [[ABSENT, 1, 2.5, 3.0, 5, None], [0, -1, 6, float("nan"), "3", True]],
        "revenue": [[ABSENT, "12.345", 3, 4.5, " 7.10 ", "0"], ["-1", "abc", "1e20", [1]]],
        "timestamp": [
            [
                ABSENT,
                "2024-01-01T10:00:00Z",
                "2024-01-01T10:00:00",
                "2024-01-01T12:00:00+02:00",
                1704103200,
                1704103200.5,
            ],
            ["yesterday", "2999-01-01T00:00:00Z", True, float("inf"), "", "0001-01-01T00:00:00+05:00", -1],
        ],
        "context": [
            [ABSENT, {"page": "/p/"}, {"a": {"b": 1}}, None, {"campaign": "7"}],
            [{"products": [product.pk]}, "x", [1], {"a": [{"b": "\x00"}]}, {"k\x00": 1}],
        ],
        "products": [[ABSENT], [[product.pk], [], "x"]],
        "recommendation_id": [[ABSENT, "r1"], ["x" * 65, "r\x00"]],
        "colour": [[ABSENT], ["red"]],
    }


def random_event(rng, choices, index):
    """Mostly valid events: each field rarely wrong, and usually what its type requires."""
    event = {}
    for name, (good, bad) in choices.items():
        value = rng.choice(bad if rng.random() < 0.03 else good)
        if value is not ABSENT:
            event[name] = f"{value}-{index}" if name == "event_id" and value == "e-1" else value
    if rng.random() < 0.9:
        required = {
            "rating": ("value", 4),
            "search": ("query", "mug"),
            "store_view": ("store_id", choices["store_id"][0][1]),
            "campaign_view": ("context", {"campaign": 7}),
        }
        name, value = required.get(event.get("event_type"), ("product_id", choices["product_id"][0][1]))
        event[name] = value
    return event


def columns_of(events):
    names = set().union(*events)
    return {name: [event.get(name) for event in events] for name in names}


@pytest.mark.django_db
def test_columns_accept_only_what_validate_batch_accepts_and_give_the_same_rows(catalogue, shopper):
    rng = random.Random(7)
    choices = field_choices(catalogue, shopper)
    accepted = rejected = 0
    for round_ in range(400):
        events = [random_event(rng, choices, f"{round_}.{i}") for i in range(rng.randint(1, 4))]
        try:
            expected = validate_batch(events, Origin(trusted=True), now=NOW)
        except EventValidationError:
            expected = None
        got = validate_columns(columns_of(events), len(events), now=NOW)
        if expected is None:
            assert got is None, events
            rejected += 1
        elif got is not None:
            # repr: the same types, time zones and decimal places, not only equal values
            assert repr(got) == repr(expected), events
            accepted += 1
    # Both outcomes are exercised, and the column path takes most valid batches.
    assert accepted > 120 and rejected > 120


@pytest.mark.django_db
def test_columns_leave_a_campaign_event_without_its_campaign_to_the_per_event_path(catalogue):
    named = {"event_id": "c-1", "event_type": "campaign_view", "context": {"campaign": "7"}}
    unnamed = {"event_id": "c-2", "event_type": "campaign_click", "context": {"page": "/"}}
    assert validate_columns(columns_of([named, unnamed]), 2, now=NOW) is None
    expected = validate_batch([named], Origin(trusted=True), now=NOW)
    assert repr(validate_columns(columns_of([named]), 1, now=NOW)) == repr(expected)


@pytest.mark.django_db
def test_columns_give_each_event_its_product_store_unless_it_names_one(catalogue, shopper):
    store = catalogue[0].store
    events = [
        {"event_id": "a", "event_type": "view", "product_id": str(catalogue[1].pk)},
        {
            "event_id": "b",
            "event_type": "view",
            "product_id": str(catalogue[1].pk),
            "store_id": str(store.pk),
        },
        {"event_id": "c", "event_type": "store_view", "store_id": str(store.pk), "user_id": str(shopper.pk)},
        {"event_id": "d", "event_type": "purchase", "product_id": str(catalogue[2].pk), "revenue": "9.5"},
    ]
    rows = validate_columns(columns_of(events), len(events), now=NOW)
    assert rows == validate_batch(events, now=NOW)
    assert [r.store_id for r in rows] == [
        str(catalogue[1].store_id),
        str(store.pk),
        str(store.pk),
        str(store.pk),
    ]
    assert (rows[2].user_id, rows[3].value, str(rows[3].revenue)) == (shopper.pk, 1.0, "9.50")


CSV_HEADER = ["event_type", "product_id", "user_id", "value", "timestamp", "query", "context"]
CSV_ROWS = [
    ["view", "7", "3", "", "2024-01-01T10:00:00Z", "", ""],
    ["purchase", "7", "", "2", "2024-01-01T10:00:00+02:00", "", ""],
    ["purchase", "8", "3", "-0", "2024-01-01T10:00:00", "", ""],
    ["purchase", "8", "3", "0", "2024-01-01T10:00:00", "", ""],
    ["search", "", "3", "1e3", "2024-01-01", 'café "au lait" \\ mug', ""],
    ["view", " 9 ", "3", "1", "2024-01-01T10:00:00Z", "", '{"z": 1, "a": {"y": 2, "b": [1]}}'],
]


def test_csv_columns_hold_the_per_row_values_and_content_ids():
    for header, rows in [
        (CSV_HEADER, CSV_ROWS),
        (CSV_HEADER[:5], [row[:5] for row in CSV_ROWS[1:4]]),  # all cells filled: the joined JSON
        (["event_id", *CSV_HEADER[:5]], [["own-id", *CSV_ROWS[0][:5]], ["", *CSV_ROWS[1][:5]]]),
    ]:
        columns = _csv_columns(CsvBatch(header, list(range(2, len(rows) + 2)), rows))
        for i, cells in enumerate(rows):
            raw = _csv_event(header, cells)
            if not raw.get("event_id"):
                raw["event_id"] = stable_event_id("import", _CONTENT_ENCODER.encode(raw))
            assert {name: column[i] for name, column in columns.items() if column[i] is not None} == raw
    # Zero and minus zero are different rows with different ids, as before.
    ids = _csv_columns(CsvBatch(CSV_HEADER, [2, 3], CSV_ROWS[2:4]))["event_id"]
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    "header, rows",
    [
        (["event_type", "value"], [["view", "1"], ["view"]]),  # a short row
        (["event_type", "value"], [["view", "1", "x"]]),  # a long row
        (["event_type", "event_type"], [["view", "click"]]),  # a repeated column
        (["event_type", "colour"], [["view", "red"]]),  # not an event field
        (["event_type", "value"], [["view", "many"]]),  # not a number
        (["event_type", "context"], [["view", "{oops"]]),  # not JSON
        (["event_type", "products"], [["impression", "[1]"]]),  # listed products
    ],
)
def test_csv_rows_the_column_path_leaves_to_the_per_row_path(header, rows):
    assert _csv_columns(CsvBatch(header, list(range(2, len(rows) + 2)), rows)) is None


@pytest.mark.parametrize(
    "text",
    [
        "a,b\r\n1,2\r\n3,4\r\n5,6\r\n7,8\r\n9,10",  # CRLF, no newline at the end
        "a,b\n1,2\n\n3\n4,5,6\n \n7,8\n",  # blank lines, short and long rows, a space
        'a,b\n1,2\n3,4\n5,"x,\ny"\n7,8\n"9",10\n',  # a quoted cell spanning lines, later on
        '"a\nb",c\n1,2\n3,4\n',  # a quoted header
        "a,b\r1,2\r3,4\r",  # carriage returns alone
        "a,b\n1,2\n3,\x004\n",  # a NUL character
        "a,b\n",  # a header only
    ],
)
def test_the_quote_free_csv_reader_reads_what_the_csv_module_reads(tmp_path, text):
    path = tmp_path / "events.csv"
    path.write_bytes(text.encode())
    expected = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        try:
            expected = [(reader.line_num, cells) for cells in reader if cells]
        except csv.Error:  # a NUL, in Python versions that refuse it
            expected = None
    try:
        batches = list(csv_batches(path, 2))
    except csv.Error:
        batches = None
    if expected is None or batches is None:
        assert expected is batches
        return
    assert all(batch.header == header for batch in batches)
    read = [(line, list(cells)) for batch in batches for line, cells in zip(batch.lines, batch.by_row())]
    assert read == expected
    for batch in batches:  # by column: every row as wide as the header, or None
        columns = batch.by_column()
        rows = batch.by_row()
        if columns is None:
            assert {len(cells) for cells in rows} != {len(header)}
        else:
            assert [list(column) for column in columns] == [list(column) for column in zip(*rows)]


def write_rows(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.mark.django_db
def test_a_csv_import_stores_per_row_ids_and_a_bad_row_names_its_line_and_field(tmp_path, catalogue, shopper):
    header = ["event_type", "product_id", "user_id", "value", "timestamp"]
    rows = [
        ["purchase", catalogue[i % 3].pk, shopper.pk if i % 2 else "", i % 3 + 1, f"2024-01-01T10:{i:02}:00Z"]
        for i in range(30)
    ]
    good = tmp_path / "events.csv"
    write_rows(good, header, rows)
    assert import_event_file(good, batch_rows=8).stored == 30
    expected = set()
    for cells in rows:
        raw = _csv_event(header, [str(c) for c in cells])
        expected.add(stable_event_id("import", _CONTENT_ENCODER.encode(raw)))
    assert set(Event.objects.values_list("event_id", flat=True)) == expected
    assert import_event_file(good, batch_rows=8).stored == 0

    # Line 14 (row 13) is in the second batch of 8: the first batch is stored, the second is not.
    rows[12][3] = "-2"
    bad = tmp_path / "bad.csv"
    write_rows(bad, header, [[*r[:4], r[4].replace("2024", "2023")] for r in rows])
    with pytest.raises(ImportFailed) as failure:
        import_event_file(bad, batch_rows=8)
    assert failure.value.errors == ["bad.csv line 14: value: the quantity must be positive"]
    assert (failure.value.first_line, failure.value.last_line) == (10, 17)
    assert Event.objects.filter(timestamp__year=2023).count() == 8


def test_json_texts_are_the_encoders_texts():
    raws = [
        {"event_type": "view", "user_id": 5, "value": 1.5},
        {"user_id": 6, "event_type": "view", "value": 2.0},  # the same keys in another order
        {"event_type": "view", "user_id": 7, "value": 3},
        {"event_type": 'café "x" \\', "user_id": 2**80, "value": -0.0, "query": None, "ok": True},
        {"event_type": "view", "user_id": "8", "value": float("nan")},
        {"event_type": "view", "user_id": "9", "value": float("inf")},
        {"event_type": "view", "context": {"b": 1, "a": [2, {"d": 3, "c": None}]}, "value": 1},
        {"event_type": "view", "user_id": True, "value": None},
        {"event_type": "view", "user_id": 1, "value": 1.5},
        {"event_type": "view", "user_id": "1", "value": 1},
        {},
        {"ünïcode": "\u2028 \ud83d"},
    ]
    assert _json_texts(raws) == [_CONTENT_ENCODER.encode(raw) for raw in raws]


def test_jsonl_lines_parse_as_json_parses_them(tmp_path):
    lines = [
        '{"event_type": "view", "user_id": 5}',
        '{"user_id": 18446744073709551616, "n": -9223372036854775809}',  # beyond 64 bits: exact
        '{"value": NaN, "other": -Infinity, "big": 1e400}',
        '{"query": "\\ud800"}',  # a lone surrogate
        "   ",
        "[1, 2]",
        "{oops",
        '{"a": 1,}',
        '{"a": 1, "a": 2}',
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    expected = []
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            expected.append((line, f"not valid JSON ({exc.msg})"))
            continue
        expected.append((line, raw if isinstance(raw, dict) else "each line must be a JSON object"))
    assert repr(list(read_jsonl(path))) == repr(expected)


@pytest.mark.parametrize(
    "keys",
    [
        [("A1YJEY40YUW4SE", "B004756YJA"), ("R1", "A2")],  # readable
        [("R1", "A2"), ("a:b", "c")],  # a colon in a part: that one is hashed
        [("R1", "A2"), ("x" * 60, "y")],  # too long for a readable id
        [("R1", "A2"), ("caf\u00e9", "mug")],  # a character ids do not allow
        [("R1", "A2"), ("R1", "")],  # an empty part
    ],
)
def test_stable_event_ids_are_the_ids_one_by_one(keys):
    columns = list(zip(*keys, strict=True))
    assert stable_event_ids("amazon-beauty", columns) == [
        stable_event_id("amazon-beauty", *key) for key in keys
    ]


AMAZON_HEADER = "user_id,item_id,reviewer_id,asin,timestamp,seq_index\n"


@pytest.mark.parametrize(
    "text",
    [
        AMAZON_HEADER + "1,0,RVW1,B0001,1318896000,0\n2,0, RVW2 ,B0002 ,1318896000.5,1\n3,0,RVW3,B0001,5,2\n",
        AMAZON_HEADER + "1,0,RVW1,B0001,1318896000,0\n2,0,,B0002,1318896000,1\n",  # a blank reviewer
        AMAZON_HEADER + "1,0,RVW1,B0001,1318896000,0\n1,0,RVW1,B0002,soon,1\n",  # a bad timestamp
        AMAZON_HEADER + "1,0,RVW1,B0001,1318896000,0\n\n2,0,RVW2,B0002,1318896000,1\n",  # a blank line
        AMAZON_HEADER + "1,0,RVW1,B0001,1318896000\n1,0,RVW1,B0002,1318896000,1,x\n1,0,RVW1\n",  # widths
        AMAZON_HEADER + '1,0,RVW1,B0001,1318896000,0\n1,0,"RVW,1",B0002,1318896000,1\n',  # quoted
        AMAZON_HEADER + "1,0,RVW:1,B0001,1318896000,0\n",  # a colon: a hashed event id, later
        "user_id,item_id,reviewer_id,asin,seq_index\n1,0,RVW1,B0001,0\n",  # no timestamp column
    ],
)
def test_amazon_interactions_by_column_are_those_read_row_by_row(tmp_path, text):
    path = tmp_path / "interactions.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        handle.write(text)
    dataset = get_dataset("amazon-beauty")
    items = [
        dataset._interaction(path.name, line, cells)
        for line, cells in _cells(path, ("reviewer_id", "asin", "timestamp"))
    ]
    expected = [InteractionBatch.of(items[i : i + 2]) for i in range(0, len(items), 2)]
    batches = list(dataset.interaction_batches(tmp_path, 2))
    assert [_batch_rows(batch) for batch in batches] == [_batch_rows(batch) for batch in expected]
    for batch in batches:
        assert stable_event_ids(dataset.name, batch.keys) == [
            stable_event_id(dataset.name, *key) for key in zip(*batch.keys, strict=True)
        ]


def _batch_rows(batch):
    """A batch's interactions row by row, then its errors, to compare batches read both ways."""
    columns = [
        batch.lines,
        list(zip(*batch.keys, strict=True)) if batch.lines else [],
        batch.user_source_ids,
        batch.product_source_ids,
        batch.event_types,
        batch.timestamps,
        batch.values,
        batch.revenues,
        batch.store_source_ids,
    ]
    return list(zip(*columns, strict=True)), batch.errors


def test_reading_import_files_does_not_load_the_management_commands():
    """Services (the importers, the shop's catalogue import) read files through `textfiles`;
    turning failures into `CommandError`s is the commands' business (`management.errors`)."""
    import subprocess
    import sys

    code = (
        "import recommendations.events.textfiles, sys; "
        "assert 'django.core.management' not in sys.modules; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
