"""Serving's vector reads on a read replica.

A host with a PostgreSQL streaming replica names it in two settings::

    DATABASES["replica"] = dj_database_url.parse(os.environ["DATABASE_REPLICA_URL"])
    DATABASE_ROUTERS = ["recommendations.routers.VectorReplicaRouter"]
    RECOMMENDATIONS = {..., "VECTOR_READ_DATABASE": "replica"}

`recommendations.vectors.queries` (the k-NN API every surface calls) then reads the active
version and the product, store and user vectors from that alias, with `.using()` and the
replica's own connection for the search session settings. Nothing else moves: the pipeline
(embedding, index builds, activation, purge) reads and writes the primary, because it reads
back what it has just written (which products already have vectors, whether a version has
rows before activating it, which versions to keep), and a replica lagging behind would give
it wrong answers, such as purging the version it has just activated.

Why serving cannot see a version whose rows have not arrived: a version's rows and indexes
are committed before the transaction that makes it active, and a streaming replica replays
the primary's commits in order. Serving reads the active version from the replica too, so
whenever the replica says "version 8 is active", version 8's rows are already there. A
replica that lags simply keeps serving the previous version (whose rows activation keeps)
a little longer. This holds for physical (streaming) replication; a logical replica must
subscribe the engine's tables in one subscription so that they are applied in commit order.

The router does not route reads by model (explicit `.using()` does that for serving only);
it makes rows read from the replica usable with the primary's rows and keeps writes and
migrations off the read-only replica.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, router
from django.db.models import Model

from recommendations.conf import SETTING_NAME, rec_settings

ROUTER_PATH = "recommendations.routers.VectorReplicaRouter"


def vector_read_database() -> str:
    """The alias serving reads vectors and the active version from (the default database
    unless `RECOMMENDATIONS["VECTOR_READ_DATABASE"]` names a replica)."""
    return rec_settings.VECTOR_READ_DATABASE or DEFAULT_DB_ALIAS


class VectorReplicaRouter:
    """Database router for a host whose serving reads vectors from a replica.

    - writes of a row read from the replica go to the default database (a read-only replica
      would refuse them);
    - a row read from the replica may be related to a row of the default database (a
      `ModelVersion` from the replica saved on a `ServedRecommendation`); they are the same
      data, so Django's same-database check would only get in the way;
    - `migrate` never runs on the replica: it receives the primary's schema by replication.

    Everything else is left to other routers or Django's default (the default database).
    """

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        instance = hints.get("instance")
        replica = vector_read_database()
        if replica != DEFAULT_DB_ALIAS and instance is not None and instance._state.db == replica:
            return DEFAULT_DB_ALIAS
        return None

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        same_data = {DEFAULT_DB_ALIAS, vector_read_database()}
        if obj1._state.db in same_data and obj2._state.db in same_data:
            return True
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        replica = vector_read_database()
        if replica != DEFAULT_DB_ALIAS and db == replica:
            return False
        return None


def validate_configuration() -> None:
    """Fail at start-up when `VECTOR_READ_DATABASE` names no database or the router is missing."""
    alias = rec_settings.VECTOR_READ_DATABASE
    if alias is None or alias == DEFAULT_DB_ALIAS:
        return
    if alias not in settings.DATABASES:
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME}['VECTOR_READ_DATABASE'] = {alias!r} is not in DATABASES "
            f"(aliases: {', '.join(settings.DATABASES)}). Add DATABASES[{alias!r}] for the read "
            "replica (the demo shop does so when DATABASE_REPLICA_URL is set), or set it to None."
        )
    if not any(isinstance(r, VectorReplicaRouter) for r in router.routers):
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME}['VECTOR_READ_DATABASE'] is set, so rows read from the "
            f"replica are used with rows of the default database: add {ROUTER_PATH!r} to "
            "settings.DATABASE_ROUTERS."
        )
