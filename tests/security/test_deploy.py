"""`manage.py check --deploy` is clean with production settings."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**environ, "DJANGO_SETTINGS_MODULE": "shop.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_checks_pass_in_production_settings():
    production = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "shop.example.com",
    }
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    # The same check does flag a development configuration, so it is really looking.
    development = manage("check", "--deploy", "--tag", "security", "--fail-level", "WARNING", DEBUG="true")
    assert development.returncode != 0 and "security.W018" in development.stderr + development.stdout


def check_gunicorn_config(**env: str) -> subprocess.CompletedProcess:
    """`gunicorn -c shop/gunicorn.conf.py --check-config`: loads the config and the app, as a
    worker would, and exits."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"}
    }
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "shop/gunicorn.conf.py", "--check-config"],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_production_server_config_is_not_started_with_debugs_defaults():
    """`DEBUG` unset under the production entry point means production: before, it served the
    debug pages (URL patterns, tracebacks, settings) with the public development SECRET_KEY and
    cookies without the Secure flag, as soon as ALLOWED_HOSTS was set."""
    for debug in ({}, {"DEBUG": ""}):
        unset = check_gunicorn_config(ALLOWED_HOSTS="shop.example.com", **debug)
        assert unset.returncode != 0
        assert "SECRET_KEY is not set and DEBUG is false" in unset.stderr.strip().splitlines()[-1]
    configured = check_gunicorn_config(ALLOWED_HOSTS="shop.example.com", SECRET_KEY=secrets.token_urlsafe(50))
    assert configured.returncode == 0, configured.stderr
    # Development under gunicorn is still a choice one makes.
    assert check_gunicorn_config(DEBUG="true").returncode == 0
