"""Readers for the public datasets the engine is evaluated on.

Each reader turns one dataset's files into three neutral streams: stores, products and
interactions, each record carrying the line it came from. The engine's event importer
consumes the interactions; the host's catalogue importer consumes stores and products (the
engine cannot write the host's catalogue). Source ids are namespaced (`amazon-beauty:<ASIN>`)
so that datasets never collide, and they are what the host stores in its source-id fields
(`ProductAdapter.source_id_field`, e.g. a SKU).

Datasets:

- `amazon-beauty` (folder with `items.csv`, `interactions.csv.gz`): brands are stores, the
  category path becomes the category, and each review is a `purchase` event (quantity 1):
  the 5-core set keeps one interaction per review and drops the star rating, and a review
  is the best purchase proxy the data has.
- `olist` (folder with the Olist CSVs): sellers are stores; products are those sold in the
  order lines (every product needs a seller), with the English category and the mean
  price paid; each order line is a `purchase` with its price as revenue, timed at the
  order's purchase time (São Paulo); the lines of cancelled and unavailable orders are skipped
  (and counted in the import's summary).
- `movielens` (folder with `ml-100k.item`, `ml-100k.inter`): movies are products in one
  store "MovieLens", categorised by their first genre; ratings are `rating` events.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from recommendations.events.textfiles import CsvBatch, csv_batches, error_lines, open_text

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
MAX_SOURCE_ID = 64


def source_id(namespace: str, *parts: str) -> str:
    """`namespace:part:...`, hashed when longer than a source-id column can hold."""
    text = ":".join((namespace, *parts))
    if len(text) <= MAX_SOURCE_ID:
        return text
    digest = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    return f"{namespace}:{digest}"


@dataclass(frozen=True)
class StoreSource:
    source_id: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class ProductSource:
    source_id: str
    title: str
    category_path: tuple[str, ...]
    store_source_id: str
    description: str = ""
    brand: str = ""
    price: Decimal | None = None


class InteractionSource(NamedTuple):
    """One behaviour event as the dataset tells it; `key` makes its event id deterministic.

    A named tuple: a dataset yields hundreds of thousands of these, and tuples are cheap."""

    line: int
    key: tuple[str, ...]
    user_source_id: str
    product_source_id: str
    event_type: str
    timestamp: dt.datetime
    value: float | None = None
    revenue: Decimal | None = None
    store_source_id: str = ""


@dataclass(frozen=True)
class RowError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file} line {self.line}: {self.message}"


class Skipped(NamedTuple):
    """A source row the dataset's rules leave out (not an error), and why: counted, not stored."""

    line: int
    reason: str


@dataclass
class InteractionBatch:
    """Consecutive interactions column by column (the fields of `InteractionSource`, with `keys`
    as one column per key part), the rows among them that could not be read, and how many
    the dataset's rules skipped, by reason.

    The importer turns columns into events in C; a batch of 50,000 named tuples costs more to
    make and take apart than the rest of its import.
    """

    lines: Sequence[int]
    keys: Sequence[Sequence[str]]
    user_source_ids: Sequence[str]
    product_source_ids: Sequence[str]
    event_types: Sequence[str]
    timestamps: Sequence[dt.datetime]
    values: Sequence[float | None]
    revenues: Sequence[Decimal | None]
    store_source_ids: Sequence[str]
    errors: list[RowError] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        """Rows read, whether they became interactions, errors or were skipped."""
        return len(self.lines) + len(self.errors) + self.skipped.total()

    @classmethod
    def of(cls, items: Iterable[InteractionSource | RowError | Skipped]) -> InteractionBatch:
        items = list(items)
        sources = [item for item in items if isinstance(item, InteractionSource)]
        empty = [()] * len(InteractionSource._fields)
        lines, keys, *columns = zip(*sources, strict=True) if sources else empty
        errors = [item for item in items if isinstance(item, RowError)]
        skipped = Counter(item.reason for item in items if isinstance(item, Skipped))
        return cls(lines, list(zip(*keys, strict=True)), *columns, errors=errors, skipped=skipped)


