"""Process-wide state that serving keeps between requests, reset around tests."""

from collections.abc import Iterator

from django.core.cache import cache

from recommendations.experiments import assignment
from recommendations.vectors import queries


def fresh_serving_state() -> Iterator[None]:
    """Start with an empty cache, no remembered active version and no live experiment."""
    cache.clear()
    queries.clear_cache()
    assignment.clear_cache()
    yield
    queries.clear_cache()
    assignment.clear_cache()
