"""Admin classes of the engine, one module per concern."""

from recommendations.admin import api_keys  # noqa: F401 - registers the ApiKey admin
