"""Campaigns saved before `min_score` was one 0-1 scale: a value outside it (the storefront's
old raw scores, e.g. 3.0) or on a member benefit (which goes to its whole segment) no longer
parses, so the campaign would vanish from the storefront and refuse every edit, switching it
off included. Such a value is removed: the campaign is shown to whoever its other rules
target, as close to what the old threshold let through as can be told. Values from 0 to 1
are kept, and mean the share of interest now (see recommendations/marketing/rules.py)."""

from django.db import migrations

MEMBER_BENEFIT = "member_benefit"


def _usable(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 <= value <= 1


def drop_unusable_min_scores(apps, schema_editor) -> None:
    Campaign = apps.get_model("recommendations", "Campaign")
    for campaign in Campaign.objects.filter(audience_rules__has_key="min_score"):
        rules = dict(campaign.audience_rules)
        if campaign.kind == MEMBER_BENEFIT or not _usable(rules.get("min_score")):
            del rules["min_score"]
            Campaign.objects.filter(pk=campaign.pk).update(audience_rules=rules)


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0020_model_version_embedded_at"),
    ]

    operations = [migrations.RunPython(drop_unusable_min_scores, migrations.RunPython.noop)]
