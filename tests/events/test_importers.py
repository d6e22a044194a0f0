"""Catalogue and event importers, on tiny files written in each public dataset's format."""

import csv
import datetime as dt
import gzip
import json
import subprocess
import sys
import zlib
from decimal import Decimal
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from recommendations.events.importers import (
    DatabaseLost,
    ImportFailed,
    ensure_users,
    import_dataset_events,
    import_event_file,
)
from recommendations.management.errors import command_errors
from recommendations.models import Event
from recommendations.privacy.optout import set_opted_out
from recommendations.progress import Progress
from shop.catalog_import import import_dataset_catalog
from shop.models import Category, Product, Store
from shop.recommendations import ProductAdapter as ShopProductAdapter


def write_csv(path, header, rows, opener=open):
    with opener(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def amazon(tmp_path):
    folder = tmp_path / "amazon"
    folder.mkdir()
    write_csv(
        folder / "items.csv",
        ["item_id", "asin", "title", "brand", "categories", "price", "sales_rank", "sales_type"],
        [
            [
                1,
                "B0001",
                "OPI Nail Lacquer, Red",
                "OPI",
                json.dumps(["Beauty", "Makeup", "Nails"]),
                "12.0",
                "344",
                "Beauty",
            ],
            [2, "B0002", "Shatter Polish", "OPI", json.dumps(["Beauty", "Makeup", "Nails"]), "", "", ""],
            [3, "B0003", "", "", json.dumps(["Beauty", "Skin Care", "Face"]), "14.96", "2900", "Beauty"],
        ],
    )
    write_csv(
        folder / "interactions.csv.gz",
        ["user_id", "item_id", "reviewer_id", "asin", "timestamp", "seq_index"],
        [
            [1, 1, "RVW1", "B0001", 1318896000, 0],
            [1, 2, "RVW1", "B0002", 1318896000, 1],
            [2, 3, "RVW2", "B0003", 1328140800, 0],
            [2, 1, "RVW2", "B0001", 1391040000, 1],
            [3, 2, "RVW3", "B0002", 1391040000, 0],
        ],
        opener=gzip.open,
    )
    return folder


def import_both(dataset, folder):
    call_command("import_catalog", str(folder), dataset=dataset, stdout=StringIO())
    out = StringIO()
    call_command("import_events", str(folder), dataset=dataset, no_progress=True, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_amazon_beauty_import_and_rerun(amazon):
    output = import_both("amazon-beauty", amazon)
    assert "stored 5 new events" in output and "created 3 users" in output

    products = {p.sku: p for p in Product.objects.select_related("store", "category")}
    assert set(products) == {"amazon-beauty:B0001", "amazon-beauty:B0002", "amazon-beauty:B0003"}
    nail = products["amazon-beauty:B0001"]
    assert (nail.title, nail.brand, nail.store.name, nail.price) == (
        "OPI Nail Lacquer, Red",
        "OPI",
        "OPI",
        Decimal("12.00"),
    )
    assert nail.category.path == "Beauty > Makeup > Nails"
    assert products["amazon-beauty:B0003"].store.name == "Unbranded"
    assert products["amazon-beauty:B0003"].title == "Beauty product B0003"
    assert Store.objects.count() == 2

    purchases = Event.objects.filter(event_type="purchase")
    assert purchases.count() == 5
    first = purchases.get(event_id="amazon-beauty:RVW1:B0001")
    assert first.user.username == "amazon-beauty.RVW1" and not first.user.has_usable_password()
    assert (first.product_id, first.store_id) == (str(nail.pk), str(nail.store_id))
    assert first.timestamp == dt.datetime(2011, 10, 18, tzinfo=dt.UTC) and first.value == 1

    # Re-running both commands creates and stores nothing new.
    output = import_both("amazon-beauty", amazon)
    assert "stored 0 new events, skipped 5 already stored" in output
    assert (Product.objects.count(), Event.objects.count(), get_user_model().objects.count()) == (3, 5, 3)


@pytest.mark.django_db
def test_events_before_their_catalogue_name_the_fix(amazon):
    with pytest.raises(
        CommandError, match=r"line 2: product amazon-beauty:B0001 is not in the catalogue; .*import_catalog"
    ):
        call_command("import_events", str(amazon), dataset="amazon-beauty", no_progress=True)
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_malformed_rows_report_their_lines_and_the_batch_writes_nothing(amazon):
    call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    rows = [[1, 1, "RVW1", "B0001", 1318896000, 0]] * 3 + [
        [1, 2, "RVW1", "B0002", "yesterday", 1],
        [2, 3, "", "B0003", 5, 0],
    ]
    write_csv(
        amazon / "interactions.csv.gz",
        ["user_id", "item_id", "reviewer_id", "asin", "timestamp", "seq_index"],
        rows,
        gzip.open,
    )
    with pytest.raises(ImportFailed) as failure:
        import_dataset_events("amazon-beauty", amazon, batch_rows=10)
    message = str(failure.value)
    assert "2 bad row(s) in lines 2-6; nothing from those lines was stored" in message
    assert "interactions.csv.gz line 5: unreadable interaction" in message
    assert "interactions.csv.gz line 6" in message
    assert not Event.objects.exists()
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_a_missing_column_is_named_on_each_line(amazon):
    call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    header = ["user_id", "item_id", "reviewer_id", "asin", "seq_index"]
    write_csv(amazon / "interactions.csv.gz", header, [[1, 1, "RVW1", "B0001", 0]] * 2, gzip.open)
    with pytest.raises(ImportFailed) as failure:
        import_dataset_events("amazon-beauty", amazon)
    assert failure.value.errors == [
        f"interactions.csv.gz line {line}: unreadable interaction (no column timestamp in the header)"
        for line in (2, 3)
    ]


@pytest.mark.django_db
def test_dataset_accounts_are_made_once_with_unusable_passwords(django_user_model):
    existing = django_user_model.objects.create_user("movielens.1", password="pw")
    keys, created = ensure_users(["movielens.1", "movielens.2", "movielens.3"])
    assert created == 2 and keys["movielens.1"] == existing.pk
    new = django_user_model.objects.get(pk=keys["movielens.2"])
    assert new.username == "movielens.2" and not new.has_usable_password()
    assert new.is_active and not new.is_staff and new.date_joined is not None
    assert ensure_users(["movielens.2", "movielens.3"]) == (
        {n: keys[n] for n in ("movielens.2", "movielens.3")},
        0,
    )


@pytest.mark.django_db
def test_an_empty_dataset_file_is_refused_not_imported_as_nothing(amazon):
    (amazon / "items.csv").write_text("")
    with pytest.raises(CommandError, match="items.csv is empty, without even a header: copy or download"):
        call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_a_bad_later_batch_keeps_earlier_batches_and_a_rerun_resumes(amazon):
    call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    good = [[1, 1, f"RVW{i}", "B0001", 1318896000, 0] for i in range(4)]
    header = ["user_id", "item_id", "reviewer_id", "asin", "timestamp", "seq_index"]
    write_csv(amazon / "interactions.csv.gz", header, [*good, [9, 9, "RVW9", "B0001", "soon", 0]], gzip.open)
    with pytest.raises(ImportFailed, match="1 bad row.s. in line 6; .* earlier lines were stored .4 new."):
        import_dataset_events("amazon-beauty", amazon, batch_rows=2)
    assert Event.objects.count() == 4  # the batches of lines 2-3 and 4-5
    write_csv(
        amazon / "interactions.csv.gz", header, [*good, [9, 9, "RVW9", "B0001", 1318896000, 0]], gzip.open
    )
    result = import_dataset_events("amazon-beauty", amazon, batch_rows=2)
    assert (result.read, result.stored, result.skipped) == (5, 1, 4)


def olist_folder(tmp_path):
    """A small Olist folder: three sellers, three products, three orders of two people."""
    folder = tmp_path / "olist"
    folder.mkdir()
    # As Olist publishes it: with a byte-order mark, and no line break after the last line.
    (folder / "product_category_name_translation.csv").write_text(
        "\ufeffproduct_category_name,product_category_name_english\nbeleza_saude,health_beauty",
        encoding="utf-8",
    )
    write_csv(
        folder / "sellers.csv",
        ["seller_id", "seller_zip_code_prefix", "seller_city", "seller_state"],
        [["s1", "13023", "campinas", "SP"], ["s2", "20031", "rio de janeiro", "RJ"], ["s3", "1", "x", "SP"]],
    )
    product_header = [
        "product_id",
        "product_category_name",
        "product_name_lenght",
        "product_description_lenght",
        "product_photos_qty",
        "product_weight_g",
        "product_length_cm",
        "product_height_cm",
        "product_width_cm",
    ]
    write_csv(
        folder / "products.csv",
        product_header,
        [
            ["p1", "beleza_saude", 40, 287, 1, 225, 16, 10, 14],
            ["p2", "", 1, 1, 2, 500, 1, 1, 1],
            ["p3", "artes", 1, 1, 1, 1, 1, 1, 1],
        ],
    )
    write_csv(
        folder / "order_items.csv",
        [
            "order_id",
            "order_item_id",
            "product_id",
            "seller_id",
            "shipping_limit_date",
            "price",
            "freight_value",
        ],
        [
            ["o1", 1, "p1", "s1", "", "10.00", "1"],
            ["o1", 2, "p1", "s1", "", "20.00", "1"],
            ["o2", 1, "p2", "s2", "", "5.50", "1"],
            ["o3", 1, "p2", "s2", "", "7.00", "1"],
        ],
    )
    write_csv(
        folder / "orders.csv",
        ["order_id", "customer_id", "order_status", "order_purchase_timestamp"],
        [
            ["o1", "c1", "delivered", "2017-10-02 10:56:33"],
            ["o2", "c2", "shipped", "2017-11-18 19:28:06"],
            ["o3", "c3", "canceled", "2017-11-19 10:00:00"],
        ],
    )
    write_csv(
        folder / "customers.csv",
        ["customer_id", "customer_unique_id"],
        [["c1", "person-a"], ["c2", "person-a"], ["c3", "person-b"]],
    )

    return folder


@pytest.mark.django_db
def test_olist_sellers_are_stores_and_order_lines_are_purchases(tmp_path):
    folder = olist_folder(tmp_path)
    output = import_both("olist", folder)
    # Every line of order_items.csv is read and accounted for: the cancelled order's is said to be skipped.
    assert "Read 4 rows" in output
    assert (
        "stored 3 new events, skipped 0 already stored, 1 skipped: cancelled or unavailable orders" in output
    )
    out = StringIO()  # again, a row per batch: the cancelled order's line is a batch of its own
    call_command("import_events", str(folder), dataset="olist", no_progress=True, batch_rows=1, stdout=out)
    assert "Read 4 rows" in out.getvalue()
    assert "stored 0 new events, skipped 3 already stored, 1 skipped: cancelled" in out.getvalue()

    assert Store.objects.count() == 3  # every seller
    products = {p.sku: p for p in Product.objects.select_related("store", "category")}
    assert set(products) == {"olist:p1", "olist:p2"}  # p3 was never sold: it has no seller
    assert products["olist:p1"].category.name == "Health beauty"
    assert products["olist:p1"].price == Decimal("15.00")  # the mean price paid
    assert products["olist:p1"].store.external_id == "olist:s1"
    purchases = Event.objects.order_by("timestamp", "event_id")
    assert [(e.event_id, e.revenue) for e in purchases] == [
        ("olist:o1:1", Decimal("10.00")),
        ("olist:o1:2", Decimal("20.00")),
        ("olist:o2:1", Decimal("5.50")),
    ]  # the cancelled order o3 is skipped
    assert {e.user.username for e in purchases} == {"olist.person-a"}  # one person, two orders
    assert purchases[0].timestamp == dt.datetime(2017, 10, 2, 13, 56, 33, tzinfo=dt.UTC)  # São Paulo time
    assert purchases[2].store_id == str(products["olist:p2"].store_id)


@pytest.mark.django_db
def test_a_broken_row_of_an_olist_lookup_file_is_named_not_a_key_error(tmp_path):
    folder = olist_folder(tmp_path)
    with open(folder / "customers.csv", "a", encoding="utf-8") as handle:
        handle.write("c4\n")  # a cell too few
    sellers = (folder / "sellers.csv").read_text(encoding="utf-8")
    (folder / "sellers.csv").write_text(sellers + "s4,1,x,SP,extra\n", encoding="utf-8")  # a cell too many
    with pytest.raises(
        CommandError, match=r"sellers.csv line 5: a seller row \(5 cells where the header has 4\)"
    ):
        call_command("import_catalog", str(folder), dataset="olist", stdout=StringIO())
    (folder / "sellers.csv").write_text(sellers, encoding="utf-8")
    call_command("import_catalog", str(folder), dataset="olist", stdout=StringIO())
    with pytest.raises(
        CommandError,
        match=r"customers.csv line 5 does not have the header's columns \(1 cell where the header has 2\)",
    ):
        call_command("import_events", str(folder), dataset="olist", no_progress=True, stdout=StringIO())
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_broken_row_of_olist_orders_is_named_in_its_own_file(tmp_path):
    folder = olist_folder(tmp_path)
    call_command("import_catalog", str(folder), dataset="olist", stdout=StringIO())
    with open(folder / "orders.csv", "a", encoding="utf-8") as handle:
        handle.write("o4;c1;delivered;2017-10-03 10:00:00\n")  # a semicolon file's row: one cell
    with pytest.raises(CommandError) as failure:
        call_command("import_events", str(folder), dataset="olist", no_progress=True, stdout=StringIO())
    assert str(failure.value) == (
        "orders.csv: 1 bad row(s); nothing was imported. Fix or remove them and run again:\n"
        "  orders.csv line 5: unreadable order (1 cell where the header has 4)"
    )
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_movielens_movies_and_ratings(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n"
        '2\tThe "Quote" Movie\t1996\tDrama\n'
    )
    (folder / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t1\t3\t881250949\n186\t2\t5\t891717742\n196\t2\t1\t881250950\n"
    )
    import_both("movielens", folder)
    toy = Product.objects.select_related("category", "store").get(sku="movielens:1")
    assert (toy.title, toy.category.path, toy.store.name) == (
        "Toy Story (1995)",
        "Movies > Animation",
        "MovieLens",
    )
    assert Product.objects.get(sku="movielens:2").title == 'The "Quote" Movie (1996)'
    ratings = Event.objects.filter(event_type="rating").order_by("timestamp")
    assert [r.value for r in ratings] == [3, 1, 5]
    assert ratings[0].user.username == "movielens.196"


@pytest.mark.django_db
def test_a_dataset_file_cut_short_mid_line_is_refused_not_read_as_a_shorter_value(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\n1\tToy Story\n2\tHeat\n")
    inter = folder / "ml-100k.inter"
    # head -c of the real file: the last timestamp, 881250949, is cut to 88 (1970-01-01).
    inter.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t1\t3\t881250949\n196\t2\t1\t88"
    )
    call_command("import_catalog", str(folder), dataset="movielens", stdout=StringIO())
    with pytest.raises(CommandError) as failure:
        call_command("import_events", str(folder), dataset="movielens", no_progress=True, stdout=StringIO())
    assert str(failure.value) == (
        f"{inter} is cut short mid-line: its last line, line 3 ('196\\t2\\t1\\t88'), ends without a line "
        "break, so its last value may be cut. Copy or download it again (or, if that line is whole, end "
        "it with a line break). Nothing was imported."
    )
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_csv_file_cut_short_mid_line_is_refused_unless_its_last_line_is_said_to_be_whole(
    tmp_path, catalogue, shopper
):
    """A download cut short imported its last row cut: a timestamp, a price or a title shorter
    than it is. A file that merely lacks the last line break is imported with the option."""
    events = tmp_path / "events.csv"
    events.write_text(
        "event_type,product_id,user_id,timestamp\n"
        f"view,{catalogue[0].pk},{shopper.pk},2024-01-01T10:00:00Z\n"
        f"view,{catalogue[1].pk},{shopper.pk},2024-01-01T10:05:00Z"
    )
    products = tmp_path / "products.csv"
    products.write_text(
        "sku,title,category,store,price\nSKU-1,Blue mug,Kitchen > Mugs,acme,9.50\nSKU-2,Red m"
    )
    for command, path in (("import_events", events), ("import_catalog", products)):
        with pytest.raises(CommandError) as failure:
            call_command(command, str(path), stdout=StringIO())
        assert f"{path} is cut short mid-line: its last line, line 3" in str(failure.value)
        assert (
            "(or, if that line is whole, end it with a line break or import it with --last-line-is-whole). "
            "Nothing was imported." in str(failure.value)
        )
    assert not Event.objects.exists() and not Product.objects.filter(sku__startswith="SKU-").exists()
    call_command("import_events", str(events), last_line_is_whole=True, no_progress=True, stdout=StringIO())
    assert Event.objects.count() == 2
    products.write_text(products.read_text() + "ug,Kitchen > Mugs,acme,8")
    call_command("import_catalog", str(products), last_line_is_whole=True, stdout=StringIO())
    assert Product.objects.get(sku="SKU-2").title == "Red mug"
    for command in ("import_events", "import_catalog"):  # a dataset's files are read by its rules
        with pytest.raises(CommandError, match="--last-line-is-whole: not allowed with argument --dataset"):
            call_command(command, str(tmp_path), "--dataset", "olist", "--last-line-is-whole")
    # A JSON line cut short is no JSON (a bad line), so a whole one needs no line break after it.
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text(json.dumps({"event_type": "search", "query": "mug", "timestamp": 1704103200}))
    assert import_event_file(jsonl).stored == 1


@pytest.mark.django_db
def test_a_dataset_row_with_fewer_cells_than_the_header_is_a_bad_row(amazon):
    items = amazon / "items.csv"
    whole = items.read_text()
    # A row short of its last cell: its sales rank would read as its sales type's column.
    items.write_text(whole + '4,B0004,Cut product,OPI,"[""Beauty""]",3.5,3442\n')
    with pytest.raises(CommandError) as failure:
        call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    assert "items.csv line 5: unreadable item (7 cells where the header has 8)" in str(failure.value)
    # Cut short in its last line: refused as a whole, whatever the line holds.
    items.write_text(whole + '4,B0004,Cut product,OPI,"[""Beauty""]",3.5,3442')
    with pytest.raises(
        CommandError, match=r"items.csv is cut short mid-line: its last line, line 5 \('4,B0004"
    ):
        call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    assert not Product.objects.exists()


def test_a_movielens_row_says_which_cell_is_bad(tmp_path):
    from recommendations.events.datasets import MovieLens, RowError

    (tmp_path / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t1\t3\t99999999999999999\n196\t2\t9\t881250950\n"
    )
    errors = [str(row) for row in MovieLens().interactions(tmp_path) if isinstance(row, RowError)]
    assert len(errors) == 2
    assert "line 2" in errors[0] and "timestamp '99999999999999999' is not a Unix time" in errors[0]
    assert "line 3" in errors[1] and "a rating from 1 to 5" in errors[1] and "timestamp" not in errors[1]


@pytest.mark.django_db
def test_generic_csv_and_jsonl_event_files(tmp_path, catalogue, shopper):
    csv_file = tmp_path / "events.csv"
    write_csv(
        csv_file,
        ["event_type", "product_id", "user_id", "value", "timestamp", "context"],
        [
            ["view", catalogue[0].pk, shopper.pk, "", "2024-01-01T10:00:00Z", '{"page": "/p/"}'],
            ["rating", catalogue[1].pk, shopper.pk, "4", "2024-01-01T10:05:00Z", ""],
        ],
    )
    jsonl_file = tmp_path / "events.jsonl"
    jsonl_file.write_text(
        json.dumps({"event_id": "j-1", "event_type": "search", "query": "mug", "timestamp": 1704103200})
        + "\n\n"
    )
    heard = []
    assert import_event_file(csv_file, progress=Progress(listeners=(lambda *a: heard.append(a),))).stored == 2
    assert heard == [("importing events.csv", 2, 2)]
    assert import_event_file(jsonl_file).stored == 1
    assert import_event_file(csv_file).stored == 0  # ids derive from the rows
    rating = Event.objects.get(event_type="rating")
    assert (rating.value, rating.user_id, rating.store_id) == (4, shopper.pk, str(catalogue[1].store_id))

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"event_type": "view", "product_id": str(catalogue[0].pk)}) + "\n"
        "{oops\n" + json.dumps({"event_type": "view", "product_id": "424242"}) + "\n"
    )
    with pytest.raises(ImportFailed) as failure:
        import_event_file(bad)
    assert failure.value.errors == [
        "bad.jsonl line 2: not valid JSON (Expecting property name enclosed in double quotes)",
        "bad.jsonl line 3: product_id: no product has the primary key '424242'",
    ]
    assert Event.objects.count() == 3


