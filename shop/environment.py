"""Reading settings from the environment, with errors that say what to set."""

from __future__ import annotations

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured


def env_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """`name` as a boolean (true/false, 1/0, yes/no, on/off); `default` when unset or empty."""
    value = environ.get(name, "")
    word = value.strip().lower()
    if not word:
        return default
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}.")
