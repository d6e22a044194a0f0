"""Audiences: for one campaign, the signed-in users most likely to engage, best first.

`build_audience()` computes the list without saving it (admin preview, the API when no
segment matches the campaign as it is now); `refresh_segment()` saves it as a `Segment` by
replacing the members in one transaction, so a reader never sees half an audience, and
records what the campaign targeted then (`Segment.rules_digest`). The method depends on the
campaign:

- member benefits: customers in the named RFM segments, biggest spenders first;
- promotions and flash sales: users whose model taste vector is closest to the campaign's
  products (`interest`), or, with no active model or no vectors for those products, users
  with the most recent behaviour in its products, stores and categories (`affinity`).

Scores are on one scale, 0 to 1, the one the storefront uses for the same visitor
(`targeting.campaigns_for`), so the `min_score` rule selects the same people on both. As on
the storefront, users who opted out of personalisation are in no audience, and a promotion or
flash sale with nothing to offer now (`targeting.CampaignStatus.NOTHING_TO_OFFER`) has none.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from recommendations.marketing.affinity import users_by_affinity
from recommendations.marketing.interest import campaign_vector, users_by_interest
from recommendations.marketing.products import nothing_to_offer, offer
from recommendations.marketing.rfm import customers
from recommendations.marketing.rules import MEMBER_SCORE
from recommendations.models import Campaign, CampaignKind, Segment, SegmentMember
from recommendations.models.marketing import audience_digest
from recommendations.privacy.optout import opted_out_user_ids
from recommendations.vectors.queries import active_version

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudienceList:
    """Users (id, score), most engaged first, and how they were scored."""

    method: str
    members: list[tuple[Any, float]]

    def __len__(self) -> int:
        return len(self.members)


def _consenting(fetch: Callable[[int], list[tuple[Any, float]]], limit: int) -> list[tuple[Any, float]]:
    """The first `limit` members that `fetch(n)` (the best n) ranks, leaving out users who
    opted out of personalisation: the storefront does not profile them, so neither may a
    newsletter. Fetches more as long as opted-out users took places (they are few)."""
    size = limit
    while True:
        members = fetch(size)
        opted_out = opted_out_user_ids(user_id for user_id, _ in members)
        kept = [member for member in members if str(member[0]) not in opted_out]
        if len(kept) >= limit or len(members) < size:
            return kept[:limit]
        size += limit - len(kept)


def _by_rfm(campaign: Campaign, limit: int, now: dt.datetime | None) -> list[tuple[Any, float]]:
    """Everyone in the named segments qualifies fully (score 1, as on the storefront), the
    biggest spenders first."""
    wanted = set(campaign.rules.rfm_segments)
    chosen = [c for c in customers(now) if c.segment in wanted]
    chosen.sort(key=lambda c: (-c.monetary, str(c.user_id)))
    return [(c.user_id, MEMBER_SCORE) for c in chosen[:limit]]


def build_audience(
    campaign: Campaign, limit: int | None = None, now: dt.datetime | None = None
) -> AudienceList:
    """The campaign's audience (not saved), at most `limit` users (None: the campaign's
    `max_audience`). Raises `ValidationError` for a campaign that targets nothing, naming
    what to add, for one with nothing to offer now, saying why, and for a limit below 1 (a
    segment saved before sizes were checked)."""
    problem = campaign.targeting_error()
    if problem:
        raise ValidationError(problem)
    if campaign.kind != CampaignKind.MEMBER_BENEFIT and not offer(campaign, size=1):
        raise ValidationError(nothing_to_offer(campaign))
    if limit is not None and limit < 1:
        raise ValidationError(
            f"An audience of at most {limit} users is empty. Give a size of at least 1, or leave it "
            "empty to use the campaign's max_audience rule."
        )
    rules = campaign.rules
    limit = limit if limit is not None else rules.max_audience
    if campaign.kind == CampaignKind.MEMBER_BENEFIT:
        method, members = "rfm", _consenting(lambda n: _by_rfm(campaign, n, now), limit)
    else:
        version = active_version()
        # With no model, or no vectors for the campaign's products, interest is affinity.
        target = campaign_vector(campaign, version) if version is not None else None
        if target is None:
            method, fetch = "affinity", lambda n: users_by_affinity(campaign, n, now)
        else:
            method, fetch = "vectors", lambda n: users_by_interest(target, version, n)
        members = _consenting(fetch, limit)
    if rules.min_score is not None:
        members = [(user_id, score) for user_id, score in members if score >= rules.min_score]
    return AudienceList(method, members)


def refresh_segment(segment: Segment, now: dt.datetime | None = None) -> Segment:
    """Recompute and save the segment's members (all replaced at once)."""
    if segment.campaign is None:
        raise ValidationError(f"Segment {segment.name!r} has no campaign (was it deleted?); choose one.")
    started = time.monotonic()
    audience = build_audience(segment.campaign, segment.max_size, now)
    with transaction.atomic():
        # Two refreshes of one segment (the hourly task, the admin's action) take turns on its
        # row: in READ COMMITTED the second's delete missed the first's new members, and its
        # insert failed on them.
        if not Segment.objects.select_for_update().filter(pk=segment.pk).exists():
            raise ValidationError(f"Segment {segment.name!r} was deleted while it was refreshed.")
        SegmentMember.objects.filter(segment=segment).delete()
        SegmentMember.objects.bulk_create(
            [
                SegmentMember(segment=segment, user_id=user_id, score=score)
                for user_id, score in audience.members
            ],
            batch_size=5000,
        )
        segment.size = len(audience)
        segment.method = audience.method
        segment.rules_digest = audience_digest(segment.campaign)
        segment.refreshed_at = timezone.now()
        segment.save(update_fields=["size", "method", "rules_digest", "refreshed_at"])
    logger.info(
        "Refreshed segment %r for campaign %r: %d users by %s in %.2fs",
        segment.name,
        segment.campaign.name,
        segment.size,
        segment.method,
        time.monotonic() - started,
    )
    return segment


