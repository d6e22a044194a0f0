"""`make demo` on a taken port: it says which free port to use instead, before loading anything."""

import importlib.util
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "run_demo.py"


def load_run_demo():
    spec = importlib.util.spec_from_file_location("run_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def taken_port():
    """A port another server listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_a_taken_port_is_named_with_a_free_one_to_use_instead(taken_port):
    run_demo = load_run_demo()
    problem = run_demo.port_problem(taken_port)
    assert problem.startswith(f"port {taken_port} is in use: run `make demo PORT=")
    suggested = int(re.search(r"PORT=(\d+)`$", problem)[1])
    assert suggested > taken_port and run_demo.port_is_free(suggested)
    assert run_demo.port_problem(suggested) is None


def test_run_demo_starts_nothing_on_a_taken_port(taken_port):
    for extra in ([], ["--check-port"]):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--port", str(taken_port), *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1
        assert f"port {taken_port} is in use: run `make demo PORT=" in result.stderr
        assert "started" not in result.stdout


def test_make_demo_checks_the_port_before_loading_the_demo():
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", "demo", "PORT=8123"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = result.stdout.splitlines()
    steps = [
        next(i for i, line in enumerate(lines) if part in line)
        for part in (
            "run_demo.py --check-port --port 8123",
            "manage.py demo_shop --port 8123",
            "run_demo.py --port 8123",
        )
    ]
    assert steps == sorted(steps), result.stdout
