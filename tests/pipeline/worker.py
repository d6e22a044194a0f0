"""A real Celery worker process for the pipeline tests, on the run's own test database.

The broker is Redis when CELERY_BROKER_URL is set (as in CI), otherwise the filesystem
transport in a temporary folder; the test process publishes to the same place.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from tasks.celery import app

ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("default", "gpu")
WORKER_COMMAND = [
    sys.executable,
    *(
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "-Q",
        ",".join(QUEUES),
        "-c",
        "1",
        "-P",
        "prefork",
        "-l",
        "INFO",
    ),
    *("--without-mingle", "--without-gossip", "--without-heartbeat"),
]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout:.0f}s waiting for {what}")


def configure_broker(folder: Path) -> dict[str, str]:
    """Point this process's Celery app at the test broker; returns the worker's environment."""
    url = os.environ.get("CELERY_BROKER_URL", "")
    if url:
        env = {"CELERY_BROKER_URL": url}
        options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    else:
        url = "filesystem://localhost/"  # with a host, as shop.settings names it
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        env = {"CELERY_BROKER_FOLDER": str(folder)}
        options = {
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "data_folder_processed": str(folder / "processed"),
            "control_folder": str(folder / "control"),
        }
    app.conf.broker_url = url
    app.conf.broker_transport_options = options
    app.amqp._producer_pool = None  # forget connections made with the previous broker
    app.close()
    with app.connection_for_write() as conn:  # a previous run's leftovers must not run here
        for queue in QUEUES:
            with contextlib.suppress(Exception):  # the queue does not exist yet
                conn.default_channel.queue_purge(queue)
    return env


class Worker:
    """`celery -A tasks worker -Q default,gpu -c 1` with output captured to a file."""

    def __init__(self, broker_env: dict[str, str], log_path: Path, media_root: Path) -> None:
        self.log_path = log_path
        self.env = {
            **os.environ,
            **broker_env,
            "DJANGO_SETTINGS_MODULE": "tests.pipeline.worker_settings",
            "PIPELINE_TEST_DB": connection.settings_dict["NAME"],
            "MEDIA_ROOT": str(media_root),
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*WORKER_COMMAND, "-n", f"pipeline-test-{os.getpid()}@%h"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() ends the pool children too
        )
        wait_for(lambda: " ready." in self.log() or self.process.poll() is not None, 90, what="the worker")
        assert self.process.poll() is None, f"The worker exited:\n{self.log()[-3000:]}"
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match:
        return wait_for(lambda: re.search(pattern, self.log()[after:]), timeout, what=f"log line {pattern!r}")

    def pool_pids(self) -> list[int]:
        """Process ids of the pool's children (the processes that run tasks)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def stop(self) -> None:
        """Kill the worker and its pool at once: the test database is dropped next."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
