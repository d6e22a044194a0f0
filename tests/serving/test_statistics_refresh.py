"""Rebuilding the serving statistics while another rebuild runs."""

import threading

import pytest
from django.db import connection, connections

from recommendations.models import ProductPopularity
from recommendations.serving.statistics import STATISTICS_LOCK, refresh_statistics
from tests.serving.conftest import add_event
from tests.waiting import wait_for_waiters

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_refreshes_at_once_both_finish_and_leave_one_set_of_rows(catalog):
    """The periodic task and `refresh_serving` at the same moment: in READ COMMITTED the second
    delete missed the first's new rows and its insert failed on them (IntegrityError)."""
    for title, views in (("Argan shampoo", 3), ("Vitamin C serum", 2)):
        for _ in range(views):
            add_event(catalog, "view", title, user="bob")
    refresh_statistics()
    reader = connections.create_connection("default")  # holds the rows both refreshes replace
    reader.set_autocommit(False)
    results, errors = [], []

    def refresh():
        try:
            results.append(refresh_statistics())
        except Exception as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    try:
        with reader.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {ProductPopularity._meta.db_table} FOR UPDATE")
        for thread in threads:
            thread.start()
        wait_for_waiters(2, STATISTICS_LOCK)  # both are at their write
    finally:
        reader.rollback()
        reader.close()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert [counts["popularity"] for counts in results] == [2, 2]
    assert ProductPopularity.objects.count() == 2
