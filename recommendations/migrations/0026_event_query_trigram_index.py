"""A trigram index on the upper case of search queries, for the event browser's search.

Built without blocking event writes. The events table is partitioned, and PostgreSQL refuses
CREATE INDEX CONCURRENTLY on a partitioned table; a plain CREATE INDEX holds a SHARE lock on
every partition until the migration commits, so `track()` and every other event write would
wait for the whole build (seconds per million events). So this migration runs outside a
transaction:

1. the index is created on the partitioned table alone (`ON ONLY`): a catalogue entry, made in
   an instant and marked invalid while partitions lack theirs;
2. each partition's index is built `CONCURRENTLY` (writes go on; the build first waits for the
   transactions already running) and attached; once every partition's is attached, PostgreSQL
   marks the index valid.

A partition made later (`recommendations.events.partitions`) gets its index from PostgreSQL as
it is attached. Each partition's index is named as PostgreSQL names the ones it makes. A run
that is interrupted is finished by running `migrate` again: partitions whose index is attached
are skipped, and an index half built by the interrupted run is dropped and built again.

Installs that applied the first version of this migration (one AddIndex in a transaction) have
the same index, names and state: nothing runs again for them.
"""

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import migrations, models
from django.db.models.functions import Upper

INDEX = GinIndex(
    OpClass(Upper("query"), name="gin_trgm_ops"),
    name="rec_event_query_trgm",
    condition=~models.Q(query=""),
)


def _create_sql(model, schema_editor, table, name, concurrently=False):
    """INDEX's CREATE INDEX statement, as AddIndex writes it, on `table` (SQL) under `name`."""
    statement = INDEX.create_sql(model, schema_editor, concurrently=concurrently)
    statement.parts.update(table=table, name=schema_editor.quote_name(name))
    return str(statement)


def _unindexed_partitions(cursor, table):
    """Partitions of `table` that have no index attached to INDEX yet."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits p JOIN pg_class c ON c.oid = p.inhrelid "
        "WHERE p.inhparent = %s::regclass AND NOT EXISTS ("
        "SELECT FROM pg_index i JOIN pg_inherits a ON a.inhrelid = i.indexrelid "
        "WHERE i.indrelid = c.oid AND a.inhparent = %s::regclass) ORDER BY c.relname",
        [table, INDEX.name],
    )
    return [name for (name,) in cursor.fetchall()]


def build_index(apps, schema_editor):
    model = apps.get_model("recommendations", "Event")
    table, quote = model._meta.db_table, schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NULL", [INDEX.name])
        if cursor.fetchone()[0]:
            cursor.execute(_create_sql(model, schema_editor, f"ONLY {quote(table)}", INDEX.name))
        for partition in _unindexed_partitions(cursor, table):
            name = f"{partition}_upper_idx"
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}")
            cursor.execute(_create_sql(model, schema_editor, quote(partition), name, concurrently=True))
            cursor.execute(f"ALTER INDEX {quote(INDEX.name)} ATTACH PARTITION {quote(name)}")


def drop_index(apps, schema_editor):
    """Drops the partitions' indexes with it."""
    schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(INDEX.name)}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("recommendations", "0025_campaign_sale_products_segment_rules_digest"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="event", index=INDEX)],
            database_operations=[migrations.RunPython(build_index, drop_index)],
        ),
    ]
