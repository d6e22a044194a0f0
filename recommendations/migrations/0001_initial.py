from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """PostgreSQL extensions first: pgvector for embeddings, pg_trgm for typo-tolerant search."""

    initial = True
    dependencies = []
    operations = [VectorExtension(), TrigramExtension()]
