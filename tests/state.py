"""Process-wide state that serving keeps between requests, reset around tests."""

from collections.abc import Iterator

from django.core.cache import cache

from recommendations.experiments import assignment
from recommendations.serving import compiled, presentation
from recommendations.vectors import queries


def fresh_serving_state() -> Iterator[None]:
    """Start with an empty cache, no remembered active version, compiled query or product card
    and no live experiment."""
    cache.clear()
    compiled.clear_cache()
    presentation.product_cards.clear()
    queries.clear_cache()
    assignment.clear_cache()
    yield
    queries.clear_cache()
    assignment.clear_cache()
