"""Management commands: train, evaluate, embed, activate and roll back, with clear errors."""

import datetime as dt
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from recommendations import artifacts, pipeline, training
from recommendations.locks import advisory_lock
from recommendations.models import Event, ModelStatus, ModelVersion
from recommendations.progress import ProgressBar
from recommendations.vectors import indexes, queries
from tests.pipeline.data import make_shop, tiny_settings

ROOT = Path(__file__).resolve().parents[2]


def run(*args, **options):
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_train_embed_activate_and_roll_back(shop):
    out = run("train_model", "--activate", "--epochs", "2")
    first = queries.active_version(fresh=True)
    assert f"Model version {first.pk} is active" in out
    assert "epoch 1/2" in out and "epoch 2/2" in out
    assert "NDCG@10" in out and "popularity" in out
    out = run("train_model", "--config", '{"dim": 8}')
    second = ModelVersion.objects.exclude(pk=first.pk).get()
    assert second.status == ModelStatus.READY and second.dimensions == 8
    with pytest.raises(CommandError, match=f"has no product vectors.*embed --model-version {second.pk}"):
        run("activate_model", str(second.pk))
    assert "is ready (not activated)" in run("embed", "--model-version", str(second.pk))
    assert f"Model version {second.pk} is active; version {first.pk} is kept" in run(
        "activate_model", str(second.pk)
    )
    assert f"Model version {first.pk} is active" in run("activate_model", "--rollback")
    assert f"Model version {first.pk} is active already; nothing changed." in run(
        "activate_model", str(first.pk)
    )
    listing = run("activate_model", "--list")
    assert f"{first.pk:>5}  active" in listing and f"{second.pk:>5}  ready" in listing
    out = run("embed")
    active = queries.active_version(fresh=True)
    assert active.config["embedded_from"] == first.pk
    assert "product" in out and "user vectors" in out
    assert "Embedded 0 product(s)" in run("embed", "--missing")
    out = run("embed", "--reindex")
    assert f"Rebuilt {len(indexes.INDEX_SPECS)} vector index(es) of model version {active.pk}" in out
    assert queries.active_version(fresh=True) == active
    assert all(indexes.existing_indexes(active.pk).values())


@pytest.mark.parametrize("number", ["0", "-3", "two"])
def test_embed_refuses_a_model_version_that_is_no_version_id(shop, number):
    """0 used to read as "no version given" and re-embedded the active one into a new version."""
    active = pipeline.retrain().version
    with pytest.raises(CommandError, match="--model-version takes a version id .*leave it out to re-embed"):
        run("embed", "--model-version", number)
    assert list(ModelVersion.objects.values_list("pk", flat=True)) == [active.pk]


def test_embed_says_what_to_do_while_no_version_is_active(shop):
    with pytest.raises(
        CommandError, match="No model version is active.*Train one first: `python manage.py train"
    ):
        run("embed")
    run("train_model", "--epochs", "1")
    ready = ModelVersion.objects.get()
    embed_it = f"Embed the ready version {ready.pk} and activate it: `python manage.py embed --model-version {ready.pk}`"
    for args in (["embed"], ["embed", "--missing"], ["embed", "--reindex"]):
        with pytest.raises(CommandError, match=re.escape(embed_it)):
            run(*args)
    out = run("embed", "--model-version", str(ready.pk))
    assert f"Model version {ready.pk} is ready (not activated)" in out
    assert f"Make it serve with `python manage.py activate_model {ready.pk}`." in out
    with pytest.raises(
        CommandError,
        match=re.escape(f"Activate a ready version: `python manage.py activate_model {ready.pk}`"),
    ):
        run("embed")
    run("activate_model", str(ready.pk))
    out = run("embed", "--model-version", str(ready.pk))  # the active one: it stays active
    assert f"Model version {ready.pk} is active: " in out and "activate_model" not in out
    assert queries.active_version(fresh=True).pk == ready.pk


