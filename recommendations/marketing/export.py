"""Audiences as rows and CSV, for a newsletter tool.

Columns: user id, username, email (empty where the user model has no e-mail field), score (and
the segment when several are exported).
Cells that a spreadsheet would run as a formula (starting with =, +, -, @) are prefixed
with a quote: user names are user input.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from django.contrib.auth import get_user_model
from django.db.models import Value
from django.utils.text import capfirst

from recommendations.models import Segment, SegmentMember
from recommendations.privacy.optout import opted_out_user_ids

FIELDS = ("user_id", "username", "email", "score")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 5000


def _user_fields() -> tuple[str, str | None]:
    """The user model's sign-in field and its e-mail field, None when it has none: Django's
    `get_email_field_name()` says "email" for any model that does not declare `EMAIL_FIELD`,
    and a host's own model (one signing in by a handle) may have no such field."""
    model = get_user_model()
    email = model.get_email_field_name()
    has_email = any(field.name == email for field in model._meta.get_fields())
    return model.USERNAME_FIELD, email if has_email else None


def user_labels() -> tuple[str, str]:
    """Headings of the admin's user columns, by the user model's own field names: its sign-in
    field ("Email" where shoppers sign in by e-mail, not "Username") and its e-mail field, ""
    when that is the sign-in field, whose column already shows the address."""
    meta = get_user_model()._meta
    username, email = _user_fields()
    email_label = "" if email in (None, username) else capfirst(meta.get_field(email).verbose_name)
    return capfirst(meta.get_field(username).verbose_name), email_label


def audience_rows(members: Iterable[tuple[Any, float]]) -> list[dict[str, Any]]:
    """User details for (user id, score) pairs, in the given order; deleted users are dropped."""
    members = list(members)
    username, email = _user_fields()
    users = {
        row["pk"]: row
        for row in get_user_model()
        ._default_manager.filter(pk__in=[m[0] for m in members])
        .values("pk", username, *[email] if email else [])
    }
    return [
        {
            "user_id": user_id,
            "username": users[user_id][username],
            "email": users[user_id][email] if email else "",
            "score": score,
        }
        for user_id, score in members
        if user_id in users
    ]


def segment_rows(segment: Segment) -> Iterator[dict[str, Any]]:
    """The segment's members with their details, most engaged first (streamed), but those who
    opted out of personalisation since it was computed: opting out takes a user out of saved
    segments (`privacy.signals`), but a host's own flag (`OPT_OUT_CHECK`) tells nobody."""
    username, email = _user_fields()
    rows = (
        SegmentMember.objects.filter(segment=segment)
        .order_by("-score", "user_id")
        .values_list("user_id", f"user__{username}", f"user__{email}" if email else Value(""), "score")
        .iterator(chunk_size=CHUNK)
    )
    while chunk := list(itertools.islice(rows, CHUNK)):
        opted_out = opted_out_user_ids(row[0] for row in chunk)
        for user_id, name, address, score in chunk:
            if str(user_id) not in opted_out:
                yield {"user_id": user_id, "username": name, "email": address, "score": score}


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    if isinstance(value, float):
        return f"{value:.6f}"
    return value


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str], fields: Sequence[str] = FIELDS) -> int:
    """Write rows under a header of `fields`; returns the number of rows written."""
    writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({name: _cell(value) for name, value in row.items()})
        count += 1
    return count
