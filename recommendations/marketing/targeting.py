"""Which running campaigns one visitor should see, best first.

- Promotions and flash sales are ranked by the visitor's interest in what they offer, on the
  0-1 scale a saved audience uses: with a model, the cosine of the visitor's current taste
  (`serving.realtime.current_taste`) to the campaign's products (`interest`), 0 for a visitor
  with no taste yet; without a model, or for a campaign whose products have no vectors,
  category/store affinity from the visitor's events (`affinity`).
- Member benefits go to signed-in customers whose RFM segment the campaign names (score 1).
- A campaign that reached its impression cap (distinct visitors with a `campaign_view` event
  of it, `caps`) is not shown, nor a promotion or flash sale with nothing to buy now (sold
  out, no product matches); `logged_in_only` and `min_score` rules are applied last.
  `campaign_status` says which campaigns are shown at all, and why not; the admin lists it.
- `show_campaigns` is what pages and the API call: `campaigns_for`, recorded as a served list
  whose id the campaign views carry back, so that a browser's view counts towards a cap only
  for a campaign it was shown (`events.references.claimable_by_browser`).

Campaigns are ordered by priority, then score: priority is the shop's word, score breaks ties.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from django.core.exceptions import ValidationError
from django.db.models import TextChoices
from django.utils import timezone

from recommendations.marketing.affinity import visitor_affinity
from recommendations.marketing.caps import views_so_far
from recommendations.marketing.interest import campaign_directions, campaigns_with_vectors, visitor_interest
from recommendations.marketing.products import interest_scope, offers
from recommendations.marketing.rfm import customer_rfm
from recommendations.marketing.rules import MEMBER_SCORE
from recommendations.models import Campaign, CampaignKind
from recommendations.models.marketing import CAMPAIGN_LIST_KIND
from recommendations.serving import variants
from recommendations.serving.attribution import record_served
from recommendations.serving.realtime import current_taste
from recommendations.serving.types import Audience

logger = logging.getLogger(__name__)

# A campaign chosen for a visitor carries the first this many products it offers (the for-me
# API lists them): their stock is read on every page, not that of the whole scope.
PRODUCTS_PER_MATCH = 20

SEGMENT_REASONS = {
    "loyal_high_spender": "A thank-you for one of our best customers",
    "lapsing": "We miss you: an offer to welcome you back",
    "new_customer": "Welcome: an offer for your next order",
    "occasional": "An offer for our members",
}


@dataclass(frozen=True)
class CampaignMatch:
    """A campaign chosen for a visitor: how well it fits, why, and how that was measured."""

    campaign: Campaign
    score: float
    reason: str
    # "model" (taste vectors via serving), "affinity" (events), "rfm" (customer segment).
    method: str
    # The first `PRODUCTS_PER_MATCH` products it offers, available when it was chosen
    # (`products.offers`).
    product_ids: Sequence[str] = ()
    # The served list it was shown in (`show_campaigns`): its views and clicks send it back.
    recommendation_id: str = ""


class CampaignStatus(TextChoices):
    """Whether shoppers are shown a campaign now and, if not, why (`campaign_status`)."""

    SHOWN = "shown", "shown now"
    USED_UP = "used_up", "used up: its impression cap is reached"
    NOTHING_TO_OFFER = "nothing_to_offer", "not shown: nothing to offer (sold out, or no product matches)"
    INVALID_RULES = "invalid_rules", "not shown: its audience rules are invalid"
    NOT_STARTED = "not_started", "not started yet"
    ENDED = "ended", "ended"
    INACTIVE = "inactive", "inactive"


def _valid(campaign: Campaign) -> bool:
    """Rules written around `clean()` (a raw update, an import) skip the campaign, not the page."""
    try:
        campaign.rules  # noqa: B018 - parsing is the check
    except ValidationError as exc:
        logger.warning(
            "Campaign %r is not shown: %s Fix it in the admin.", campaign.name, " ".join(exc.messages)
        )
        return False
    return True


def used_up(campaigns: Sequence[Campaign]) -> set[int]:
    """Ids of the campaigns whose impression cap is reached (a cap of 0 from before caps were
    checked counts as reached): they are not shown again."""
    capped = [c for c in campaigns if c.impression_cap is not None]
    views = views_so_far(capped)
    return {c.pk for c in capped if views.get(c.pk, 0) >= c.impression_cap}


def _status_and_offers(
    campaigns: Sequence[Campaign], now: dt.datetime | None
) -> tuple[dict[int, str], dict[int, list[str]]]:
    """`campaign_status`, and the first `PRODUCTS_PER_MATCH` products each campaign shown offers
    now (`products.offers`; stock is read now, so a sold-out sale is gone at once)."""
    now = now or timezone.now()
    status: dict[int, str] = {}
    for campaign in campaigns:
        if not campaign.is_active:
            status[campaign.pk] = CampaignStatus.INACTIVE
        elif campaign.starts_at > now:
            status[campaign.pk] = CampaignStatus.NOT_STARTED
        elif not campaign.is_running(now):
            status[campaign.pk] = CampaignStatus.ENDED
        elif not _valid(campaign):
            status[campaign.pk] = CampaignStatus.INVALID_RULES
        else:
            status[campaign.pk] = CampaignStatus.SHOWN
    shown = [c for c in campaigns if status[c.pk] == CampaignStatus.SHOWN]
    for pk in used_up(shown):
        status[pk] = CampaignStatus.USED_UP
    shown = [c for c in shown if status[c.pk] == CampaignStatus.SHOWN]
    offered = offers(shown, PRODUCTS_PER_MATCH)
    for campaign in shown:
        if campaign.kind != CampaignKind.MEMBER_BENEFIT and not offered[campaign.pk]:
            status[campaign.pk] = CampaignStatus.NOTHING_TO_OFFER
    return status, offered


def campaign_status(campaigns: Sequence[Campaign], now: dt.datetime | None = None) -> dict[int, str]:
    """A `CampaignStatus` per campaign id: the one definition of "shown to shoppers", which
    `campaigns_for` serves and the admin's list reports, so the two cannot disagree."""
    return _status_and_offers(campaigns, now)[0]