@dataclass
class Catalogue:
    """Stores and products as read, the rows that could not be read, and the rows that
    repeated an earlier row's product (`add_product`)."""

    stores: list[StoreSource] = field(default_factory=list)
    products: list[ProductSource] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    # Rows whose product (source id) an earlier row had; the first row's is kept.
    repeated: int = 0
    # Those of them with other values, which the import leaves out: the host should hear of them.
    conflicts: list[RowError] = field(default_factory=list)
    _first: dict[str, tuple[int, ProductSource]] = field(default_factory=dict, repr=False)

    def add_product(self, product: ProductSource, file: str, line: int) -> None:
        """Add the product read from `file` at `line`, unless an earlier row had its source id:
        then the first row's is kept, and this one counted as repeated, as a conflict when any
        value differs (which ones, and the first row's line, are named)."""
        first = self._first.get(product.source_id)
        if first is None:
            self._first[product.source_id] = (line, product)
            self.products.append(product)
            return
        self.repeated += 1
        first_line, kept = first
        differ = [f.name for f in fields(ProductSource) if getattr(kept, f.name) != getattr(product, f.name)]
        if differ:
            self.conflicts.append(
                RowError(
                    file,
                    line,
                    f"sku {product.source_id} is that of line {first_line}, with another "
                    f"{', '.join(differ)}; line {first_line}'s product is imported",
                )
            )


def require_files(folder: Path, *names: str) -> list[Path]:
    """The paths of the dataset's files in `folder`; FileNotFoundError naming those missing
    (or saying that `folder` is one file, such as the dataset's own, not its folder)."""
    if folder.is_file():
        raise FileNotFoundError(
            f"{folder} is a file, not a folder; give the dataset's folder (with {', '.join(names)}) as PATH."
        )
    paths = [folder / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}; give the dataset's folder as PATH.")
    return paths


def _rows(
    path: Path,
    required: Sequence[str] = (),
    *,
    delimiter: str = ",",
    quoting: int = csv.QUOTE_MINIMAL,
    whole_lines: bool = True,
) -> Iterator[tuple[int, dict[str, str] | str]]:
    """(line number, row by column name) for a file with a header; line numbers count the
    header as line 1, and header names may carry a RecBole type (`user_id:token`).

    A header without a `required` column raises `ValueError` naming the file, the column and
    the columns found, once, instead of a bad row per line. A row with fewer or more cells than
    the header comes as a string saying so, for the caller to report with its line: a row cut
    short has lost its last value and may hold a cut one. The datasets' files end with a line
    break, so a last line without one is refused (`open_text`) unless `whole_lines` is False.
    """
    with open_text(path, whole_lines=whole_lines) as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        header = [name.split(":")[0] for name in next(reader, [])]
        missing = [name for name in required if name not in header]
        if missing:
            raise ValueError(
                f"{path.name} has no column {', '.join(missing)}; its header has "
                f"{', '.join(header) or 'no columns'}. Rename the column, or give the dataset's own file."
            )
        width = len(header)
        for cells in reader:  # faster than DictReader
            row = (
                dict(zip(header, cells, strict=True)) if len(cells) == width else _width_problem(cells, width)
            )
            yield reader.line_num, row


def _width_problem(cells: Sequence[str], width: int) -> str:
    return f"{len(cells)} cell{'' if len(cells) == 1 else 's'} where the header has {width}"


def _lookup(path: Path, key: str, value: str, *, whole_lines: bool = True) -> dict[str, str]:
    """A lookup table (`key` -> `value`) from two columns of a CSV (`whole_lines`: as `_rows`).
    The import depends on the whole table, so a row without the header's columns is an error
    naming it."""
    table = {}
    for line, row in _rows(path, required=(key, value), whole_lines=whole_lines):
        if isinstance(row, str):
            raise ValueError(
                f"{path.name} line {line} does not have the header's columns ({row}); fix or remove that row."
            )
        table[row[key]] = row[value]
    return table


class _Picker:
    """The named cells of each row, picked by position: a fraction of a dict per row, for
    interaction files, which hold nearly all of a dataset's rows. `names` are two or more
    columns; header names may carry a RecBole type (`user_id:token`)."""

    def __init__(self, header: Sequence[str], names: Sequence[str]) -> None:
        header = [name.split(":")[0] for name in header]
        missing = [name for name in names if name not in header]
        # What is wrong with every row, if anything.
        self.problem = f"no column {', '.join(missing)} in the header" if missing else ""
        self.positions = [] if missing else [header.index(name) for name in names]
        self.pick = itemgetter(*self.positions) if self.positions else None
        self.width = len(header)

    def __call__(self, cells: Sequence[str]) -> tuple[str, ...] | str:
        """The named cells in that order, or what is wrong (as for `_rows`, a row with fewer or
        more cells than the header)."""
        if self.pick is None:
            return self.problem
        if len(cells) == self.width:
            return self.pick(cells)
        return _width_problem(cells, self.width)


