"""Hooks for every test."""

import pytest

from recommendations.serving.attribution import flush_served
from recommendations.serving.cache import clear_process_caches, wait_for_refreshes
from tests.state import clear_all_caches


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Served lists are written, and expired kept values recomputed, by threads a moment after
    the request: finish what a test started before its fixtures are torn down (a transactional
    test's tables are emptied then)."""
    assert flush_served(), "The served-list writer did not finish within 30 s"
    assert wait_for_refreshes(), "The process-cache refresh did not finish within 30 s"
    return (yield)


@pytest.fixture(autouse=True)
def fresh_process_caches():
    """What a process keeps as it is (a query's matches), and its copies in Django's cache,
    must not outlive the test's data."""
    clear_all_caches()
    clear_process_caches()
    yield
