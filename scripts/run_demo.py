"""Run the demo shop: web server, a Celery worker on both queues, and beat, until Ctrl-C.

    python scripts/run_demo.py [--port 8000] [--check-port]

Starts `celery -A tasks worker -Q default,gpu`, `celery -A tasks beat` and `manage.py
runserver` as child processes with their output interleaved, says where the shop is once all
three are ready (below their banners, where it is seen), and stops all three when one exits or on
Ctrl-C / SIGTERM. With CELERY_BROKER_URL unset the broker is a folder under .data/, so nothing
else has to be running; the embedded PostgreSQL outlives the demo, for its next start. With
the port taken it starts nothing and says which `make demo PORT=...` to run instead;
`--check-port` only does that check (`make demo` runs it before it loads the demo data, so
"ready" is never printed for a port it cannot use).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_SECONDS = 15
HOST = "127.0.0.1"
# How far above a taken port to look for a free one to suggest.
PORTS_TO_SUGGEST = 100
# The line each Celery process prints once it is ready (the web server: its port answers).
READY_LINES = {"worker": " ready.", "beat": "beat: Starting..."}


def port_is_free(port: int) -> bool:
    """Whether the web server could listen on `port` now. Bound as runserver binds (with
    SO_REUSEADDR), so a port whose last connections are closing still counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def port_problem(port: int) -> str | None:
    """Why the demo cannot be served on `port`, with the command to run instead; None if it can."""
    try:
        if port_is_free(port):
            return None
        reason = "is in use"
    except (OSError, OverflowError) as error:  # a port below 1024 without root, or above 65535
        reason = f"cannot be used ({error})"
    return f"port {port} {reason}: run `make demo PORT={free_port_after(port)}`"


def free_port_after(taken: int) -> str:
    """A free port to offer instead of `taken`: the next one above it (from 8000 when it is not
    a port a user may listen on)."""
    start = taken + 1 if 1024 <= taken < 65535 else 8000
    candidates = range(start, min(start + PORTS_TO_SUGGEST, 65536))
    return str(next(filter(port_is_free, candidates), "<a free port>"))


def is_listening(port: int) -> bool:
    """Whether a server accepts connections on `port` now."""
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def serving_message(port: int) -> str:
    return (
        f"the demo shop is at http://{HOST}:{port}/ and its admin at http://{HOST}:{port}/admin/ "
        "(login printed above); Ctrl-C stops the web server, the worker and beat"
    )


def stopped_message(environ: dict[str, str] | os._Environ) -> str:
    """What is left running once the demo has stopped, and the command that stops it."""
    if environ.get("DATABASE_URL", "").strip():
        return "stopped"
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    data_dir = environ.get("EMBEDDED_POSTGRES_DIR", "")
    prefix = f"EMBEDDED_POSTGRES_DIR={data_dir} " if data_dir else ""
    return (
        "stopped; the embedded PostgreSQL keeps running, so the next `make demo` starts at once "
        f"(`{prefix}{python} manage.py embedded_db stop` stops it)"
    )


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
        "web": [python, "manage.py", "runserver", "--noreload", f"{HOST}:{port}"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--check-port", action="store_true", help="only check that the port is free")
    args = parser.parse_args()
    problem = port_problem(args.port)
    if problem:
        print(f"[run_demo] {problem}", file=sys.stderr, flush=True)
        return 1
    if args.check_port:
        return 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    children: dict[str, subprocess.Popen] = {}
    ready = {name: threading.Event() for name in READY_LINES}
    relays: list[threading.Thread] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, command in commands(args.port).items():
        # Own process group: Ctrl-C reaches this launcher, which stops the children in order.
        children[name] = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=env, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )  # fmt: skip
        print(f"[run_demo] started {name} (pid {children[name].pid}): {' '.join(command[1:])}", flush=True)
        relays.append(threading.Thread(target=relay, args=(children[name].stdout, name, ready), daemon=True))
        relays[-1].start()
    exit_code = 0
    announced = False
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
        if (
            not (stopping or announced)
            and all(e.is_set() for e in ready.values())
            and is_listening(args.port)
        ):
            print(f"[run_demo] {serving_message(args.port)}", flush=True)
            announced = True
        time.sleep(0.5)
    if exit_code == 0:  # Ctrl-C or SIGTERM; a child's exit was said above
        print("[run_demo] stopping the web server, beat and the worker (it ends its task first)", flush=True)
    shutdown(children)
    for thread in relays:  # the children's last lines
        thread.join(timeout=5)
    print(f"[run_demo] {stopped_message(os.environ)}", flush=True)
    return exit_code


def relay(output: IO[str], name: str, ready: dict[str, threading.Event]) -> None:
    """Pass child `name`'s lines on as they come, and note when it prints its READY_LINES line."""
    for line in output:
        sys.stdout.write(line)
        sys.stdout.flush()
        if name in ready and READY_LINES[name] in line:
            ready[name].set()


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


if __name__ == "__main__":
    sys.exit(main())
