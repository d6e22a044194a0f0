"""Progress of long work, reported where people look: the model version row (the admin shows
it), the Celery task state, and a progress bar in management commands.

Services (the pipeline, the importers, serving's search index and statistics) take an optional
`Progress` and report to it; they never draw anything themselves, since they also run in
workers and web processes. A command passes one with a `ProgressBar` listener.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import OutputWrapper

from recommendations.models import ModelVersion

Listener = Callable[[str, int, int], None]


class Progress:
    """`progress(stage, done, total)`: record how far a stage has come.

    Database and task-state writes are throttled to one per `min_interval` seconds (and
    always at a stage's start and end), so reporting every batch costs nothing noticeable.
    The pipeline reports between its transactions, so the admin sees each `UPDATE` while
    the work is still running.
    """

    def __init__(
        self, task: Any = None, listeners: tuple[Listener, ...] = (), min_interval: float = 1.0
    ) -> None:
        self.task = task
        self.listeners = listeners
        self.min_interval = min_interval
        self.version_id: int | None = None
        self._last_write = 0.0
        self._last_stage = ""

    def bind(self, version: ModelVersion) -> None:
        """Report to this version's row from now on."""
        self.version_id = version.pk

    def __call__(self, stage: str, done: int, total: int) -> None:
        for listener in self.listeners:
            listener(stage, done, total)
        now = time.monotonic()
        boundary = stage != self._last_stage or done >= total
        if not boundary and now - self._last_write < self.min_interval:
            return
        self._last_write, self._last_stage = now, stage
        state = {"stage": stage, "done": int(done), "total": int(total)}
        if self.version_id is not None:
            ModelVersion.objects.filter(pk=self.version_id).update(progress=state)
        if self.task is not None and getattr(self.task.request, "id", None):
            self.task.update_state(state="PROGRESS", meta={**state, "version": self.version_id})


class ProgressBar:
    """Progress for management commands: `Progress(listeners=(bar,))`.

    On a terminal, a tqdm bar per stage, redrawn in place. Anywhere else (a log file, cron,
    CI) redraws would only pile up as lines around the command's own, so each stage gets one
    line when it starts and nothing more (tqdm itself disables its bar off a terminal when
    given `disable=None`).
    """

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr  # tqdm's default
        self.terminal = _is_terminal(self.stream)
        self.unended = _Unended(self.stream)  # one object: tqdm.write() clears the bars drawn on it
        self.bar: Any = None
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == self.stage:
            if self.bar is not None:
                # tqdm's update() redraws at most every 0.1 s, not once per batch.
                self.bar.update(done - self.bar.n)
            return
        self.close()
        self.stage = stage
        if not self.terminal:
            self.write(f"{stage}: {done:,}/{total:,}")
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, initial=done, desc=stage, file=self.unended, leave=False, dynamic_ncols=True
        )

    def write(self, line: str) -> None:
        """Print a line without breaking the bar (per-epoch log lines)."""
        if self.bar is not None:
            from tqdm import tqdm

            tqdm.write(line, file=self.unended)
            return
        self.stream.write(line if line.endswith("\n") else line + "\n")
        self.stream.flush()  # a log file shows each line as it happens, not at exit

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.stage = ""


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Unended:
    """A stream whose writes are passed on as they are. Django's `OutputWrapper` (a command's
    stdout) ends each write with a newline unless told otherwise, which would turn each of
    tqdm's in-place redraws ("\\r" then the bar) into a line of its own."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        if isinstance(self.stream, OutputWrapper):
            self.stream.write(text, ending="")
        else:
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()