@pytest.mark.django_db
def test_a_number_beyond_a_float_is_a_bad_value_not_a_crash(tmp_path, catalogue):
    """JSON lines with a long run of digits are read exactly (json, not orjson), so a value can
    be an integer no float holds: its line is named, as any other value that is not a number."""
    events = tmp_path / "huge.jsonl"
    events.write_text(
        json.dumps({"event_type": "rating", "product_id": str(catalogue[0].pk), "value": 10**400}) + "\n"
    )
    with pytest.raises(ImportFailed) as failure:
        import_event_file(events)
    assert failure.value.errors == ["huge.jsonl line 1: value: must be a number"]
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_key_beyond_its_integer_column_is_an_unknown_key_not_a_crash(tmp_path, catalogue):
    """PostgreSQL refused the lookup of the whole batch for a key too large for its column."""
    events = tmp_path / "huge-keys.jsonl"
    events.write_text(json.dumps({"event_type": "view", "product_id": 2**63}) + "\n")
    with pytest.raises(ImportFailed) as failure:
        import_event_file(events)
    assert failure.value.errors == [
        "huge-keys.jsonl line 1: product_id: no product has the primary key '9223372036854775808'"
    ]


@pytest.mark.django_db
def test_an_imported_campaign_view_or_click_must_name_its_campaign(tmp_path, catalogue):
    """Without it a campaign event counts for nothing: refused by line, as the API refuses it."""
    events = tmp_path / "campaigns.jsonl"
    lines = [
        {"event_id": "c-1", "event_type": "campaign_view", "context": {"campaign": "7"}},
        {"event_id": "c-2", "event_type": "campaign_click"},
    ]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ImportFailed) as failure:
        import_event_file(events)
    assert failure.value.errors == [
        "campaigns.jsonl line 2: context: context.campaign is required for campaign_click events: the "
        "campaign's id, as /api/campaigns/for-me/ answers it"
    ]
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_generic_catalogue_file_is_all_or_nothing(tmp_path):
    good = tmp_path / "catalogue.csv"
    write_csv(
        good,
        ["sku", "title", "category", "store", "store_name", "price", "brand"],
        [
            ["SKU-1", "Blue mug", "Kitchen > Mugs", "acme", "Acme Kitchen", "9.50", "Acme"],
            ["SKU-2", "Red mug", "Kitchen > Mugs", "acme", "Acme Kitchen", "8", ""],
        ],
    )
    out = StringIO()
    call_command("import_catalog", str(good), stdout=out)
    assert "writing products" in out.getvalue()  # the progress bar's stage
    assert Product.objects.get(sku="SKU-1").category.path == "Kitchen > Mugs"
    assert Store.objects.get(external_id="acme").name == "Acme Kitchen"

    bad = tmp_path / "bad.csv"
    write_csv(
        bad,
        ["sku", "title", "category", "store", "price"],
        [
            ["SKU-3", "Green mug", "Kitchen > Mugs", "acme", "7"],
            ["SKU-4", "", "Kitchen > Mugs", "acme", "cheap"],
            ["SKU-5", "Huge mug", ">", "acme", "100000000000"],
            ["SKU-6", "Odd\x00mug", "Kitchen > Mugs", "acme", "3"],
        ],
    )
    with pytest.raises(CommandError) as failure:
        call_command("import_catalog", str(bad), stdout=StringIO())
    message = str(failure.value)
    assert "bad.csv line 3: missing title; price 'cheap' is not an amount from 0 to 99999999.99" in message
    assert "line 4: price '100000000000' is not an amount" in message
    assert "category '>' names no category" in message and "line 5: NUL characters in title" in message
    assert not Product.objects.filter(sku="SKU-3").exists()


