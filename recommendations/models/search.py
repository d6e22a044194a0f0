"""The search index: a denormalised copy of the catalogue text that serving searches.

The engine cannot add indexes to the host's tables, so it keeps its own: a weighted
full-text vector (GIN) and a trigram index on titles for typo tolerance. Rows are written
by `recommendations.serving.catalog.index_products()`; availability is always checked on
the host's table at query time, so a stale row never shows a sold-out product.
"""

from __future__ import annotations

import unicodedata

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models.functions import Coalesce

from recommendations.text import without_marks

# The text search configuration is frozen into the generated column; changing it needs a
# migration, so it is a constant here rather than a setting. It is PostgreSQL's "english" with
# accents folded first (the `unaccent` dictionary, migration 0022), so "cafe" finds "Café"
# and "crème" finds "creme".
TEXT_SEARCH_CONFIG = "recommendations_english"
# An SQL function (migrations 0029 and 0030) of a text array: each name folded as campaigns
# compare category names (`recommendations.text.fold_category`). Indexed on `categories`, so
# that a campaign's categories find their products through the index.
FOLD_CATEGORIES = "recommendations_fold_categories"
# `search_form` in SQL (migration 0030), for the documents' text that SQL writes (`placement`).
SEARCH_FORM = "recommendations_search_form"


def search_form(text: str) -> str:
    """`text` as documents store it and queries look for it: NFKC, so that the width and
    compatibility forms a shop or a shopper types are one (half-width "ｺｰﾋｰ" is "コーヒー",
    full-width digits and Latin letters are ASCII ones), without the marks writing leaves out
    (`without_marks`: "שלום" finds "שָׁלוֹם", whose points the `unaccent` dictionary keeps);
    the text search configuration only sees what it is given."""
    return without_marks(unicodedata.normalize("NFKC", text))


class ProductDocument(models.Model):
    product_id = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=500)
    text = models.TextField(blank=True)
    brand = models.CharField(max_length=200, blank=True)
    categories = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    store_id = models.CharField(max_length=64, blank=True)
    # Kept beside `placement` so that a renamed category can rewrite `placement` in place,
    # in SQL, without reading each product's store (serving.catalog.write_category_paths).
    store_name = models.TextField(blank=True)
    # The category path and the store's name as words, so that "Bedding" or a store's name
    # finds its products (an array cannot be in the generated column: array_to_string() is
    # not immutable).
    placement = models.TextField(blank=True)
    price = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("title", weight="A", config=TEXT_SEARCH_CONFIG)
        + SearchVector(Coalesce("brand", models.Value("")), weight="B", config=TEXT_SEARCH_CONFIG)
        + SearchVector("placement", weight="B", config=TEXT_SEARCH_CONFIG)
        + SearchVector("text", weight="C", config=TEXT_SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            GinIndex(fields=["search_vector"], name="rec_doc_search"),
            GinIndex(fields=["title"], name="rec_doc_title_trgm", opclasses=["gin_trgm_ops"]),
            GinIndex(fields=["categories"], name="rec_doc_categories"),
            GinIndex(models.Func("categories", function=FOLD_CATEGORIES), name="rec_doc_categories_folded"),
            models.Index(fields=["store_id"], name="rec_doc_store"),
            models.Index(fields=["-created_at"], name="rec_doc_created"),
        ]

    def __str__(self) -> str:
        return self.title