def _cells(
    path: Path, names: Sequence[str], *, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL
) -> Iterator[tuple[int, tuple[str, ...] | str]]:
    """(line, the named cells in that order) per row of a file with a header, or (line, what is
    wrong); a last line without a line break is refused, as by `_rows`."""
    with open_text(path, whole_lines=True) as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        pick = _Picker(next(reader, []), names)
        for cells in reader:
            yield reader.line_num, pick(cells)


def _price(text: str) -> Decimal | None:
    if not text or not text.strip():
        return None
    price = Decimal(text.strip())
    if not price.is_finite() or price < 0:
        raise InvalidOperation
    return price.quantize(Decimal("0.01"))


@functools.lru_cache(maxsize=65_536)
def _unix(text: str) -> dt.datetime:
    """A Unix time in seconds; a ValueError naming the cell when it is none (a bad timestamp
    beside a good rating must not read as a bad rating)."""
    try:
        return dt.datetime.fromtimestamp(int(float(text)), tz=dt.UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"timestamp {text.strip()!r} is not a Unix time in seconds ({exc})") from exc


class Dataset:
    """One public dataset: which files it needs, and how they become catalogue and events."""

    name: str
    interaction_file: str

    def catalogue(self, folder: Path) -> Catalogue:
        raise NotImplementedError

    def interaction_batches(self, folder: Path, size: int) -> Iterator[InteractionBatch]:
        """Events in file order, in batches of `size` source rows; malformed rows come as
        `RowError`s so all can be reported, rows the dataset leaves out as `Skipped`."""
        items = self.interactions(folder)
        while batch := list(islice(items, size)):
            yield InteractionBatch.of(batch)

    def interactions(self, folder: Path) -> Iterator[InteractionSource | RowError | Skipped]:
        """Events row by row, for `interaction_batches` (or a dataset overrides that instead)."""
        raise NotImplementedError

    def username(self, user_source_id: str) -> str:
        """Username of the lightweight account made for a dataset's user (dots are valid)."""
        return f"{self.name}.{user_source_id}"[:150]


class AmazonBeauty(Dataset):
    name = "amazon-beauty"
    interaction_file = "interactions.csv.gz"

    def brand_store_id(self, brand: str) -> str:
        return source_id(self.name, "brand", brand or "unbranded")

    def catalogue(self, folder: Path) -> Catalogue:
        (items,) = require_files(folder, "items.csv")
        result = Catalogue()
        brands: set[str] = set()
        for line, row in _rows(items, required=("asin", "categories", "price")):
            try:
                if isinstance(row, str):
                    raise ValueError(row)
                asin = row["asin"].strip()
                path = tuple(json.loads(row["categories"]))
                price = _price(row["price"])
                if not asin or not path:
                    raise ValueError("asin and categories are required")
            except (ValueError, InvalidOperation, TypeError, AttributeError) as exc:
                result.errors.append(RowError(items.name, line, f"unreadable item ({exc or 'bad value'})"))
                continue
            brand = row.get("brand", "").strip()
            brands.add(brand)
            title = row.get("title", "").strip() or f"Beauty product {asin}"
            rank = row.get("sales_rank", "").strip()
            description = f"{title}. {' / '.join(path)}."
            if rank:
                description += f" Sales rank #{int(rank):,} in {row.get('sales_type', '') or 'Beauty'}."
            result.add_product(
                ProductSource(
                    source_id=source_id(self.name, asin),
                    title=title[:300],
                    category_path=tuple(str(p) for p in path),
                    store_source_id=self.brand_store_id(brand),
                    description=description,
                    brand=brand[:120],
                    price=price,
                ),
                items.name,
                line,
            )
        result.stores = [
            StoreSource(
                self.brand_store_id(b), b or "Unbranded", f"Beauty products by {b or 'various makers'}."
            )
            for b in sorted(brands)
        ]
        return result

    def interaction_batches(self, folder: Path, size: int) -> Iterator[InteractionBatch]:
        """Read column by column where a batch allows it (`_by_column`), else row by row."""
        (path,) = require_files(folder, self.interaction_file)
        # A blank line is a bad row, as for the csv module (which reads it as a row without cells).
        for batch in csv_batches(path, size, blank_rows=True, whole_lines=True):
            pick = _Picker(batch.header, ("reviewer_id", "asin", "timestamp"))
            yield self._by_column(batch, pick) or InteractionBatch.of(
                self._interaction(path.name, line, pick(cells))
                for line, cells in zip(batch.lines, batch.by_row(), strict=True)
            )

    def _by_column(self, batch: CsvBatch, pick: _Picker) -> InteractionBatch | None:
        """The interactions `_interaction` reads from the batch's rows, read a column at a time
        (each distinct timestamp and product once); None when a row is bad, for `_interaction`
        to name."""
        columns = batch.by_column() if pick.pick is not None else None
        if columns is None:
            return None
        reviewer, asin, stamp = pick.positions
        reviewers, asins = list(map(str.strip, columns[reviewer])), list(map(str.strip, columns[asin]))
        if "" in reviewers or "" in asins:
            return None
        try:
            moments = {text: _unix(text) for text in set(columns[stamp])}
        except ValueError:
            return None
        products = {text: source_id(self.name, text) for text in set(asins)}
        count = len(batch)
        return InteractionBatch(
            batch.lines,
            [reviewers, asins],
            reviewers,
            list(map(products.__getitem__, asins)),
            ["purchase"] * count,
            list(map(moments.__getitem__, columns[stamp])),
            [1.0] * count,
            [None] * count,
            [""] * count,
        )

    def _interaction(
        self, file: str, line: int, cells: tuple[str, ...] | str
    ) -> InteractionSource | RowError:
        try:
            if isinstance(cells, str):
                raise ValueError(cells)
            reviewer, asin, stamp = cells
            reviewer, asin = reviewer.strip(), asin.strip()
            if not reviewer or not asin:
                raise ValueError("reviewer_id and asin are required")
            timestamp = _unix(stamp)
        except ValueError as exc:
            return RowError(file, line, f"unreadable interaction ({exc})")
        return InteractionSource(
            line, (reviewer, asin), reviewer, source_id(self.name, asin), "purchase", timestamp, 1.0
        )


