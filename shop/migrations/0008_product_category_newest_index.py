# The index is built CONCURRENTLY (outside a transaction), so a shop with many products keeps
# taking writes while it builds; the foreign key's own index it replaces is dropped after it.

import django.db.models.deletion
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("shop", "0007_order_total_fits_any_cart"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="product",
            index=models.Index(fields=["category", "-created_at", "id"], name="shop_product_category_newest"),
        ),
        migrations.AlterField(
            model_name="product",
            name="category",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="products",
                to="shop.category",
            ),
        ),
    ]
