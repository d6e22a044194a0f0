"""The model registry admin: metrics, training curve, progress, and the actions."""

import datetime as dt
import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.db.models import F, Max, Min
from django.urls import reverse
from django.utils import formats, timezone

from recommendations import training
from recommendations.locks import advisory_lock
from recommendations.models import Event, ModelStatus, ModelVersion
from recommendations.vectors import activation
from tests.pipeline.test_vectors import make_version

CHANGELIST = "admin:recommendations_modelversion_changelist"


@pytest.fixture
def staff(client, db):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)
    return client


def trained(seed):
    version = make_version(n=30, seed=seed)
    version.metrics = {"HR@10": 0.31, "NDCG@10": 0.17, "protocol": "leave_one_out", "n_users": 40}
    version.metrics["baselines"] = {"popularity": {"HR@10": 0.05, "NDCG@10": 0.02}}
    version.training_curve = [
        {"epoch": e, "loss": 5.0 - e, "val_ndcg10": 0.05 * e, "seconds": 1.0} for e in range(1, 4)
    ]
    version.training_seconds = 75.0
    version.save()
    return version


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_list_and_detail_show_metrics_curve_and_the_missing_active_version(staff):
    version = trained(1)
    version.vector_search = {"index": "hnsw", "ef_search": 200, "recall": 0.981}
    version.save()
    ModelVersion.objects.create(
        status=ModelStatus.TRAINING, progress={"stage": "training", "done": 3, "total": 10}
    )
    page = staff.get(reverse(CHANGELIST))
    assert page.status_code == 200
    body = page.content.decode()
    assert "0.1700" in body and "1m 15s" in body and "training 3/10 (30%)" in body
    assert any("No model version is active" in m for m in messages_of(page))
    assert "Retrain now" in body and "Roll back" in body
    detail = staff.get(
        reverse("admin:recommendations_modelversion_change", args=[version.pk])
    ).content.decode()
    assert "<svg" in detail and "<polyline" in detail and "validation NDCG@10" in detail
    assert "popularity" in detail and "0.0500" in detail
    assert "tuned on this version" in detail and "&quot;ef_search&quot;: 200" in detail


def test_activate_action_and_rollback_button(staff):
    first, second = trained(1), trained(2)
    activation.activate(first)
    url = reverse(CHANGELIST)
    both = staff.post(
        url, {"action": "activate_selected", "_selected_action": [first.pk, second.pk]}, follow=True
    )
    assert "Select exactly one version to activate (2 selected)" in messages_of(both)[0]
    done = staff.post(url, {"action": "activate_selected", "_selected_action": [second.pk]}, follow=True)
    assert (
        f"Activated 1 version: two_tower v{second.pk} (active) now serves. Version {first.pk} is kept"
        in (messages_of(done)[0])
    )
    again = staff.post(url, {"action": "activate_selected", "_selected_action": [second.pk]}, follow=True)
    assert messages_of(again) == [f"Nothing changed: two_tower v{second.pk} (active) already serves."]
    back = staff.post(reverse("admin:recommendations_modelversion_rollback"), follow=True)
    assert (
        f"Rolled back 1 version: two_tower v{first.pk} (active) serves again (version {second.pk}"
        in (messages_of(back)[0])
    )
    failed = ModelVersion.objects.create(status=ModelStatus.FAILED)
    refused = staff.post(url, {"action": "activate_selected", "_selected_action": [failed.pk]}, follow=True)
    assert "only a ready version can be activated" in messages_of(refused)[0]
    assert ModelVersion.objects.get(status=ModelStatus.ACTIVE).pk == first.pk


def test_rolling_back_to_a_version_whose_model_file_is_gone_warns(staff):
    first, second = trained(1), trained(2)
    first.artifact.name = "recommendations/models/gone.safetensors"  # deleted from storage
    first.save(update_fields=["artifact"])
    activation.activate(first)
    activation.activate(second)
    back = staff.post(reverse("admin:recommendations_modelversion_rollback"), follow=True)
    assert messages_of(back)[1] == (
        f"Model version {first.pk} serves, but its model file (recommendations/models/gone.safetensors) "
        "is missing, so products saved from now on get no vector until it is restored or a new version "
        "is trained: `python manage.py train_model --activate`."
    )


def test_an_action_reports_its_outcome_without_the_banners_of_the_state_before_it(staff):
    """The banners were added on an action's POST too: "No model version is active" beside
    "Activated 1 version", and twice beside a refusal (the POST's, then the list's)."""
    version = trained(1)
    failed = ModelVersion.objects.create(status=ModelStatus.FAILED)
    url = reverse(CHANGELIST)
    refused = staff.post(url, {"action": "activate_selected", "_selected_action": [failed.pk]}, follow=True)
    shown = messages_of(refused)
    assert "only a ready version can be activated" in shown[0]
    assert [m for m in shown if "No model version is active" in m] == shown[1:2] and len(shown) == 2
    done = staff.post(url, {"action": "activate_selected", "_selected_action": [version.pk]}, follow=True)
    assert messages_of(done) == [f"Activated 1 version: two_tower v{version.pk} (active) now serves."]


def test_a_running_pipeline_is_announced_and_retrain_now_queues_nothing_meanwhile(staff):
    """A retrain queued while one runs exited at once on another worker (the pipeline lock),
    or trained a second version after it on the same one, while the admin said "Retrain
    queued ... becomes active"."""
    with advisory_lock() as acquired:
        assert acquired
        page = staff.get(reverse(CHANGELIST))
        pressed = staff.post(reverse("admin:recommendations_modelversion_retrain"), follow=True)
    assert any("A retrain or embed is running now" in m for m in messages_of(page))
    assert messages_of(pressed)[0].startswith("Nothing was queued: a retrain or embed is running now")
    assert not any("Retrain queued" in m for m in messages_of(pressed))
    assert not any("running now" in m for m in messages_of(staff.get(reverse(CHANGELIST))))


def test_buttons_need_the_change_permission(client, db):
    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.post(reverse("admin:recommendations_modelversion_rollback")).status_code == 403


def detail(staff, version):
    url = reverse("admin:recommendations_modelversion_change", args=[version.pk])
    return staff.get(url).content.decode()


def test_a_version_without_metrics_says_why_from_its_own_row(staff):
    interrupted = ModelVersion.objects.create(
        status=ModelStatus.FAILED,
        error="Interrupted (KeyboardInterrupt) after 12s; the active version is unchanged.",
    )
    crashed = ModelVersion.objects.create(
        status=ModelStatus.FAILED,
        error="ValueError: could not broadcast input array\n\nTraceback (most recent call last): ...",
    )
    running = ModelVersion.objects.create(status=ModelStatus.TRAINING)
    few = ModelVersion.objects.create(
        status=ModelStatus.READY,
        metrics={"protocol": "leave_one_out", "note": "no shopper has 3+ interactions"},
    )
    pages = {version: detail(staff, version) for version in (interrupted, crashed, running, few)}
    assert (
        "Not evaluated, because training failed: Interrupted (KeyboardInterrupt) after 12s; "
        "the active version is unchanged." in pages[interrupted]
    )
    assert (
        "Not evaluated, because training failed: ValueError: could not broadcast input array<"
        in (pages[crashed])
    )
    assert "Not evaluated yet: training is under way." in pages[running]
    assert "Not evaluated: no shopper has 3+ interactions." in pages[few]
    assert not any("too few shoppers" in page for page in pages.values())


def test_a_version_shows_the_oldest_and_newest_event_it_was_trained_on(staff, shop):
    # Imported history that ended years before the run.
    Event.objects.update(timestamp=F("timestamp") - dt.timedelta(days=4000))
    oldest, newest = Event.objects.aggregate(Min("timestamp"), Max("timestamp")).values()
    version = training.train_model()
    assert abs(version.data_window_start - oldest) < dt.timedelta(seconds=1)  # read to the second
    assert abs(version.data_window_end - newest) < dt.timedelta(seconds=1)  # read to the second
    page = detail(staff, version)
    today = formats.date_format(timezone.localtime(), "DATE_FORMAT")
    for label, moment in (("Oldest event trained on", oldest), ("Newest event trained on", newest)):
        shown = page[page.index(label) :].split('<div class="readonly">')[1].split("</div>")[0]
        assert formats.date_format(timezone.localtime(moment), "DATE_FORMAT") in shown
        assert today not in shown  # not the time of the run


@pytest.mark.django_db
def test_the_migration_clears_the_run_times_older_versions_recorded_as_their_window():
    migration = importlib.import_module(
        "recommendations.migrations.0023_model_version_window_of_events_trained_on"
    )
    run = timezone.now()
    first_event = run - dt.timedelta(days=4000)
    all_events = ModelVersion.objects.create(
        config={"window_days": None}, data_window_start=first_event, data_window_end=run
    )
    last_month = ModelVersion.objects.create(
        config={"window_days": 30}, data_window_start=run - dt.timedelta(days=30), data_window_end=run
    )
    migration.clear_run_times(django_apps, None)
    all_events.refresh_from_db()
    last_month.refresh_from_db()
    assert (all_events.data_window_start, all_events.data_window_end) == (first_event, None)
    assert (last_month.data_window_start, last_month.data_window_end) == (None, None)