def test_embed_refuses_a_version_that_cannot_serve(shop):
    version = pipeline.retrain().version
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelStatus.FAILED)
    with pytest.raises(
        CommandError, match=f"Model version {version.pk} is failed; only a ready or the active"
    ):
        run("embed", "--model-version", str(version.pk))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "epochs must be a whole number >= 1, not 0"),
        (["--dimensions", "-8"], r"dim must be a whole number from 1 to 1999 \(.*\), not -8"),
        (
            ["--dimensions", "2000"],
            r"dim must be a whole number from 1 to 1999 \(pgvector indexes vectors of at most 2,000 "
            r"dimensions, and products' score vectors add the bias to them: choose a smaller dim\), not 2000",
        ),
        (["--config", '{"lr": "x", "epochs": 1.5}'], "epochs must be .*, not 1.5; lr must be a number > 0"),
        (["--config", '{"dim": 10, "n_heads": 4}'], r"dim \(10\) must be a multiple of n_heads \(4\)"),
        (["--device", "tpu"], "use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        (["--window-days", "0"], "give a number of days > 0"),
        (["--window-days", "inf"], "give a number of days > 0"),
    ],
)
def test_bad_training_options_are_refused_before_a_version_exists(shop, args, message):
    active = queries.active_version(fresh=True)
    with pytest.raises(CommandError, match=message):
        run("train_model", "--activate", *args)
    assert not ModelVersion.objects.exists() and queries.active_version(fresh=True) == active


def test_the_widest_model_pgvector_can_index_trains_and_serves(shop):
    """dim 1999: products' score vectors are 2,000 wide with the bias, pgvector's index limit."""
    run("train_model", "--activate", "--dimensions", "1999", "--epochs", "1")
    active = queries.active_version(fresh=True)
    assert active.dimensions == 1999 and all(indexes.existing_indexes(active.pk).values())


@pytest.mark.parametrize("activate", [[], ["--activate"]])
def test_a_training_waits_for_no_one_while_another_holds_the_pipeline(shop, activate):
    """Both ways train under the pipeline lock, so the purge never takes a live one for dead."""
    with advisory_lock() as acquired:  # as if the nightly retrain were running
        assert acquired
        with pytest.raises(CommandError, match="Not trained: another retrain or embed is running"):
            run("train_model", *activate)
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_a_reindex_waits_for_no_one_while_another_holds_the_pipeline():
    with advisory_lock() as acquired:
        assert acquired
        with pytest.raises(CommandError, match="Not reindexed: another retrain or embed is running"):
            run("embed", "--reindex")


def test_a_missing_model_file_is_one_line_and_leaves_no_empty_version(shop, settings, monkeypatch):
    active = pipeline.retrain().version
    Path(active.artifact.path).rename(Path(active.artifact.path).with_suffix(".moved"))
    monkeypatch.setattr(artifacts, "_loaded", type(artifacts._loaded)())  # as in a fresh process
    missing = (
        f"The model file of version {active.pk} ({active.artifact.name}) is missing from MEDIA_ROOT "
        f"({settings.MEDIA_ROOT}). Restore it, roll back to the version that served before (`python manage.py "
        "activate_model --rollback`), or retrain: `python manage.py train_model --activate`."
    )
    for args in (["embed"], ["embed", "--products", str(shop.products[0].pk)]):
        with pytest.raises(CommandError) as raised:
            run(*args)
        assert str(raised.value) == missing
    assert list(ModelVersion.objects.values_list("pk", flat=True)) == [active.pk]


def altered(whole: bytes, **tensors) -> bytes:
    """A stored model whose header still says it is one, with some tensors replaced."""
    (length,) = struct.unpack("<Q", whole[:8])
    metadata = json.loads(whole[8 : 8 + length])["__metadata__"]
    return save_tensors({**load_tensors(whole), **tensors}, metadata=metadata)