def import_catalogue_rows(path, rows) -> str:
    """`import_catalog` of a CSV file of (sku, title, category, store, price) rows; its output."""
    write_csv(path, ["sku", "title", "category", "store", "price"], rows)
    out = StringIO()
    call_command("import_catalog", str(path), stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_a_catalogue_rerun_updates_only_the_products_that_changed(tmp_path):
    """A product left as it was keeps its `updated_at`: a new one would have it embedded again."""
    rows = [["SKU-1", "Blue mug", "Kitchen > Mugs", "acme", "9.50"], ["SKU-2", "Red mug", "Tea", "acme", "8"]]
    import_catalogue_rows(tmp_path / "catalogue.csv", rows)
    saved = dict(Product.objects.values_list("sku", "updated_at"))

    again = import_catalogue_rows(tmp_path / "catalogue.csv", rows)
    assert "0 products created, 0 updated" in again
    assert dict(Product.objects.values_list("sku", "updated_at")) == saved

    rows[1][2] = "Kitchen > Mugs"  # another category, nothing else
    changed = import_catalogue_rows(tmp_path / "catalogue.csv", rows)
    assert "0 products created, 1 updated" in changed
    assert Product.objects.get(sku="SKU-1").updated_at == saved["SKU-1"]
    red = Product.objects.select_related("category").get(sku="SKU-2")
    assert red.category.path == "Kitchen > Mugs" and red.updated_at > saved["SKU-2"]


@pytest.mark.django_db
def test_names_are_stored_in_one_form_without_control_characters(tmp_path):
    """Names came as exported: full-width letters, a unit separator (chr(31), which also splits
    the category names that campaigns fold), a tab or a line break inside a cell."""
    path = tmp_path / "catalogue.csv"
    write_csv(
        path,
        ["sku", "title", "category", "store", "store_name", "price", "brand"],
        [
            [
                "SKU-1",
                "\uff22\uff4c\uff55\uff45\x1fmug",  # full-width "Blue"
                "Kitchen > Mugs\x1fCups",
                "acme",
                "Acme\tKitchen\n",
                "9.50",
                "\uff21\uff23\uff2d\uff25\x7f",
            ],
            ["SKU-2", "Red mug", "Kitchen > Mugs Cups", "acme", "Acme\tKitchen\n", "8", ""],
        ],
    )
    for _ in range(2):  # a re-import finds what the first made
        call_command("import_catalog", str(path), stdout=StringIO())
    blue = Product.objects.select_related("category", "store").get(sku="SKU-1")
    assert (blue.title, blue.brand, blue.store.name) == ("Blue mug", "ACME", "Acme Kitchen")
    assert blue.category == Product.objects.get(sku="SKU-2").category
    assert list(Category.objects.values_list("path", flat=True)) == ["Kitchen", "Kitchen > Mugs Cups"]


@pytest.mark.django_db
def test_a_category_stored_before_names_were_cleaned_is_found_again(tmp_path):
    """An import before names were stored clean made full-width "Kitchen" as read: a re-import
    of the same file finds it (as NFKC) rather than making "Kitchen" beside it and moving its
    products there."""
    full_width = "\uff2b\uff49\uff54\uff43\uff48\uff45\uff4e"
    root = Category.objects.create(name=full_width, slug="kitchen")
    mugs = Category.objects.create(name="Mugs", slug="kitchen-mugs", parent=root)
    rows = [["SKU-1", "Blue mug", f"{full_width} > Mugs", "acme", "9"]]
    assert "0 categories created" in import_catalogue_rows(tmp_path / "cat.csv", rows)
    assert Product.objects.get(sku="SKU-1").category == mugs and Category.objects.count() == 2


@pytest.mark.django_db
def test_a_category_name_over_120_characters_is_cut_and_found_again_on_a_rerun(tmp_path):
    """The review's 140-character name made a category on every import (looked up whole,
    stored cut to 120) and moved the product to it."""
    long_name = "很长的类目名称" * 20
    rows = [["SKU-1", "乌龙茶", f"食品饮料 > {long_name}", "acme", "9"]]
    assert "2 categories created" in import_catalogue_rows(tmp_path / "cat.csv", rows)
    category = Product.objects.get(sku="SKU-1").category
    assert category.names == ["食品饮料", long_name[:120]]
    for _ in range(2):
        assert "0 categories created" in import_catalogue_rows(tmp_path / "cat.csv", rows)
    assert Category.objects.count() == 2 and Product.objects.get(sku="SKU-1").category == category


@pytest.mark.django_db
def test_a_category_path_over_500_characters_is_imported_and_found_again(tmp_path):
    """Five levels of 110-character names (a path of 562) failed with a database error."""
    names = [f"Level {i} " + "x" * 102 for i in range(5)]
    rows = [["SKU-1", "Deep item", " > ".join(names), "acme", "9"]]
    assert "5 categories created" in import_catalogue_rows(tmp_path / "deep.csv", rows)
    assert "0 categories created" in import_catalogue_rows(tmp_path / "deep.csv", rows)
    assert Product.objects.get(sku="SKU-1").category.names == names


@pytest.mark.django_db
def test_catalogue_json_lines_and_file_kinds_are_read_as_events_are(tmp_path):
    bad = tmp_path / "catalogue.ndjson"
    bad.write_text("[1]\n{oops\n" + "".join(f'{{"sku": "S{i}"}}\n' for i in range(25)))
    with pytest.raises(CommandError) as failure:
        call_command("import_catalog", str(bad), stdout=StringIO())
    message = str(failure.value)
    assert message.startswith("27 bad row(s); nothing was imported.")
    assert "catalogue.ndjson line 1: each line must be a JSON object" in message
    assert "line 2: not valid JSON (Expecting property name enclosed in double quotes)" in message
    assert message.endswith("\n  ... and 7 more") and not Product.objects.exists()
    other = tmp_path / "catalogue.txt"
    other.write_text("sku\n")
    for command in ("import_catalog", "import_events"):
        with pytest.raises(CommandError, match=r"catalogue.txt: use a .csv or .jsonl file"):
            call_command(command, str(other), stdout=StringIO())


@pytest.mark.django_db
def test_files_that_cannot_be_read_say_why_and_what_to_do(tmp_path, catalogue):
    def refused(*args, **options) -> str:
        with pytest.raises(CommandError) as failure:
            call_command("import_events", *map(str, args), no_progress=True, stdout=StringIO(), **options)
        return str(failure.value)

    header = "event_type,product_id,timestamp\n"
    good = f"view,{catalogue[0].pk},2024-01-01T10:00:00Z\n"
    (tmp_path / "events.csv").mkdir()
    assert "is a folder: give a file, or --dataset NAME" in refused(tmp_path / "events.csv")
    (tmp_path / "plain.csv.gz").write_text(header + good)
    assert "ends in .gz but is not gzip-compressed" in refused(tmp_path / "plain.csv.gz")
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress((header + good * 500).encode())[:-40])
    assert "is cut short" in refused(tmp_path / "cut.csv.gz")
    (tmp_path / "latin.csv").write_bytes((header + good).encode() + "search,,caf\xe9\n".encode("latin-1"))
    assert "is not UTF-8 text" in refused(tmp_path / "latin.csv")
    (tmp_path / "short.csv").write_text(header + good + "view,6\n")
    assert "short.csv line 3: 2 cells under a header of 3 columns" in refused(tmp_path / "short.csv")
    (tmp_path / "twice.csv").write_text("event_type,product_id,product_id\n" + "view,1,2\n")
    assert "the header names product_id more than once" in refused(tmp_path / "twice.csv")
    # Another file's columns (a dataset's order lines) are named once, not on every line.
    (tmp_path / "order_items.csv").write_text("order_id,product_id,price\n" + "o1,1,9.9\n" * 3)
    message = refused(tmp_path / "order_items.csv")
    assert "the header's 'order_id', 'price' are not event fields" in message
    assert "--dataset NAME" in message and "line" not in message
    (tmp_path / "colour.csv").write_text("event_type,product_id,colour\n" + "view,1,red\n")
    assert "the header's 'colour' is not an event field (" in refused(tmp_path / "colour.csv")
    # A download that stopped before its first byte: said, not "Read 0 rows".
    (tmp_path / "empty.csv.gz").write_bytes(gzip.compress(b""))
    assert refused(tmp_path / "empty.csv.gz") == (
        f"{tmp_path / 'empty.csv.gz'} is empty, without even a header: copy or download it again. "
        "Nothing was imported."
    )
    # A dataset's file instead of its folder: said before the progress bar reads anything.
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    )
    for path in (tmp_path / "short.csv", tmp_path / "ml" / "ml-100k.inter"):
        with pytest.raises(
            CommandError,
            match=f"^{path} is a file, not a folder; give the dataset's folder .with ml-100k.inter. as PATH.$",
        ):
            call_command("import_events", str(path), dataset="movielens", stdout=StringIO())
    with pytest.raises(CommandError, match="lacks ml-100k.inter; give the dataset's folder as PATH"):
        call_command("import_events", str(tmp_path), dataset="movielens", stdout=StringIO())
    assert not Event.objects.exists()


