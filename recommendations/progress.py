"""Progress of long work, reported where people look: the model version row (the admin shows
it), the Celery task state, and a progress bar in management commands.

Services (the pipeline, the importers, serving's search index and statistics) take an optional
`Progress` and report to it; they never draw anything themselves, since they also run in
workers and web processes. A command passes one with a `ProgressBar` listener.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
    """A tqdm bar per stage, for management commands: `Progress(listeners=(bar,))`."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream
        self.bar: Any = None
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=total, initial=done, desc=stage, file=self.stream, leave=False, dynamic_ncols=True
            )
        else:
            # tqdm's update() redraws at most every 0.1 s: a log file gets a few lines, not one per batch.
            self.bar.update(done - self.bar.n)

    def write(self, line: str) -> None:
        """Print a line without breaking the bar (per-epoch log lines)."""
        from tqdm import tqdm

        tqdm.write(line, file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
