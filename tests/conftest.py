"""Hooks for every test."""

import pytest

from recommendations.serving.attribution import flush_served


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Served lists are written by a thread, a moment after the request: write what a test
    queued before its fixtures are torn down (a transactional test's tables are emptied then)."""
    assert flush_served(), "The served-list writer did not finish within 30 s"
    return (yield)