def test_batch_rows_must_be_a_whole_number(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "import_events", str(tmp_path), "--batch-rows", "0"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0 and "'0' is not a whole number >= 1" in result.stderr


@pytest.mark.django_db
def test_a_dataset_file_that_cannot_be_read_is_named_with_what_was_stored(amazon):
    items = (amazon / "items.csv").read_text()
    (amazon / "items.csv").write_bytes(
        items.encode() + '4,B0004,"Crème",,"[""Beauty""]",1,,\n'.encode("latin-1")
    )
    with pytest.raises(CommandError) as failure:
        call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    assert str(failure.value) == (
        f"{amazon / 'items.csv'} is not UTF-8 text (invalid continuation byte): save it as UTF-8. "
        "Nothing was imported."
    )
    assert not Product.objects.exists()

    (amazon / "items.csv").write_text(items)
    call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    header = ["user_id", "item_id", "reviewer_id", "asin", "timestamp", "seq_index"]
    rows = [[i, 1, f"RVW{i * 7919 % 10007}", "B0001", 1318896000 + i * 3571, i] for i in range(3000)]
    whole = amazon / "whole.csv.gz"
    write_csv(whole, header, rows, gzip.open)
    (amazon / "interactions.csv.gz").write_bytes(whole.read_bytes()[:-200])  # cut short

    def refused(**options) -> str:
        with pytest.raises(CommandError) as failure:
            call_command("import_events", str(amazon), dataset="amazon-beauty", stdout=StringIO(), **options)
        return str(failure.value)

    cut = (
        f"{amazon / 'interactions.csv.gz'} is cut short: the compressed data ends early. "
        "Copy or download it again."
    )
    # The progress bar counts the rows first: nothing is stored before the problem shows.
    assert refused() == f"{cut} Nothing was imported."
    assert not Event.objects.exists()
    message = refused(no_progress=True, batch_rows=500)
    stored = Event.objects.count()
    assert stored and stored % 500 == 0
    assert message == (
        f"{cut} The first {stored:,} rows were imported ({stored:,} new events); once it is fixed, "
        "running the import again skips them."
    )


def corrupt_gzip(good: str, bad: str) -> bytes:
    """A gzip file whose compressed data holds `good`, then a block of an invalid type (a
    damaged copy), then `bad`: reading it fails after `good`, with zlib's "invalid block type"."""
    compressor = zlib.compressobj(wbits=31)  # 31: the gzip format
    start = compressor.compress(good.encode()) + compressor.flush(zlib.Z_FULL_FLUSH)
    # A block header is 3 bits from a byte boundary after a full flush: not final, type 3 (none).
    return start + bytes([0b110]) + compressor.compress(bad.encode()) + compressor.flush()


@pytest.mark.django_db
def test_a_corrupt_gzip_file_is_named_with_what_was_stored(tmp_path, catalogue):
    header = "event_type,product_id,timestamp\n"
    rows = [
        f"view,{catalogue[i % 2].pk},2024-01-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z\n" for i in range(3000)
    ]
    events = tmp_path / "events.csv.gz"
    events.write_bytes(corrupt_gzip(header + "".join(rows[:2000]), "".join(rows[2000:])))
    with pytest.raises(CommandError) as failure:
        call_command("import_events", str(events), no_progress=True, batch_rows=500, stdout=StringIO())
    stored = Event.objects.count()
    assert stored and stored % 500 == 0
    assert str(failure.value) == (
        f"{events} is corrupt: its compressed data is damaged (Error -3 while decompressing data: invalid "
        f"block type). Copy or download it again. The first {stored:,} rows were imported ({stored:,} new "
        "events); once it is fixed, running the import again skips them."
    )

    products = tmp_path / "catalogue.csv.gz"
    products.write_bytes(
        corrupt_gzip("sku,title,category,store,price\nC-1,Cup,Kitchen,acme,2\n", "C-2,Jug,Kitchen,acme,3\n")
    )
    with pytest.raises(CommandError, match=r"catalogue.csv.gz is corrupt: .* Nothing was imported.$"):
        call_command("import_catalog", str(products), stdout=StringIO())
    assert not Product.objects.filter(sku__startswith="C-").exists()


@pytest.mark.django_db
def test_a_dataset_file_without_a_column_names_it_and_the_columns_found(amazon):
    items = amazon / "items.csv"
    items.write_text(items.read_text().replace("categories", "category", 1))
    with pytest.raises(CommandError) as failure:
        call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    assert str(failure.value) == (
        "items.csv has no column categories; its header has item_id, asin, title, brand, category, "
        "price, sales_rank, sales_type. Rename the column, or give the dataset's own file."
    )
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_rows_repeating_an_event_id_are_counted_apart_and_those_that_differ_named(tmp_path, catalogue):
    first, second = (str(p.pk) for p in catalogue[:2])
    events = tmp_path / "orders.csv"
    write_csv(
        events,
        ["event_id", "event_type", "product_id", "timestamp"],
        [
            ["order-1", "purchase", first, "2024-01-01T10:00:00Z"],  # line 2
            ["order-1", "purchase", second, "2024-01-01T10:00:00Z"],  # an order id on each line
            ["view-1", "view", first, "2024-01-02T10:00:00Z"],
            ["view-1", "view", first, "2024-01-02T10:00:00Z"],  # the same row twice
            ["order-1", "purchase", first, "2024-01-03T10:00:00Z"],  # in a later batch
        ],
    )

    def imported() -> str:
        out = StringIO()
        call_command("import_events", str(events), batch_rows=2, no_progress=True, stdout=out)
        return out.getvalue()

    output = imported()
    assert "stored 2 new events, skipped 0 already stored, 3 repeated within the file." in output
    assert (
        "2 row(s) repeat the event_id of an earlier row with other values; only the earlier row's "
        "event is stored. Give each event its own event_id and import those rows again.\n"
        "  orders.csv line 3: event_id order-1 is that of line 2, with another product_id, store_id; not stored\n"
        "  orders.csv line 6: event_id order-1 is that of line 2, with another timestamp; not stored\n"
    ) in output
    assert Event.objects.get(event_id="order-1").product_id == first  # the first row's
    assert Event.objects.count() == 2
    rerun = imported()
    assert "stored 0 new events, skipped 2 already stored, 3 repeated within the file." in rerun
    assert "orders.csv line 3: event_id order-1 is that of line 2" in rerun


@pytest.mark.django_db
def test_a_dataset_row_repeating_another_is_counted_apart(amazon):
    call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    header = ["user_id", "item_id", "reviewer_id", "asin", "timestamp", "seq_index"]
    rows = [
        [1, 1, "RVW1", "B0001", 1318896000, 0],
        [1, 2, "RVW1", "B0002", 1318896000, 1],
        [1, 1, "RVW1", "B0001", 1391040000, 2],  # reviewed again later: the same key
    ]
    write_csv(amazon / "interactions.csv.gz", header, rows, gzip.open)
    out = StringIO()
    call_command("import_events", str(amazon), dataset="amazon-beauty", no_progress=True, stdout=out)
    assert "stored 2 new events, skipped 0 already stored, 1 repeated within the file" in out.getvalue()
    assert (
        "1 row(s) repeat the event_id of an earlier row with other values; only the earlier row's event "
        "is stored.\n  interactions.csv.gz line 4: event_id amazon-beauty:RVW1:B0001 is that of line 2, "
        "with another timestamp; not stored"
    ) in out.getvalue()


@pytest.mark.django_db
def test_catalogue_rows_repeating_a_sku_are_reported_and_the_first_is_imported(tmp_path, amazon):
    catalogue = tmp_path / "catalogue.csv"
    write_csv(
        catalogue,
        ["sku", "title", "category", "store", "price"],
        [
            ["D-1", "First", "Kitchen > Mugs", "acme", "1.00"],
            ["D-2", "Plate", "Kitchen > Plates", "acme", "3.00"],
            ["D-1", "Second title", "Kitchen > Mugs", "acme", "2.00"],
            ["D-2", "Plate", "Kitchen > Plates", "acme", "3"],  # the same product again
        ],
    )
    out = StringIO()
    call_command("import_catalog", str(catalogue), stdout=out)
    assert "2 products created" in out.getvalue()
    assert "categories created; 2 rows repeated an earlier row's sku." in out.getvalue()
    assert (
        "1 row(s) repeat the sku of an earlier row with other values; only the earlier row's product "
        "is imported. Keep one row per sku (or give each product its own) and import again.\n"
        "  catalogue.csv line 4: sku D-1 is that of line 2, with another title, price; line 2's "
        "product is imported\n"
    ) in out.getvalue()
    assert Product.objects.get(sku="D-1").title == "First"

    items = amazon / "items.csv"
    items.write_text(items.read_text() + '4,B0001,OPI Nail Lacquer,OPI,"[""Beauty""]",12.0,,\n')
    out = StringIO()
    call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=out)
    assert (
        "only the earlier row's product is imported.\n  items.csv line 5: sku amazon-beauty:B0001 is that "
        "of line 2, with another title, category_path, description; line 2's product is imported"
    ) in out.getvalue()


