"""Process-wide state that serving keeps between requests, reset around tests."""

from collections.abc import Iterator

from django.core.cache import caches

from recommendations.experiments import assignment
from recommendations.serving import compiled, presentation
from recommendations.vectors import queries


def fresh_serving_state() -> Iterator[None]:
    """Start with an empty cache, no remembered active version, compiled query or product card
    and no live experiment."""
    clear_all_caches()
    compiled.clear_cache()
    presentation.product_cards.clear()
    queries.clear_cache()
    assignment.clear_cache()
    yield
    queries.clear_cache()
    assignment.clear_cache()


def clear_all_caches() -> None:
    """Empty every Django cache: serving's lists live in their own (`SERVING_CACHE_ALIAS`)."""
    for each in caches.all():
        each.clear()


# Every cache on a Redis that nobody listens to: what serving sees while Redis is down.
UNREACHABLE_REDIS = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:9/0",
}
UNREACHABLE_CACHES = {"default": UNREACHABLE_REDIS, "serving": UNREACHABLE_REDIS}
