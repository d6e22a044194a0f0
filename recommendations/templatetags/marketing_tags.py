"""Template tags for personalised campaigns.

    {% load marketing_tags %}
    {% personalized_campaigns limit=2 title="Offers for you" %}
    {% get_personalized_campaigns limit=2 as offers %}   {# CampaignMatch list: render it yourself #}

The block renders `recommendations/campaigns.html` (override it in your templates); each
campaign carries `data-campaign-id` and `data-rec-id` (the match's `recommendation_id`: the
campaigns are recorded as shown, `targeting.show_campaigns`), which
`recommendations/campaigns.js` reports as `campaign_view` (half visible) and `campaign_click`
(a click inside it, but on a <summary> such as the "why" one) events: each visitor who viewed
it counts once towards the campaign's impression cap. A view from a browser without the id of
a list that showed the campaign does not count: markup of your own (`get_personalized_campaigns`)
needs both attributes. Like the recommendation blocks, it shares the page's visitor and renders
empty (logging why) if anything fails; `RECOMMENDATIONS["RAISE_TEMPLATE_ERRORS"]` with DEBUG
raises instead.
"""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.template.loader import render_to_string

from recommendations.marketing.targeting import CampaignMatch, show_campaigns
from recommendations.templatetags.recommendations_tags import page_audience, render_safely

logger = logging.getLogger(__name__)
register = template.Library()

TEMPLATE = "recommendations/campaigns.html"
DEFAULT_LIMIT = 3


def _matches(context: template.Context, limit: Any) -> list[CampaignMatch] | None:
    """The visitor's campaigns, or None when choosing them failed (logged)."""
    return render_safely(
        "personalised campaigns",
        lambda: show_campaigns(page_audience(context), limit=int(limit or DEFAULT_LIMIT)),
        None,
    )


@register.simple_tag(takes_context=True)
def personalized_campaigns(context: template.Context, limit: Any = DEFAULT_LIMIT, title: str = "") -> str:
    """The campaigns block for this visitor; empty when there is nothing to show."""
    matches = _matches(context, limit)
    if not matches:
        return ""
    return render_to_string(
        TEMPLATE,
        {"matches": matches, "title": title},
        request=context.get("request"),
    )


@register.simple_tag(takes_context=True)
def get_personalized_campaigns(context: template.Context, limit: Any = DEFAULT_LIMIT) -> list[CampaignMatch]:
    """The visitor's `CampaignMatch`es (campaign, score, reason, recommendation_id), for
    `{% ... as name %}`."""
    return _matches(context, limit) or []
