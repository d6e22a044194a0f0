"""Partition the events table by month of `timestamp`; event ids move to `EventKey`.

Converts the table in place, in this migration's one transaction, data kept:

1. `recommendations_eventkey` (event_id primary key) takes over the uniqueness of event ids:
   PostgreSQL only enforces a unique index on a partitioned table if it holds the partition
   key, and `(event_id, timestamp)` would store a replay with another timestamp twice (see
   `models.events.EventKey`). Created with SQL so that it has no second, `LIKE` index, which
   Django adds to a CharField primary key and nothing here queries.
2. The events table is locked, renamed out of the way, and a partitioned table (PARTITION BY
   RANGE on `timestamp`) is created under its name with the same columns, one partition per
   month that holds events, the current month and the next three, and DEFAULT. The rows are
   copied (their ids claimed in the key table), the old table is dropped, and its indexes,
   foreign key and id sequence are recreated under their names. The primary key becomes
   `(id, timestamp)`; Django still sees `id` alone, which one sequence keeps unique.
3. A statement trigger deletes the ids of deleted events, whatever deletes them.

The copy holds an exclusive lock on the events table: on a large table, run it in a quiet hour.
Reversible: the reverse copies the rows back into one plain table with a unique `event_id`.
"""

import datetime as dt

from django.db import migrations, models

TABLE = "recommendations_event"
KEYS = "recommendations_eventkey"
SEQUENCE = f"{TABLE}_id_seq"
TRIGGER = f"{TABLE}_forget_keys"
MONTHS_AHEAD = 3  # as recommendations.events.partitions.MONTHS_AHEAD

SCHEDULE_NAME = "Recommendations: purge expired events"
OLD_DESCRIPTION = "Deletes events older than RECOMMENDATIONS['EVENT_RETENTION_DAYS'] (off when None)."
NEW_DESCRIPTION = (
    "Creates the coming months' event partitions, then drops (or deletes) events older than "
    "RECOMMENDATIONS['EVENT_RETENTION_DAYS'] (off when None)."
)


def _partition_name(month):
    """As recommendations.events.partitions.partition_name()."""
    return f"{TABLE}_p{month.year:04d}_{month.month:02d}"


def _next_month(month):
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _bound(month):
    return f"'{month.isoformat()} 00:00:00+00'"


def _definitions(cursor, table):
    """CREATE INDEX statements of the table's own indexes and its foreign key/check constraints;
    the primary key and unique constraints are left out: both are redefined."""
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conrelid = i.indrelid AND c.conindid = i.indexrelid) "
        "ORDER BY 1",
        [table],
    )
    # A partitioned table's index reads "ON ONLY <table>"; the name stays, the new table is TABLE.
    indexes = [ddl.replace(" ON ONLY ", " ON ", 1) for (ddl,) in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('f', 'c') ORDER BY conname",
        [table],
    )
    return indexes, cursor.fetchall()


def _last_id(cursor):
    """The highest id handed out (the sequence may be past max(id) after deletes), 0 if none."""
    cursor.execute(
        f"SELECT GREATEST(COALESCE(pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')::regclass), 0), "
        f"COALESCE((SELECT max(id) FROM {TABLE}), 0))",
        [TABLE],
    )
    return cursor.fetchone()[0]


def _columns(cursor, table):
    cursor.execute(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        [table],
    )
    return cursor.fetchone()[0]


def _set_aside(cursor, new_name):
    """Lock the events table, note what it holds, and rename it to `new_name`; returns its
    index and constraint definitions and its highest id, for the table built in its place."""
    # Deferred foreign-key checks of rows written earlier in this transaction would block DROP.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    indexes, constraints = _definitions(cursor, TABLE)
    last_id = _last_id(cursor)
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {new_name}")
    return indexes, constraints, last_id


def _recreate(cursor, indexes, constraints):
    for ddl in indexes:
        cursor.execute(ddl)
    for name, definition in constraints:
        cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')


def partition_events(apps, schema_editor):
    old = f"{TABLE}_unpartitioned"
    with schema_editor.connection.cursor() as cursor:
        indexes, constraints, last_id = _set_aside(cursor, old)
        cursor.execute(f'CREATE TABLE {TABLE} (LIKE {old}) PARTITION BY RANGE ("timestamp")')

        cursor.execute(f"""SELECT DISTINCT date_trunc('month', "timestamp" AT TIME ZONE 'UTC')::date FROM {old}""")
        months = {month for (month,) in cursor.fetchall()}
        month = dt.datetime.now(dt.UTC).date().replace(day=1)
        for _ in range(MONTHS_AHEAD + 1):
            months.add(month)
            month = _next_month(month)
        for month in sorted(months):
            cursor.execute(
                f"CREATE TABLE {_partition_name(month)} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ({_bound(month)}) TO ({_bound(_next_month(month))})"
            )
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")

        # Rows first, indexes after: building an index once is cheaper than growing it row by row.
        columns = _columns(cursor, old)
        cursor.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {old}")
        cursor.execute(f"INSERT INTO {KEYS} (event_id) SELECT event_id FROM {old} ORDER BY event_id")
        cursor.execute(f"DROP TABLE {old}")  # with its identity sequence, freeing every name

        cursor.execute(f"CREATE SEQUENCE {SEQUENCE} OWNED BY {TABLE}.id")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
        if last_id:
            cursor.execute("SELECT setval(%s, %s)", [SEQUENCE, last_id])
        cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, "timestamp")')
        _recreate(cursor, indexes, constraints)

        cursor.execute(
            f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"DELETE FROM {KEYS} k USING deleted_events d WHERE k.event_id = d.event_id; RETURN NULL; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON {TABLE} REFERENCING OLD TABLE AS deleted_events "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER}()"
        )
        cursor.execute(f"ANALYZE {TABLE}")


def unpartition_events(apps, schema_editor):
    partitioned = f"{TABLE}_partitioned"
    with schema_editor.connection.cursor() as cursor:
        indexes, constraints, last_id = _set_aside(cursor, partitioned)
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {partitioned})")
        columns = _columns(cursor, partitioned)
        cursor.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {partitioned}")
        # With its partitions, sequence and trigger. Month tables that a stopped retention run
        # detached hold only expired events and are left as they are.
        cursor.execute(f"DROP TABLE {partitioned}")
        cursor.execute(f"DROP FUNCTION {TRIGGER}()")

        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        if last_id:
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [TABLE, last_id])
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT rec_event_event_id_unique UNIQUE (event_id)")
        _recreate(cursor, indexes, constraints)


def describe_schedule(apps, schema_editor, old=OLD_DESCRIPTION, new=NEW_DESCRIPTION):
    """The daily retention task now maintains partitions too; a description edited by hand stays."""
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=SCHEDULE_NAME, description=old).update(description=new)


def undescribe_schedule(apps, schema_editor):
    describe_schedule(apps, schema_editor, old=NEW_DESCRIPTION, new=OLD_DESCRIPTION)


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0012_served_retention_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="EventKey",
                    fields=[("event_id", models.CharField(max_length=64, primary_key=True, serialize=False))],
                ),
                migrations.RemoveConstraint(model_name="event", name="rec_event_event_id_unique"),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"CREATE TABLE {KEYS} (event_id varchar(64) NOT NULL PRIMARY KEY)",
                    reverse_sql=f"DROP TABLE {KEYS}",
                ),
                migrations.RunPython(partition_events, unpartition_events),
            ],
        ),
        migrations.RunPython(describe_schedule, undescribe_schedule),
    ]
