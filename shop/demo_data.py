"""A believable demo shop: stores, a category tree, products, shoppers and their behaviour.

Shoppers have hidden tastes (two or three favourite subcategories, a price band, a favourite
brand, an activity level) that drive what they search, view, put in the cart, buy, rate
and buy again, so a recommender has real structure to find. Demand follows seasons (camping
in summer, knitwear in winter, gifts in December), consumables are re-bought every few
weeks (a durable good only once), anonymous visitors browse without an account, and two
crawler sessions give the bot filter something to catch.

Everything derives from one `random.Random(seed)`, so the same seed, sizes and end date give
the same shop. Re-running replaces the previous demo data (products with a `demo-` SKU,
stores with a `demo-` external id, events with a `demo:` id) and reuses the shoppers' accounts
(`@demo.example.com` addresses). Events are written with the engine's COPY path
(`ingestion.copy_rows`), except those of shoppers who opted out of personalisation
(`privacy.optout`), as for real events.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from recommendations.events.ingestion import copy_rows
from recommendations.events.partitions import ensure_partitions, months_between
from recommendations.events.rows import EventRow
from recommendations.models.events import Event
from recommendations.privacy.optout import drop_opted_out
from shop.catalog_import import UniqueSlugs
from shop.demo_catalogue import (
    BOT_USER_AGENT,
    DEPARTMENTS,
    FIRST_NAMES,
    LAST_NAMES,
    REVIEW_TEXT,
    SEASONS,
    STORES,
    USER_AGENTS,
    Subcategory,
)
from shop.models import Category, Product, Store

logger = logging.getLogger(__name__)

DEMO_EMAIL_DOMAIN = "demo.example.com"
DEMO_PASSWORD = "demo"  # noqa: S105 - every demo shopper can log in with it, to see their recommendations
WRITE_BATCH = 20_000


@dataclass
class DemoSummary:
    stores: int = 0
    categories: int = 0
    products: int = 0
    users: int = 0
    events: int = 0
    seconds: float = 0.0


@dataclass
class DemoProduct:
    pk: str
    store_pk: str
    slug: str
    sub: Subcategory
    brand: str
    price: Decimal
    appeal: float  # hidden quality + popularity: how likely anyone is to pick it
    quality: float  # hidden: drives ratings
    price_rank: float  # 0 = cheapest of its subcategory, 1 = dearest
    in_stock: bool
    query: str  # what a shopper would type to find it


@dataclass
class Shopper:
    pk: int | None
    tastes: dict[str, float]  # subcategory name -> weight
    price_band: float  # preferred price_rank
    brand: str
    activity: float  # expected visits per day
    device: tuple[str, str]
    cart_threshold: float
    bought: dict[str, dt.datetime] = field(default_factory=dict)  # consumables: product pk -> last purchase
    owned: set[str] = field(default_factory=set)  # durables bought: nobody buys the same speaker twice


class _Events:
    """Collects EventRows with deterministic ids."""

    def __init__(self, seed: int, end: dt.datetime) -> None:
        self.prefix = f"demo:{seed}:"
        self.end = end
        self.rows: list[EventRow] = []

    def add(
        self,
        event_type: str,
        when: dt.datetime,
        shopper: Shopper,
        session: str,
        product: DemoProduct | None = None,
        *,
        store: str = "",
        query: str = "",
        value: float | None = None,
        revenue: Decimal | None = None,
        context: dict[str, object] | None = None,
    ) -> None:
        if when >= self.end:
            return
        full_context: dict[str, object] = {"device": shopper.device[0], "user_agent": shopper.device[1]}
        if product is not None:
            full_context["page"] = f"/product/{product.slug}/"
            store = store or product.store_pk
        full_context.update(context or {})
        product_pk = product.pk if product else ""
        row = EventRow(
            f"{self.prefix}{len(self.rows)}",
            event_type,
            shopper.pk,
            session,
            product_pk,
            store,
            query,
            value,
            revenue,
            when,
            full_context,
            "",
        )
        self.rows.append(row)


def _wipe() -> None:
    """Remove the previous demo catalogue and events (and only them); accounts are reused by `_users`."""
    Event.objects.filter(event_id__startswith="demo:").delete()
    Product.objects.filter(sku__startswith="demo-").delete()
    Store.objects.filter(external_id__startswith="demo-").delete()


def _categories() -> dict[str, Category]:
    """Departments as roots, subcategories beneath; reused when they exist."""
    slugs = UniqueSlugs(Category.objects.values_list("slug", flat=True), 140)
    nodes: dict[str, Category] = {}
    for department, subs in DEPARTMENTS.items():
        root = Category.objects.filter(name=department, parent=None).first()
        root = root or Category.objects.create(name=department, slug=slugs(department))
        for sub in subs:
            node = Category.objects.filter(name=sub.name, parent=root).first()
            nodes[sub.name] = node or Category.objects.create(
                name=sub.name, slug=slugs(sub.name), parent=root
            )
    return nodes


def _stores(rng: random.Random, categories: dict[str, Category]) -> dict[str, list[Store]]:
    """The sellers; returns the stores that sell each subcategory."""
    slugs = UniqueSlugs(Store.objects.values_list("slug", flat=True), 220)
    sellers: dict[str, list[Store]] = {}
    for index, (name, specialities, pitch) in enumerate(STORES):
        store = Store.objects.create(
            name=name,
            slug=slugs(name),
            external_id=f"demo-{index}",
            description=f"{pitch} Specialists in {', '.join(specialities).lower()}.",
            rating=Decimal(str(round(rng.uniform(3.8, 4.9), 2))),
        )
        store.categories.set([categories[s] for s in specialities])
        for speciality in specialities:
            sellers.setdefault(speciality, []).append(store)
    return sellers


def _price(rng: random.Random, low: float, high: float) -> Decimal:
    """A shop-like price, log-uniform in the range: 23.99 below 100, 145.99 above."""
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    whole = math.floor(value) if value < 100 else 5 * round(value / 5)
    return Decimal(max(whole, 2)) - Decimal("0.01")


def _products(
    rng: random.Random, count: int, categories: dict[str, Category], sellers: dict[str, list[Store]]
) -> list[DemoProduct]:
    subs = [sub for department in DEPARTMENTS.values() for sub in department]
    slugs = UniqueSlugs(Product.objects.values_list("slug", flat=True), 320)
    titles: set[str] = set()
    rows: list[tuple[Product, Subcategory, float, str]] = []
    for index in range(count):
        sub = subs[index % len(subs)]
        brand, noun, adjective = rng.choice(sub.brands), rng.choice(sub.nouns), rng.choice(sub.adjectives)
        title = f"{brand} {adjective} {noun}, {rng.choice(sub.variants)}"
        generation = 2
        while title in titles:
            title = f"{brand} {adjective} {noun} Gen {generation}, {rng.choice(sub.variants)}"
            generation += 1
        titles.add(title)
        features = rng.sample(sub.features, 3)
        description = (
            f"{adjective} {noun.lower()} by {brand}, made for everyday use: "
            f"{features[0]}, {features[1]} and {features[2]}."
        )
        roll = rng.random()  # 5% sold out
        product = Product(
            title=title,
            sku=f"demo-{index:05d}",
            slug=slugs(title),
            description=description,
            category=categories[sub.name],
            store=rng.choice(sellers[sub.name]),
            brand=brand,
            price=_price(rng, *sub.price),
            stock=0 if roll < 0.05 else rng.randint(3, 250),
            is_active=rng.random() > 0.02,
        )
        rows.append((product, sub, rng.gauss(0, 1), f"{adjective} {noun}".lower()))
    Product.objects.bulk_create([r[0] for r in rows], batch_size=2000)

    by_sub: dict[str, list[Product]] = {}
    for product, sub, _, _ in rows:
        by_sub.setdefault(sub.name, []).append(product)
    rank = {
        p.pk: i / max(len(group) - 1, 1)
        for group in by_sub.values()
        for i, p in enumerate(sorted(group, key=lambda p: p.price))
    }
    result = []
    for position, (product, sub, quality, query) in enumerate(rows):
        popularity = -0.8 * math.log(1 + (position * 7919) % 97)  # a fixed, uneven head and tail
        result.append(
            DemoProduct(
                pk=str(product.pk),
                store_pk=str(product.store_id),
                slug=product.slug,
                sub=sub,
                brand=product.brand,
                price=product.price,
                appeal=0.6 * quality + popularity,
                quality=quality,
                price_rank=rank[product.pk],
                in_stock=product.stock > 0 and product.is_active,
                query=query,
            )
        )
    return result


def _users(rng: random.Random, count: int) -> list[Shopper]:
    User = get_user_model()
    password = make_password(DEMO_PASSWORD)
    subs = [sub for department in DEPARTMENTS.values() for sub in department]
    names: set[str] = set()
    accounts, shoppers = [], []
    for _ in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        username, n = f"{first}.{last}", 2
        while username in names:
            username, n = f"{first}.{last}{n}", n + 1
        names.add(username)
        accounts.append(
            User(
                username=username,
                email=f"{username}@{DEMO_EMAIL_DOMAIN}",
                first_name=first.title(),
                last_name=last.title(),
                password=password,
            )
        )
        department = rng.choice(list(DEPARTMENTS.values()))
        favourites = [*rng.sample(department, min(2, len(department))), rng.choice(subs)]
        tastes = {sub.name: rng.gammavariate(2.0, 1.0) for sub in favourites}
        shoppers.append(
            Shopper(
                pk=None,
                tastes=tastes,
                price_band=rng.choice((0.15, 0.5, 0.85)),
                brand=rng.choice(favourites[0].brands),
                activity=min(max(rng.lognormvariate(math.log(0.2), 0.7), 0.02), 0.8),
                device=rng.choice(USER_AGENTS),
                cart_threshold=rng.uniform(0.8, 1.8),
            )
        )
    # Accounts of an earlier run are kept (deleting users runs the privacy erasure for each);
    # the same seed gives the same usernames, so only missing ones are created.
    demo_accounts = User._default_manager.filter(email__endswith=f"@{DEMO_EMAIL_DOMAIN}")
    demo_accounts.exclude(username__in=names).delete()
    existing = set(demo_accounts.values_list("username", flat=True))
    User._default_manager.bulk_create([a for a in accounts if a.username not in existing], batch_size=2000)
    pks = dict(User._default_manager.filter(username__in=names).values_list("username", "pk"))
    for account, shopper in zip(accounts, shoppers, strict=True):
        shopper.pk = pks[account.username]
    return shoppers


class _Simulation:
    """Visits of shoppers over the days, as events."""

    def __init__(self, rng: random.Random, products: list[DemoProduct], events: _Events) -> None:
        self.rng = rng
        self.events = events
        self.by_sub: dict[str, list[DemoProduct]] = {}
        for product in products:
            self.by_sub.setdefault(product.sub.name, []).append(product)
        self.subs = {p.sub.name: p.sub for p in products}
        self.by_pk = {p.pk: p for p in products}
        self.weights: dict[tuple[int, str], list[float]] = {}

    def _session_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def _pick_sub(self, shopper: Shopper, month: int) -> str:
        names = list(self.subs)
        weights = [
            (shopper.tastes.get(name, 0.0) * 6 + 0.15) * SEASONS[self.subs[name].season][month - 1]
            for name in names
        ]
        return self.rng.choices(names, weights)[0]

    def _utility(self, shopper: Shopper, product: DemoProduct) -> float:
        fit = -3.0 * (product.price_rank - shopper.price_band) ** 2
        return product.appeal + fit + (0.8 if product.brand == shopper.brand else 0.0)

    def _pick_product(self, shopper: Shopper, sub: str) -> DemoProduct:
        key = (id(shopper), sub)
        if key not in self.weights:
            self.weights[key] = [math.exp(self._utility(shopper, p)) for p in self.by_sub[sub]]
        return self.rng.choices(self.by_sub[sub], self.weights[key])[0]

    def visit(self, shopper: Shopper, start: dt.datetime) -> None:
        rng, add = self.rng, self.events.add
        session = self._session_id()
        when = start
        sub = self._pick_sub(shopper, start.month)
        if rng.random() < 0.35:
            probe = rng.choice(self.by_sub[sub])
            results = sorted(self.by_sub[sub], key=lambda p: -p.appeal)[:12]
            add(
                "search",
                when,
                shopper,
                session,
                query=probe.query,
                context={"products": [p.pk for p in results]},
            )
            when += dt.timedelta(seconds=rng.randint(5, 40))
        cart: list[DemoProduct] = []
        self._repeat_purchase(shopper, session, when, cart)
        for _ in range(1 + min(int(rng.expovariate(0.45)), 12)):
            if rng.random() < 0.2:
                sub = self._pick_sub(shopper, start.month)
            product = self._pick_product(shopper, sub)
            add("view", when, shopper, session, product)
            when += dt.timedelta(seconds=rng.randint(15, 180))
            utility = self._utility(shopper, product)
            wanted = product.in_stock and product.pk not in shopper.owned
            if wanted and rng.random() < 0.7 / (1 + math.exp(shopper.cart_threshold - utility)):
                add("add_to_cart", when, shopper, session, product, value=1.0)
                cart.append(product)
                when += dt.timedelta(seconds=rng.randint(5, 60))
            elif rng.random() < 0.03:
                add("favourite", when, shopper, session, product)
        if rng.random() < 0.12:
            store = rng.choice(self.by_sub[sub]).store_pk
            add("store_view", when, shopper, session, store=store, context={"page": f"/store/{store}/"})
        if cart and rng.random() < 0.6:
            self._checkout(shopper, session, when + dt.timedelta(minutes=rng.randint(1, 8)), cart)
        elif cart and rng.random() < 0.3:
            add("remove_from_cart", when, shopper, session, cart[-1], value=1.0)

    def _repeat_purchase(
        self, shopper: Shopper, session: str, when: dt.datetime, cart: list[DemoProduct]
    ) -> None:
        for pk, last in list(shopper.bought.items()):
            if (when - last).days > self.rng.randint(18, 45) and self.rng.random() < 0.6:
                product = self.by_pk[pk]
                self.events.add("view", when, shopper, session, product)
                self.events.add(
                    "add_to_cart", when + dt.timedelta(seconds=30), shopper, session, product, value=1.0
                )
                cart.append(product)

    def _checkout(self, shopper: Shopper, session: str, when: dt.datetime, cart: list[DemoProduct]) -> None:
        rng = self.rng
        for product in {p.pk: p for p in cart}.values():
            quantity = 2.0 if rng.random() < 0.12 else 1.0
            self.events.add(
                "purchase",
                when,
                shopper,
                session,
                product,
                value=quantity,
                revenue=product.price * int(quantity),
            )
            if product.sub.consumable:
                shopper.bought[product.pk] = when
            else:
                shopper.owned.add(product.pk)
            if rng.random() < 0.35:
                stars = min(5, max(1, round(3.4 + 0.9 * product.quality + rng.gauss(0, 0.8))))
                later = when + dt.timedelta(days=rng.randint(2, 14), hours=rng.randint(0, 12))
                text = rng.choice(REVIEW_TEXT[stars])
                self.events.add(
                    "rating", later, shopper, "", product, value=float(stars), context={"text": text}
                )

    def anonymous_visit(self, start: dt.datetime) -> None:
        """A visitor without an account: a short browse, sometimes a cart."""
        rng = self.rng
        visitor = Shopper(None, {rng.choice(list(self.subs)): 1.0}, 0.5, "", 0, rng.choice(USER_AGENTS), 1.5)
        session = self._session_id()
        sub = self._pick_sub(visitor, start.month)
        for step in range(rng.randint(1, 5)):
            product = self._pick_product(visitor, sub)
            when = start + dt.timedelta(seconds=60 * step)
            self.events.add("view", when, visitor, session, product)
            if product.in_stock and rng.random() < 0.08:
                self.events.add(
                    "add_to_cart", when + dt.timedelta(seconds=20), visitor, session, product, value=1.0
                )

    def crawler(self, start: dt.datetime, products: list[DemoProduct]) -> None:
        """A crawler walking the catalogue far faster than a person: the bot filter's job."""
        bot = Shopper(None, {}, 0.5, "", 0, ("desktop", BOT_USER_AGENT), 9.0)
        session = self._session_id()
        for step, product in enumerate(products[:300]):
            self.events.add("view", start + dt.timedelta(seconds=step), bot, session, product)


