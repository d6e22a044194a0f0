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

from recommendations.events.textfiles import UnreadableFile


@contextmanager
def command_errors(source: Path, *failures: type[Exception]) -> Iterator[None]:
    """Run an import command's work on `source`, turning what can go wrong into a
    `CommandError` that says what to do: a missing file, the importer's own `failures` (bad
    rows, whose message lists them), a file that cannot be read (`UnreadableFile`, which names
    the file in a dataset's folder and says what was stored), a bad value (a missing column)."""
    if not source.exists():
        raise CommandError(f"{source} does not exist.")
    try:
        yield
    except (*failures, FileNotFoundError, UnreadableFile, ValueError) as exc:
        raise CommandError(str(exc)) from exc