def thirty_searches(tmp_path) -> Path:
    """A JSON-lines file of thirty named searches: three batches of ten."""
    events = tmp_path / "events.jsonl"
    lines = (json.dumps({"event_id": f"s-{n}", "event_type": "search", "query": "mug"}) for n in range(30))
    events.write_text("".join(line + "\n" for line in lines))
    return events


@pytest.mark.django_db(transaction=True)
def test_losing_the_database_mid_file_says_what_was_stored_and_a_rerun_resumes(tmp_path):
    """The server drops the import's connection (a restart) after its first batch."""
    events = thirty_searches(tmp_path)

    def drop_connection_after_the_first_batch(stage, done, total):
        if done == 10:
            with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])

    with pytest.raises(DatabaseLost) as lost:
        import_event_file(
            events, batch_rows=10, progress=Progress(listeners=(drop_connection_after_the_first_batch,))
        )
    assert str(lost.value).startswith("The database was lost while importing events.jsonl (")
    assert str(lost.value).endswith(
        "). The first 10 rows were imported (10 new events); once it is back, running the same "
        "command again skips them."
    )
    connection.close()
    assert Event.objects.count() == 10
    assert import_event_file(events, batch_rows=10).stored == 20


@pytest.mark.django_db
def test_ctrl_c_mid_file_says_what_was_stored_and_a_rerun_completes(tmp_path):
    """Ctrl-C after the first batch: one line saying what stayed, no traceback."""
    events = thirty_searches(tmp_path)

    def ctrl_c_after_the_first_batch(stage, done, total):
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(CommandError) as interrupted, command_errors(events):
        import_event_file(events, batch_rows=10, progress=Progress(listeners=(ctrl_c_after_the_first_batch,)))
    assert str(interrupted.value) == (
        "Interrupted while importing events.jsonl. The first 10 rows were imported (10 new events); "
        "running the same command again skips them."
    )
    assert Event.objects.count() == 10
    result = import_event_file(events, batch_rows=10)
    assert (result.stored, result.skipped) == (20, 10)