def leave_segments(user_pk: Any) -> int:
    """Take the user out of every segment (erasure, a deleted user) and recount those segments,
    so that `Segment.size` stays the number of members whether or not they auto-refresh.
    Returns the memberships deleted."""
    memberships = SegmentMember.objects.filter(user_id=user_pk)
    segment_ids = set(memberships.values_list("segment_id", flat=True))
    deleted = memberships.delete()[0]
    if segment_ids:
        members = SegmentMember.objects.filter(segment=OuterRef("pk")).order_by().values("segment")
        Segment.objects.filter(pk__in=segment_ids).update(
            size=Coalesce(Subquery(members.annotate(n=Count("pk")).values("n")), 0)
        )
    return deleted


def create_segment(campaign: Campaign, name: str = "", max_size: int | None = None) -> Segment:
    """Save the campaign's audience as a new segment (validated first; nothing saved on error)."""
    segment = Segment(name=name or f"Audience of {campaign.name}"[:200], campaign=campaign, max_size=max_size)
    segment.full_clean()
    with transaction.atomic():
        segment.save()
        return refresh_segment(segment)


def refresh_due_segments() -> dict[str, int]:
    """Refresh every auto-refreshed segment; one failing segment does not stop the others."""
    done = failed = 0
    for segment in Segment.objects.filter(auto_refresh=True, campaign__isnull=False).select_related(
        "campaign"
    ):
        try:
            refresh_segment(segment)
            done += 1
        except ValidationError as exc:
            failed += 1
            logger.warning("Segment %r was not refreshed: %s", segment.name, " ".join(exc.messages))
        except DatabaseError as exc:  # a lock wait that timed out, a dropped connection
            failed += 1
            logger.warning(
                "Segment %r was not refreshed (database error: %s); the next run tries again.",
                segment.name,
                exc,
            )
    return {"refreshed": done, "failed": failed}
