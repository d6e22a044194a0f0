"""System checks (`manage.py check`) for configuration that works, but badly."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks

from recommendations.adapters import get_product_adapter
from recommendations.api.throttles import rate_errors
from recommendations.conf import rec_settings
from recommendations.events.preprocessing import WEIGHT_KEYS, weight_errors
from recommendations.learning.config import device_error, option_errors, processes_error
from recommendations.serving.rule_sets import rule_set_errors
from recommendations.serving.rules import boost_rule_errors

LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
# Entries serving needs in a per-process cache: at about 100 requests/s per process, most
# of them storing a list (one per visitor, product or query), this holds a minute of them,
# the default SERVING_CACHE_SECONDS (docs/benchmarks.md, "Sixth session").
SERVING_CACHE_ENTRIES = 5000
# What to do about each training setting `check_training` refuses.
TRAINING_HINTS = {
    "TRAINING": "TrainConfig in recommendations/learning/config.py lists the options, their defaults and "
    "what each may be.",
    "DEVICE": "'auto' trains and embeds on CUDA where torch sees a GPU, else on the CPU.",
    "TRAINING_PROCESSES": '"auto" starts one process per GPU when training on CUDA; 1 trains in one process.',
}

# The apps the engine needs beside itself, and what fails without each (with no word from
# Django until then: a 500 on the first search, a missing template, a migration's dependency).
REQUIRED_APPS = {
    "django.contrib.postgres": "search uses its lookups (trigram, unaccent)",
    "rest_framework": "the REST API's browsable pages use its templates",
    "drf_spectacular": "the API's documentation at /api/docs/ uses its templates",
    "django_celery_beat": "the engine's migrations write its schedule (retrain, refresh, purge)",
}


def _refused(name: str, errors: Iterable[str], hint: str, id: str) -> list[checks.CheckMessage]:
    """One Error per reason `RECOMMENDATIONS[name]` cannot be applied, each naming the setting."""
    return [checks.Error(f"RECOMMENDATIONS[{name!r}]: {error}", hint=hint, id=id) for error in errors]


@checks.register()
def check_required_apps(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse an INSTALLED_APPS without an app the engine needs, naming what would fail."""
    return [
        checks.Error(
            f"{name!r} is not in INSTALLED_APPS, and {needed}.",
            hint=f'Add {name!r} to INSTALLED_APPS (README.md, "Using the app in your own shop", lists them).',
            id="recommendations.E007",
        )
        for name, needed in REQUIRED_APPS.items()
        if not apps.is_installed(name)
    ]


@checks.register(checks.Tags.caches)
def check_serving_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report a serving cache that does not exist, or a per-process one too small to keep
    the lists.

    Django's LocMemCache keeps 300 entries unless told otherwise. Serving stores a list per
    visitor, product and search query, so under traffic the shared lists (a popular product's
    similar products, trending) are evicted within a second or two and recomputed on nearly
    every request.
    """
    if not rec_settings.SERVING_CACHE_SECONDS:
        return []
    alias = rec_settings.SERVING_CACHE_ALIAS
    if alias not in settings.CACHES:
        return [
            checks.Error(
                f"RECOMMENDATIONS['SERVING_CACHE_ALIAS'] is {alias!r}, which is not in settings.CACHES "
                f"({', '.join(map(repr, settings.CACHES)) or 'none'}).",
                hint="Name one of settings.CACHES, or add that cache.",
                id="recommendations.E001",
            )
        ]
    config = settings.CACHES[alias]
    if config.get("BACKEND") != LOCMEM:
        return []
    entries = int(config.get("OPTIONS", {}).get("MAX_ENTRIES", 300))
    if entries >= SERVING_CACHE_ENTRIES:
        return []
    return [
        checks.Warning(
            f"The {alias!r} cache, which keeps serving's lists, is a LocMemCache of {entries} entries: "
            "recommendation lists are evicted within seconds under traffic and recomputed on most requests.",
            hint=f"Set CACHES[{alias!r}]['OPTIONS'] = {{'MAX_ENTRIES': {SERVING_CACHE_ENTRIES}}} or more.",
            id="recommendations.W001",
        )
    ]


@checks.register()
def check_serving_rules(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse `SERVING_RULES` that serving cannot apply: a misspelt rule would otherwise be
    ignored without a word, and a value of the wrong type fail every list of its type."""
    return _refused(
        "SERVING_RULES",
        rule_set_errors(rec_settings.SERVING_RULES),
        hint="See the SERVING_RULES defaults in recommendations/conf.py.",
        id="recommendations.E002",
    )


