"""What `make demo` prints: its processes' own lines, not libraries' chatter a newcomer would
take for a problem ("No hostname was supplied", "exiting 7397 remaining pids=[...]")."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from tests.reliability.test_database_restart import free_port
from tests.reliability.test_development_server import wait_until_listening

ROOT = Path(__file__).resolve().parent.parent
# A demo Celery process (worker or beat, `-l INFO`): the settings start or reuse the embedded
# server, Celery sets up its logging, a task is sent, and the process exits.
CELERY_PROCESS = """
import logging, django
django.setup()
from tasks.celery import app
app.log.setup(loglevel="INFO")
logging.getLogger("recommendations").info("the app's own line")
with app.connection_for_write() as broker:
    broker.info()
"""


def demo_env(tmp_path: Path) -> dict[str, str]:
    """A demo process's environment (`shop.settings`, the filesystem broker) on this test's database."""
    unset = {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL"}
    return {
        **{name: value for name, value in os.environ.items() if name not in unset},
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "EMBEDDED_POSTGRES_DB": connection.settings_dict["NAME"],
        "CELERY_BROKER_FOLDER": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.mark.django_db
def test_a_demo_celery_process_prints_its_own_lines_and_no_library_chatter(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", CELERY_PROCESS],
        cwd=ROOT, env=demo_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "the app's own line" in output
    assert "No hostname was supplied" not in output  # kombu, on a broker URL without a host
    assert "remaining pids" not in output  # embedded_postgres, as each process exits


@pytest.mark.django_db
def test_the_demo_web_server_prints_a_line_per_request(tmp_path):
    """As `manage.py runserver` does by default: someone clicking through the demo sees their
    requests, not only the ones that failed."""
    port = free_port()
    log_path = tmp_path / "runserver.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
            cwd=ROOT, env=demo_env(tmp_path), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until_listening(port)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
                assert response.status == 200
            deadline = time.monotonic() + 10  # the line is written after the response is sent
            while '"GET /healthz HTTP/1.1" 200' not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert '"GET /healthz HTTP/1.1" 200' in log_path.read_text()