class Olist(Dataset):
    name = "olist"
    interaction_file = "order_items.csv"
    SKIPPED_STATUSES = frozenset({"canceled", "unavailable"})
    SKIPPED = "cancelled or unavailable orders"

    def catalogue(self, folder: Path) -> Catalogue:
        sellers, products, items, translation = require_files(
            folder, "sellers.csv", "products.csv", "order_items.csv", "product_category_name_translation.csv"
        )
        result = Catalogue()
        # Olist publishes its category translation without a line break after the last line.
        english = _lookup(
            translation, "product_category_name", "product_category_name_english", whole_lines=False
        )
        sold_by: dict[str, Counter] = defaultdict(Counter)
        prices: dict[str, list[Decimal]] = defaultdict(list)
        for line, row in _rows(items, required=("product_id", "seller_id", "price")):
            if isinstance(row, str):
                result.errors.append(RowError(items.name, line, f"unreadable order line ({row})"))
                continue
            try:
                price = _price(row["price"]) or Decimal(0)
            except InvalidOperation:
                result.errors.append(RowError(items.name, line, "unreadable order line (bad price)"))
                continue
            sold_by[row["product_id"]][row["seller_id"]] += 1
            prices[row["product_id"]].append(price)
        for line, row in _rows(sellers, required=("seller_id",)):
            if isinstance(row, str) or not row["seller_id"]:
                why = f"({row})" if isinstance(row, str) else "without its seller_id"
                result.errors.append(RowError(sellers.name, line, f"a seller row {why}"))
                continue
            seller = row["seller_id"]
            city = row.get("seller_city", "").title()
            result.stores.append(
                StoreSource(
                    source_id(self.name, seller),
                    f"{city or 'Olist'} seller {seller[:6]}",
                    f"Olist marketplace seller from {city}, {row.get('seller_state', '')}.",
                )
            )
        for line, row in _rows(products, required=("product_id",)):
            if isinstance(row, str):
                result.errors.append(RowError(products.name, line, f"unreadable product ({row})"))
                continue
            product = row["product_id"]
            if product not in sold_by:
                continue
            raw_category = row.get("product_category_name", "")
            category = english.get(raw_category, raw_category) or "uncategorised"
            label = category.replace("_", " ").capitalize()
            seller = sold_by[product].most_common(1)[0][0]
            try:
                weight = int(float(row.get("product_weight_g") or 0))
                photos = int(float(row.get("product_photos_qty") or 0))
            except ValueError:
                result.errors.append(RowError(products.name, line, "weight and photo count must be numbers"))
                continue
            result.add_product(
                ProductSource(
                    source_id=source_id(self.name, product),
                    title=f"{label} #{product[:6]}",
                    category_path=(label,),
                    store_source_id=source_id(self.name, seller),
                    description=f"{label}. Weight {weight} g, {photos} photo(s).",
                    price=Decimal(statistics.fmean(prices[product])).quantize(Decimal("0.01")),
                ),
                products.name,
                line,
            )
        return result

    def interactions(self, folder: Path) -> Iterator[InteractionSource | RowError | Skipped]:
        items, orders, customers = require_files(folder, self.interaction_file, "orders.csv", "customers.csv")
        person = _lookup(customers, "customer_id", "customer_unique_id")
        placed: dict[str, tuple[str, dt.datetime] | None] = {}
        order_columns = ("order_id", "customer_id", "order_status", "order_purchase_timestamp")
        # A lookup table as customers.csv is, read whole before any line is stored: its bad rows
        # are named (in their own file) at once, not as bad lines of the first batch.
        bad_orders = []
        for line, row in _rows(orders, required=order_columns):
            try:
                if isinstance(row, str):
                    raise ValueError(row)
                if row["order_status"] in self.SKIPPED_STATUSES:
                    placed[row["order_id"]] = None
                    continue
                moment = dt.datetime.fromisoformat(row["order_purchase_timestamp"]).replace(tzinfo=SAO_PAULO)
            except (KeyError, ValueError, TypeError) as exc:
                bad_orders.append(str(RowError(orders.name, line, f"unreadable order ({exc})")))
                continue
            placed[row["order_id"]] = (person.get(row["customer_id"], ""), moment)
        if bad_orders:
            raise ValueError(
                f"{orders.name}: {len(bad_orders)} bad row(s); nothing was imported. Fix or remove them "
                f"and run again:{error_lines(bad_orders)}"
            )
        columns = ("order_id", "order_item_id", "product_id", "seller_id", "price")
        for line, cells in _cells(items, columns):
            if isinstance(cells, str):
                yield RowError(items.name, line, f"unreadable order line ({cells})")
                continue
            order_id, item_id, product, seller, price = cells
            try:
                order = placed[order_id]
                if order is None:
                    yield Skipped(line, self.SKIPPED)
                    continue
                customer, moment = order
                if not customer:
                    raise ValueError(f"customer of order {order_id} is not in customers.csv")
                revenue = _price(price)
            except KeyError as exc:
                yield RowError(items.name, line, f"unknown order {exc}")
                continue
            except (ValueError, InvalidOperation) as exc:
                yield RowError(items.name, line, f"unreadable order line ({exc or 'bad price'})")
                continue
            yield InteractionSource(
                line,
                (order_id, item_id),
                customer,
                source_id(self.name, product),
                "purchase",
                moment,
                1.0,
                revenue,
                source_id(self.name, seller),
            )


