"""What the import commands tell an operator when an import fails: each failure as one
`CommandError` that says what to do, with no traceback.

It lives with the commands because it speaks their language (`CommandError`); the files'
reading (`events.textfiles`), which services such as the importers share, stays free of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import CommandError

from recommendations.events.textfiles import READ_ERRORS, unreadable


@contextmanager
def command_errors(source: Path, *failures: type[Exception]) -> Iterator[None]:
    """Run an import command's work on `source`, turning what can go wrong into a
    `CommandError` that says what to do: a missing file, the importer's own `failures` (bad
    rows, whose message lists them), an unreadable file (`unreadable`), a bad value."""
    if not source.exists():
        raise CommandError(f"{source} does not exist.")
    try:
        yield
    except (*failures, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from exc
    except READ_ERRORS as exc:  # before ValueError: a UnicodeDecodeError is one
        raise CommandError(unreadable(source, exc)) from exc
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
