"""Training and offline evaluation on the shop's own data: the service behind the
`train_model` and `evaluate` commands and the retrain task.

`train_model()` registers every attempt as a `ModelVersion`: `training` while it runs, then
`ready` with metrics, training curve, time, device and the stored artifact, or `failed` with
the reason (a NaN loss, an interruption, an error). It never touches the active version:
activation is a separate step (`recommendations.vectors.activation`).

With several GPUs (`RECOMMENDATIONS["TRAINING_PROCESSES"]`) or under torchrun the model
trains data-parallel: this process is rank 0, reads the data, sends it to the other ranks
and alone writes the version (`recommendations.learning.launch`).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from django.db import DatabaseError, connections, router

from recommendations import artifacts
from recommendations.conf import rec_settings
from recommendations.devices import DeviceError, configured_device
from recommendations.features import build_training_data
from recommendations.learning.classic import (
    ALSRecommender,
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
)
from recommendations.learning.config import option_errors, processes_error
from recommendations.learning.dataset import Split, kfold_user_split, leave_one_out_split, temporal_split
from recommendations.learning.evaluation import (
    compare,
    format_table,
    item_probabilities,
)
from recommendations.learning.evaluation import (
    evaluate as evaluate_model,
)
from recommendations.learning.launch import Work, lead
from recommendations.learning.two_tower import (
    EpochLog,
    TrainConfig,
    TrainingError,
    TwoTowerRecommender,
)
from recommendations.models import ModelStatus, ModelVersion
from recommendations.progress import Progress

logger = logging.getLogger(__name__)

SPLITS = ("leave_one_out", "temporal")
# EASE inverts a dense n_items x n_items matrix: beyond this it needs too much memory.
EASE_MAX_ITEMS = 15_000
BASELINE_METRICS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")
INTERRUPTED = "Interrupted: its worker stopped before training finished; a later retrain or embed found it."


class TrainingFailed(Exception):
    """Training ran but produced no usable model (e.g. the loss diverged); says why."""

    @classmethod
    def of(cls, error: TrainingError) -> TrainingFailed:
        """The learning core's `TrainingError` (whose message says what to change), with where
        the options it names are set."""
        return cls(
            f"{error} (RECOMMENDATIONS['TRAINING'] sets the training options; a command's --config "
            "overrides them once.)"
        )


def training_processes(device: str) -> int:
    """How many processes train one model: `RECOMMENDATIONS["TRAINING_PROCESSES"]`, where
    "auto" is one per visible GPU when `device` is "cuda" (a named GPU such as "cuda:1": one)."""
    value = rec_settings.TRAINING_PROCESSES
    error = processes_error(value)  # `manage.py check` refuses it too
    if error:
        raise ValueError(f"RECOMMENDATIONS['TRAINING_PROCESSES']: {error}")
    if value == "auto":
        return max(torch.cuda.device_count(), 1) if device == "cuda" else 1
    if device.startswith("cuda") and value > torch.cuda.device_count():
        raise DeviceError(
            f"RECOMMENDATIONS['TRAINING_PROCESSES'] is {value} but torch sees "
            f'{torch.cuda.device_count()} GPU(s): use "auto" (one per GPU) or at most that many.'
        )
    return value


def config_overrides(
    config_json: str = "{}", *, epochs: int | None = None, dimensions: int | None = None
) -> dict[str, Any]:
    """The two-tower overrides a command's flags give: `--config` JSON, then `--epochs` and
    `--dimensions` on top. `ValueError` when the JSON is not an object (commands report it)."""
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config must be a JSON object: {exc}") from exc
    if not isinstance(config, dict):
        raise ValueError("--config must be a JSON object, e.g. '{\"lr\": 0.001}'.")
    if epochs is not None:
        config["epochs"] = epochs
    if dimensions is not None:
        config["dim"] = dimensions
    return config


def model_config(overrides: dict[str, Any] | None = None, device: str | None = None) -> TrainConfig:
    """The two-tower configuration: defaults, then `RECOMMENDATIONS["TRAINING"]`, then overrides.
    `manage.py check` refuses bad settings; the overrides (a command's flags) are checked here."""
    values = {**rec_settings.TRAINING, **(overrides or {})}
    errors = option_errors(values)
    if errors:
        raise ValueError(
            f"Bad training option(s): {'; '.join(errors)} (set in RECOMMENDATIONS['TRAINING'], --config or "
            "the command's flags)."
        )
    return TrainConfig.from_dict({**values, "device": configured_device(device or values.get("device"))})


def train_model(
    *,
    config: dict[str, Any] | None = None,
    window_days: float | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    task_id: str = "",
    log: Callable[[str], None] | None = None,
) -> ModelVersion:
    """Train the two-tower model on the database, evaluate it, store it; return the version.

    Raises `InsufficientData` (before any version is created) when there is too little to
    learn from; any failure afterwards leaves the version `failed` with the reason and is
    re-raised.
    """
    progress = progress or Progress()
    cfg = model_config(config, device)
    data = build_training_data(window_days)  # refuses a window that is not a number of days > 0
    with lead(training_processes(cfg.device), cfg.device) as team:
        version = ModelVersion.objects.create(
            algorithm="two_tower",
            status=ModelStatus.TRAINING,
            config={**cfg.to_dict(), "window_days": window_days, "processes": team.world_size},
            data_window_start=data.window_start,
            data_window_end=data.window_end,
            n_users=len(data.actors),
            n_items=len(data.catalogue.items),
            n_events=data.n_events,
            device=cfg.device,
            task_id=task_id,
        )
        progress.bind(version)
        say = log or logger.info
        where = cfg.device if team.world_size == 1 else f"{team.world_size} processes ({cfg.device})"
        say(f"Training model version {version.pk} on {where}: {data.describe()}")
        started = time.perf_counter()
        curve: list[dict[str, float]] = []
        try:
            split = leave_one_out_split(data.interactions)

            def on_epoch(log: EpochLog) -> None:
                point = {"epoch": log.epoch, "loss": log.loss, "val_ndcg10": log.val_metric}
                curve.append({**point, "seconds": log.seconds})
                ModelVersion.objects.filter(pk=version.pk).update(training_curve=curve)
                progress("training", log.epoch, cfg.epochs)
                say(_epoch_line(log, cfg.epochs))

            progress("training", 0, cfg.epochs)
            # Early stopping needs shoppers with 3+ different products; without any, train all epochs.
            validation = split.validation if split.validation is not None and len(split.validation) else None
            team.share(Work(cfg, split.train, validation))  # the other ranks, if any, train with us
            model = TwoTowerRecommender(cfg).fit(split.train, validation, callback=on_epoch)
            progress("evaluating", 0, 1)
            metrics = _metrics(model, split)
            progress("evaluating", 1, 1)
            artifacts.save(version, model, data)
            version.dimensions = cfg.dim
            version.metrics = metrics
            version.training_curve = curve
            version.training_seconds = time.perf_counter() - started
            version.status = ModelStatus.READY
            version.progress = {"stage": "trained", "done": 1, "total": 1}
            version.save()
        except TrainingError as exc:  # e.g. the loss diverged; the core's message says what to change
            failure = TrainingFailed.of(exc)
            _fail(version, failure, time.perf_counter() - started, curve)
            raise failure from exc
        except BaseException as exc:  # interrupted (time limit, Ctrl-C) counts as failed, too
            _fail(version, exc, time.perf_counter() - started, curve)
            raise
    say(f"Model version {version.pk} is ready after {version.training_seconds:.1f}s: {_headline(metrics)}")
    return version


def _epoch_line(log: EpochLog, epochs: int) -> str:
    line = f"epoch {log.epoch}/{epochs}: loss {log.loss:.4f}"
    if log.val_metric is not None:
        line += f", validation NDCG@10 {log.val_metric:.4f}"
        line += f" (best {log.best_metric:.4f} at epoch {log.best_epoch})"
    return f"{line} ({log.seconds:.1f}s)"


def _metrics(model: TwoTowerRecommender, split: Split) -> dict[str, Any]:
    """The model's full-ranking test metrics, with the popularity baseline beside them."""
    if not len(split.test):
        return {"protocol": split.info.get("protocol", ""), "note": "no shopper has 3+ different products"}
    probs = item_probabilities(split.train)
    n_items = split.train.n_items
    metrics: dict[str, Any] = evaluate_model(model, split.test, n_items, item_probs=probs)
    # Classics learn from everything known at test time (the validation items too).
    known = split.train_with_validation or split.train
    popularity = popularity_baseline().fit(known)
    baseline = evaluate_model(popularity, split.test, n_items, item_probs=probs)
    metrics["baselines"] = {"popularity": {k: baseline[k] for k in BASELINE_METRICS}}
    metrics["protocol"] = split.info.get("protocol", "")
    return metrics


def _fail(version: ModelVersion, exc: BaseException, seconds: float, curve: list) -> None:
    """Log why training of `version` failed and record it on the row.

    Never raises a database error of its own: when the database went away mid-training, that
    would hide the real cause behind a second traceback and leave the version `training`. A
    dropped connection is reopened once; if the database is still unreachable, the next
    retrain marks the version failed (`fail_interrupted`).
    """
    if isinstance(exc, TrainingFailed):
        reason = str(exc)
    elif isinstance(exc, KeyboardInterrupt | SystemExit) or type(exc).__name__ == "SoftTimeLimitExceeded":
        reason = f"Interrupted ({type(exc).__name__}) after {seconds:.0f}s; the active version is unchanged."
    else:
        reason = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=8)}"
    logger.error("Training of model version %s failed: %s", version.pk, reason.splitlines()[0])
    version.status = ModelStatus.FAILED
    version.error = reason
    version.training_seconds = seconds
    version.training_curve = curve
    fields = ["status", "error", "training_seconds", "training_curve"]
    try:
        version.save(update_fields=fields)
        return
    except DatabaseError:
        # The same outage may have broken this connection: drop it, and try once on a new one.
        connections[router.db_for_write(ModelVersion, instance=version)].close()
    try:
        version.save(update_fields=fields)
    except DatabaseError as error:
        logger.error(
            "Could not mark model version %s failed (database unreachable: %s); the next retrain will.",
            version.pk,
            first_line(error),
        )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (database errors add context lines), or its type."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def fail_interrupted() -> list[int]:
    """Mark failed every version still `training`; returns their ids.

    Only for a caller that holds the pipeline lock: every training runs under it, so a version
    left `training` then is one whose worker died (SIGKILL, a lost machine, a database outage
    that kept `_fail` from recording it) and whose task will not run again.
    """
    orphans = list(ModelVersion.objects.filter(status=ModelStatus.TRAINING).values_list("pk", flat=True))
    if orphans:
        ModelVersion.objects.filter(pk__in=orphans, status=ModelStatus.TRAINING).update(
            status=ModelStatus.FAILED,
            error=INTERRUPTED,
        )
        logger.warning(
            "Marked model version(s) %s failed: still 'training' while no training ran (the worker stopped)",
            ", ".join(map(str, orphans)),
        )
    return orphans


