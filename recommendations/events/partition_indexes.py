"""A migration operation that adds an index to the partitioned events table without blocking
event writes.

PostgreSQL refuses `CREATE INDEX CONCURRENTLY` on a partitioned table, and a plain `CREATE
INDEX` (what `AddIndex` runs) holds a SHARE lock on every partition until the migration
commits, so `track()` and every other event write would wait for the whole build (seconds per
million events). `AddIndexToPartitions` builds the same index in steps, outside a transaction:

1. the index is created on the partitioned table alone (`ON ONLY`): a catalogue entry, made in
   an instant and marked invalid while partitions lack theirs;
2. each partition's index is built `CONCURRENTLY` (writes go on; the build first waits for the
   transactions already running) and attached; once every partition's is attached, PostgreSQL
   marks the index valid.

A partition made later (`events.partitions`) gets its index from PostgreSQL as it is attached.
PostgreSQL also names each partition's index here, as it names those it makes itself
(`<partition>_upper_idx`, then `<partition>_upper_idx1` for a second index on an `upper()`,
shortened to fit 63 bytes), so two indexes never compete for a name and a partition's indexes
are named alike however they were made. A run that is interrupted is finished by running
`migrate` again: partitions whose index is attached are skipped, and a partition's index of
the same definition that is not attached (one the interrupted run left, half built) is dropped
and built again.

Migrations import this module by its path, so it stays here, and what it does stays what the
migrations that use it need.
"""

from __future__ import annotations

from django.contrib.postgres.operations import NotInTransactionMixin
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.utils import CursorWrapper
from django.db.migrations.state import ProjectState


class AddIndexToPartitions(NotInTransactionMixin, migrations.AddIndex):
    """`AddIndex` on a partitioned table, built without blocking writes; the migration needs
    `atomic = False`. Its state is AddIndex's, so `makemigrations` sees the model's index, and
    reverting drops the index (the partitions' go with it)."""

    # Each step depends on what the catalogue holds: `sqlmigrate` prints a note instead of SQL.
    reduces_to_sql = False

    def describe(self) -> str:
        return f"{super().describe()}, partition by partition without blocking writes"

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        self._ensure_not_in_transaction(schema_editor)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        table, index = map(schema_editor.quote_name, (model._meta.db_table, self.index.name))
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NULL", [index])
            if cursor.fetchone()[0]:
                cursor.execute(self._create_sql(model, schema_editor, table=f"ONLY {table}"))
            for partition, oid in _partitions_without(cursor, table, index):
                for leftover in _unattached_copies(cursor, index, oid):
                    cursor.execute(f"DROP INDEX CONCURRENTLY {leftover}")
                # No name: PostgreSQL picks the one it would give a partition attached later.
                sql = self._create_sql(model, schema_editor, table=partition, name="", concurrently=True)
                cursor.execute(sql)
                (built,) = _unattached_copies(cursor, index, oid)
                cursor.execute(f"ALTER INDEX {index} ATTACH PARTITION {built}")

    def _create_sql(
        self,
        model: type[models.Model],
        schema_editor: BaseDatabaseSchemaEditor,
        concurrently: bool = False,
        **parts: str,
    ) -> str:
        """The index's CREATE INDEX, as AddIndex writes it, with `parts` (table, name) replaced."""
        statement = self.index.create_sql(model, schema_editor, concurrently=concurrently)
        statement.parts.update(parts)
        return str(statement)


def _partitions_without(cursor: CursorWrapper, table: str, index: str) -> list[tuple[str, int]]:
    """(name as SQL, oid) of each partition of `table` with no index attached to `index`."""
    cursor.execute(
        "SELECT p.inhrelid::regclass::text, p.inhrelid FROM pg_inherits p "
        "WHERE p.inhparent = %s::regclass AND NOT EXISTS ("
        "SELECT FROM pg_index i JOIN pg_inherits a ON a.inhrelid = i.indexrelid "
        "WHERE i.indrelid = p.inhrelid AND a.inhparent = %s::regclass) ORDER BY 1",
        [table, index],
    )
    return cursor.fetchall()


def _unattached_copies(cursor: CursorWrapper, index: str, partition: int) -> list[str]:
    """Indexes (names as SQL) of the partition with `index`'s definition that are attached to no
    partitioned index: the text after USING (method, keys, condition) and uniqueness match."""
    cursor.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_index parent ON parent.indexrelid = %s::regclass "
        "WHERE i.indrelid = %s AND NOT c.relispartition AND i.indisunique = parent.indisunique "
        "AND substring(pg_get_indexdef(i.indexrelid) FROM ' USING .*') "
        "= substring(pg_get_indexdef(parent.indexrelid) FROM ' USING .*')",
        [index, partition],
    )
    return [name for (name,) in cursor.fetchall()]
