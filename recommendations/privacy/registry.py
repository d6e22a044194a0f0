"""Who holds personal data: the registry that `forget_user` walks.

Every table that stores something about an identifiable person registers here, next to its
own code, so that erasure never silently misses a new feature's data::

    from recommendations.privacy import registry

    registry.register_model(SegmentMembership)                       # rows with user = the person
    registry.register_model(Assignment, session_field="visitor_key")  # ... or one of their sessions
    # ... or with the person's primary key in a plain field, among the rows `where` selects
    registry.register_model(PrecomputedList, user_field="key", where=Q(kind="for_user"))

    @registry.personal_data("newsletter_scores")
    def delete_scores(subject: registry.Subject) -> int:
        return Score.objects.filter(user_id=subject.user_pk).delete()[0]

A table with a relation to the user model that deliberately survives erasure (e.g. the
person's own opt-out choice) is declared with `keep(model, reason)`; a test fails for any
model of the app that does neither, and for any table of its list of those that hold a user's
key in a plain field. This module imports no models, so models modules may register
themselves at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models


@dataclass(frozen=True)
class Subject:
    """Whose data to erase: a user's primary key and every anonymous session id they used."""

    user_pk: Any
    session_ids: frozenset[str]


Deleter = Callable[[Subject], int]


@dataclass(frozen=True)
class Registration:
    name: str
    delete: Deleter
    # Run after the transaction commits (caches, search indexes): outside the database, so
    # they must not run for an erasure that rolled back.
    after_commit: bool = False
    model: type[models.Model] | None = None
    # For tables that link a user to sessions: the session ids the user is known by there.
    sessions_of: Callable[[Any], set[str]] | None = None
    # For `register_model`: the field holding the person (a relation, or their key in a plain
    # field) and which rows it names them in (None: all).
    user_field: str | None = None
    where: models.Q | None = None


_registrations: dict[str, Registration] = {}
_kept: dict[type[models.Model], str] = {}


def register(
    name: str,
    delete: Deleter,
    *,
    after_commit: bool = False,
    model: type[models.Model] | None = None,
    sessions_of: Callable[[Any], set[str]] | None = None,
    user_field: str | None = None,
    where: models.Q | None = None,
) -> None:
    """Register `delete(subject) -> rows deleted` under `name` (the key in audit counts)."""
    existing = _registrations.get(name)
    # Registering the same function or model again (a module imported twice) is harmless.
    same_model = model is not None and existing is not None and existing.model is model
    if existing is not None and existing.delete is not delete and not same_model:
        raise ValueError(f"A personal-data deleter named {name!r} is already registered; pick another name.")
    _registrations[name] = Registration(name, delete, after_commit, model, sessions_of, user_field, where)


def personal_data(name: str, *, after_commit: bool = False) -> Callable[[Deleter], Deleter]:
    """Decorator form of `register`."""

    def decorator(delete: Deleter) -> Deleter:
        register(name, delete, after_commit=after_commit)
        return delete

    return decorator


def register_model(
    model: type[models.Model],
    *,
    user_field: str | None = "user",
    session_field: str | None = None,
    name: str | None = None,
    where: models.Q | None = None,
) -> None:
    """Erase rows of `model` whose `user_field` is the person or whose `session_field` is one of theirs.

    `user_field` is a relation to the user model or a plain field holding the user's primary
    key (as a string in a text field); `where` limits erasure to the rows it selects (a table
    keyed by products or users, say).
    """
    if user_field is None and session_field is None:
        raise ValueError(f"register_model({model.__name__}) needs a user_field, a session_field or both.")

    def delete(subject: Subject) -> int:
        theirs = models.Q(pk__in=[])
        if user_field is not None:
            theirs |= models.Q(**{user_field: subject.user_pk})
        if session_field is not None and subject.session_ids:
            # Only the anonymous rows of those sessions: another person who signed in on the
            # same browser later keeps their own data.
            anonymous = {f"{user_field}__isnull": True} if user_field is not None else {}
            theirs |= models.Q(**{f"{session_field}__in": subject.session_ids}, **anonymous)
        rows = model._default_manager.filter(theirs)
        if where is not None:
            rows = rows.filter(where)
        return rows.delete()[1].get(model._meta.label, 0)

    def sessions_of(user_pk: Any) -> set[str]:
        rows = model._default_manager.filter(**{user_field: user_pk}).exclude(**{session_field: ""})
        return set(rows.values_list(session_field, flat=True).distinct())

    label = name or model._meta.verbose_name_plural.replace(" ", "_")
    linked = user_field is not None and session_field is not None
    register(
        str(label),
        delete,
        model=model,
        sessions_of=sessions_of if linked else None,
        user_field=user_field,
        where=where,
    )


def keep(model: type[models.Model], reason: str) -> None:
    """Declare that `model` relates to users but is not erased, and why."""
    _kept[model] = reason


def registrations() -> list[Registration]:
    return list(_registrations.values())


def registered_models() -> set[type[models.Model]]:
    return {r.model for r in _registrations.values() if r.model is not None}


def kept_models() -> dict[type[models.Model], str]:
    return dict(_kept)
