"""Switching serving from one model version to another, atomically, and back.

Serving reads the vectors of the one `active` version. A new version is trained, embedded
and indexed while it is `ready`, then `activate()` flips the two status rows in one
transaction: a reader sees the old version until the commit and the complete new one after
it, never a mix. The previous version stays `ready` with its vectors so `rollback()` is
instant; `purge()` retires everything older that no experiment serves.

Products saved while a version was trained and embedded got their on-save vectors in the
version that served then, so the new one lacks them or holds their old content. Once an
activation commits, `version_activated` is sent; the embedding processor
(`recommendations.indexing`) answers it by queuing a product vector sync, so they become
recommendable soon after the switch. A signal rather than a call: vectors sit above the
background tasks and do not import them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

from django.db import OperationalError, transaction
from django.db.models import Exists, OuterRef, Q
from django.dispatch import Signal
from django.utils import timezone

from recommendations.experiments.assignment import model_versions_in_use
from recommendations.locks import advisory_lock, transaction_lock
from recommendations.models import ModelStatus, ModelVersion, ProductVector, StoreVector, UserVector
from recommendations.vectors import indexes, lists, queries, tuning

logger = logging.getLogger(__name__)

ACTIVATION_LOCK = "recommendations.activation"
DEADLOCK = "40P01"  # PostgreSQL's deadlock_detected


#: Sent with `version` (now active) when an activation or rollback commits; not for a
#: version that was active already.
version_activated = Signal()


class ActivationError(Exception):
    """The version cannot serve (not trained, no vectors, purged); the message says why."""


@dataclass(frozen=True)
class ActivationResult:
    """The version that serves now, and the one it replaced (now `ready`, the rollback
    target), so the admin and the command report the switch without reading it again."""

    version: ModelVersion
    previous: ModelVersion | None = None
    # True when `version` was active already: nothing changed, and callers must not say "activated".
    already_active: bool = False
    # Set when `yield_to_newer` kept this active version (activated after `version` was made).
    superseded_by: ModelVersion | None = None
    # What the operator must know about the version that now serves (its model file is gone).
    warning: str = ""


def activate(version: ModelVersion, *, yield_to_newer: bool = False) -> ActivationResult:
    """Make `version` the one that serves; the previously active one becomes `ready`.

    With `yield_to_newer`, a version activated after `version` was made keeps serving
    (`superseded_by` names it): a redelivered retrain resuming an old version must not replace
    what an operator chose meanwhile. Checked under the activation lock, so no activation can
    slip in between the check and the switch.

    Builds the version's indexes first if they are missing (outside the switch, so readers
    never wait for a build). Activating the active version is a no-op that replaces nothing.
    `version` itself is updated too (status, activation time), so a caller reporting it says
    "active".
    """
    version.refresh_from_db()
    if version.status == ModelStatus.ACTIVE:
        return ActivationResult(version, already_active=True)
    _check_can_serve(version)
    try:
        tuning.prepare_search(version)
    except indexes.IndexBuildInProgress as exc:
        raise ActivationError(str(exc)) from exc
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != DEADLOCK:
            raise
        raise ActivationError(
            f"Another activation or retrain was building the indexes of model version {version.pk} "
            "at the same time (deadlock detected). Try again when it has finished; the admin's "
            "model versions page shows its progress."
        ) from exc
    with transaction.atomic():
        # Serialise concurrent activations; the unique constraint would reject the second.
        transaction_lock(ACTIVATION_LOCK)
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status == ModelStatus.ACTIVE:  # another activation of it switched while we waited
            version.status, version.activated_at = locked.status, locked.activated_at
            return ActivationResult(locked, already_active=True)
        _check_can_serve(locked)
        # At most one is active (rec_one_active_model_version).
        previous = ModelVersion.objects.select_for_update().filter(status=ModelStatus.ACTIVE).first()
        if yield_to_newer and _activated_after(previous, locked):
            return ActivationResult(locked, superseded_by=previous)
        if previous is not None:
            ModelVersion.objects.filter(pk=previous.pk).update(status=ModelStatus.READY)
            previous.status = ModelStatus.READY
        locked.status = ModelStatus.ACTIVE
        locked.activated_at = timezone.now()
        # An embed killed after its last stage began left that stage behind; whatever it had
        # left undone, prepare_search() above has finished, so the admin must not show it stuck.
        locked.progress = {"stage": "done", "done": 1, "total": 1}
        locked.save(update_fields=["status", "activated_at", "progress"])
        transaction.on_commit(queries.clear_cache)
        transaction.on_commit(
            partial(version_activated.send, sender=ModelVersion, version=locked), robust=True
        )
    version.status, version.activated_at = locked.status, locked.activated_at
    logger.info(
        "Activated model version %s (previously active: %s)",
        locked.pk,
        previous.pk if previous is not None else "none",
    )
    return ActivationResult(locked, previous, warning=_missing_model_file(locked))


def _missing_model_file(version: ModelVersion) -> str:
    """Serving reads only vectors, so a version whose model file is gone activates and serves;
    but embedding saved products reads that file, and the worker's failures are all that would
    tell. Said when it is activated (a rollback, often, after a damaged file)."""
    name = version.artifact.name
    if not name or version.artifact.storage.exists(name):
        return ""
    return (
        f"Model version {version.pk} serves, but its model file ({name}) is missing, so products saved "
        "from now on get no vector until it is restored or a new version is trained: "
        "`python manage.py train_model --activate`."
    )


def _activated_after(active: ModelVersion | None, version: ModelVersion) -> bool:
    return active is not None and active.activated_at is not None and active.activated_at > version.created_at


def previous_version() -> ModelVersion | None:
    """The most recently active version that is not active now (the rollback target)."""
    return ModelVersion.objects.previous()


def rollback() -> ActivationResult:
    """Re-activate the previously active version; the current one becomes `ready`."""
    target = previous_version()
    if target is None:
        raise ActivationError(
            "There is no previously active model version to roll back to. Activate a ready "
            'version instead: the admin\'s "Activate the selected version" action, or '
            "python manage.py activate_model <id>."
        )
    logger.info("Rolling back to model version %s", target.pk)
    return activate(target)


@dataclass
class PurgeResult:
    retired: list[int] = field(default_factory=list)
    vectors_deleted: int = 0
    skipped: str = ""


def purge() -> PurgeResult:
    """Retire every version except the active one, the previous one and those experiments
    serve (`model_versions_in_use`): drop their indexes, delete their vectors and artifact
    files. The rows stay (status `retired`, metrics kept) so the admin still shows the history.

    Takes the pipeline lock, so a version being trained or embedded right now is never
    touched; when a retrain holds the lock the purge is skipped with a logged reason.
    """
    result = PurgeResult()
    with advisory_lock() as acquired:
        if not acquired:
            result.skipped = "a retrain or embed is running; the next scheduled purge will retire them"
            logger.info("Purge skipped: %s", result.skipped)
            return result
        keep = {v.pk for v in (queries.active_version(fresh=True), previous_version()) if v is not None}
        keep |= model_versions_in_use()  # a running test's candidate, the promoted winner
        # A retired version with vectors left is one an interrupted purge marked: finish it.
        leftovers = Exists(ProductVector.objects.filter(model_version_id=OuterRef("pk")))
        stale = ModelVersion.objects.exclude(pk__in=keep).exclude(
            Q(status=ModelStatus.RETIRED, artifact="") & ~leftovers
            | Q(status=ModelStatus.FAILED, artifact="")
        )
        for version in stale:
            deleted = retire(version)
            if deleted is not None:
                result.vectors_deleted += deleted
                result.retired.append(version.pk)
    logger.info(
        "Purged %d model version(s) %s and %d vectors; kept %s",
        len(result.retired),
        result.retired,
        result.vectors_deleted,
        sorted(keep),
    )
    return result


def retire(version: ModelVersion) -> int | None:
    """Free what `version` holds in the database and storage (vectors, indexes, precomputed
    lists, the artifact); returns the vectors deleted, or None when it was kept.

    Under the version's index lock (`indexes.build_lock`): an activation that is building the
    version's indexes finishes first. The version is then marked retired in a transaction of
    its own, under the activation lock, before anything is deleted: an activation either made
    it active first (then nothing is touched and None is returned) or finds it retired and
    refuses. Marking it at the end instead let an activation that committed meanwhile be
    overwritten, leaving no version active.
    """
    with indexes.build_lock(version.pk):
        if not _mark_retired(version):
            logger.info(
                "Model version %s serves, or is the rollback target, since an activation ran while "
                "it waited to be retired: kept",
                version.pk,
            )
            return None
        return _retire(version)


def _mark_retired(version: ModelVersion) -> bool:
    """Under the activation lock, mark `version` retired (failed, when its training worker
    died) unless it serves now or is the rollback target; returns whether it was marked."""
    with transaction.atomic():
        transaction_lock(ACTIVATION_LOCK)
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        target = previous_version()
        if locked.status == ModelStatus.ACTIVE or (target is not None and target.pk == locked.pk):
            return False
        if locked.status == ModelStatus.TRAINING:  # no pipeline holds the lock: its worker died
            locked.status = ModelStatus.FAILED
            locked.error = locked.error or "Interrupted: the worker stopped before training finished."
        elif locked.status != ModelStatus.FAILED:
            locked.status = ModelStatus.RETIRED
        locked.save(update_fields=["status", "error"])
    version.status, version.error = locked.status, locked.error
    return True


def _retire(version: ModelVersion) -> int:
    """Delete what the (already marked) `version` holds. A purge interrupted here leaves it
    retired with vectors; the next purge finds it by them and finishes."""
    indexes.drop_indexes(version)
    deleted = 0
    with transaction.atomic():
        for model in (ProductVector, StoreVector, UserVector):
            deleted += model.objects.filter(model_version_id=version.pk).delete()[0]
        lists.forget(version)
        name = version.artifact.name
        version.artifact = ""
        version.save(update_fields=["artifact"])
        shared = ModelVersion.objects.filter(artifact=name).exists() if name else True
        if not shared:
            storage = ModelVersion._meta.get_field("artifact").storage
            transaction.on_commit(lambda: storage.delete(name))
    return deleted


def _check_can_serve(version: ModelVersion) -> None:
    if version.status == ModelStatus.RETIRED:
        raise ActivationError(
            f"Model version {version.pk} is retired: a purge deleted (or is deleting) its vectors "
            "and indexes, so it cannot serve again. Activate a ready version (`python manage.py "
            "activate_model --list`) or train a new one with `python manage.py train_model --activate`."
        )
    if version.status not in (ModelStatus.READY, ModelStatus.ACTIVE):
        raise ActivationError(
            f"Model version {version.pk} is {version.status}; only a ready version can be "
            "activated. Train a new one with `python manage.py train_model --activate`."
        )
    if not ProductVector.objects.filter(model_version_id=version.pk).exists():
        raise ActivationError(
            f"Model version {version.pk} has no product vectors yet. Embed it first with "
            f"`python manage.py embed --model-version {version.pk}`."
        )
    if version.embedded_at is None:  # some vectors, but the embed never finished writing them
        raise ActivationError(
            f"Model version {version.pk} was not fully embedded (its embed was interrupted, so it "
            f"may lack user or store vectors). Run `python manage.py embed --model-version "
            f"{version.pk}` first."
        )
