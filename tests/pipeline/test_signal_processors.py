"""`PendingKeysProcessor` on real transactions: a transaction's changed products are handed on
once, after it commits, and a rolled-back save (transaction or savepoint) hands on nothing."""

import pytest
from django.db import transaction

from recommendations import signal_processors
from recommendations.signal_processors import PendingKeysProcessor
from shop.models import Category, Product, Store

pytestmark = pytest.mark.django_db(transaction=True)


class Recorder(PendingKeysProcessor):
    """Keeps the keys each `process` call was given."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def process(self, keys: list[str]) -> None:
        self.calls.append(keys)


@pytest.fixture
def recorder():
    processor = signal_processors.install("test recorder", Recorder)
    yield processor
    signal_processors.install("test recorder", None)


@pytest.fixture
def new_product():
    category = Category.objects.create(name="Lips", slug="lips")
    store = Store.objects.create(name="Rouge", slug="rouge")
    count = iter(range(1000))

    def make() -> Product:
        n = next(count)
        return Product.objects.create(
            title=f"Gloss {n}", slug=f"gloss-{n}", category=category, store=store, price=9
        )

    return make


class Failed(Exception):
    pass


def test_a_rolled_back_transaction_hands_on_nothing_then_or_later(recorder, new_product):
    with pytest.raises(Failed), transaction.atomic():
        doomed = new_product()
        raise Failed
    assert recorder.calls == []
    with transaction.atomic():
        kept = new_product()
        kept.save()
    assert recorder.calls == [[str(kept.pk)]]
    assert str(doomed.pk) not in recorder.calls[0]


def test_a_rolled_back_savepoint_drops_only_its_own_saves(recorder, new_product):
    with transaction.atomic():
        first = new_product()
        with pytest.raises(Failed), transaction.atomic():
            new_product()
            raise Failed
        with transaction.atomic():
            inner = new_product()
        last = new_product()
        with pytest.raises(Failed), transaction.atomic():  # after the last kept save
            new_product()
            raise Failed
    assert recorder.calls == [sorted([str(first.pk), str(inner.pk), str(last.pk)])]


def test_autocommit_saves_are_handed_on_at_once(recorder, new_product):
    product = new_product()
    key = str(product.pk)
    assert recorder.calls == [[key]]
    product.delete()
    assert recorder.calls == [[key], [key]]
