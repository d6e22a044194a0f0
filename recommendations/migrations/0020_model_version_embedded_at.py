"""`ModelVersion.embedded_at`: when a version's embed finished. Versions embedded before the
field existed are marked from what they hold: an active one, or a ready one with product
vectors whose recorded progress is not stuck in the middle of an embed."""

from django.db import migrations, models
from django.db.models import Exists, F, OuterRef
from django.db.models.functions import Coalesce

# Progress stages of an embed (recommendations.vectors.embedding.embed_version); a version
# left at one of them with done < total was interrupted there.
EMBED_STAGES = ("embedding products", "writing vectors")


def mark_embedded(apps, schema_editor):
    ModelVersion = apps.get_model("recommendations", "ModelVersion")
    ProductVector = apps.get_model("recommendations", "ProductVector")
    with_vectors = ModelVersion.objects.filter(
        Exists(ProductVector.objects.filter(model_version_id=OuterRef("pk"))),
        status__in=["ready", "active"],
    )
    interrupted = [
        version.pk
        for version in with_vectors.filter(status="ready")
        if (version.progress or {}).get("stage") in EMBED_STAGES
        and (version.progress or {}).get("done", 0) < (version.progress or {}).get("total", 0)
    ]
    with_vectors.exclude(pk__in=interrupted).update(embedded_at=Coalesce(F("activated_at"), F("created_at")))


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0019_segment_max_size_at_least_one"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="embedded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(mark_embedded, migrations.RunPython.noop),
    ]
