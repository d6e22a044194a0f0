# Built CONCURRENTLY, so a shop with many products keeps taking writes while it builds.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("shop", "0008_product_category_newest_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="product",
            index=models.Index(fields=["-created_at", "-id"], name="shop_product_newest"),
        ),
    ]
