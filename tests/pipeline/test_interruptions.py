"""What a killed worker, a database outage or Ctrl-C leaves behind, and what says so: versions
are never left `training` for good, and the commands name the version and its real state."""

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, connections

from recommendations import pipeline, training
from recommendations.models import ModelStatus, ModelVersion, PrecomputedList, ProductVector
from recommendations.vectors import activation, queries


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def terminate(wrapper):
    """End a connection's server process from another connection, as a database restart does."""
    pid = wrapper.connection.info.backend_pid
    with connections.create_connection("default").cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_a_failure_is_recorded_on_a_connection_the_outage_broke(caplog):
    version = ModelVersion.objects.create(status=ModelStatus.TRAINING)
    terminate(connection)
    with caplog.at_level(logging.ERROR, "recommendations.training"):
        training._fail(version, OperationalError("the connection is closed"), 5.0, [])
    version.refresh_from_db()
    assert version.status == ModelStatus.FAILED and version.error.startswith("OperationalError")
    assert f"Training of model version {version.pk} failed: OperationalError" in caplog.text


@pytest.mark.django_db
def test_a_failure_the_database_cannot_record_is_logged_for_the_next_retrain(monkeypatch, caplog):
    version = ModelVersion.objects.create(status=ModelStatus.TRAINING)

    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(ModelVersion, "save", unreachable)
    with caplog.at_level(logging.ERROR, "recommendations.training"):
        training._fail(version, OperationalError("the connection is closed"), 5.0, [])  # does not raise
    assert f"Training of model version {version.pk} failed" in caplog.text
    assert (
        f"Could not mark model version {version.pk} failed (database unreachable: connection refused); "
        "the next retrain will." in caplog.text
    )


@pytest.mark.django_db
def test_the_next_run_marks_versions_whose_worker_died_failed(monkeypatch):
    """Every training runs under the pipeline lock: one still `training` when a run takes the
    lock lost its worker (a SIGKILL, or the filesystem broker that never redelivers)."""
    killed = ModelVersion.objects.create(status=ModelStatus.TRAINING, task_id="dead-task")
    untracked = ModelVersion.objects.create(status=ModelStatus.TRAINING)  # a killed train_model
    retried = ModelVersion.objects.create(status=ModelStatus.TRAINING, task_id="this-task")
    new = ModelVersion.objects.create(status=ModelStatus.READY)
    monkeypatch.setattr(training, "train_model", lambda **kwargs: new)

    result = pipeline.retrain(task_id="this-task", activate=False)

    assert result.version == new
    errors = dict(ModelVersion.objects.filter(status=ModelStatus.FAILED).values_list("pk", "error"))
    assert errors[killed.pk] == errors[untracked.pk] == training.INTERRUPTED
    assert "the task was retried" in errors[retried.pk]  # this task's own first attempt


def fake_retrain(status, *, embedded=False, error=KeyboardInterrupt):
    """A pipeline.retrain that gets as far as a version in `status`, then is stopped by `error`."""

    def retrain(*, progress, **kwargs):
        version = ModelVersion.objects.create(status=status, dimensions=4)
        if embedded:
            ModelVersion.objects.filter(pk=version.pk).update(embedded_at=version.created_at)
        progress.bind(version)
        raise error

    return retrain, lambda: ModelVersion.objects.get().pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "embedded", "parts"),
    [
        (ModelStatus.FAILED, False, ["Interrupted: model version {pk} is marked failed, and no model"]),
        (
            ModelStatus.READY,
            False,
            [
                "Interrupted: model version {pk} is trained but not embedded, and no model version serves yet.",
                "To serve it: `python manage.py embed --model-version {pk}` then "
                "`python manage.py activate_model {pk}`; or retrain.",
            ],
        ),
        (
            ModelStatus.READY,
            True,
            ["model version {pk} is embedded but not active", "`python manage.py activate_model {pk}`"],
        ),
    ],
)
def test_an_interrupted_train_model_says_what_state_it_left(monkeypatch, status, embedded, parts):
    retrain, pk = fake_retrain(status, embedded=embedded)
    monkeypatch.setattr(pipeline, "retrain", retrain)
    with pytest.raises(CommandError) as raised:
        run("train_model", "--activate")
    for part in parts:
        assert part.format(pk=pk()) in str(raised.value)


@pytest.mark.django_db
def test_an_interrupted_retrain_names_the_version_that_still_serves(monkeypatch):
    serving = ModelVersion.objects.create(status=ModelStatus.ACTIVE, dimensions=4)
    monkeypatch.setattr(pipeline, "retrain", fake_retrain(ModelStatus.FAILED)[0])
    with pytest.raises(CommandError) as raised:
        run("train_model", "--activate")
    assert str(raised.value).endswith(f"is marked failed, and model version {serving.pk} still serves.")