def test_rolling_back_to_a_version_whose_model_file_is_gone_says_so(shop, capsys):
    """It serves from its vectors, but saved products can no longer be embedded into it: only
    the worker's failures told, every fifteen minutes."""
    older = pipeline.retrain().version
    pipeline.retrain()
    Path(older.artifact.path).unlink()
    err = StringIO()
    call_command("activate_model", "--rollback", stdout=StringIO(), stderr=err)
    assert queries.active_version(fresh=True).pk == older.pk
    assert err.getvalue().strip() == (
        f"Model version {older.pk} serves, but its model file ({older.artifact.name}) is missing, so "
        "products saved from now on get no vector until it is restored or a new version is trained: "
        "`python manage.py train_model --activate`."
    )


def test_a_model_file_that_cannot_be_stored_is_one_line_and_a_failed_version(shop, settings, tmp_path):
    """A full disk or an unwritable MEDIA_ROOT at the end of a training run: where, and what to
    check, not the OS's traceback; the version that served keeps serving."""
    active = pipeline.retrain().version
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.MEDIA_ROOT = str(blocker / "media")  # below a file: no folder can be made there
    with pytest.raises(CommandError) as raised:
        run("train_model", "--activate", "--epochs", "1")
    failed = ModelVersion.objects.exclude(pk=active.pk).get()
    assert str(raised.value) == (
        f"The model file of version {failed.pk} (two_tower_v{failed.pk}.safetensors) could not be stored "
        f"in MEDIA_ROOT ({blocker / 'media'}): [Errno 20] Not a directory: '{blocker / 'media'}'. Make "
        "room there or make it writable, then retrain: `python manage.py train_model --activate`."
    )
    assert failed.status == ModelStatus.FAILED and "could not be stored" in failed.error
    assert queries.active_version(fresh=True).pk == active.pk


def test_a_damaged_model_file_is_one_line_naming_the_file_and_version(shop, monkeypatch):
    """Empty, cut short, overwritten or with tensors of other shapes: the same advice as a
    missing file, not safetensors' or torch's traceback."""
    active = pipeline.retrain().version
    path = Path(active.artifact.path)
    whole = path.read_bytes()
    shapes = {
        b"": "The stored model file is empty or truncated",
        whole[: len(whole) // 2]: "",
        whole[:100]: "",
        random.Random(7).randbytes(4096): "",
        altered(
            whole, item_bias=torch.zeros(3)
        ): f"tensor item_bias is [3], its config makes it [{active.n_items}]",
        altered(whole, **{"position.weight": torch.zeros(2, 2)}): "tensor position.weight is [2, 2]",
    }
    for damaged, reason in shapes.items():
        path.write_bytes(damaged)
        monkeypatch.setattr(artifacts, "_loaded", type(artifacts._loaded)())  # as in a fresh process
        with pytest.raises(CommandError) as raised:
            run("embed")
        message = str(raised.value)
        assert message.startswith(
            f"The model file of version {active.pk} ({active.artifact.name}) is damaged: {reason}"
        )
        assert message.endswith(
            "Restore it, roll back to the version that served before (`python manage.py activate_model "
            "--rollback`), or retrain: `python manage.py train_model --activate`."
        )
        assert "\n" not in message
    assert list(ModelVersion.objects.values_list("pk", flat=True)) == [active.pk]


def test_a_damaged_model_file_the_previous_version_shares_does_not_advise_rolling_back(shop, monkeypatch):
    """`embed` makes a version that shares the file of the version it copies: rolling back
    from one to the other reads the same damaged file, back and forth."""
    source = pipeline.retrain().version
    copy = pipeline.refresh_vectors().version
    assert copy.artifact.name == source.artifact.name
    Path(copy.artifact.path).write_bytes(b"")
    for active, previous in ((copy, source), (source, copy)):
        monkeypatch.setattr(artifacts, "_loaded", type(artifacts._loaded)())  # as in a fresh process
        with pytest.raises(CommandError) as raised:
            run("embed")
        assert str(raised.value) == (
            f"The model file of version {active.pk} ({active.artifact.name}) is damaged: The stored "
            "model file is empty or truncated. Restore it, or retrain: `python manage.py train_model "
            f"--activate`. Rolling back does not help: version {previous.pk}, which served before, "
            "shares this file (`embed` made one version from the other)."
        )
        run("activate_model", "--rollback")


def test_a_device_this_machine_lacks_is_one_line_from_every_command_that_trains_or_embeds(shop):
    """cuda:99: no machine here has a hundred GPUs, and one without CUDA says so the same way."""
    active = pipeline.retrain().version
    versions = ModelVersion.objects.count()
    product = str(shop.products[0].pk)
    with override_settings(RECOMMENDATIONS=tiny_settings(DEVICE="cuda:99")):
        for args in (
            ["embed"],
            ["embed", "--products", product],
            ["embed", "--model-version", str(active.pk)],
            ["train_model"],
            ["evaluate", "--models", "popularity"],
        ):
            with pytest.raises(CommandError) as raised:
                run(*args)
            message = str(raised.value)
            assert message.startswith("The device is 'cuda:99' but torch sees "), (args, message)
            assert "set RECOMMENDATIONS['DEVICE'] (or the command's --device) to 'auto' or 'cpu'." in message
    assert ModelVersion.objects.count() == versions


def test_evaluate_prints_one_table(shop):
    out = run("evaluate", "--models", "popularity,item_knn,two_tower", "--epochs", "1")
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in table[1:]] == ["popularity", "item_knn", "two_tower"]