class MovieLens(Dataset):
    name = "movielens"
    interaction_file = "ml-100k.inter"
    STORE = "movielens:store"

    def catalogue(self, folder: Path) -> Catalogue:
        (items,) = require_files(folder, "ml-100k.item")
        result = Catalogue(stores=[StoreSource(self.STORE, "MovieLens", "Movies rated on MovieLens 100K.")])
        # Titles contain quotes, so quoting is off.
        for line, row in _rows(items, delimiter="\t", quoting=csv.QUOTE_NONE):
            if isinstance(row, str):
                result.errors.append(RowError(items.name, line, f"unreadable movie ({row})"))
                continue
            item, title = row.get("item_id", "").strip(), row.get("movie_title", "").strip()
            if not item or not title:
                result.errors.append(RowError(items.name, line, "item_id and movie_title are required"))
                continue
            genres = row.get("class", "").split() or ["Unknown"]
            year = row.get("release_year", "").strip()
            result.add_product(
                ProductSource(
                    source_id=source_id(self.name, item),
                    title=f"{title} ({year})" if year else title,
                    category_path=("Movies", genres[0]),
                    store_source_id=self.STORE,
                    description=f"Genres: {', '.join(genres)}." + (f" Released {year}." if year else ""),
                    price=Decimal("0.00"),
                ),
                items.name,
                line,
            )
        return result

    def interactions(self, folder: Path) -> Iterator[InteractionSource | RowError]:
        (path,) = require_files(folder, self.interaction_file)
        columns = ("user_id", "item_id", "rating", "timestamp")
        for line, cells in _cells(path, columns, delimiter="\t", quoting=csv.QUOTE_NONE):
            try:
                if isinstance(cells, str):
                    raise ValueError(cells)
                user, item, rating, stamp = cells
                user, item, rating = user.strip(), item.strip(), float(rating)
                if not user or not item or not 1 <= rating <= 5:
                    raise ValueError("needs user_id, item_id and a rating from 1 to 5")
                timestamp = _unix(stamp)
            except ValueError as exc:
                yield RowError(path.name, line, f"unreadable rating row ({exc})")
                continue
            yield InteractionSource(
                line, (user, item), user, source_id(self.name, item), "rating", timestamp, rating
            )


DATASETS: dict[str, Dataset] = {d.name: d for d in (AmazonBeauty(), Olist(), MovieLens())}


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.") from None
