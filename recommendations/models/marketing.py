"""Campaigns and the saved audiences (segments) built for them.

A campaign names what it promotes by host keys as strings (product ids, store ids) and by
category names, never by foreign keys, so the engine's migrations stay independent of the
host's catalogue. Who should see it is decided by `recommendations.marketing.targeting`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from recommendations.adapters import get_product_model, get_store_model
from recommendations.marketing.rules import MAX_AUDIENCE_LIMIT, AudienceRules, parse_rules
from recommendations.text import fold_category

# Campaign views and clicks are events whose context names the campaign under this key.
CAMPAIGN_CONTEXT_KEY = "campaign"
# The campaigns shown to a visitor are recorded as a served list of this kind, the campaigns'
# primary keys as its items: a campaign view from a browser counts only with that list's id.
CAMPAIGN_LIST_KIND = "campaigns"
# Where a browser's campaign view or click keeps a campaign it cannot show it was shown.
UNVERIFIED_CAMPAIGN_KEY = "unverified_campaign"


def digest(*parts: Any) -> str:
    """A short fingerprint of JSON values: what a stored result was computed from."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def audience_digest(campaign: Any) -> str:
    """What a campaign's audience depends on (kind, what it promotes, its audience rules) as
    a fingerprint: a `Segment` computed under another one no longer matches the campaign.
    Reads plain fields, so that migrations can call it with their historical models."""
    return digest(
        campaign.kind,
        sorted(campaign.product_ids),
        sorted(map(fold_category, campaign.category_names)),
        sorted(campaign.store_ids),
        campaign.audience_rules,
    )


def unknown_keys(model: type[models.Model] | None, keys: list[str]) -> list[str]:
    """The keys among `keys` that name no row of `model` (malformed ones included)."""
    if model is None or not keys:
        return []
    parsed: dict[object, str] = {}
    bad = []
    for key in keys:
        try:
            parsed[model._meta.pk.to_python(key)] = key
        except ValidationError:
            bad.append(key)
    found = set(model._default_manager.filter(pk__in=list(parsed)).values_list("pk", flat=True))
    return bad + [key for value, key in parsed.items() if value not in found]


UNREADABLE_MOMENT = (
    "This moment is outside the years 1 to 9999 in UTC, so it could be saved but never read back. "
    "Give a date within them; for a campaign that never ends, leave the end empty."
)


def readable_moment(moment: dt.datetime | None) -> bool:
    """Whether a moment, stored in UTC, can be read back. PostgreSQL keeps 9999-12-31 23:00 in
    New York (10000-01-01 in UTC) or 0001-01-01 in Tokyo (1 BC), and Python cannot read them:
    every list or page holding the row was a 500."""
    if moment is None or timezone.is_naive(moment):
        return True
    try:
        moment.astimezone(dt.UTC)
    except OverflowError:
        return False
    return True


def validate_campaign_link(value: str) -> None:
    """A path on this site or an http(s) address: what shoppers click must not run script
    (`javascript:`) or open another scheme."""
    if not is_safe_link(value):
        raise ValidationError(
            "Enter a path on this site (/offers/tea/) or an address starting with http:// or https://.",
            code="invalid_link",
        )


def is_safe_link(value: str) -> bool:
    """Whether `value` is a path on this site or an http(s) address."""
    if value.startswith("/") and not value.startswith(("//", "/\\")):
        return True
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        return False
    return True


class CampaignKind(models.TextChoices):
    PROMOTION = "promotion", "Promotion of products, categories or stores"
    MEMBER_BENEFIT = "member_benefit", "Member benefit (by customer segment)"
    FLASH_SALE = "flash_sale", "Flash sale / clearance"


class CampaignQuerySet(models.QuerySet["Campaign"]):
    def running(self, now: dt.datetime | None = None) -> CampaignQuerySet:
        """Active campaigns whose window contains `now`."""
        now = now or timezone.now()
        return self.filter(is_active=True, starts_at__lte=now).filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=now)
        )