def _visit_start(rng: random.Random, day: dt.datetime) -> dt.datetime:
    hour = rng.choices(
        range(24), weights=[1, 1, 1, 1, 1, 1, 2, 4, 6, 6, 6, 7, 8, 7, 6, 6, 7, 8, 10, 12, 12, 10, 6, 3]
    )
    return day + dt.timedelta(hours=hour[0], minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))


def seed_demo(
    *,
    seed: int = 7,
    products: int = 600,
    users: int = 300,
    days: int = 120,
    end: dt.date | None = None,
    log: Callable[[str], None] = logger.info,
) -> DemoSummary:
    """Replace the demo data with a freshly generated shop; returns what was made."""
    if products < 31 or users < 1 or days < 1:
        raise ValueError("Use at least 31 products (one per subcategory), 1 user and 1 day.")
    started = time.monotonic()
    rng = random.Random(seed)
    end_day = end or dt.datetime.now(dt.UTC).date()
    end_moment = dt.datetime.combine(end_day, dt.time(), tzinfo=dt.UTC)
    # Before the transaction: partition DDL is kept out of long transactions (see `partitions`).
    ensure_partitions(months_between(end_moment - dt.timedelta(days=days), end_moment))
    with transaction.atomic():
        _wipe()
        categories = _categories()
        sellers = _stores(rng, categories)
        catalogue = _products(rng, products, categories, sellers)
        shoppers = _users(rng, users)
        log(f"Catalogue: {len(STORES)} stores, {len(catalogue)} products; {len(shoppers)} shoppers.")
        events = _Events(seed, end_moment)
        simulation = _Simulation(rng, catalogue, events)
        first_day = end_moment - dt.timedelta(days=days)
        for offset in range(days):
            day = first_day + dt.timedelta(days=offset)
            busy = (1.25 if day.weekday() >= 5 else 1.0) * (1.3 if day.month == 12 else 1.0)
            for shopper in shoppers:
                if rng.random() < 1 - math.exp(-shopper.activity * busy):
                    simulation.visit(shopper, _visit_start(rng, day))
            for _ in range(max(1, users // 40)):
                if rng.random() < 0.5 * busy:
                    simulation.anonymous_visit(_visit_start(rng, day))
        for _ in range(2):
            simulation.crawler(
                _visit_start(rng, first_day + dt.timedelta(days=rng.randrange(days))), catalogue
            )
        rows = drop_opted_out(events.rows)
        if len(rows) < len(events.rows):
            log(
                f"{len(events.rows) - len(rows)} events of shoppers who opted out of personalisation dropped."
            )
        for index in range(0, len(rows), WRITE_BATCH):
            copy_rows(rows[index : index + WRITE_BATCH])
    summary = DemoSummary(
        stores=len(STORES),
        categories=len(categories),
        products=len(catalogue),
        users=len(shoppers),
        events=len(rows),
        seconds=time.monotonic() - started,
    )
    return summary
