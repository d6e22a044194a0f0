"""Signal processors: keep data derived from the host's products in step with its saves.

In the style of haystack's signal processors: a processor connects handlers for the adapted
product model only (never for every model). `PendingKeysProcessor` gathers the keys of the
products a transaction saved or deleted and hands them to `process()` once, after it commits; a
save rolled back, with its transaction or with a savepoint, is never handed on. Two subclasses
use it: the pipeline's `indexing.OnCommitSignalProcessor` (queues the products' embedding;
configurable as `RECOMMENDATIONS["SIGNAL_PROCESSOR"]`) and serving's
`catalog.SearchIndexProcessor` (rewrites their search documents), besides
`catalog.StoreSearchProcessor` and `catalog.CategorySearchProcessor`, which watch the store and
category models (a renamed store's or category's products are found under the new name; a
deleted category's products, found before it goes, are handed to `pend()`).
`install()` puts one in place from the app's `ready()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.db.models.signals import ModelSignal, post_delete, post_save

from recommendations.adapters import get_product_adapter, get_product_model

# What a processor connects: a model signal, its handler, and a name unique to the processor.
Receiver = tuple[ModelSignal, Callable[..., None], str]


class BaseSignalProcessor:
    """Connects nothing; subclass and override `receivers` (or `setup`/`teardown`) and the handlers."""

    def __init__(self) -> None:
        self.model = self.watched_model()
        cls = type(self)
        self.dispatch_uid = f"{cls.__module__}.{cls.__qualname__}.{self.model._meta.label_lower}"

    def watched_model(self) -> type[models.Model]:
        """The model whose saves and deletes this processor hears of: the product model."""
        return get_product_model()

    def receivers(self) -> list[Receiver]:
        """(signal, handler, name) for each handler `setup` connects for the watched model; the
        name tells its dispatch_uid apart from the others', so `teardown` disconnects it alone."""
        return []

    def setup(self) -> None:
        """Connect signal handlers (called once from the app's `ready()`)."""
        for signal, handler, name in self.receivers():
            signal.connect(handler, sender=self.model, dispatch_uid=f"{self.dispatch_uid}.{name}")

    def teardown(self) -> None:
        """Disconnect what `setup` connected (tests, reconfiguration)."""
        for signal, _, name in self.receivers():
            signal.disconnect(sender=self.model, dispatch_uid=f"{self.dispatch_uid}.{name}")

    def handle_change(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        """A product was saved or deleted."""


class PendingKeysProcessor(BaseSignalProcessor):
    """Gathers the keys of saved and deleted objects (products, unless `watched_model` says
    otherwise) per transaction; subclasses implement `process(keys)`, called once per
    committed transaction that changed any, and never for a rolled-back change."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = _OpenTransactions()

    def receivers(self) -> list[Receiver]:
        return [(post_save, self.handle_change, "save"), (post_delete, self.handle_change, "delete")]

    def handle_change(
        self, sender: type[models.Model], instance: models.Model, using: str = DEFAULT_DB_ALIAS, **kwargs: Any
    ) -> None:
        if kwargs.get("raw"):  # loaddata: fixtures are caught up in bulk (sync, refresh_serving)
            return
        self.pend([get_product_adapter().key(instance.pk)], using)

    def pend(self, keys: list[str], using: str = DEFAULT_DB_ALIAS) -> None:
        """Hand these keys to `process` once the current transaction commits (at once in
        autocommit, where the change is committed already); not if it rolls back."""
        if not keys:
            return
        if not transaction.get_connection(using).in_atomic_block:
            self.process(keys)
            return
        batch = self._pending.by_alias.get(using)
        if batch is None or not batch.is_open():  # committed, or rolled back with its hooks
            batch = self._pending.by_alias[using] = TransactionKeys(self, using)
        batch.add(keys)

    def process(self, keys: list[str]) -> None:
        """Bring the derived data of these objects up to date; runs after the commit."""
        raise NotImplementedError


class _OpenTransactions(threading.local):
    """A thread's open transaction per database alias (connections are per thread)."""

    def __init__(self) -> None:
        self.by_alias: dict[str, TransactionKeys] = {}


class TransactionKeys:
    """The keys one transaction changed, for one processor.

    Each change registers an on_commit hook that confirms its keys, which Django drops when the
    change's savepoint or transaction rolls back. After it goes a flush hook outside every
    savepoint, so that a savepoint rolled back later cannot drop it; only the last one appended
    hands the confirmed keys on: `process` runs once, after every confirmation has run.
    """

    def __init__(self, processor: PendingKeysProcessor, using: str) -> None:
        self.processor = processor
        self.using = using
        self.confirmed: set[str] = set()
        self.last_flush: Callable[[], None] | None = None

    def add(self, keys: list[str]) -> None:
        transaction.on_commit(partial(self.confirm, keys), using=self.using)

        def flush() -> None:
            if flush is self.last_flush:  # the transaction's last flush hook; earlier ones wait for it
                self.flush()

        self.last_flush = flush
        # What on_commit() appends (the list captureOnCommitCallbacks reads too), less the
        # savepoint ids, which on_commit() cannot leave out: Django drops this hook only with
        # the whole transaction. Robust: a failing `process` is
        # logged and cannot stop the caller's other hooks.
        transaction.get_connection(self.using).run_on_commit.append((set(), flush, True))

    def confirm(self, keys: list[str]) -> None:
        self.confirmed.update(keys)

    def is_open(self) -> bool:
        """Whether the transaction is still to commit (its last flush hook still waits)."""
        hooks = transaction.get_connection(self.using).run_on_commit
        return self.last_flush is not None and any(hook is self.last_flush for _, hook, _ in reversed(hooks))

    def flush(self) -> None:
        keys, self.confirmed, self.last_flush = sorted(self.confirmed), set(), None
        if keys:
            self.processor.process(keys)


_installed: dict[str, BaseSignalProcessor] = {}


def install(name: str, processor_class: type[BaseSignalProcessor] | None) -> BaseSignalProcessor | None:
    """Put an instance of `processor_class` in place under `name`, replacing (and
    disconnecting) the one installed before, so calling it again is harmless. None installs
    nothing. Returns the processor."""
    previous = _installed.pop(name, None)
    if previous is not None:
        previous.teardown()
    if processor_class is None:
        return None
    processor = _installed[name] = processor_class()
    processor.setup()
    return processor
