"""Objects that own a thread, one per process.

A forked child (a gunicorn or Celery worker) inherits its parent's objects but none of their
threads, so each class makes its own instance on first use in every process.
"""

from __future__ import annotations

import os
import threading
from typing import Self


class PerProcess:
    """`for_this_process()` returns this process's instance, made on first use; `running()`
    the instance only when this process has made one (flushing at exit or in tests)."""

    _current: PerProcess | None = None
    _making: threading.Lock

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._current = None
        cls._making = threading.Lock()

    def __init__(self) -> None:
        self.pid = os.getpid()

    @classmethod
    def for_this_process(cls) -> Self:
        current = cls.running()
        if current is None:
            with cls._making:
                current = cls.running()
                if current is None:
                    current = cls()
                    cls._current = current
        return current

    @classmethod
    def running(cls) -> Self | None:
        current = cls._current
        return current if current is not None and current.pid == os.getpid() else None