def _showable(now: dt.datetime | None) -> tuple[list[Campaign], dict[int, list[str]]]:
    """The running campaigns shown to shoppers now, with the first products each offers."""
    campaigns = list(Campaign.objects.running(now))
    status, offered = _status_and_offers(campaigns, now)
    return [c for c in campaigns if status[c.pk] == CampaignStatus.SHOWN], offered


def showable_campaigns(now: dt.datetime | None = None) -> list[Campaign]:
    """Running campaigns with valid rules, something to offer and their impression cap not
    reached."""
    return _showable(now)[0]


def _interest(audience: Audience, campaigns: list[Campaign]) -> dict[int, tuple[float, str, str]]:
    """(score, reason, method) per campaign id for promotions and flash sales, measured as the
    campaign's saved audience measures it (`build_audience`), so `min_score` means one thing:
    with a model, the cosine of the visitor's taste to the campaign (`interest`); for a
    campaign whose products have no vectors, or with no model, event affinity (`affinity`)."""
    if not campaigns:
        return {}
    scores: dict[int, tuple[float, str, str]] = {}
    version = variants.model_version(audience)
    if version is not None:
        taste = current_taste(version, audience).vector
        if taste is None:
            # Most storefront traffic (new sessions, crawlers): interest 0, as in the saved
            # audience, and no campaign's vectors to read for that.
            for pk in campaigns_with_vectors(campaigns, version):
                scores[pk] = (0.0, "Current offer", "model")
        else:
            for pk, direction in campaign_directions(campaigns, version).items():
                score = visitor_interest(taste, direction)
                scores[pk] = (score, "Matches what you like" if score > 0 else "Current offer", "model")
    rest = {c.pk: interest_scope(c) for c in campaigns if c.pk not in scores}
    if rest:
        for pk, score in visitor_affinity(audience, rest).items():
            reason = "Matches what you looked at" if score > 0 else "Current offer"
            scores[pk] = (score, reason, "affinity")
    return scores


def campaigns_for(audience: Audience, limit: int = 3, now: dt.datetime | None = None) -> list[CampaignMatch]:
    """The campaigns to show this visitor now, best first (at most `limit`)."""
    campaigns, offered = _showable(now)
    # Signed in is signed in, opted out or not; only their profile (interest, RFM) is not read.
    signed_in = audience.given_user is not None
    campaigns = [c for c in campaigns if signed_in or not c.rules.logged_in_only]
    interest = _interest(audience, [c for c in campaigns if c.kind != CampaignKind.MEMBER_BENEFIT])
    segment = None
    if audience.user_id is not None and any(c.kind == CampaignKind.MEMBER_BENEFIT for c in campaigns):
        rfm = customer_rfm(audience.user_id, now)
        segment = rfm.segment if rfm else None

    matches = []
    for campaign in campaigns:
        rules = campaign.rules
        if campaign.kind == CampaignKind.MEMBER_BENEFIT:
            if segment is None or segment not in rules.rfm_segments:
                continue
            match = CampaignMatch(
                campaign, MEMBER_SCORE, SEGMENT_REASONS[segment], "rfm", offered[campaign.pk]
            )
        else:
            score, reason, method = interest.get(campaign.pk, (0.0, "Current offer", "affinity"))
            match = CampaignMatch(campaign, score, reason, method, offered[campaign.pk])
        if rules.min_score is not None and match.score < rules.min_score:
            continue
        matches.append(match)
    matches.sort(key=lambda m: (-m.campaign.priority, -m.score, m.campaign.pk))
    return matches[:limit]


def show_campaigns(audience: Audience, limit: int = 3, now: dt.datetime | None = None) -> list[CampaignMatch]:
    """`campaigns_for`, recorded as shown: one served list (kind `CAMPAIGN_LIST_KIND`, the
    campaigns' primary keys as its items) whose id each match carries as `recommendation_id`.

    Pages and the for-me API show campaigns through this; their `campaign_view` events send
    the id back, and a browser's view counts towards an impression cap only for a campaign of
    a list served to it, so that fresh sessions cannot use up a cap by posting views of a
    campaign they never saw. Nothing is recorded for a preview (`record_exposure=False`).
    """
    matches = campaigns_for(audience, limit=limit, now=now)
    if not matches:
        return matches
    recommendation_id = record_served(
        kind=CAMPAIGN_LIST_KIND,
        source=CAMPAIGN_LIST_KIND,
        audience=audience,
        product_ids=[str(m.campaign.pk) for m in matches],
        scores=[m.score for m in matches],
        model_version_id=None,
        context={},
    )
    return [replace(m, recommendation_id=recommendation_id) for m in matches]
