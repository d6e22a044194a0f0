"""An inventory flash sale keeps the products it started with (`Campaign.sale_product_ids`),
and a segment records what its campaign targeted when it was computed (`Segment.rules_digest`):
the audience API serves it only while the campaign is the same. Segments saved before are
taken to match their campaign as it is now (nothing recorded what it was), as they were served
until now; a running sale chooses its products on its next request."""

import django.contrib.postgres.fields
from django.db import migrations, models

from recommendations.models.marketing import audience_digest


def record_rules_of_saved_segments(apps, schema_editor) -> None:
    Segment = apps.get_model("recommendations", "Segment")
    for segment in Segment.objects.filter(campaign__isnull=False).select_related("campaign"):
        Segment.objects.filter(pk=segment.pk).update(rules_digest=audience_digest(segment.campaign))


class Migration(migrations.Migration):

    dependencies = [
        ('recommendations', '0024_product_document_store_name'),
    ]

    operations = [
        migrations.AddField(
            model_name='campaign',
            name='sale_product_ids',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=64), blank=True, default=list, editable=False, help_text="An inventory flash sale's slow sellers, chosen when it started.", size=None, verbose_name="sale's products"),
        ),
        migrations.AddField(
            model_name='campaign',
            name='sale_products_digest',
            field=models.CharField(blank=True, editable=False, max_length=32),
        ),
        migrations.AddField(
            model_name='segment',
            name='rules_digest',
            field=models.CharField(blank=True, editable=False, max_length=32),
        ),
        migrations.AlterField(
            model_name='campaign',
            name='discount_text',
            field=models.CharField(blank=True, help_text='What shoppers read, e.g. "-20% on tea". Display only: prices are the shop\'s to change (a sale price or a coupon its checkout applies).', max_length=200),
        ),
        migrations.RunPython(record_rules_of_saved_segments, migrations.RunPython.noop),
    ]
