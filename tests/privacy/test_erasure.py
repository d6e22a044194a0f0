"""Right to erasure: forget_user, the user-deletion handler, the command and the admin action."""

import datetime as dt
import json
from io import StringIO

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from recommendations.events.ingestion import copy_rows, ingest
from recommendations.events.rows import EventRow
from recommendations.events.validation import Origin
from recommendations.features.interactions import load_interactions
from recommendations.models import (
    Assignment,
    AuditAction,
    AuditEntry,
    Event,
    Experiment,
    ListKind,
    ModelVersion,
    PrecomputedList,
    Segment,
    SegmentMember,
    ServedRecommendation,
    UserVector,
    Variant,
)
from recommendations.privacy import registry
from recommendations.privacy.erasure import forget_user
from shop.models import Category, Product, Store
from tests.waiting import run_behind_transaction

pytestmark = pytest.mark.django_db
User = get_user_model()
NOW = timezone.now()


# Products "1".."7" of the catalogue fixture, by label -> primary key and back.
PRODUCTS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def catalogue():
    """Real products: training reads only events of products in the catalogue."""
    store = Store.objects.create(name="Clay", slug="clay")
    category = Category.objects.create(name="Mugs")
    PRODUCTS.clear()
    for label in "1234567":
        product = Product.objects.create(
            title=f"Mug {label}", slug=f"mug-{label}", category=category, store=store, price=5, stock=3
        )
        PRODUCTS[label] = str(product.pk)


def labels(product_ids) -> list[str]:
    by_pk = {pk: label for label, pk in PRODUCTS.items()}
    return sorted(by_pk[pk] for pk in product_ids)


def remaining() -> list[str]:
    return labels(Event.objects.values_list("product_id", flat=True))


def add_event(user=None, session="", product="1", event_type="view", minutes_ago=10):
    return Event.objects.create(
        event_type=event_type,
        user=user,
        session_id=session,
        product_id=PRODUCTS[product],
        timestamp=NOW - dt.timedelta(minutes=minutes_ago),
    )


@pytest.fixture
def people():
    """Alice with data in every personal table; Bob, who later used the same browser, likewise."""
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    bob = User.objects.create_user("bob", "bob@example.com", "pw")
    # Alice browsed anonymously in session s-alice, then signed in (merged), and so did Bob
    # later on the same browser: the shared session's anonymous events are Alice's to erase
    # only where no one else claimed them.
    add_event(alice, "s-alice", "1")
    add_event(alice, "s-alice", "2", "purchase")
    add_event(None, "s-alice", "3")  # after logging out, same browser session
    add_event(alice, "s-shared", "4")
    add_event(bob, "s-shared", "5")
    add_event(bob, "s-bob", "6")
    add_event(None, "s-stranger", "7")
    versions = [ModelVersion.objects.create(dimensions=2) for _ in range(2)]
    for version in versions:
        UserVector.objects.create(model_version=version, user=alice, embedding=[1, 0])
        UserVector.objects.create(model_version=version, user=bob, embedding=[0, 1])
        for kind, key in (
            (ListKind.FOR_USER, alice.pk),
            (ListKind.FOR_USER, bob.pk),
            (ListKind.SIMILAR, alice.pk),
        ):
            # The last: a product whose key happens to be Alice's primary key keeps its list.
            PrecomputedList.objects.create(
                model_version=version, kind=kind, key=str(key), product_ids=["1"], scores=[1.0]
            )
    ServedRecommendation.objects.create(
        id="r1", kind="for_you", source="two_tower", user=alice, session_id="s-alice"
    )
    ServedRecommendation.objects.create(id="r2", kind="for_you", source="two_tower", session_id="s-alice")
    ServedRecommendation.objects.create(id="r3", kind="for_you", source="two_tower", user=bob)
    segment = Segment.objects.create(name="Loyal")
    SegmentMember.objects.create(segment=segment, user=alice)
    SegmentMember.objects.create(segment=segment, user=bob)
    experiment = Experiment.objects.create(key="ranker", name="Ranker")
    variant = Variant.objects.create(experiment=experiment, key="a", traffic_share=100, is_control=True)
    Assignment.objects.create(experiment=experiment, variant=variant, user=alice)
    Assignment.objects.create(experiment=experiment, variant=variant, session_id="s-alice")
    Assignment.objects.create(experiment=experiment, variant=variant, user=bob)
    return alice, bob


