"""Admin classes of the engine, one module per concern."""

from recommendations.admin import api_keys  # noqa: F401 - registers the ApiKey admin
from recommendations.admin import privacy  # noqa: F401 - the audit log and the erase action
