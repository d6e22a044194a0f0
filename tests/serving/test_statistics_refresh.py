"""Rebuilding the serving statistics while another rebuild runs."""

import pytest

from recommendations.models import ProductPopularity
from recommendations.serving.statistics import STATISTICS_LOCK, refresh_statistics
from tests.serving.conftest import add_event
from tests.waiting import run_behind_lock

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_refreshes_at_once_both_finish_and_leave_one_set_of_rows(catalog):
    """The periodic task and `refresh_serving` at the same moment: in READ COMMITTED the second
    delete missed the first's new rows and its insert failed on them (IntegrityError)."""
    for title, views in (("Argan shampoo", 3), ("Vitamin C serum", 2)):
        for _ in range(views):
            add_event(catalog, "view", title, user="bob")
    refresh_statistics()
    # Another connection holds the rows both refreshes replace, until both are at their write.
    results, errors = run_behind_lock(
        refresh_statistics,
        f"SELECT 1 FROM {ProductPopularity._meta.db_table} FOR UPDATE",
        lock=STATISTICS_LOCK,
    )

    assert not errors, errors
    assert [counts["popularity"] for counts in results] == [2, 2]
    assert ProductPopularity.objects.count() == 2