def test_evaluate_reports_each_model_as_it_is_done_and_the_mean_of_folds(shop):
    out = run("evaluate", "--models", "popularity,item_knn", "--folds", "2")
    assert out.index("Fold 1/2") < out.index("popularity: HR@10=") < out.index("Fold 2/2")
    assert out.count("item_knn: HR@10=") == 2
    assert "Mean over the 2 folds:" in out and out.rstrip().splitlines()[-1].startswith("| item_knn |")


@pytest.mark.parametrize("n_products", [5, 15])
def test_a_catalogue_smaller_than_the_top_k_trains_and_evaluates(db, n_products):
    """HR@10 and HR@20 rank the whole catalogue when it is smaller than 10 or 20 products."""
    make_shop(n_stores=1, products_per_store=n_products, n_users=8, events_per_user=6)
    out = run("train_model", "--epochs", "2")
    version = ModelVersion.objects.get()
    assert version.status == ModelStatus.READY and "is ready" in out
    # Top 20 holds every product outside the history, and the target is never in the history.
    assert version.metrics["HR@20"] == 1.0
    out = run("evaluate", "--epochs", "1")
    table = [line for line in out.splitlines() if line.startswith("| ")]
    names = [line.split("|")[1].strip() for line in table[1:]]
    assert names == ["two_tower", "popularity", "item_knn", "ease", "als"]


@pytest.mark.parametrize("models", [",", " , ", ""])
def test_evaluate_refuses_a_list_of_no_models_rather_than_running_every_one(shop, models):
    with pytest.raises(CommandError, match=r"Give at least one model \(choices: als, ease, item_knn, "):
        run("evaluate", "--models", models)


def test_evaluate_says_why_the_two_tower_model_could_not_train_in_one_line(shop):
    with pytest.raises(CommandError) as raised:
        run("evaluate", "--models", "popularity,two_tower", "--config", '{"lr": 1e30}')
    message = str(raised.value)
    assert message.startswith("training loss became ") and "Lower the learning rate (lr=1e+30)" in message
    assert message.endswith(
        "(RECOMMENDATIONS['TRAINING'] sets the training options; a command's --config overrides them once.)"
    )
    assert isinstance(raised.value.__cause__, training.TrainingFailed)


@pytest.mark.django_db
def test_evaluate_on_a_split_that_leaves_nothing_to_learn_from_is_one_line():
    """Every shopper's second product comes at the same latest moment: a temporal split holds
    them all out, and no shopper has two products before it to learn a sequence from."""
    shop = make_shop(n_stores=1, products_per_store=10, n_users=8, events_per_user=1)
    first = dict(Event.objects.values_list("user_id", "product_id"))
    latest = timezone.now() - dt.timedelta(hours=1)
    Event.objects.bulk_create(
        Event(
            user=user,
            session_id=f"late-{user.pk}",
            event_type="view",
            timestamp=latest,
            product_id=str(next(p.pk for p in shop.products if str(p.pk) != first[user.pk])),
        )
        for user in shop.users
    )
    with pytest.raises(CommandError) as raised:
        run("evaluate", "--split", "temporal", "--models", "two_tower", "--epochs", "1")
    assert str(raised.value).startswith(
        "no user has two or more interactions to learn from (the model learns from each user's sequence): "
        "train on more interactions per user, e.g. a longer window of events or an evaluation split that "
        "keeps more of them for training (RECOMMENDATIONS['TRAINING'] sets"
    )


