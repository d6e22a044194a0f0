"""Campaigns find their categories' products through an index, in any case.

A campaign's category names match a product's category path lower-cased, with a Greek final
sigma as σ (Python's lower() makes "ΚΑΦΕΣ" "καφες", PostgreSQL's "καφεσ"). Folding each
document's names in the query read every document (a seq scan, about 100 ms per campaign at
12,000 products); `recommendations_fold_categories(categories)` folds them in an immutable
function that a GIN index keeps, and the query asks for an overlap (`&&`) with the folded
names.

The function folds the names joined into one string (by the unit separator, chr(31), which no
category name holds): unnesting them in a subquery cost 13 us a call, paid again for each row
the index finds (its recheck), ten times the string's. It names only built-in functions, so a
restore (pg_dump's empty search_path) rebuilds the index; array_to_string() is declared
stable for arrays of any type, and is immutable for text.
"""

import django.contrib.postgres.indexes
from django.db import migrations, models

FUNCTION = "recommendations_fold_categories"


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0028_schedules_follow_the_time_zone"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE FUNCTION {FUNCTION}(names text[]) RETURNS text[] "
            "LANGUAGE sql IMMUTABLE PARALLEL SAFE "
            "AS $$ SELECT string_to_array("
            "translate(lower(array_to_string(names, chr(31))), '\u03c2', '\u03c3'), chr(31)) $$",
            reverse_sql=f"DROP FUNCTION {FUNCTION}(text[])",
        ),
        migrations.AddIndex(
            model_name="productdocument",
            index=django.contrib.postgres.indexes.GinIndex(
                models.Func("categories", function=FUNCTION), name="rec_doc_categories_folded"
            ),
        ),
    ]
