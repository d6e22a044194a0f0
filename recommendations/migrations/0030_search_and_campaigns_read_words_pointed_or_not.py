"""Search and campaigns read a word pointed or not, and campaigns "İ" as "i" on any server.

Hebrew points and cantillation and Arabic vowel marks are mostly left out in writing, and the
`unaccent` dictionary keeps them: "שלום" did not find "שָׁלוֹם". `search_form` (documents and
queries) now removes them, as `recommendations.text.without_marks` says; this migration adds
`recommendations_search_form(text)`, its SQL twin, which `placement` is written through when SQL
rewrites it (a renamed store or category), and rewrites the documents stored before in that form.
That UPDATE changes only the rows whose text changes, each locked only until the statement ends:
searches go on, and a document saved meanwhile is written in the new form anyway.

`recommendations_fold_categories` folds category names as `recommendations.text.fold_category`
now does: without those marks, and "İ" as "i" before lower-casing. Python's lower() made
"İstanbul" "i̇stanbul" (with a combining dot) and the server's "istanbul": a campaign's names,
folded in Python and then in SQL, missed the documents' names folded in SQL alone. Its index is
rebuilt CONCURRENTLY, outside a transaction, so documents are written meanwhile; until it is
done the index holds the old folding, which differs only for names with those letters.

Each step commits on its own, so an interrupted run (a lock timeout, a killed `migrate`) leaves
the ones before it done: the function is created or replaced, and the copy an interrupted
REINDEX CONCURRENTLY leaves beside the index is dropped, so `migrate` again finishes it.

The marks are written out here, as this migration runs them whatever the code says later;
the tests check that they are `recommendations.text.UNWRITTEN_MARKS`.
"""

from django.db import migrations

FOLD = "recommendations_fold_categories"
SEARCH_FORM = "recommendations_search_form"
INDEX = "rec_doc_categories_folded"
# Hebrew points and cantillation (the combining marks among U+0591-U+05C7), the tatweel,
# Arabic vowel marks and the superscript alef.
MARKS = "".join(map(chr, [*range(0x0591, 0x05BE), 0x05BF, 0x05C1, 0x05C2, 0x05C4, 0x05C5, 0x05C7])) + "".join(
    map(chr, [0x0640, *range(0x064B, 0x0660), 0x0670])
)
TABLE = "recommendations_productdocument"
FOLDED_NAMES = (
    f"CREATE OR REPLACE FUNCTION {FOLD}(names text[]) RETURNS text[] "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE "
    "AS $$ SELECT string_to_array(translate(lower(translate(array_to_string(names, chr(31)), "
    f"'\u0130', 'i')), '\u03c2{MARKS}', '\u03c3'), chr(31)) $$"
)
# 0029's, for going back.
LOWER_CASED_NAMES = (
    f"CREATE OR REPLACE FUNCTION {FOLD}(names text[]) RETURNS text[] "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE "
    "AS $$ SELECT string_to_array("
    "translate(lower(array_to_string(names, chr(31))), '\u03c2', '\u03c3'), chr(31)) $$"
)
COLUMNS = ("title", "text", "brand", "placement")
# What an interrupted REINDEX CONCURRENTLY leaves beside the index (`<index>_ccnew`,
# `<index>_ccold`, numbered when one was there already); a rerun would add another.
LEFTOVERS = f"^{INDEX}_cc(new|old)[0-9]*$"


def refold(function: str):
    """(Re)define the folding function, then rebuild its index, dropping the copies an
    interrupted run of this left: `migrate` again finishes it either way."""

    def run(apps, schema_editor):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(function)
            cursor.execute("SELECT relname FROM pg_class WHERE relkind = 'i' AND relname ~ %s", [LEFTOVERS])
            for (name,) in cursor.fetchall():
                cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
            cursor.execute(f"REINDEX INDEX CONCURRENTLY {INDEX}")

    return run


class Migration(migrations.Migration):
    atomic = False  # REINDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("recommendations", "0029_product_document_folded_categories_index"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE OR REPLACE FUNCTION {SEARCH_FORM}(value text) RETURNS text "
            "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
            f"AS $$ SELECT translate(normalize(value, NFKC), '{MARKS}', '') $$",
            reverse_sql=f"DROP FUNCTION {SEARCH_FORM}(text)",
        ),
        migrations.RunSQL(
            f"UPDATE {TABLE} SET "
            + ", ".join(f'"{c}" = {SEARCH_FORM}("{c}")' for c in COLUMNS)
            + " WHERE "
            + " OR ".join(f'"{c}" IS DISTINCT FROM {SEARCH_FORM}("{c}")' for c in COLUMNS),
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunPython(refold(FOLDED_NAMES), refold(LOWER_CASED_NAMES)),
    ]
