"""The background pipeline: retrain (train -> evaluate -> embed -> activate), re-embed, and
rebuild the active version's indexes.

All run under one PostgreSQL advisory lock, so two never overlap on any number of workers;
a second one exits at once with a logged reason. Both are safe to retry after the worker
died: a retried task finds the version its first attempt trained (by Celery task id) and
carries on from there (activating it only if no other version was activated after it was
made), and every vector write replaces the version's rows in a transaction.
The active version changes only in the final one-transaction `activate()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from recommendations import training
from recommendations.locks import advisory_lock
from recommendations.models import ModelStatus, ModelVersion
from recommendations.progress import Progress
from recommendations.vectors import activation, embedding, indexes, queries, tuning

logger = logging.getLogger(__name__)

LOCKED = "another retrain or embed is running (the pipeline lock is held); this one exits without changes"


@dataclass
class PipelineResult:
    version: ModelVersion | None = None
    skipped: str = ""
    activated: bool = False
    vectors: dict[str, float] = field(default_factory=dict)
    indexes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.pk if self.version else None,
            "status": self.version.status if self.version else None,
            "activated": self.activated,
            "skipped": self.skipped,
            "vectors": self.vectors,
            "indexes": self.indexes,
            "seconds": round(self.seconds, 2),
        }


def task_progress(task: Any) -> Progress:
    """Progress that also updates the Celery task's state (PROGRESS, with stage and counts)."""
    return Progress(task=task)


def get_version(pk: int) -> ModelVersion:
    try:
        return ModelVersion.objects.get(pk=pk)
    except ModelVersion.DoesNotExist:
        raise ValueError(
            f"There is no model version {pk}; `python manage.py activate_model --list` lists them."
        ) from None