def bobs_and_strangers_rows():
    return {
        "events": remaining(),
        "vectors": UserVector.objects.count(),
        "served": sorted(ServedRecommendation.objects.values_list("id", flat=True)),
        "members": SegmentMember.objects.count(),
        "assignments": Assignment.objects.count(),
        "lists": sorted(PrecomputedList.objects.values_list("kind", "key")),
    }


def test_forget_user_deletes_every_personal_table_and_nothing_else(people):
    alice, bob = people
    staff = User.objects.create_user("dpo", is_staff=True)

    report = forget_user(alice, actor=staff, source="test")

    assert report.counts == {
        "events": 4,  # two merged, one anonymous in her session, one in the shared session
        "user_vectors": 2,  # one per model version
        "served_lists": 2,
        "segment_memberships": 1,
        "experiment_assignments": 2,
        "for_user_lists": 2,  # one per model version
        "sessions": 2,
    }
    assert bobs_and_strangers_rows() == {
        "events": ["5", "6", "7"],
        "vectors": 2,
        "served": ["r3"],
        "members": 1,
        "assignments": 1,
        "lists": [("for_user", str(bob.pk))] * 2 + [("similar", str(alice.pk))] * 2,
    }
    assert not Event.objects.filter(user=alice).exists()
    assert User.objects.filter(pk=alice.pk).exists(), "erasure keeps the account"


def test_audit_entry_has_counts_and_no_personal_data(people):
    alice, _ = people
    staff = User.objects.create_user("dpo", is_staff=True)
    report = forget_user(alice, actor=staff, source="test")

    entry = AuditEntry.objects.get(pk=report.audit_entry_id)
    assert (entry.action, entry.actor_id, entry.source) == (AuditAction.ERASURE, str(staff.pk), "test")
    assert entry.counts["events"] == 4
    stored = json.dumps([getattr(entry, f.attname) for f in AuditEntry._meta.fields], default=str)
    for personal in ("alice", "s-alice", "s-shared", "alice@example.com"):
        assert personal not in stored


def test_erasure_is_all_or_nothing(people, monkeypatch):
    alice, _ = people
    before = Event.objects.count(), UserVector.objects.count(), AuditEntry.objects.count()

    def fail(subject):
        raise RuntimeError("disk full")

    # Registered last, so the events and vectors are already deleted when it fails.
    monkeypatch.setitem(registry._registrations, "failing", registry.Registration("failing", fail))
    with pytest.raises(RuntimeError, match="disk full"):
        forget_user(alice)

    assert (Event.objects.count(), UserVector.objects.count(), AuditEntry.objects.count()) == before


def test_deleting_the_user_erases_their_sessions_too_and_audits(people):
    alice, bob = people
    alices_key = str(alice.pk)
    alice.delete()

    assert remaining() == ["5", "6", "7"]
    assert not Assignment.objects.filter(session_id="s-alice").exists()
    assert not ServedRecommendation.objects.filter(session_id="s-alice").exists()
    assert not PrecomputedList.objects.filter(kind=ListKind.FOR_USER, key=alices_key).exists()
    entry = AuditEntry.objects.get()
    assert entry.source == "user_deleted" and entry.counts["events"] == 4
    # Bulk deletion through a QuerySet sends the signal per user as well.
    User.objects.filter(pk=bob.pk).delete()
    assert remaining() == ["7"]
    assert AuditEntry.objects.count() == 2


@pytest.fixture
def leaving():
    """A user about to be deleted, and one event of theirs as a batch of each writer would store it."""
    user = User.objects.create_user("leaving")
    add_event(user, "s-leaving", "1")
    raw = {"event_type": "view", "product_id": PRODUCTS["2"], "user_id": user.pk, "session_id": "s-leaving"}
    row = EventRow("late-1", "view", user.pk, "s-leaving", PRODUCTS["2"], "", "", None, None, NOW, {}, "")
    writers = {
        "beacon": lambda: ingest([raw], Origin(trusted=True)).stored,
        "import": lambda: copy_rows([row]),  # in the transaction run_behind_transaction gives it, or its own
    }
    return user, writers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writer", ["beacon", "import"])
