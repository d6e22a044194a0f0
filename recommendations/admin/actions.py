"""Bulk admin actions that hand each selected object to a service and report the outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.http import HttpRequest

T = TypeVar("T")

# What services raise when one object cannot be handled (bad data, a missing setting): the
# staff user can fix it. Anything else is a bug and reaches the error page.
EXPECTED_PROBLEMS = (ValidationError, ImproperlyConfigured)


def problem_text(exc: Exception) -> str:
    """The message of an expected problem, as one line for the admin."""
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def run_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    items: Iterable[T],
    action: Callable[[T], object],
    summary: str,
) -> None:
    """Apply `action` to every item, then report: one message with the count of successes
    (`summary` formatted with `count`, e.g. "Refreshed {count} segment(s)."), then one error
    per item that failed, naming it and saying why. A failure does not stop the others."""
    done, problems = 0, []
    for item in items:
        try:
            action(item)
        except EXPECTED_PROBLEMS as exc:
            problems.append(f"{item}: {problem_text(exc)}")
        else:
            done += 1
    model_admin.message_user(
        request, summary.format(count=done), messages.SUCCESS if done else messages.WARNING
    )
    for problem in problems:
        model_admin.message_user(request, problem, messages.ERROR)
