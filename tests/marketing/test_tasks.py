"""The periodic segment refresh, run through Celery's task API (eagerly, in this process)."""

import logging

from recommendations.marketing.audiences import create_segment
from recommendations.marketing.tasks import refresh_segments
from recommendations.models import Campaign
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