class InterruptedInItsSecondLookup(ShopProductAdapter):
    """The shop's adapter, met by Ctrl-C as it looks products up for the second time."""

    lookups = 0

    def keys_by_source_id(self, source_ids):
        type(self).lookups += 1
        if type(self).lookups == 2:
            raise KeyboardInterrupt
        return super().keys_by_source_id(source_ids)


@pytest.mark.django_db
def test_ctrl_c_while_a_batch_is_written_names_its_rows(amazon, settings):
    call_command("import_catalog", str(amazon), dataset="amazon-beauty", stdout=StringIO())
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "PRODUCT_ADAPTER": "tests.events.test_importers.InterruptedInItsSecondLookup",
    }
    InterruptedInItsSecondLookup.lookups = 0
    with pytest.raises(CommandError) as interrupted:
        call_command(
            "import_events",
            str(amazon),
            dataset="amazon-beauty",
            batch_rows=2,
            no_progress=True,
            stdout=StringIO(),
        )
    assert str(interrupted.value) == (
        "Interrupted while importing interactions.csv.gz, with rows 3-4 being written (stored only if it "
        "came as they were committed). The first 2 rows were imported (2 new events); running the same "
        "command again skips them."
    )
    assert Event.objects.count() == 2
    result = import_dataset_events("amazon-beauty", amazon, batch_rows=2)
    assert (result.stored, result.skipped) == (3, 2)


