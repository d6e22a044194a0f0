"""`python manage.py forget_user <id|username> ...`: the right to erasure from the shell."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.privacy.erasure import forget_user


class Command(BaseCommand):
    help = (
        "Delete everything the recommendation engine holds about the given users (events, merged "
        "sessions, user vectors, cached and served recommendations, segments, experiment "
        "assignments) and record an audit entry. The user accounts are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("users", nargs="+", metavar="ID_OR_USERNAME", help="primary key or username")
        parser.add_argument(
            "--by",
            choices=["pk", "username"],
            help="read every name as a primary key, or as a username (when one could be either)",
        )

    def handle(self, *args: Any, users: list[str], by: str | None = None, **options: Any) -> None:
        # Resolve every name first: a typo in the third name must not leave two users erased.
        targets = [self._find(identifier, by) for identifier in users]
        for identifier, user in zip(users, targets, strict=True):
            report = forget_user(user, source="command")
            counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in report.counts.items())
            self.stdout.write(f"{identifier}: erased {counts} (audit entry {report.audit_entry_id})")

    def _find(self, identifier: str, by: str | None) -> Any:
        user_model = get_user_model()
        manager = user_model._default_manager
        by_name = None
        if by != "pk":
            by_name = manager.filter(**{user_model.USERNAME_FIELD: identifier}).first()
        try:
            by_pk = (
                manager.filter(pk=user_model._meta.pk.to_python(identifier)).first()
                if by != "username"
                else None
            )
        except (ValidationError, ValueError, TypeError):
            by_pk = None  # not a valid primary key: the username alone decides
        if by_name is not None and by_pk is not None and by_name.pk != by_pk.pk:
            raise CommandError(
                f"{identifier!r} is the username of user {by_name.pk} and the primary key of user "
                f"{by_pk.pk} ({getattr(by_pk, user_model.USERNAME_FIELD)!r}); nothing was erased. Add "
                "--by username or --by pk to say which you mean."
            )
        user = by_name or by_pk
        if user is None:
            raise CommandError(
                f"No user has the primary key or {user_model.USERNAME_FIELD} {identifier!r}; "
                "nothing was erased. Check the name, or look the user up in the admin."
            )
        return user
