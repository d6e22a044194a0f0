"""A/B experiments of the recommendations: bucketing, attribution, statistics, lifecycle.

Serving asks one question per request::

    from recommendations.experiments import variant_for, model_version_for

    choice = variant_for(request)          # VariantChoice or None (serve the defaults)
    version = model_version_for(request)   # the variant's model version, else the active one

`results.experiment_results(experiment)` gives the per-variant funnel with intervals and
tests; `lifecycle.start/stop` change an experiment's status.

The names above are loaded on first use, so importing this package does not need the app
registry to be ready.
"""

from typing import Any

__all__ = ["VariantChoice", "model_version_for", "variant_for"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from recommendations.experiments import assignment

        return getattr(assignment, name)
    raise AttributeError(f"module 'recommendations.experiments' has no attribute {name!r}")