def metrics_summary(metrics: dict[str, Any]) -> str:
    """The version's headline metrics beside the baselines of the same run, as a text table."""
    columns = {"two_tower": metrics, **(metrics.get("baselines") or {})}
    names = [m for m in BASELINE_METRICS if m in metrics]
    if not names:
        return f"Not evaluated: {metrics.get('note', 'no test users')}."
    lines = [f"{'':10}" + "".join(f"{c:>12}" for c in columns)]
    for name in names:
        lines.append(f"{name:10}" + "".join(f"{c.get(name, float('nan')):>12.4f}" for c in columns.values()))
    protocol = metrics.get("protocol", "")
    lines.append(
        f"({protocol.replace('_', '-')}, full ranking, {int(metrics.get('n_users', 0))} test shoppers)"
    )
    return "\n".join(lines)


def _headline(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in BASELINE_METRICS if k in metrics) or "not evaluated"


# --- side-by-side evaluation -----------------------------------------------------------
def popularity_baseline() -> PopularityRecommender:
    """Popularity on the pipeline's data: its event weights already carry the time decay
    (`DECAY_HALF_LIFE_DAYS`), so the recommender adds none of its own (which would halve the
    half-life)."""
    return PopularityRecommender()


def recommenders(n_items: int, config: TrainConfig) -> dict[str, Any]:
    """Every recommender the `evaluate` command compares, freshly constructed."""
    models: dict[str, Any] = {
        "two_tower": TwoTowerRecommender(config),
        "popularity": popularity_baseline(),
        "item_knn": ItemKNNRecommender(k=100),
        "ease": EASERecommender(l2=500.0),
        "als": ALSRecommender(factors=64, iterations=15),
    }
    if n_items > EASE_MAX_ITEMS:
        logger.warning(
            "Skipping EASE: %d products exceed its dense-matrix limit of %d", n_items, EASE_MAX_ITEMS
        )
        del models["ease"]
    return models


