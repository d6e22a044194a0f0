"""`manage.py runserver` (the demo's web server) does not pile up database connections.

It serves each browser connection on a new thread and never closes that thread's database
connection; with persistent connections they stayed open until PostgreSQL refused new
clients ("too many clients already") and every page failed."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from shop.models import Category, Product, Store
from tests.reliability.test_database_restart import free_port

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 15
# `manage.py runserver ADDRESS` with the cycle collector off. A finished thread's connection
# is part of a reference cycle (Django's wrapper and its helpers), so only the collector frees
# it; on a busy server the wrappers reach its oldest generation and wait there for minutes.
RUNSERVER_WITHOUT_GC = """
import gc, sys
gc.disable()
from django.core.management import execute_from_command_line
sys.argv = ["manage.py", "runserver", "--noreload", "--skip-checks", sys.argv[1]]
execute_from_command_line(sys.argv)
"""


def connections_of(application: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_each_request_thread_closes_its_database_connection(tmp_path):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}},
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "EMBEDDED_POSTGRES_DB": connection.settings_dict["NAME"],  # this test's database
        "PGAPPNAME": f"runserver-{port}",  # libpq names the server's connections, and only those
    }
    log = (tmp_path / "runserver.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-c", RUNSERVER_WITHOUT_GC, f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    store = Store.objects.create(name="Clay", slug="clay")
    category = Category.objects.create(name="Mugs", slug="mugs")
    Product.objects.create(title="Mug", slug="mug", category=category, store=store, price=5, stock=3)
    url = f"http://127.0.0.1:{port}/product/mug/"  # read from the database on every request
    try:
        wait_until_listening(port)
        for _ in range(REQUESTS):  # each on a new TCP connection, so a new server thread
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.status == 200
        # One connection at most stays: the thread that writes served lists in batches.
        assert connections_of(f"runserver-{port}") <= 1, (tmp_path / "runserver.log").read_text()[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def wait_until_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"runserver did not listen on port {port} within {timeout}s")