@pytest.mark.django_db
def test_a_database_outage_is_one_line_that_names_the_version(monkeypatch):
    error = OperationalError("the connection is closed\nDETAIL: server closed the connection")
    retrain, pk = fake_retrain(ModelStatus.TRAINING, error=error)
    monkeypatch.setattr(pipeline, "retrain", retrain)
    with pytest.raises(CommandError) as raised:
        run("train_model")
    assert str(raised.value) == (
        "The database could not be reached or dropped the connection (the connection is closed DETAIL: "
        "server closed the connection). Check that PostgreSQL is running and that settings.DATABASES "
        "(DATABASE_URL) points to it, then run the command again. Model version "
        f"{pk()} does not serve, and the next retrain marks it failed if it was still training."
    )
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "outcome"),
    [
        (["activate_model", "--list"], "`python manage.py activate_model --list` shows which one serves"),
        (["activate_model", "--rollback"], "The version that serves changes only in the final switch"),
        (["embed"], "The version that serves changes only in the final switch"),
        (["evaluate"], "Evaluating stores nothing."),
        (["forget_crawlers"], "then run the command again."),
    ],
)
def test_a_connection_the_database_dropped_is_one_line_from_the_ml_commands(args, outcome):
    """The server ends the command's connection (as a restart does): the command printed
    psycopg's traceback."""
    connection.ensure_connection()
    terminate(connection)
    try:
        with pytest.raises(CommandError) as raised:
            run(*args)
    finally:
        connection.close()  # the next test connects anew
    message = str(raised.value)
    assert message.startswith("The database could not be reached or dropped the connection (")
    assert (
        "Check that PostgreSQL is running and that settings.DATABASES (DATABASE_URL) points to it" in message
    )
    assert outcome in message
    assert "\n" not in message and raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.mark.django_db(transaction=True)
def test_a_server_that_refuses_connections_is_one_line_with_psycopgs_hint_joined():
    """Nothing listens where the settings point (a stopped server): psycopg's message spans
    lines, its hint on the second."""
    connection.close()
    port = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = "1"  # no PostgreSQL there, by TCP or by socket
    try:
        with pytest.raises(CommandError) as raised:
            run("activate_model", "--list")
    finally:
        connection.settings_dict["PORT"] = port
        connection.close()
    message = str(raised.value)
    assert message.startswith("The database could not be reached or dropped the connection (connection")
    assert "Is the server running" in message and "\n" not in message and "\t" not in message


def test_a_plain_train_model_says_how_to_serve_it(shop):
    out = run("train_model", "--epochs", "1")
    version = ModelVersion.objects.get()
    assert (
        f"Model version {version.pk} is trained, not embedded: to serve it, `python manage.py embed "
        f"--model-version {version.pk}` then `python manage.py activate_model {version.pk}`." in out
    )


def test_the_pipeline_result_reports_the_status_after_activation(shop):
    result = pipeline.retrain()
    assert queries.active_version(fresh=True).pk == result.version.pk
    assert result.as_dict()["status"] == ModelStatus.ACTIVE  # not the "ready" it had before
    assert result.version.activated_at is not None


def test_a_redelivered_retrain_does_not_activate_its_version_over_one_activated_since(shop, caplog):
    """Its worker was killed with the version trained; while it was down an operator ran
    `train_model --activate`. The redelivered task resumes its version, embeds it, and leaves
    the operator's version serving (it activated the older one over it before)."""
    mine = training.train_model(task_id="redelivered")  # what the killed attempt had trained
    operators = pipeline.retrain().version
    caplog.set_level(logging.INFO, logger="recommendations")
    result = pipeline.retrain(task_id="redelivered")
    assert result.version.pk == mine.pk and not result.activated
    assert result.as_dict()["skipped"] == f"superseded by version {operators.pk}"
    assert queries.active_version(fresh=True).pk == operators.pk
    mine.refresh_from_db()
    assert mine.status == ModelStatus.READY and mine.embedded_at is not None  # ready to activate by hand
    assert f"Resuming model version {mine.pk}" in caplog.text
    assert (
        f"Not activating resumed model version {mine.pk}: version {operators.pk} was activated" in caplog.text
    )


def test_a_retrain_handed_out_again_after_it_finished_leaves_the_version_it_activated_alone(shop, caplog):
    """Redis hands a running task out again at once when the worker's broker connection drops
    (its acknowledgement is lost with it): the second run found the version the first one
    activated and embedded it again, rewriting the vectors that serve and dropping its lists."""
    first = pipeline.retrain(task_id="handed-out-twice")
    version = first.version
    vectors = set(ProductVector.objects.filter(model_version=version).values_list("pk", flat=True))
    lists = PrecomputedList.objects.filter(model_version=version).count()
    assert vectors and lists
    caplog.set_level(logging.INFO, logger="recommendations")
    again = pipeline.retrain(task_id="handed-out-twice")
    assert again.version.pk == version.pk and not again.activated
    assert again.as_dict()["skipped"] == (
        f"version {version.pk}, made by an earlier attempt of this task, serves already"
    )
    assert set(ProductVector.objects.filter(model_version=version).values_list("pk", flat=True)) == vectors
    assert PrecomputedList.objects.filter(model_version=version).count() == lists
    assert queries.active_version(fresh=True).pk == version.pk
    assert ModelVersion.objects.count() == 1


def test_yielding_to_a_newer_version_is_decided_under_the_activation_lock(shop):
    """The check and the switch are one locked step: an older version asked to yield keeps the
    newer active one serving, and is left ready with its vectors."""
    older = training.train_model()
    pipeline.embed_version(older)
    newer = pipeline.retrain().version
    result = activation.activate(older, yield_to_newer=True)
    assert result.superseded_by.pk == newer.pk
    assert queries.active_version(fresh=True).pk == newer.pk
    older.refresh_from_db()
    assert older.status == ModelStatus.READY
    assert activation.activate(older).version.pk == older.pk  # without yielding it switches


def test_a_redelivered_retrain_activates_its_version_over_one_activated_before_it_was_made(shop):
    older = pipeline.retrain().version
    mine = training.train_model(task_id="redelivered")
    result = pipeline.retrain(task_id="redelivered")
    assert result.version.pk == mine.pk and result.activated and not result.skipped
    assert queries.active_version(fresh=True).pk == mine.pk
    older.refresh_from_db()
    assert older.status == ModelStatus.READY
