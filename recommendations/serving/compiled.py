"""Querysets compiled once per shape, then run again with other keys.

Every list goes through the same two reads of the host's product table (`rules.finalize`):
the facts of the candidates, then the objects shown. Only the candidate keys change from one
request to the next, yet building and compiling each queryset cost the web worker more CPU
than PostgreSQL spends running it (docs/benchmarks.md). `KeyedQuery` compiles a queryset
once, with its keys as one array parameter, and afterwards only executes the SQL with the
new keys, turning rows into values or model instances the way the ORM's own iterables do.

The compiled form is kept per thread (a compiler belongs to one connection) and forgotten
when the `RECOMMENDATIONS` setting changes. It assumes what the queryset depends on is fixed
for the process: the adapter's `index_queryset()` and `available_q()`, and the boost rules.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from django.core.signals import setting_changed
from django.db import connections
from django.db.models import BooleanField, F, Func, Model, QuerySet
from django.db.models.query import get_related_populators

from recommendations.sql import array_literal, native_timestamps

_local = threading.local()
# Bumped when the settings change, so every thread drops what it compiled before.
_generation = 0


class KeyIn(Func):
    """`pk = ANY(%s::type[])` (or another `field`'s column): the keys as one array parameter.

    The ORM's `pk__in=[...]` prepares every key on its own (a placeholder and a Python call
    each); a search's candidate pool has a few hundred, which made it a noticeable share of
    the request's CPU. A statement also takes at most 65,535 parameters, so a list that grows
    with the catalogue (a campaign's scope) must be one. `keys` is a list, or its
    `sql.array_literal` (cheaper to send when long).
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, model: type[Model], keys: list[str] | str, field: str = "pk") -> None:
        super().__init__(F(field))
        # The very list object becomes the parameter: `compiled.KeyedQuery` looks for it.
        self.model, self.keys, self.key_field = model, keys, field

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        meta = self.model._meta
        target = meta.pk if self.key_field == "pk" else meta.get_field(self.key_field)
        return f"{column} = ANY(%s::{target.cast_db_type(connection)}[])", [*params, self.keys]


class KeyedQuery:
    """A queryset whose only varying part is one list of keys, compiled once.

    `build(keys)` must return the queryset for `keys`, passing that very list object on to
    one parameter (as `KeyIn` does), so the compiled parameters show where it goes.
    """

    def __init__(self, build: Callable[[list[str]], QuerySet]) -> None:
        marker: list[str] = []
        queryset = build(marker)
        self.db = queryset.db
        self.compiler = queryset.query.get_compiler(using=self.db)
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        slots = [index for index, param in enumerate(self.params) if param is marker]
        if len(slots) != 1:
            raise ValueError("The queryset must take its keys as exactly one parameter.")
        self.slot = slots[0]

    def params_for(self, keys: Sequence[str]) -> list[Any]:
        """The parameters of `sql` for these keys (to run it, or to embed it in a larger query)."""
        params = list(self.params)
        params[self.slot] = array_literal(keys)
        return params

    def _fetch(self, keys: Sequence[str]) -> list[tuple]:
        with native_timestamps(connections[self.db].cursor()) as cursor:
            cursor.execute(self.sql, self.params_for(keys))
            return cursor.fetchall()

    def rows(self, keys: Sequence[str]) -> list[tuple]:
        """The selected values of a `values_list()` queryset, converted as the ORM does."""
        return list(self.compiler.results_iter([self._fetch(keys)], tuple_expected=True))

    def objects(self, keys: Sequence[str]) -> list[Model]:
        """Model instances (with their `select_related()` objects), as `ModelIterable` makes them."""
        compiler = self.compiler
        klass_info, select = compiler.klass_info, compiler.select
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        names = [column[0].target.attname for column in select[start:end]]
        populators = get_related_populators(klass_info, select, self.db)
        out = []
        for row in compiler.results_iter([self._fetch(keys)]):
            obj = klass_info["model"].from_db(self.db, names, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            out.append(obj)
        return out


def keyed_query(shape: Hashable, build: Callable[[list[str]], QuerySet]) -> KeyedQuery:
    """The compiled query of `shape` for this thread, compiled from `build` on first use."""
    if getattr(_local, "generation", None) != _generation:
        _local.queries, _local.generation = {}, _generation
    cache = _local.queries
    query = cache.get(shape)
    if query is None:
        query = cache[shape] = KeyedQuery(build)
    return query


def clear_cache() -> None:
    """Forget the compiled queries of every thread (settings changed: the signal below)."""
    global _generation
    _generation += 1


def _clear_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "RECOMMENDATIONS":
        clear_cache()


setting_changed.connect(_clear_on_change)