@checks.register()
def check_boost_rules(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse `BOOST_RULES` that serving cannot apply: a rule whose filter names a field the
    product model lacks, or whose factor is not a number, would fail every list of its types
    (the template tags then render those blocks empty), and a misspelt type is ignored."""
    return _refused(
        "BOOST_RULES",
        boost_rule_errors(rec_settings.BOOST_RULES),
        hint='Each rule is {"filter": {...}, "factor": 1.5, "types": [...]}: "filter" holds ORM lookups '
        'on the product model (e.g. {"brand": "Acme"}), "factor" is above 1 to boost, below 1 to bury, '
        '0 to remove, and "types" (optional) names the lists it applies to.',
        id="recommendations.E004",
    )


@checks.register()
def check_model_files_folder(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when MEDIA_ROOT is unset or relative: trained model files would be written under
    whatever folder a command or worker was started in, and the next process started
    elsewhere would not find them."""
    root = str(settings.MEDIA_ROOT or "")
    if root and Path(root).is_absolute():
        return []
    return [
        checks.Warning(
            f"MEDIA_ROOT is {root!r}: trained model files go to a folder relative to where each process "
            "starts, so a worker started elsewhere cannot load the active model.",
            hint="Set MEDIA_ROOT to an absolute folder that every web process and worker sees, "
            'e.g. MEDIA_ROOT = BASE_DIR / "media".',
            id="recommendations.W002",
        )
    ]


@checks.register()
def check_celery_broker(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when no Celery broker is configured: Celery would fall back to its own default,
    a RabbitMQ on localhost, and the app's tasks (embedding saved products, retraining) would
    go wherever that is, or nowhere."""
    from celery import current_app

    if current_app.conf.broker_url or getattr(settings, "CELERY_BROKER_URL", None):
        return []
    return [
        checks.Warning(
            "No Celery broker is configured, so the app's tasks would go to Celery's default "
            "(a RabbitMQ on localhost) or fail to be queued.",
            hint='Set CELERY_BROKER_URL (e.g. "redis://127.0.0.1:6379/0"), and load your Celery app '
            "from your project's __init__.py as Celery's Django guide shows.",
            id="recommendations.W003",
        )
    ]


@checks.register()
def check_throttle_rates(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse `API_THROTTLE_RATES` the API cannot apply: a misspelt kind would be ignored
    without a word (its clients keeping the default rate), and a bad rate fail every request
    of its kind."""
    return _refused(
        "API_THROTTLE_RATES",
        rate_errors(rec_settings.API_THROTTLE_RATES),
        hint="See the API_THROTTLE_RATES default in recommendations/conf.py; kinds left out keep it.",
        id="recommendations.E003",
    )


@checks.register()
def check_category_tree(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when the category model is a tree the product adapter does not name the parent of:
    renaming or moving a category would then reach the search documents of its own products
    only, not of those in the categories under it (until their next save or refresh_serving)."""
    adapter = get_product_adapter()
    model = adapter.category_model()
    if model is None or adapter.category_parent_field:
        return []
    parents = [f.name for f in model._meta.get_fields() if f.many_to_one and f.related_model is model]
    if not parents:
        return []
    return [
        checks.Warning(
            f"{model._meta.label} refers to itself ({parents[0]!r}), but {type(adapter).__name__}."
            "category_parent_field is not set: a renamed or moved category is not found under its "
            "new name in the products of the categories under it.",
            hint=f"Set category_parent_field = {parents[0]!r} in your product adapter.",
            id="recommendations.W004",
        )
    ]


@checks.register()
def check_weights(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse `EVENT_WEIGHTS` and `RATING_WEIGHTS` that training cannot use: a misspelt event
    type would be ignored without a word (its events not trained on), and a weight that is
    not a number fail every retrain."""
    return [
        refusal
        for name in WEIGHT_KEYS
        for refusal in _refused(
            name,
            weight_errors(name, getattr(rec_settings, name)),
            hint=f"Give only the weights to change: the others keep their defaults ({name} in "
            "recommendations/conf.py), and a weight of 0 stops a kind of event from counting.",
            id="recommendations.E005",
        )
    ]


@checks.register()
def check_training(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse `TRAINING`, `DEVICE` and `TRAINING_PROCESSES` values no retrain can use, here
    rather than in the nightly retrain. Whether this machine has the GPU asked for is left to
    where training and embedding run: web machines share the settings of GPU workers."""
    device, processes = device_error(rec_settings.DEVICE), processes_error(rec_settings.TRAINING_PROCESSES)
    errors = {
        "TRAINING": option_errors(rec_settings.TRAINING),
        "DEVICE": [device] if device else [],
        "TRAINING_PROCESSES": [processes] if processes else [],
    }
    return [
        refusal
        for name, found in errors.items()
        for refusal in _refused(name, found, hint=TRAINING_HINTS[name], id="recommendations.E006")
    ]
