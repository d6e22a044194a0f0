"""Admin classes of the engine, one module per concern."""

from recommendations.admin import (  # noqa: F401 - each module registers its admin classes
    api_keys,
    dashboard,
    events,
    experiments,
    marketing,
    model_versions,
    preview,
    privacy,
    statistics,
    vectors,
)
