"""What the commands tell an operator when their work fails: each failure as one
`CommandError` that says what to do, with no traceback.

It lives with the commands because it speaks their language (`CommandError`); the services
they call (the importers, training, activation) raise their own errors and stay free of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import CommandError, CommandParser
from django.db import InterfaceError, OperationalError

from recommendations.events.datasets import DATASETS
from recommendations.events.textfiles import CutMidLine, UnreadableFile

#: The import commands' option that reads a file whose last line ends without a line break.
LAST_LINE_IS_WHOLE = "--last-line-is-whole"


def add_source_options(parser: CommandParser) -> None:
    """An import command's `--dataset` and `LAST_LINE_IS_WHOLE` (`cut_short_override`), one or
    the other: a dataset's files are read by its own rules, so the option would be ignored."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=sorted(DATASETS), help="read PATH as this public dataset")
    source.add_argument(
        LAST_LINE_IS_WHOLE,
        action="store_true",
        help="import a CSV file whose last line ends without a line break (refused by "
        "default: a file cut short in its last line would import that row cut)",
    )


# The version that serves changes in one transaction at the end of an activation, an embed or
# a retrain with --activate: an outage before it leaves the previous one serving.
SERVING_AFTER_AN_OUTAGE = (
    "The version that serves changes only in the final switch: `python manage.py activate_model "
    "--list` shows which one serves once the database is back."
)


@contextmanager
def command_errors(
    source: Path, *failures: type[Exception], cut_short_override: bool = False
) -> Iterator[None]:
    """Run an import command's work on `source`, turning what can go wrong into a
    `CommandError` that says what to do: a missing file, the importer's own `failures` (bad
    rows, whose message lists them), a file that cannot be read (`UnreadableFile`, which names
    the file in a dataset's folder and says what was stored), a bad value (a missing column).
    `cut_short_override`: the command reads the file with `LAST_LINE_IS_WHOLE`, which a file
    cut short mid-line (`CutMidLine`) is then told of. Ctrl-C is said in one line, too: what
    the importer's interruption says was stored, else that nothing was (a catalogue is written
    in one transaction; events are stored batch by batch, from the first batch on)."""
    if not source.exists():
        raise CommandError(f"{source} does not exist.")
    try:
        yield
    except (*failures, FileNotFoundError, UnreadableFile, ValueError) as exc:
        if cut_short_override and isinstance(exc, UnreadableFile) and isinstance(exc.cause, CutMidLine):
            exc.cause.override = LAST_LINE_IS_WHOLE
        raise CommandError(str(exc)) from exc
    except KeyboardInterrupt as exc:
        raise CommandError(
            str(exc) or "Interrupted; nothing was imported: run the same command again."
        ) from None


@contextmanager
def database_errors(outcome: str = "") -> Iterator[None]:
    """Run a command's work, turning a database that cannot be reached or drops the connection
    into one line (`database_lost`) rather than psycopg's traceback of several lines."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise database_lost(exc, outcome) from None


def database_lost(exc: Exception, outcome: str = "") -> CommandError:
    """A database error as one line: its cause, what to check, then `outcome` (what the outage
    left behind, when the command knows)."""
    cause = " ".join(str(exc).split()) or type(exc).__name__  # psycopg's message spans lines
    return CommandError(
        f"The database could not be reached or dropped the connection ({cause}). Check that PostgreSQL "
        "is running and that settings.DATABASES (DATABASE_URL) points to it, then run the command again."
        + (f" {outcome}" if outcome else "")
    )