def test_evaluate_refuses_more_folds_than_shoppers_to_evaluate(shop):
    with pytest.raises(CommandError, match="61 folds need 61 shoppers .* there are 60: use at most 60 folds"):
        run("evaluate", "--folds", "61")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["train_model"], "catalogue is empty"),
        (["train_model", "--config", "[1]"], "must be a JSON object"),
        (["evaluate", "--config", "{lr: 1}"], "--config must be a JSON object: Expecting property name"),
        (["evaluate", "--folds", "1"], "at least 2"),
        (["evaluate", "--folds", "3", "--split", "temporal"], "they do not apply to the temporal split"),
        (["evaluate", "--window-days", "0"], "The window is 0.0 days: give a number of days > 0"),
        (["evaluate", "--window-days", "nan"], "The window is nan days: give a number of days > 0"),
        (["activate_model", "999"], "no model version 999"),
        (["activate_model", "--rollback"], "no previously active"),
        (["activate_model", "--list", "12"], "--list only lists the versions and changes nothing"),
        (["activate_model", "--list", "--rollback"], "--list only lists the versions"),
        (["embed"], "No model version is active"),
        (["embed", "--reindex"], "No model version is active, so there is no index to rebuild"),
    ],
)
def test_errors_say_what_to_do(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_a_training_stopped_by_sigterm_is_marked_failed_and_changes_nothing(committed_shop, tmp_path):
    """docker stop, systemd and timeout send SIGTERM: the version must not stay "training"."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.pipeline.worker_settings",
        "PIPELINE_TEST_DB": connection.settings_dict["NAME"],
        "MEDIA_ROOT": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    endless = '{"epochs": 100000, "patience": 100000, "min_epochs": 100000}'
    command = [sys.executable, "manage.py", "train_model", "--activate", "--config", endless]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    for line in process.stdout:  # until training is under way
        lines.append(line)
        if "epoch 2/" in line:
            break
    process.send_signal(signal.SIGTERM)
    output = "".join(lines) + process.stdout.read()
    assert process.wait(timeout=60) == 1, output
    version = ModelVersion.objects.get()
    assert (
        f"Interrupted: model version {version.pk} is marked failed, and no model version serves yet" in output
    )
    assert "Traceback" not in output
    assert version.status == ModelStatus.FAILED and queries.active_version(fresh=True) is None


class Terminal(StringIO):
    def isatty(self):
        return True


def draw_progress(stream):
    """What a command's progress bar leaves on `stream`: two stages, a line written mid-way."""
    bar = ProgressBar(OutputWrapper(stream))  # as a command's self.stdout
    for done in range(1001):
        bar("Writing vectors", done, 1000)
        if done == 500:
            bar.write("halfway")
    bar("Indexing", 0, 3)
    bar.close()
    return stream.getvalue()


def test_a_progress_bar_writes_one_line_per_stage_to_a_log_and_draws_in_place_on_a_terminal():
    # A log file (cron, CI: no terminal) gets each stage's start and the command's own lines,
    # no redraws of a bar.
    assert draw_progress(StringIO()).splitlines() == ["Writing vectors: 0/1,000", "halfway", "Indexing: 0/3"]
    # A terminal gets a bar per stage, redrawn in place: only the written line ends a line.
    drawn = draw_progress(Terminal())
    assert drawn.count("\n") == 1 and "halfway\n" in drawn
    starts = [part for part in drawn.split("\r") if " 0%|" in part]
    assert [part.split(":")[0] for part in starts] == ["Writing vectors", "Indexing"]
