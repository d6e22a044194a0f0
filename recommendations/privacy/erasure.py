"""The right to erasure: delete everything the engine holds about one person.

`forget_user()` is the one service behind `manage.py forget_user`, the admin action and the
handler that runs when the host deletes a user. It walks the personal-data `registry` inside
one transaction (all or nothing), so a failure half-way leaves the data as it was, and it
records an `AuditEntry` with counts only. Because training reads the events table and user
vectors are stored per model version, nothing erased can come back with the next retrain.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from recommendations.marketing.audiences import leave_segments
from recommendations.models import (
    Assignment,
    Event,
    ListKind,
    PrecomputedList,
    SegmentMember,
    ServedRecommendation,
    UserVector,
)
from recommendations.models.audit import AuditAction, AuditEntry
from recommendations.models.preferences import PersonalisationPreference
from recommendations.privacy import registry
from recommendations.serving.attribution import flush_served

logger = logging.getLogger(__name__)

# The engine's own personal tables. Events of anonymous sessions the person used (merged into
# them at login) go too: they are keyed by session id, which is itself an identifier.
registry.register_model(Event, session_field="session_id", name="events")
registry.register_model(UserVector, name="user_vectors")
registry.register_model(ServedRecommendation, session_field="session_id", name="served_lists")
# Segments count their members: leaving them recounts them too.
registry.register("segment_memberships", lambda subject: leave_segments(subject.user_pk), model=SegmentMember)
registry.register_model(Assignment, session_field="session_id", name="experiment_assignments")
# Each model version's "for you" list of the person, keyed by their primary key (no relation).
registry.register_model(
    PrecomputedList, user_field="key", where=Q(kind=ListKind.FOR_USER), name="for_user_lists"
)
registry.keep(
    PersonalisationPreference,
    "the person's own opt-out choice must survive erasure; it goes when the user is deleted",
)
registry.keep(
    AuditEntry,
    "the audit trail keeps the id of the staff member who acted (`actor_id`); it holds nothing "
    "of the person erased",
)


@dataclass(frozen=True)
class ErasureReport:
    """Rows deleted per kind of data, and the audit entry that records it."""

    counts: dict[str, int]
    audit_entry_id: int

    @property
    def total(self) -> int:
        return sum(n for name, n in self.counts.items() if name != "sessions")


def forget_user(user: Any, actor: Any = None, *, source: str = "service") -> ErasureReport:
    """Delete all personal data of `user` in one transaction and audit it.

    `actor` is the staff member who asked (None for the system or the person themself);
    `source` names the door it came through. Work outside the database (caches) runs only
    once the deletion has committed.
    """
    started = time.monotonic()
    # Lists shown to the person by this process and still queued are written first, so the
    # deletion below takes them too (another process writes its queue within a second).
    flush_served()
    with transaction.atomic():
        # Lock the person's row. Events have no foreign key to it, so their writers lock the
        # users of each batch FOR KEY SHARE themselves (`events.ingestion`): a batch written
        # before this lock is committed before it is granted, and deleted below; one written
        # after waits until this commits (and stores nothing if the user was deleted with it).
        list(get_user_model()._default_manager.select_for_update().filter(pk=user.pk).values_list("pk"))
        subject = registry.Subject(user.pk, frozenset(_sessions_of(user.pk)))
        counts: dict[str, int] = {}
        for registration in registry.registrations():
            if registration.after_commit:
                transaction.on_commit(partial(registration.delete, subject))
            else:
                counts[registration.name] = registration.delete(subject)
        counts["sessions"] = len(subject.session_ids)
        entry = AuditEntry.objects.create(
            action=AuditAction.ERASURE,
            actor_id="" if actor is None else str(actor.pk),
            source=source,
            counts=counts,
        )
    logger.info(
        "Erased personal data (audit entry %s, via %s): %s in %.2fs",
        entry.pk,
        source,
        ", ".join(f"{n} {name}" for name, n in counts.items()),
        time.monotonic() - started,
    )
    return ErasureReport(counts=counts, audit_entry_id=entry.pk)


def _sessions_of(user_pk: Any) -> set[str]:
    """Every session id linked to the user in any registered table."""
    sessions: set[str] = set()
    for registration in registry.registrations():
        if registration.sessions_of is not None:
            sessions |= registration.sessions_of(user_pk)
    return sessions