def test_events_sent_while_the_user_is_deleted_do_not_outlive_them(leaving, writer):
    """Events have no foreign key to the user: a batch that meets the uncommitted deletion
    waits for it and stores nothing for the deleted user (before, its events outlived the
    user and every retrain failed on them)."""
    user, writers = leaving

    def write():
        with transaction.atomic():
            return writers[writer]()

    _, stored = run_behind_transaction(lambda: User.objects.get(pk=user.pk).delete(), write)
    assert stored == 0
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Event.objects.filter(user_id=user.pk).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writer", ["beacon", "import"])
def test_a_batch_still_uncommitted_when_the_user_is_deleted_is_erased_with_them(leaving, writer):
    """The deletion waits for a batch of the user's that is written but not yet committed (an
    import's transaction), and then erases it too."""
    user, writers = leaving

    run_behind_transaction(writers[writer], lambda: User.objects.get(pk=user.pk).delete())

    assert not User.objects.filter(pk=user.pk).exists()
    assert not Event.objects.filter(user_id=user.pk).exists()


def test_a_later_retrain_sees_nothing_of_the_erased_user(people):
    alice, _ = people
    before = load_interactions(None, timezone.now())
    assert {f"u:{alice.pk}", "s:s-alice"} <= set(before.actors)

    forget_user(alice)

    after = load_interactions(None, timezone.now())
    assert alice.pk not in set(after.user_ids.tolist())
    assert not {f"u:{alice.pk}", "s:s-alice"} & set(after.actors)
    assert labels(set(after.products.tolist())) == ["5", "6", "7"]


# Tables that hold a user's primary key in a plain field, which no relation shows: (model,
# field, which rows). A new one belongs here, and in the registry or `keep`.
KEYED_BY_USER_IN_A_PLAIN_FIELD = [
    (PrecomputedList, "key", models.Q(kind=ListKind.FOR_USER)),  # "for you" lists
    (AuditEntry, "actor_id", None),  # the staff member who acted
]


def test_every_table_that_points_at_users_is_erased_or_deliberately_kept():
    """A new model with a relation to the user model, or a user's key in a plain field, must
    register a deleter (or say why not)."""
    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    kept = set(registry.kept_models())
    covered = registry.registered_models() | kept
    missing = [
        model._meta.label
        for model in apps.get_app_config("recommendations").get_models()
        if not model._meta.proxy
        and any(
            isinstance(field, models.ForeignKey) and field.related_model is user_model
            for field in model._meta.get_fields()
        )
        and model not in covered
    ]
    erased_by_key = [
        (r.model, r.user_field, r.where)
        for r in registry.registrations()
        if r.model is not None
        and r.user_field is not None
        and not r.model._meta.get_field(r.user_field).is_relation
    ]
    missing += [
        f"{model._meta.label}.{field}"
        for model, field, rows in KEYED_BY_USER_IN_A_PLAIN_FIELD
        if (model, field, rows) not in erased_by_key and model not in kept
    ]
    assert missing == [], (
        f"{missing} hold(s) personal data: call recommendations.privacy.registry.register_model() "
        "for it (user_field= and where= for a key in a plain field), or registry.keep(model, reason)"
    )
    # And the list knows every such registration.
    assert [r for r in erased_by_key if r not in KEYED_BY_USER_IN_A_PLAIN_FIELD] == []


def test_command_by_username_and_by_id(people, capsys):
    _alice, bob = people
    call_command("forget_user", "alice", str(bob.pk))
    out = capsys.readouterr().out
    assert "alice: erased 4 events" in out and f"{bob.pk}: erased 2 events" in out
    assert remaining() == ["7"]
    assert AuditEntry.objects.filter(source="command").count() == 2


def test_command_refuses_unknown_or_ambiguous_names_and_erases_nothing(people):
    _alice, bob = people
    with pytest.raises(CommandError, match="No user has the primary key or username 'nobody'"):
        call_command("forget_user", "alice", "nobody")
    namesake = User.objects.create_user(str(bob.pk))  # a username that is also Bob's primary key
    with pytest.raises(CommandError, match=f"primary key of user {bob.pk} .*Add --by username or --by pk"):
        call_command("forget_user", str(bob.pk))
    assert Event.objects.count() == 7 and not AuditEntry.objects.exists()
    # Either can be named: --by says how to read the name.
    call_command("forget_user", str(bob.pk), by="username", stdout=StringIO())
    assert AuditEntry.objects.get().counts and Event.objects.count() == 7  # the namesake had none
    call_command("forget_user", str(bob.pk), by="pk", stdout=StringIO())
    assert not Event.objects.filter(user=bob).exists() and namesake.pk != bob.pk


