"""Number formatting for the engine's admin pages (no dependency on django.contrib.humanize)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def thousands(value: int | float | None) -> str:
    """12345 -> "12,345"; None -> "-"."""
    if value is None:
        return "-"
    return f"{value:,.0f}"


@register.filter
def percent(value: float | None) -> str:
    """0.1234 -> "12.3%"; None (nothing to divide by) -> "-"."""
    if value is None:
        return "-"
    return f"{value:.1%}"


@register.filter
def percent_width(value: float | None) -> str:
    """A share as a CSS width, clamped to 0-100%."""
    return f"{min(max(value or 0.0, 0.0), 1.0) * 100:.1f}%"
