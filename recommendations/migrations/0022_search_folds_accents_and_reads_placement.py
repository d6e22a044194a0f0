"""Search folds accents ("cafe" finds "Café", "crème" finds "creme") and reads where a product
is placed: its category path and its store's name, so "Bedding" or a store's name finds its
products. The categories already indexed fill `placement` in here; the stores' names follow
at the next `refresh_serving` (or the product's next save).

A text search configuration, `recommendations_english`, is PostgreSQL's "english" with the
`unaccent` dictionary in front of the stemmer for words with non-ASCII letters. PostgreSQL
cannot change a generated column's expression in place before version 17, so the search
column (and its index) is dropped and added again, which recomputes it for every row.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.contrib.postgres.operations import UnaccentExtension
from django.db import migrations, models
from django.db.models.functions import Coalesce

CONFIG = "recommendations_english"


def search_vector(config: str) -> models.GeneratedField:
    search = django.contrib.postgres.search
    return models.GeneratedField(
        db_persist=True,
        expression=search.SearchVector("title", config=config, weight="A")
        + search.SearchVector(Coalesce("brand", models.Value("")), config=config, weight="B")
        + search.SearchVector("placement", config=config, weight="B")
        + search.SearchVector("text", config=config, weight="C"),
        output_field=search.SearchVectorField(),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0021_campaign_min_score_on_one_scale"),
    ]

    operations = [
        UnaccentExtension(),
        migrations.RunSQL(
            [
                f"CREATE TEXT SEARCH CONFIGURATION {CONFIG} (COPY = english)",
                f"ALTER TEXT SEARCH CONFIGURATION {CONFIG} "
                "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem",
            ],
            reverse_sql=f"DROP TEXT SEARCH CONFIGURATION {CONFIG}",
        ),
        migrations.RemoveIndex(model_name="productdocument", name="rec_doc_search"),
        migrations.RemoveField(model_name="productdocument", name="search_vector"),
        migrations.AddField(
            model_name="productdocument", name="placement", field=models.TextField(blank=True)
        ),
        # Before the search column is added back, so that the table is written twice, not three times.
        migrations.RunSQL(
            "UPDATE recommendations_productdocument "
            "SET placement = array_to_string(array_remove(categories, ''), ' ')",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AddField(model_name="productdocument", name="search_vector", field=search_vector(CONFIG)),
        migrations.AddIndex(
            model_name="productdocument",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="rec_doc_search"),
        ),
    ]