def test_admin_action_asks_first_then_erases(people, client):
    alice, bob = people
    staff = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(staff)
    url = reverse(f"admin:{User._meta.app_label}_{User._meta.model_name}_changelist")
    data = {"action": "erase_personal_data", "_selected_action": [alice.pk]}

    confirm = client.post(url, data)
    assert confirm.status_code == 200 and b"Erase personal data?" in confirm.content
    assert Event.objects.filter(user=alice).exists()

    done = client.post(url, {**data, "post": "yes"}, follow=True)
    assert "Erased the personal data of 1 user(s): 4 events" in done.content.decode()
    assert not Event.objects.filter(user=alice).exists() and Event.objects.filter(user=bob).exists()
    assert AuditEntry.objects.get().actor_id == str(staff.pk)


def test_admin_action_names_a_user_it_could_not_erase_and_erases_the_others(people, client, monkeypatch):
    """A host's registered erasure fails for Alice: hers is rolled back whole, Bob's is done,
    and the page says both (it was a 500 with no word of Bob)."""
    alice, bob = people

    def refuse_alice(subject):
        if subject.user_pk == alice.pk:
            raise RuntimeError("the CRM is down")
        return 0

    monkeypatch.setitem(registry._registrations, "crm", registry.Registration("crm", refuse_alice))
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    url = reverse(f"admin:{User._meta.app_label}_{User._meta.model_name}_changelist")
    data = {"action": "erase_personal_data", "_selected_action": [alice.pk, bob.pk], "post": "yes"}
    page = client.post(url, data, follow=True).content.decode()
    assert "Erased the personal data of 1 user(s)" in page
    assert (
        "Could not erase the personal data of 1 user(s), of whom nothing was erased: alice (the CRM is"
        in page
    )
    assert Event.objects.filter(user=alice).exists() and not Event.objects.filter(user=bob).exists()
    assert AuditEntry.objects.count() == 1


def test_segments_keep_their_size_true_when_members_are_erased_or_deleted(people, client):
    """A segment's size is what the admin shows: it must not wait for a refresh (one with
    auto-refresh off would never get one) to drop the people who are gone."""
    alice, bob = people
    Segment.objects.update(size=2, auto_refresh=False)  # as its last refresh saved it
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    users = reverse(f"admin:{User._meta.app_label}_{User._meta.model_name}_changelist")
    segments = reverse("admin:recommendations_segment_changelist")

    client.post(users, {"action": "erase_personal_data", "_selected_action": [alice.pk], "post": "yes"})
    assert '<td class="field-size">1</td>' in client.get(segments).content.decode()
    bob.delete()
    assert '<td class="field-size">0</td>' in client.get(segments).content.decode()
    assert Segment.objects.get().size == SegmentMember.objects.count() == 0


def test_an_admin_who_may_delete_users_deletes_one_with_all_their_rows(people, client):
    """The engine's read-only pages (served lists, user vectors) must not stop the admin's
    own "Delete" of a user: Django asks every registered admin of the rows it would cascade."""
    alice, bob = people
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    url = reverse(f"admin:{User._meta.app_label}_{User._meta.model_name}_delete", args=[alice.pk])
    confirm = client.get(url)
    assert confirm.status_code == 200 and b"Are you sure you want to delete" in confirm.content
    done = client.post(url, {"post": "yes"}, follow=True)
    assert done.status_code == 200 and not User.objects.filter(pk=alice.pk).exists()
    assert not UserVector.objects.filter(user_id=alice.pk).exists()
    assert UserVector.objects.filter(user=bob).exists()


def test_admin_action_needs_the_permission_to_delete_users(people, client):
    _alice, _ = people
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client.force_login(viewer)
    url = reverse(f"admin:{User._meta.app_label}_{User._meta.model_name}_changelist")
    page = client.get(url)
    assert page.status_code == 200 and b"erase_personal_data" not in page.content
    assert admin.site.get_model_admin(User).get_actions(page.wsgi_request).get("erase_personal_data") is None


@pytest.mark.django_db(transaction=True)
def test_lists_still_queued_when_the_person_is_erased_are_erased_too():
    """Served lists are written a moment after they are shown: erasure writes this process's
    queue first, so a list shown just before it does not reappear after it."""
    from recommendations.serving.attribution import flush_served, record_served
    from recommendations.serving.types import Audience

    alice = User.objects.create_user("alice-queued", "a@example.com", "pw")
    shown = record_served(
        kind="for_you",
        source="two_tower",
        audience=Audience(user=alice),
        product_ids=["1"],
        scores=[1.0],
        model_version_id=None,
        context={},
    )
    forget_user(alice)
    assert flush_served()
    assert not ServedRecommendation.objects.filter(pk=shown).exists()
