"""`make demo`'s launcher: on a taken port it says which free port to use instead, before loading
anything; once serving it says where the shop is; Ctrl-C stops its processes and says what it
leaves running."""

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.reliability.test_database_restart import free_port
from tests.test_demo_logs import demo_env

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


@pytest.mark.django_db
def test_the_demo_says_where_it_serves_and_ctrl_c_stops_all_it_started(tmp_path):
    port = free_port()
    data_dir = os.environ.get("EMBEDDED_POSTGRES_DIR") or str(ROOT / ".data" / "postgres")
    env = {**demo_env(tmp_path), "EMBEDDED_POSTGRES_DIR": data_dir}
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:
        demo = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while "[run_demo] the demo shop is at" not in log_path.read_text() and demo.poll() is None:
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
            serving = next(
                line for line in log_path.read_text().splitlines() if "the demo shop is at" in line
            )
            assert f"http://127.0.0.1:{port}/ and its admin at http://127.0.0.1:{port}/admin/" in serving
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
                assert response.status == 200
            os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
            assert demo.wait(timeout=60) == 0
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
    output = log_path.read_text()
    started = [int(pid) for pid in re.findall(r"\[run_demo\] started \w+ \(pid (\d+)\)", output)]
    assert len(started) == 3, output
    assert not [pid for pid in started if Path(f"/proc/{pid}").exists()], output
    assert "did not stop" not in output
    last = output.splitlines()[-1]
    assert last.startswith("[run_demo] stopped; the embedded PostgreSQL keeps running"), output
    assert f"`EMBEDDED_POSTGRES_DIR={data_dir} " in last  # the folder it was started with
    assert "python manage.py embedded_db stop` stops it" in last


def test_a_demo_on_another_database_leaves_nothing_running_to_mention():
    run_demo = load_run_demo()
    assert run_demo.stopped_message({"DATABASE_URL": "postgres://shop@db/shop"}) == "stopped"
    assert "embedded_db stop" in run_demo.stopped_message({})
