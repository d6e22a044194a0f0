"""The periodic segment refresh, run through Celery's task API (eagerly, in this process)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

from django_celery_beat.models import PeriodicTask

from recommendations.marketing.audiences import create_segment
from recommendations.models import Campaign
from recommendations.tasks import refresh_segments
from tests.marketing.conftest import add_event


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
