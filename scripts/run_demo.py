"""Run the demo shop: web server, a Celery worker on both queues, and beat, until Ctrl-C.

    python scripts/run_demo.py [--port 8000]

Starts `celery -A tasks worker -Q default,gpu`, `celery -A tasks beat` and `manage.py
runserver` as child processes with their output interleaved, and stops all three when one
exits or on Ctrl-C / SIGTERM. With CELERY_BROKER_URL unset the broker is a folder under
.data/, so nothing else has to be running.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_SECONDS = 15


def commands(port: int) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "tasks",
            "worker",
            "-Q",
            "default,gpu",
            "-c",
            "1",
            "-l",
            "INFO",
        ],
        "beat": [python, "-m", "celery", "-A", "tasks", "beat", "-l", "INFO"],
        # --noreload: one process, so stopping it stops the server (no orphaned reloader child).
        "web": [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, command in commands(args.port).items():
        # Own process group: Ctrl-C reaches this launcher, which stops the children in order.
        children[name] = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)  # noqa: S603
        print(f"[run_demo] started {name} (pid {children[name].pid}): {' '.join(command[1:])}", flush=True)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(
                    f"[run_demo] {name} exited with status {child.returncode}; stopping the others",
                    flush=True,
                )
                exit_code = child.returncode or 1
                stopping = True
                break
        time.sleep(0.5)
    shutdown(children)
    return exit_code


def shutdown(children: dict[str, subprocess.Popen]) -> None:
    """SIGTERM every child (a worker finishes its current task first), then SIGKILL stragglers."""
    for child in children.values():
        if child.poll() is None:
            child.terminate()  # the main process only: Celery stops its own pool
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[run_demo] {name} did not stop in {STOP_TIMEOUT_SECONDS}s; killing it", flush=True)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    print("[run_demo] stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