@pytest.mark.django_db
def test_ctrl_c_while_a_catalogue_is_written_leaves_none_of_it(amazon):
    def ctrl_c_after_the_first_products(stage, done, total):
        if stage == "writing products":
            raise KeyboardInterrupt

    with pytest.raises(
        CommandError, match="^Interrupted; nothing was imported: run the same command again.$"
    ):
        with command_errors(amazon):
            import_dataset_catalog(
                "amazon-beauty", amazon, Progress(listeners=(ctrl_c_after_the_first_products,))
            )
    assert not (Product.objects.exists() or Store.objects.exists() or Category.objects.exists())


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_an_import_stores_nothing_of_users_who_opted_out(tmp_path, catalogue, shopper, kind):
    """As `ingest()` does, the importers drop the events of users who opted out of
    personalisation, and the summary counts them."""
    private = get_user_model().objects.create_user("private")
    set_opted_out(private)
    product = str(catalogue[0].pk)
    events = [
        {"event_type": "view", "product_id": product, "user_id": shopper.pk},
        {"event_type": "view", "product_id": product, "user_id": private.pk},
        {"event_type": "rating", "product_id": product, "user_id": private.pk, "value": 2},
        {"event_type": "search", "query": "mug"},
    ]
    path = tmp_path / f"events.{kind}"
    if kind == "csv":
        header = ["event_type", "product_id", "user_id", "value", "query"]
        write_csv(path, header, [[event.get(name, "") for name in header] for event in events])
    else:
        path.write_text("".join(json.dumps(event) + "\n" for event in events))

    def imported() -> str:
        out = StringIO()
        call_command("import_events", str(path), no_progress=True, stdout=out)
        return out.getvalue()

    assert "stored 2 new events, skipped 0 already stored, 2 dropped: users opted out." in imported()
    assert sorted(Event.objects.values_list("event_type", "user_id")) == [
        ("search", None),
        ("view", shopper.pk),
    ]
    assert "stored 0 new events, skipped 2 already stored, 2 dropped: users opted out." in imported()


@pytest.mark.django_db
def test_a_dataset_import_stores_nothing_of_users_who_opted_out(amazon):
    import_both("amazon-beauty", amazon)
    reviewer = get_user_model().objects.get(username="amazon-beauty.RVW1")
    set_opted_out(reviewer)
    Event.objects.all().delete()

    result = import_dataset_events("amazon-beauty", amazon)

    assert (result.read, result.stored, result.opted_out, result.skipped) == (5, 3, 2, 0)
    assert not Event.objects.filter(user=reviewer).exists() and Event.objects.count() == 3
