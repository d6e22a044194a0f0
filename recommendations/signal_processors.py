"""Signal processors: keep data derived from the host's products in step with its saves.

In the style of haystack's signal processors: a processor connects handlers for the adapted
product model only (never for every model). `PendingKeysProcessor` gathers the keys of the
products a transaction saved or deleted and hands them to `process()` once, after it commits,
so a rolled-back save changes nothing. Two subclasses use it: the pipeline's
`indexing.OnCommitSignalProcessor` (queues the products' embedding; configurable as
`RECOMMENDATIONS["SIGNAL_PROCESSOR"]`) and serving's `catalog.SearchIndexProcessor` (rewrites
their search documents), besides `catalog.StoreSearchProcessor` and
`catalog.CategorySearchProcessor`, which watch the store and category models (a renamed
store's or category's products are found under the new name). `install()` puts one in place
from the app's `ready()`.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

from recommendations.adapters import get_product_adapter, get_product_model


class BaseSignalProcessor:
    """Connects nothing; subclass and override `setup`/`teardown` and the handlers."""

    def __init__(self) -> None:
        self.model = self.watched_model()

    def watched_model(self) -> type[models.Model]:
        """The model whose saves and deletes this processor hears of: the product model."""
        return get_product_model()

    def setup(self) -> None:
        """Connect signal handlers (called once from the app's `ready()`)."""

    def teardown(self) -> None:
        """Disconnect what `setup` connected (tests, reconfiguration)."""

    def handle_change(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        """A product was saved or deleted."""


class PendingKeysProcessor(BaseSignalProcessor):
    """Gathers the keys of saved and deleted objects (products, unless `watched_model` says
    otherwise) per transaction; subclasses implement `process(keys)`, called once per
    committed transaction that changed any."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = threading.local()  # each thread has its own transaction
        cls = type(self)
        self.dispatch_uid = f"{cls.__module__}.{cls.__qualname__}.{self.model._meta.label_lower}"

    def setup(self) -> None:
        post_save.connect(self.handle_change, sender=self.model, dispatch_uid=f"{self.dispatch_uid}.save")
        post_delete.connect(self.handle_change, sender=self.model, dispatch_uid=f"{self.dispatch_uid}.delete")

    def teardown(self) -> None:
        post_save.disconnect(sender=self.model, dispatch_uid=f"{self.dispatch_uid}.save")
        post_delete.disconnect(sender=self.model, dispatch_uid=f"{self.dispatch_uid}.delete")

    def handle_change(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        if kwargs.get("raw"):  # loaddata: fixtures are caught up in bulk (sync, refresh_serving)
            return
        keys = getattr(self._pending, "keys", None)
        if keys is None:
            keys = self._pending.keys = set()
        keys.add(get_product_adapter().key(instance.pk))
        # Registered on every change: a rolled-back transaction drops its callbacks, and the first
        # flush after a commit takes every key gathered so far (at once in autocommit mode).
        transaction.on_commit(self.flush)

    def flush(self) -> None:
        """Hand the keys gathered so far to `process` (a later flush finds none left)."""
        keys, self._pending.keys = getattr(self._pending, "keys", None), None
        if keys:
            self.process(sorted(keys))

    def process(self, keys: list[str]) -> None:
        """Bring the derived data of these objects up to date; runs after the commit."""
        raise NotImplementedError


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
