"""A search document keeps its store's name beside `placement`, so that a renamed or moved
category rewrites `placement` in place (categories, then the store's name) as a renamed store
does.

The names are taken from the `placement` written so far: it is the non-empty category names,
then the store's name, joined by spaces, so the store's name is what follows the categories.
"""

from django.db import migrations, models

CATEGORIES = "concat_ws(' ', VARIADIC array_remove(categories, ''))"


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0023_model_version_window_of_events_trained_on"),
    ]

    operations = [
        migrations.AddField(
            model_name="productdocument",
            name="store_name",
            field=models.TextField(blank=True, default=""),
            preserve_default=False,
        ),
        migrations.RunSQL(
            "UPDATE recommendations_productdocument SET store_name = "
            f"CASE WHEN {CATEGORIES} = '' THEN placement "
            f"ELSE substr(placement, length({CATEGORIES}) + 2) END "
            f"WHERE placement IS DISTINCT FROM {CATEGORIES}",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
