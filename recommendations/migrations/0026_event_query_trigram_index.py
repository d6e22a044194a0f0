"""A trigram index on the upper case of search queries, for the event browser's search.

Built without blocking event writes (`AddIndexToPartitions`: on the partitioned table alone,
then each partition's `CONCURRENTLY` and attached), so the migration runs outside a
transaction; a run that is interrupted is finished by running `migrate` again.

Installs that applied an earlier version of this migration (one AddIndex in a transaction, or
the same steps written out here) have the same index, names and state: nothing runs again.
"""

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import migrations, models
from django.db.models.functions import Upper

from recommendations.events.partition_indexes import AddIndexToPartitions


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("recommendations", "0025_campaign_sale_products_segment_rules_digest"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexToPartitions(
            model_name="event",
            index=GinIndex(
                OpClass(Upper("query"), name="gin_trgm_ops"),
                name="rec_event_query_trgm",
                condition=~models.Q(query=""),
            ),
        ),
    ]
