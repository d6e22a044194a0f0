"""The admin dashboard: behaviour, the recommendation funnel, coverage and top products.

The figures come from `recommendations.analytics`, computed at most once a minute per window
(`recent_overview`); this module only picks the window and turns them into charts
(server-side SVG, see `charts`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from recommendations import analytics
from recommendations.admin import charts
from recommendations.admin.readonly import AdminPage
from recommendations.models import Dashboard, EventType

WINDOWS = (7, 14, 30)
DEFAULT_WINDOW = 30
EVENT_LABELS = dict(EventType.choices)
# How the kinds of served lists read on the dashboard (see `serving.types.Kind`).
BLOCK_LABELS = {
    "for_you": "Recommended for you",
    "similar": "Similar products",
    "bought_together": "Bought together",
    "trending": "Trending",
    "new_arrivals": "New arrivals",
    "recently_viewed": "Recently viewed",
    "buy_again": "Buy it again",
    "store_products": "Store's top products",
    "search": "Personalised search",
    "rerank": "Re-ranked listings",
    "stores": "Recommended stores",
    "similar_stores": "Similar stores",
}


def window_from(request: HttpRequest) -> int:
    """The window (days) asked for in `?days=`; anything else falls back to the default."""
    try:
        days = int(request.GET.get("days", DEFAULT_WINDOW))
    except ValueError:
        return DEFAULT_WINDOW
    return days if days in WINDOWS else DEFAULT_WINDOW


@admin.register(Dashboard)
class DashboardAdmin(AdminPage):
    """Shows the dashboard instead of a list of rows."""

    title = "Recommendations dashboard"
    template_name = "admin/recommendations/dashboard.html"

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        days = window_from(request)
        overview = analytics.recent_overview(days)
        daily = overview.daily
        series = charts.colored({EVENT_LABELS.get(t, t): values for t, values in daily.counts.items()})
        for funnel in overview.funnels:
            funnel.block = BLOCK_LABELS.get(funnel.block, funnel.block)
        funnels = [f for f in overview.funnels if f.impressions]
        clicked = [f for f in funnels if f.clicks]
        return {
            "overview": overview,
            "days": days,
            "windows": WINDOWS,
            "legend": series,
            "events_chart": charts.stacked_bars(
                [day.strftime("%b %d") for day in daily.days], series, title="Events per day by type"
            ),
            "ctr_chart": charts.horizontal_bars(
                [(f.block, f.ctr or 0.0) for f in funnels], title="Click-through rate by block"
            ),
            "conversion_chart": charts.horizontal_bars(
                [(f.block, f.conversion or 0.0) for f in clicked],
                color=charts.PALETTE[2],
                title="Purchases per click by block",
            )
            if clicked
            else None,
            "coverage_rows": [
                (label, count, overview.coverage.share(count))
                for label, count in (
                    ("Recommended at least once", overview.coverage.recommended),
                    ("Clicked in a recommendation", overview.coverage.clicked),
                    ("Purchased", overview.coverage.purchased),
                    ("Embedded by the active model", overview.coverage.with_vector),
                )
            ],
        }
