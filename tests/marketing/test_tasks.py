"""The periodic segment refresh, run through Celery's task API (eagerly, in this process)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, connections
from django_celery_beat.models import PeriodicTask

from recommendations.marketing.audiences import create_segment, refresh_segment
from recommendations.models import Campaign, Segment, SegmentMember
from recommendations.tasks import refresh_segments
from tests.marketing.conftest import add_event
from tests.waiting import run_behind_lock


def test_refresh_picks_up_new_behaviour_and_skips_broken_segments(shop, caplog):
    tea = Campaign.objects.create(name="Tea week", category_names=["Tea"])
    segment = create_segment(tea, name="Tea")
    manual = create_segment(tea, name="Frozen")
    manual.auto_refresh = False
    manual.save()
    assert set(segment.users().values_list("username", flat=True)) == {"tea_lover", "newbie"}

    for product in shop.products["Tea"]:
        add_event("purchase", user=shop.users["bystander"], product=product, value=1)
    emptied = create_segment(
        Campaign.objects.create(name="Soon empty", store_ids=[str(shop.stores["Tea"].pk)])
    )
    Campaign.objects.filter(pk=emptied.campaign_id).update(store_ids=[])

    with caplog.at_level(logging.WARNING, logger="recommendations.marketing.audiences"):
        assert refresh_segments.apply().get() == {"refreshed": 1, "failed": 1}
    assert (
        "Segment 'Audience of Soon empty' was not refreshed: Campaign 'Soon empty' promotes nothing"
        in caplog.text
    )
    segment.refresh_from_db()
    assert segment.size == 3
    assert segment.users().first().username == "bystander"  # four recent purchases outweigh the rest
    assert manual.users().count() == 2  # not auto-refreshed


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_of_one_segment_at_once_both_finish(shop):
    """The hourly task and the admin's action at the same moment: in READ COMMITTED the second
    delete missed the first's new members and its insert failed on them (IntegrityError)."""
    segment = create_segment(Campaign.objects.create(name="Tea week", category_names=["Tea"]), name="Tea")
    # Another connection holds the members both refreshes replace, until both are at their write.
    _, errors = run_behind_lock(
        lambda: refresh_segment(Segment.objects.select_related("campaign").get(pk=segment.pk)),
        f"SELECT 1 FROM {SegmentMember._meta.db_table} WHERE segment_id = %s FOR UPDATE",
        [segment.pk],
    )

    assert not errors, errors
    segment.refresh_from_db()
    assert set(segment.users().values_list("username", flat=True)) == {"tea_lover", "newbie"}
    assert segment.size == 2


@pytest.mark.django_db(transaction=True)
def test_a_database_error_of_one_segment_does_not_stop_the_others(shop, caplog):
    tea = create_segment(Campaign.objects.create(name="Tea week", category_names=["Tea"]), name="Tea")
    coffee = create_segment(
        Campaign.objects.create(name="Coffee week", category_names=["Coffee"]), name="Coffee"
    )
    editor = connections.create_connection("default")  # someone saving the tea segment, for long
    editor.set_autocommit(False)
    try:
        with editor.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {Segment._meta.db_table} WHERE id = %s FOR UPDATE", [tea.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")  # as a database role may set it
        with caplog.at_level(logging.WARNING, logger="recommendations.marketing.audiences"):
            assert refresh_segments.apply().get() == {"refreshed": 1, "failed": 1}
    finally:
        editor.rollback()
        editor.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert (
        "Segment 'Tea' was not refreshed (database error: canceling statement due to lock timeout"
        in caplog.text
    )
    assert Segment.objects.get(pk=tea.pk).refreshed_at == tea.refreshed_at
    assert Segment.objects.get(pk=coffee.pk).refreshed_at > coffee.refreshed_at


def test_a_worker_registers_the_task_and_beat_runs_it_hourly(db):
    code = "from tasks.celery import app; app.loader.import_default_modules(); print(sorted(app.tasks))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.config.settings"}
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"'{refresh_segments.name}'" in result.stdout
    schedule = PeriodicTask.objects.get(task=refresh_segments.name)
    assert schedule.enabled and (schedule.crontab.minute, schedule.crontab.hour) == ("20", "*")