def evaluate(
    *,
    split: str = "leave_one_out",
    folds: int | None = None,
    models: Sequence[str] | None = None,
    config: dict[str, Any] | None = None,
    window_days: float | None = None,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Fit and evaluate the two-tower model and each classic recommender on the same split
    of the database's interactions; returns one row of metrics per model (fold averages).

    `split` is "leave_one_out" (the last new product per shopper is the test) or "temporal" (the
    latest 10% of events); `folds=k` holds out k disjoint groups of shoppers in turn, each judged
    on its last new product as leave-one-out does, so it refuses the temporal split.
    Options are checked as `train_model` checks them (`ValueError` naming the fix); a two-tower
    model that cannot train is `TrainingFailed`, as in `train_model`.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if folds is not None and split != "leave_one_out":
        raise ValueError(
            f"Folds hold out groups of shoppers and judge each on their last new product, as the "
            f"leave-one-out split does; they do not apply to the {split} split. Give folds (--folds) or "
            f"the {split} split (--split), not both."
        )
    cfg = model_config(config, device)
    data = build_training_data(window_days)
    if folds is not None:
        splits = kfold_user_split(data.interactions, k=folds)
    elif split == "temporal":
        splits = [temporal_split(data.interactions)]
    else:
        splits = [leave_one_out_split(data.interactions)]
    say = log or logger.info
    say(f"Evaluating on {data.describe()} ({splits[0].info['protocol']}, {len(splits)} split(s))")
    runs = []
    for i, part in enumerate(splits, start=1):
        if not len(part.test):
            raise ValueError("No shopper can be evaluated: each needs at least 3 different products.")
        chosen = recommenders(data.interactions.n_items, cfg)
        if models is not None:  # an empty list is a mistake ("--models ,"), not "every model"
            unknown = sorted(set(models) - set(chosen))
            if not models:
                raise ValueError(f"Give at least one model (choices: {', '.join(sorted(chosen))}).")
            if unknown:
                raise ValueError(f"Unknown recommender(s) {unknown}; choose from {sorted(chosen)}.")
            chosen = {name: chosen[name] for name in models}
        if len(splits) > 1:
            say(f"Fold {i}/{len(splits)}")
        try:
            runs.append(compare(chosen, part, log=say))  # a line per model as it is done, then the table
        except TrainingError as exc:  # e.g. the loss diverged, or the split left nothing to learn from
            raise TrainingFailed.of(exc) from exc
    rows = _average(runs)
    if len(runs) > 1:
        say(f"Mean over the {len(runs)} folds:\n{format_table(rows)}")
    return rows


def _average(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Mean of each numeric column over folds, per model (one run: unchanged)."""
    if len(runs) == 1:
        return runs[0]
    out = []
    for rows in zip(*runs, strict=True):
        merged: dict[str, Any] = {"model": rows[0]["model"]}
        for key in rows[0]:
            if key != "model":
                merged[key] = float(np.mean([row[key] for row in rows]))
        out.append(merged)
    return out
