"""An index on the upper case of product ids, for the event browser's product search and
filter in any case.

Built without blocking event writes, as 0026's (`AddIndexToPartitions`), so the migration runs
outside a transaction; a run that is interrupted is finished by running `migrate` again.
Installs that applied its first version (one AddIndex in a transaction) have the same index,
names and state: nothing runs again.
"""

from django.conf import settings
from django.db import migrations, models
from django.db.models.functions import Upper

from recommendations.events.partition_indexes import AddIndexToPartitions


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("recommendations", "0026_event_query_trigram_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexToPartitions(
            model_name="event",
            index=models.Index(
                Upper("product_id"), name="rec_event_product_upper", condition=~models.Q(product_id="")
            ),
        ),
    ]
