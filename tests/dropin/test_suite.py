"""Runs tests/dropin/host under tests.config.dropin: the app in a host with its own user model
(UUID key, e-mail sign-in, no `username`) and product model (plain-text category, no stores)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_the_app_works_in_a_host_with_its_own_user_and_product_models():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(HERE / "host"), "-q", "-p", "no:cacheprovider"],
        cwd=HERE.parents[1],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.config.dropin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout
