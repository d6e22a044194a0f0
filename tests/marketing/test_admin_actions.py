"""Bulk admin actions that change data need the permission to change it: Django checks only
the permissions an action declares, so an undeclared one runs for a view-only user. And the
beat schedule's form, whose tasks those actions run."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from recommendations.marketing.audiences import create_segment
from recommendations.models import ApiKey, Campaign, Experiment, Segment, Variant
from recommendations.models.api_keys import Scope
from tests.marketing.test_attribution import planted, running_experiment

# Actions that only read: a user who may view the rows may run them.
READING_ACTIONS = {"export_csv"}


@pytest.fixture
def viewer(db):
    """Staff holding every view_* permission and nothing else."""
    user = get_user_model().objects.create_user("viewer", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_view_only_user_is_offered_only_actions_that_read(viewer):
    request = RequestFactory().get("/admin/")
    request.user = viewer
    offered = {
        f"{model._meta.label}.{name}"
        for model, model_admin in admin.site._registry.items()
        for name in model_admin.get_actions(request)
        if name not in READING_ACTIONS
    }
    assert offered == set()


def draft_experiment() -> Experiment:
    experiment = Experiment.objects.create(key="draft", name="Draft")
    Variant.objects.create(experiment=experiment, key="a", is_control=True, traffic_share=50)
    Variant.objects.create(experiment=experiment, key="b", traffic_share=50)
    return experiment


def experiment_with_a_winner() -> Experiment:
    start = timezone.now() - dt.timedelta(days=3)
    experiment, control, challenger = running_experiment(start, key="won", min_visitors=150)
    planted(experiment, control, 200, 20, start=start)
    planted(experiment, challenger, 200, 44, start=start)
    return experiment


def periodic_task() -> PeriodicTask:
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(name="hourly", task="tasks.nothing", interval=every_hour)


@dataclass(frozen=True)
class Action:
    model: str  # app_label_modelname, as in the admin's URL names
    name: str
    make: Callable[[object], object]  # the shop -> the object the action is run on
    state: Callable[[], object]  # what the action changes, read from the database


ACTIONS = [
    Action(
        "recommendations_apikey",
        "revoke",
        lambda shop: ApiKey.objects.create_key("reader", [Scope.RECOMMENDATIONS_READ])[0],
        lambda: list(ApiKey.objects.values_list("revoked_at", flat=True)),
    ),
    Action(
        "recommendations_experiment",
        "start_selected",
        lambda shop: draft_experiment(),
        lambda: list(Experiment.objects.values_list("status", flat=True)),
    ),
    Action(
        "recommendations_experiment",
        "stop_and_promote_selected",
        lambda shop: experiment_with_a_winner(),
        lambda: list(Experiment.objects.values_list("status", "winner")),
    ),
    Action(
        "recommendations_campaign",
        "save_audiences",
        lambda shop: Campaign.objects.create(name="Tea week", category_names=["Tea"]),
        lambda: Segment.objects.count(),
    ),
    Action(
        "recommendations_segment",
        "refresh",
        lambda shop: create_segment(Campaign.objects.create(name="Tea week", category_names=["Tea"])),
        lambda: list(Segment.objects.values_list("refreshed_at", flat=True)),
    ),
    Action(
        "django_celery_beat_periodictask",
        "disable_tasks",
        lambda shop: periodic_task(),
        lambda: list(PeriodicTask.objects.filter(name="hourly").values_list("enabled", flat=True)),
    ),
]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_a_view_only_user_cannot_run_an_action_that_changes_data(action, viewer, shop):
    target = action.make(shop)
    url = reverse(f"admin:{action.model}_changelist")
    page = client_for(viewer).get(url)
    assert page.status_code == 200
    form = page.context["action_form"]  # None where the list offers no action at all
    assert form is None or action.name not in dict(form.fields["action"].choices)

    before = action.state()
    posted = {"action": action.name, "_selected_action": [target.pk]}
    client_for(viewer).post(url, posted)
    assert action.state() == before

    # The same request does change the data for a user who may: the case above tests something.
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client_for(root).post(url, posted)
    assert action.state() != before


def test_a_view_only_user_is_shown_no_button_that_would_refuse_them(viewer, shop):
    """The experiment page offered start, stop and promote, and the campaign preview "Save
    this audience as a segment", to staff who may only view them: each answered 403."""
    draft = draft_experiment()
    running = experiment_with_a_winner()
    campaign = Campaign.objects.create(name="Tea week", category_names=["Tea"])
    pages = [
        (reverse("admin:recommendations_experiment_change", args=[draft.pk]), "Start the experiment"),
        (reverse("admin:recommendations_experiment_change", args=[running.pk]), "Stop without promoting"),
        (reverse("admin:recommendations_experiment_change", args=[running.pk]), 'value="Promote"'),
        (reverse("admin:recommendations_campaign_preview", args=[campaign.pk]), "Save this audience"),
    ]
    root = client_for(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    for url, button in pages:
        assert button in root.get(url).content.decode(), url
        page = client_for(viewer).get(url)
        assert page.status_code == 200 and button not in page.content.decode(), url


def test_a_periodic_tasks_arguments_must_be_what_the_beat_can_send(db):
    """Beat's form took any JSON: kwargs of [] or args of "x" were saved and every run then
    failed to send, headers that are no object stopped the whole beat (it sets a header on
    them), and JSON nested too deeply was a 500."""
    task = periodic_task()
    url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    root = client_for(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    form = {
        "name": task.name,
        "task": task.task,
        "enabled": "on",
        "interval": str(task.interval_id),
        "args": "[]",
        "kwargs": "{}",
        "headers": "{}",
    }
    refused = {
        "args": ('"x"', "Enter a JSON list of arguments, e.g. [] or [30]."),
        "kwargs": ("[]", 'Enter a JSON object of keyword arguments, e.g. {} or {"days": 30}.'),
        "headers": ("[1]", "Enter a JSON object of message headers"),
    }
    for field, (value, error) in refused.items():
        page = root.post(url, form | {field: value})
        assert page.status_code == 200 and error in " ".join(page.context["adminform"].form.errors[field])
        deep = root.post(url, form | {field: "[" * 5000 + "]" * 5000})
        assert "Nested too deeply to read" in " ".join(deep.context["adminform"].form.errors[field])
    task.refresh_from_db()
    assert (task.args, task.kwargs, task.headers) == ("[]", "{}", "{}")
    assert root.post(url, form | {"kwargs": '{"days": 30}'}).status_code == 302
    task.refresh_from_db()
    assert ModelEntry(task).kwargs == {"days": 30}