def retrain(
    *,
    task_id: str = "",
    progress: Progress | None = None,
    activate: bool = True,
    window_days: float | None = None,
    config: dict[str, Any] | None = None,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Train a new version and, unless `activate=False`, embed it and make it serve."""

    def train(progress: Progress) -> ModelVersion:
        return training.train_model(
            config=config, window_days=window_days, device=device, progress=progress, task_id=task_id, log=log
        )

    return _run("Retrain", task_id, progress, train, activate)


def refresh_vectors(*, task_id: str = "", progress: Progress | None = None) -> PipelineResult:
    """Re-embed catalogue, stores and users with the active model into a new version (same
    weights, fresh vectors) and activate it; the old one stays for rollback."""

    def copy_active(progress: Progress) -> ModelVersion:
        return _copy_of(_active_version("no model to embed with"), task_id)

    return _run("Embed", task_id, progress, copy_active, activate=True)


def reindex(*, progress: Progress | None = None) -> PipelineResult:
    """Rebuild the active version's vector indexes from scratch, then tune its searches again
    (a rebuilt index answers differently). For after very many single-product saves and
    deletes, which change the indexes in place. Readers keep using the indexes while they are
    rebuilt (`REINDEX CONCURRENTLY` outside a transaction). Under the pipeline lock and the
    version's index lock (`indexes.build_lock`)."""
    started = time.perf_counter()
    progress = progress or Progress()
    with _pipeline_lock("Reindex") as acquired:
        if not acquired:
            return PipelineResult(skipped=LOCKED)
        version = _active_version("no index to rebuild")
        progress("rebuilding indexes", 0, 1)
        with indexes.build_lock(version.pk):  # nobody else builds, drops or tunes them meanwhile
            rebuilt = indexes.reindex(version)
            progress("tuning searches", 0, 1)
            tuning.tune_searches(version)
        progress("done", 1, 1)
    return PipelineResult(version=version, indexes=rebuilt, seconds=time.perf_counter() - started)


def _run(
    what: str,
    task_id: str,
    progress: Progress | None,
    new_version: Callable[[Progress], ModelVersion],
    activate: bool,
) -> PipelineResult:
    """Under the pipeline lock: resume this task's version or make a new one, then (with
    `activate`) embed, index and activate it."""
    started = time.perf_counter()
    progress = progress or Progress()
    with _pipeline_lock(what) as acquired:
        if not acquired:
            return PipelineResult(skipped=LOCKED)
        resumed = version = _resume(task_id)
        training.fail_interrupted()  # others still "training" lost their worker: we hold the lock
        if resumed is not None and resumed.status == ModelStatus.ACTIVE and resumed.embedded_at:
            # Activation is the last step: an earlier attempt finished and only its
            # acknowledgement was lost (Redis hands a task out again at once when the worker's
            # connection drops while it runs). Embedding again would rewrite the vectors of the
            # version that serves and drop its precomputed lists until they are ranked anew.
            logger.info(
                "Model version %s, made by an earlier attempt of task %s, serves already: nothing to do",
                resumed.pk,
                task_id,
            )
            skipped = f"version {resumed.pk}, made by an earlier attempt of this task, serves already"
            return PipelineResult(version=resumed, skipped=skipped, seconds=time.perf_counter() - started)
        if version is None:
            version = new_version(progress)
        else:
            logger.info(
                "Resuming model version %s, made by an earlier attempt of task %s", version.pk, task_id
            )
        result = PipelineResult(version=version)
        if activate:
            result.vectors = _embed(version, progress)
            progress("activating", 0, 1)
            switch = activation.activate(version, yield_to_newer=resumed is not None)
            if switch.superseded_by is None:
                result.activated = True
            else:
                result.skipped = f"superseded by version {switch.superseded_by.pk}"
                logger.warning(
                    "Not activating resumed model version %s: version %s was activated after it was "
                    "made (by an operator while its worker was down); it stays ready.",
                    version.pk,
                    switch.superseded_by.pk,
                )
            progress("done", 1, 1)
    result.seconds = time.perf_counter() - started
    return result


def embed_version(version: ModelVersion, progress: Progress | None = None) -> PipelineResult:
    """Write the vectors and indexes of a ready (or the active) version without activating it.

    A failed, retired or still-training version is refused: none of them can serve, so
    vectors written for it would only take space."""
    if version.status not in (ModelStatus.READY, ModelStatus.ACTIVE):
        raise activation.ActivationError(
            f"Model version {version.pk} is {version.status}; only a ready or the active version can "
            "be embedded. `python manage.py activate_model --list` lists them; or train a new one: "
            "`python manage.py train_model --activate`."
        )
    started = time.perf_counter()
    with _pipeline_lock("Embed") as acquired:
        if not acquired:
            return PipelineResult(version=version, skipped=LOCKED)
        progress = progress or Progress()
        counts = _embed(version, progress)
        progress("done", 1, 1)
    return PipelineResult(version=version, vectors=counts, seconds=time.perf_counter() - started)


@contextmanager
def _pipeline_lock(what: str) -> Iterator[bool]:
    """The pipeline lock, without waiting; yields whether it was taken. A run that finds it
    held is logged here, so a worker's skipped task leaves a line whichever service it ran."""
    with advisory_lock() as acquired:
        if not acquired:
            logger.warning("%s skipped: %s.", what, LOCKED)
        yield acquired


def _active_version(needed_for: str) -> ModelVersion:
    """The version that serves now; `ActivationError` saying how to get one when none does."""
    version = queries.active_version(fresh=True)
    if version is None:
        raise activation.ActivationError(
            f"No model version is active, so there is {needed_for}. {how_to_activate()}"
        )
    return version


def how_to_activate() -> str:
    """What an operator can do when no version is active: activate the newest ready one that
    can serve, embed one that cannot yet, or train one."""
    train = "`python manage.py train_model --activate`"
    ready = ModelVersion.objects.filter(status=ModelStatus.READY).order_by("-pk").first()
    if ready is None:
        return f"Train one first: {train}."
    if ready.embedded_at is None:
        return (
            f"Embed the ready version {ready.pk} and activate it: `python manage.py embed --model-version "
            f"{ready.pk}`, then `python manage.py activate_model {ready.pk}`; or train a new one: {train}."
        )
    return (
        f"Activate a ready version: `python manage.py activate_model {ready.pk}` (the newest; "
        f"`--list` lists them all), or train a new one: {train}."
    )


def _embed(version: ModelVersion, progress: Progress) -> dict[str, float]:
    """Write the version's vectors, build and tune its indexes; returns the vector counts."""
    counts = embedding.embed_version(version, progress)
    progress("building indexes", 0, 1)
    tuning.prepare_search(version)
    return counts.as_dict()


def _resume(task_id: str) -> ModelVersion | None:
    """The version an earlier, killed attempt of this same task already trained, if any.

    An attempt killed while training left its version `training`: that one is marked failed
    (the retry trains again from scratch).
    """
    if not task_id:
        return None
    mine = ModelVersion.objects.filter(task_id=task_id)
    mine.filter(status=ModelStatus.TRAINING).update(
        status=ModelStatus.FAILED,
        error="Interrupted: the worker stopped during training; the task was retried.",
    )
    return mine.filter(status__in=[ModelStatus.READY, ModelStatus.ACTIVE]).order_by("-pk").first()


def _copy_of(active: ModelVersion, task_id: str) -> ModelVersion:
    """A new ready version with the active one's model (the artifact file is shared).

    The model is loaded first, so a missing or unreadable file is reported before there is a
    new version row to leave behind empty.
    """
    embedding.load_model(active)
    return ModelVersion.objects.create(
        algorithm=active.algorithm,
        status=ModelStatus.READY,
        config={**active.config, "embedded_from": active.pk},
        data_window_start=active.data_window_start,
        data_window_end=active.data_window_end,
        n_users=active.n_users,
        n_items=active.n_items,
        n_events=active.n_events,
        dimensions=active.dimensions,
        metrics=active.metrics,
        training_curve=active.training_curve,
        training_seconds=active.training_seconds,
        device=active.device,
        artifact=active.artifact.name,
        task_id=task_id,
    )