class Campaign(models.Model):
    """Something the shop wants to show to the shoppers most likely to care."""

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=CampaignKind.choices, default=CampaignKind.PROMOTION)
    product_ids = ArrayField(
        models.CharField(max_length=64),
        default=list,
        blank=True,
        help_text="Product primary keys, comma-separated.",
    )
    category_names = ArrayField(
        models.CharField(max_length=200),
        default=list,
        blank=True,
        help_text="Category names, comma-separated; a product matches when any name is on its category path.",
    )
    store_ids = ArrayField(
        models.CharField(max_length=64),
        default=list,
        blank=True,
        help_text="Store primary keys, comma-separated.",
    )
    discount_text = models.CharField(
        max_length=200,
        blank=True,
        help_text='What shoppers read, e.g. "-20% on tea". Display only: prices are the shop\'s '
        "to change (a sale price or a coupon its checkout applies).",
    )
    link_url = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_campaign_link],
        help_text="Where the campaign leads: a path on this site (/offers/tea/) or an http(s) address.",
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty for an open-ended campaign.")
    impression_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Stop showing the campaign once this many visitors have seen it (its budget); "
        "each visitor counts once, however often they see it.",
    )
    audience_rules = models.JSONField(
        default=dict, blank=True, help_text="See recommendations.marketing.rules."
    )
    priority = models.SmallIntegerField(default=0, help_text="Higher first, before relevance.")
    is_active = models.BooleanField(default=True)
    # An inventory flash sale's slow sellers, chosen when it starts and kept for the rest of
    # it (`marketing.products`), so that a product that sells during the sale stays in it;
    # chosen again when its targeting changes (`sale_products_digest` is `offer_digest()`).
    sale_product_ids = ArrayField(
        models.CharField(max_length=64),
        default=list,
        blank=True,
        editable=False,
        verbose_name="sale's products",
        help_text="An inventory flash sale's slow sellers, chosen when it started.",
    )
    sale_products_digest = models.CharField(max_length=32, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "-starts_at"]
        indexes = [models.Index(fields=["is_active", "starts_at"], name="rec_campaign_running")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        from recommendations.marketing.caps import forget_views  # it reads these models

        # An edited campaign is judged on a fresh count of its viewers (a cap just changed).
        forget_views([self.pk])

    @property
    def href(self) -> str:
        """The link as pages show it: "#" for one the form would refuse (a row saved before
        links were checked must not run script in shoppers' browsers)."""
        return self.link_url if self.link_url and is_safe_link(self.link_url) else "#"

    @property
    def rules(self) -> AudienceRules:
        return parse_rules(self.audience_rules)

    def offer_digest(self) -> str:
        """What an inventory flash sale's products are chosen from (what it promotes and its
        inventory rule) as a fingerprint: a banner's text or dates can change, the products stay."""
        inventory = self.rules.inventory
        return digest(
            sorted(self.product_ids),
            sorted(map(fold_category, self.category_names)),
            sorted(self.store_ids),
            asdict(inventory) if inventory else None,
        )

    def clean(self) -> None:
        errors: dict[str, list[str]] = {
            field: [UNREADABLE_MOMENT]
            for field in ("starts_at", "ends_at")
            if not readable_moment(getattr(self, field))
        }
        if not errors and self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = [
                f"The campaign ends ({self.ends_at:%Y-%m-%d %H:%M}) before it starts "
                f"({self.starts_at:%Y-%m-%d %H:%M}). Set an end after the start, or leave it empty."
            ]
        if self.impression_cap == 0:
            errors["impression_cap"] = [
                "A cap of 0 visitors would never show the campaign. Give at least 1, leave it empty "
                "for no cap, or untick Is active to keep it as a draft."
            ]
        for field, model in (("product_ids", get_product_model()), ("store_ids", get_store_model())):
            unknown = unknown_keys(model, list(getattr(self, field) or []))
            if unknown:
                names = ", ".join(unknown[:10])
                errors[field] = [f"No such {model._meta.verbose_name}: {names}. Give primary keys."]
        from recommendations.marketing.products import unknown_categories  # it reads these models

        unknown = unknown_categories(self.category_names or [])
        if unknown:
            errors["category_names"] = [
                f"No product is in the category {', '.join(map(repr, unknown[:10]))}: check the spelling "
                "(names as in the category path, e.g. 'Tea'). After loading a catalogue, run "
                "manage.py refresh_serving so that its categories are known."
            ]
        try:
            rules = parse_rules(self.audience_rules)
        except ValidationError as exc:
            errors["audience_rules"] = exc.messages
        else:
            if rules.rfm_segments and self.kind != CampaignKind.MEMBER_BENEFIT:
                errors["audience_rules"] = ["rfm_segments applies to member benefits only; change the kind."]
            if rules.inventory and self.kind != CampaignKind.FLASH_SALE:
                errors["audience_rules"] = ["inventory applies to flash sales only; change the kind."]
            if rules.min_score is not None and self.kind == CampaignKind.MEMBER_BENEFIT:
                errors["audience_rules"] = [
                    "min_score applies to promotions and flash sales; a member benefit goes to everyone "
                    "in its rfm_segments. Remove min_score, or narrow the segments."
                ]
            problem = self.targeting_error() if self.is_active and "audience_rules" not in errors else None
            if problem:
                # Saved active, it would never be shown and nobody would be told why.
                field = "audience_rules" if self.kind == CampaignKind.MEMBER_BENEFIT else NON_FIELD_ERRORS
                errors[field] = [f"{problem} Or make it inactive to keep it as a draft until it does."]
        if errors:
            raise ValidationError(errors)

    def targeting_error(self) -> str | None:
        """Why the campaign can reach nobody (no audience, never shown), or None when it
        targets something. `clean()` refuses it for an active campaign."""
        rules = parse_rules(self.audience_rules)
        if self.kind == CampaignKind.MEMBER_BENEFIT:
            if not rules.rfm_segments:
                return (
                    f"Member benefit {self.name!r} names no customer segment. Add "
                    '"rfm_segments" to its audience rules, e.g. ["loyal_high_spender"].'
                )
            return None
        if self.product_ids or self.category_names or self.store_ids or rules.inventory:
            return None
        return (
            f"Campaign {self.name!r} promotes nothing: add products, categories or stores"
            + (' (or an "inventory" rule)' if self.kind == CampaignKind.FLASH_SALE else "")
            + "."
        )

    def is_running(self, now: dt.datetime | None = None) -> bool:
        """Active and within its dates. Shown to shoppers also needs valid rules and an
        impression cap not yet reached: `marketing.targeting.campaign_status` says that."""
        now = now or timezone.now()
        return self.is_active and self.starts_at <= now and (self.ends_at is None or now < self.ends_at)


class Segment(models.Model):
    """A saved audience: the users most likely to engage with a campaign, at `refreshed_at`.

    Members live in `SegmentMember` rows so that `segment.users()` is an ordinary QuerySet
    of users (join it, filter it, export it). A refresh replaces all members in one
    transaction; the periodic task refreshes every segment with `auto_refresh` set.
    """

    name = models.CharField(max_length=200)
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="segments"
    )
    max_size = models.PositiveIntegerField(
        null=True,
        blank=True,
        # 0 would read as "no limit" to anyone who tests it for truth: refuse it instead.
        validators=[MinValueValidator(1), MaxValueValidator(MAX_AUDIENCE_LIMIT)],
        help_text="At most this many users (at least 1); empty uses the campaign's max_audience rule.",
    )
    auto_refresh = models.BooleanField(default=True, help_text="Refreshed by the periodic task.")
    refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    size = models.PositiveIntegerField(default=0, editable=False)
    # How the members were scored at the last refresh (user vectors, event affinity, RFM).
    method = models.CharField(max_length=20, blank=True, editable=False)
    # The campaign's `audience_digest` at the last refresh: the members match the campaign
    # only while it is the same (`is_current`).
    rules_digest = models.CharField(max_length=32, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.campaign is None:
            if self._state.adding:
                raise ValidationError({"campaign": "Choose the campaign this audience is for."})
            if self.auto_refresh:
                raise ValidationError(
                    {
                        "campaign": "This audience's campaign was deleted: choose another, or turn "
                        "auto-refresh off to keep its members as they are."
                    }
                )
            return  # kept as it was last computed
        problem = self.campaign.targeting_error()
        if problem:
            raise ValidationError({"campaign": problem})

    @property
    def is_current(self) -> bool:
        """Whether the members were computed for the campaign as it is now (an edit of what it
        promotes or of its audience rules leaves them out of date until the next refresh)."""
        return self.campaign is not None and self.rules_digest == audience_digest(self.campaign)

    def users(self) -> models.QuerySet:
        """The members as a QuerySet of the user model, most engaged first."""
        return (
            get_user_model()
            .objects.filter(rec_segment_memberships__segment=self)
            .order_by("-rec_segment_memberships__score", "pk")
        )


class SegmentMember(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rec_segment_memberships"
    )
    score = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "user"], name="rec_segment_member_unique")]

    def __str__(self) -> str:
        return f"user {self.user_id} in segment {self.segment_id}"
