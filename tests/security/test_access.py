"""Who may see what: shoppers only their own recommendations and events; audiences, previews
and model actions only for staff with the admin's permissions (or keys with the scope). Every
refusal is tested, and a refusal never tells whether the object asked for exists."""

import json
from dataclasses import dataclass
from functools import cached_property

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from recommendations.events.ids import stable_event_id
from recommendations.events.tracking import SESSION_KEY
from recommendations.experiments import lifecycle
from recommendations.models import Campaign, Event, Experiment, ExperimentStatus, Variant
from shop.models import Order
from tests.security.clients import browser, with_key

pytestmark = pytest.mark.django_db
FOR_YOU = "/api/recommendations/for-you/"
MISSING = 987654


def test_a_shopper_gets_only_their_own_recommendations(alice, bob):
    own = browser(alice)
    assert own.get(FOR_YOU, {"user": alice.pk}).status_code == 200
    someone_else = own.get(FOR_YOU, {"user": bob.pk})
    nobody = own.get(FOR_YOU, {"user": MISSING})
    assert someone_else.status_code == nobody.status_code == 403
    assert someone_else.json() == nobody.json(), "the refusal must not reveal whether the user exists"
    assert own.get(FOR_YOU, {"session_id": "someone-elses-session"}).status_code == 403
    anonymous = Client().get(FOR_YOU, {"user": bob.pk})
    assert anonymous.status_code == 403


def test_staff_and_read_keys_may_ask_for_anyone_and_learn_what_is_missing(staff, bob, make_key):
    for client in (browser(staff), with_key(make_key("recommendations:read"))):
        assert client.get(FOR_YOU, {"user": bob.pk}).status_code == 200
        assert client.get(FOR_YOU, {"user": MISSING}).status_code == 404


def test_a_shopper_cannot_write_events_as_someone_else(alice, bob, products):
    events = [
        {"event_type": "view", "product_id": products[0].pk, "user_id": bob.pk},
        {"event_type": "view", "product_id": products[0].pk, "session_id": "bobs-session"},
    ]
    response = browser(alice).post(
        "/api/events/", json.dumps({"events": events}), content_type="application/json"
    )
    assert response.status_code == 400
    assert {"user_id", "session_id"} <= {
        name for error in response.json()["errors"] for name in error["errors"]
    }
    assert not Event.objects.exists()


def test_a_visitor_cannot_take_the_event_ids_of_purchases_to_come(products):
    """A purchase's id is `order:<order pk>:<product pk>`, and order numbers are shown to every
    buyer. A browser's ids are kept apart, so claiming them first cannot stop a sale being stored."""
    details = {"name": "A", "email": "a@example.com", "address": "1 St", "city": "X", "postcode": "1"}

    def buy(client, product):
        client.post(reverse("shop:cart_add"), {"product": product.pk, "quantity": 1})
        assert client.post(reverse("shop:checkout"), details).status_code == 302
        return Order.objects.latest("pk")

    attacker, buyer, stranger = browser(), browser(), browser()
    next_order = buy(attacker, products[0]).pk + 1
    claims = [
        {"event_id": f"order:{next_order + n}:{p.pk}", "event_type": "view", "product_id": p.pk}
        for n in range(3)
        for p in products
    ]
    batch = json.dumps({"events": claims})
    first = attacker.post("/api/events/", batch, content_type="application/json")
    assert first.json() == {"received": 9, "stored": 9, "duplicates": 0, "opted_out": 0, "bots": 0}
    retried = attacker.post("/api/events/", batch, content_type="text/plain")  # the beacon's retry
    assert retried.json()["duplicates"] == 9, "a session's own ids are still stored once"
    other = stranger.post("/api/events/", batch, content_type="application/json")
    assert other.json()["stored"] == 9, "another session's ids do not collide with these"

    order = buy(buyer, products[1])
    assert order.pk == next_order
    purchase = Event.objects.get(event_id=stable_event_id("order", order.pk, products[1].pk))
    assert purchase.event_type == "purchase"
    assert purchase.session_id == buyer.session[SESSION_KEY]
    assert not Event.objects.filter(event_type="view", event_id__startswith="order:").exists()


def test_audiences_are_for_staff_and_audience_keys_only(alice, staff, make_key, products):
    campaign = Campaign.objects.create(name="Spring", product_ids=[str(products[0].pk)])
    url, missing = f"/api/campaigns/{campaign.pk}/audience/", f"/api/campaigns/{MISSING}/audience/"
    refused = {
        "anonymous": Client(),
        "shopper": browser(alice),
        "key without audiences:read": with_key(make_key("recommendations:read", "events:write")),
    }
    for who, client in refused.items():
        existing, absent = client.get(url), client.get(missing)
        assert existing.status_code in (401, 403), who
        assert (absent.status_code, absent.json()) == (existing.status_code, existing.json()), who
        assert client.get("/api/campaigns/").status_code in (401, 403), who
    for client in (browser(staff), with_key(make_key("audiences:read"))):
        assert client.get(url).status_code == 200
        assert client.get(missing).status_code == 404


def test_campaign_and_experiment_changes_need_staff_even_with_an_audience_key(make_key, staff):
    key = with_key(make_key("audiences:read"))
    body = {"name": "Flash", "product_ids": ["1"]}
    assert key.post("/api/campaigns/", body, content_type="application/json").status_code == 403
    assert (
        key.post("/api/experiments/", {"key": "x", "name": "X"}, content_type="application/json").status_code
        == 403
    )
    assert not Campaign.objects.exists()


def engine_admin_pages():
    """The changelist of every admin page of the engine: previews, model versions, events, ..."""
    return [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
        if model._meta.app_label == "recommendations"
    ]


def test_previews_and_model_actions_are_staff_only(alice):
    pages = engine_admin_pages()
    assert "/admin/recommendations/userpreview/" in pages
    shopper = browser(alice)
    for page in pages:
        for client in (Client(), shopper):
            response = client.get(page)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), page
            # An admin action posted by a non-staff user goes to the login page, not the action.
            acted = client.post(page, {"action": "delete_selected", "_selected_action": ["1"]})
            assert acted.status_code == 302 and acted["Location"].startswith("/admin/login/"), page


def test_staff_without_permissions_are_refused_the_engine_admin(django_user_model):
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    client = browser(clerk)
    for page in engine_admin_pages():
        assert client.get(page).status_code == 403, page


def test_the_erase_action_is_not_offered_without_the_delete_permission(django_user_model, alice):
    from django.contrib.auth.models import Permission

    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.add(
        Permission.objects.get(codename="view_user"), Permission.objects.get(codename="change_user")
    )
    User = get_user_model()
    page = reverse(f"admin:{User._meta.app_label}_{User._meta.model_name}_changelist")
    client = browser(clerk)
    response = client.post(
        page, {"action": "erase_personal_data", "_selected_action": [alice.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302) and b"Erased the personal data" not in response.content


def grant(user, *permissions: str) -> None:
    """Give `user` each "app_label.codename" permission, as a superuser would in the admin."""
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


class Objects:
    """What the requests below act on, made when first asked for (one running experiment at most)."""

    def __init__(self, shopper, products):
        self.shopper, self.product_ids = shopper, [str(p.pk) for p in products]

    @cached_property
    def campaign(self) -> Campaign:
        return Campaign.objects.create(name="Spring", product_ids=self.product_ids)

    def experiment(self, key: str) -> Experiment:
        experiment = Experiment.objects.create(key=key, name=key)
        Variant.objects.create(experiment=experiment, key="a", traffic_share=50, is_control=True)
        Variant.objects.create(experiment=experiment, key="b", traffic_share=50)
        return experiment

    @cached_property
    def draft(self) -> Experiment:
        return self.experiment("draft")

    @cached_property
    def running(self) -> Experiment:
        return lifecycle.start(self.experiment("running"))


@dataclass(frozen=True)
class ApiRequest:
    """One request of the REST API, the permissions the admin asks for the same work, its success."""

    method: str
    path: object  # Objects -> str
    needs: tuple[str, ...]
    succeeds: int
    body: object = None  # Objects -> dict, for a JSON body

    def send(self, client: Client, objects: Objects):
        data = json.dumps(self.body(objects)) if self.body is not None else None
        kwargs = {"content_type": "application/json"} if data is not None else {}
        return getattr(client, self.method)(self.path(objects), data, **kwargs)


USER_VIEW = "auth.view_user"
PREVIEW = "recommendations.view_userpreview"
# The security review's requests (a clerk published a campaign, exported every shopper's e-mail,
# ran an experiment and read another shopper's history), and each other write of the same models.
API_REQUESTS = {
    "list campaigns": ApiRequest("get", lambda o: "/api/campaigns/", ("recommendations.view_campaign",), 200),
    "list campaigns (may change them)": ApiRequest(
        "get", lambda o: "/api/campaigns/", ("recommendations.change_campaign",), 200
    ),
    "publish a campaign": ApiRequest(
        "post",
        lambda o: "/api/campaigns/",
        ("recommendations.add_campaign",),
        201,
        lambda o: {"name": "Clerk promo", "kind": "promotion", "product_ids": o.product_ids, "priority": 99},
    ),
    "change a campaign": ApiRequest(
        "patch",
        lambda o: f"/api/campaigns/{o.campaign.pk}/",
        ("recommendations.change_campaign",),
        200,
        lambda o: {},
    ),
    "delete a campaign": ApiRequest(
        "delete", lambda o: f"/api/campaigns/{o.campaign.pk}/", ("recommendations.delete_campaign",), 204
    ),
    "export an audience's e-mails": ApiRequest(
        "get",
        lambda o: f"/api/campaigns/{o.campaign.pk}/audience/?format=csv",
        ("recommendations.view_campaign", "recommendations.view_segment", USER_VIEW),
        200,
    ),
    "create an experiment": ApiRequest(
        "post",
        lambda o: "/api/experiments/",
        ("recommendations.add_experiment",),
        201,
        lambda o: {
            "key": "clerk",
            "name": "Clerk",
            "variants": [
                {"key": "a", "traffic_share": "50", "is_control": True},
                {"key": "b", "traffic_share": "50"},
            ],
        },
    ),
    "start an experiment": ApiRequest(
        "post", lambda o: f"/api/experiments/{o.draft.pk}/start/", ("recommendations.change_experiment",), 200
    ),
    "stop an experiment": ApiRequest(
        "post",
        lambda o: f"/api/experiments/{o.running.pk}/stop/",
        ("recommendations.change_experiment",),
        200,
        lambda o: {},
    ),
    "read an experiment's results": ApiRequest(
        "get",
        lambda o: f"/api/experiments/{o.running.pk}/results/",
        ("recommendations.view_experiment",),
        200,
    ),
    "another shopper's history": ApiRequest(
        "get",
        lambda o: f"/api/recommendations/recently-viewed/?user={o.shopper.pk}&explain=1",
        (PREVIEW,),
        200,
    ),
    "another shopper's campaigns": ApiRequest(
        "get", lambda o: f"/api/campaigns/for-me/?user={o.shopper.pk}", (PREVIEW,), 200
    ),
    "another visitor's session": ApiRequest(
        "get", lambda o: "/api/recommendations/for-you/?session_id=someone-else", (PREVIEW,), 200
    ),
}


@pytest.fixture
def clerk(django_user_model):
    """Staff with no permission and not a superuser: the admin refuses them every engine page."""
    return django_user_model.objects.create_user("clerk", is_staff=True)


def test_staff_without_permissions_get_no_more_from_the_api_than_from_the_admin(clerk, bob, products):
    client, objects = browser(clerk), Objects(bob, products)
    for what, request in API_REQUESTS.items():
        response = request.send(client, objects)
        assert response.status_code == 403, what
        # The refusal names what to ask for (as CSV for the audience's CSV).
        assert request.needs[-1] in response.content.decode(), what
    assert list(Campaign.objects.values_list("name", flat=True)) == ["Spring"], "nothing was published"
    assert set(Experiment.objects.values_list("key", "status")) == {
        ("draft", ExperimentStatus.DRAFT),
        ("running", ExperimentStatus.RUNNING),
    }, "no experiment was created, started or stopped"


@pytest.mark.parametrize("what", API_REQUESTS)
def test_the_permissions_the_admin_asks_open_each_api_request(what, clerk, bob, products):
    request = API_REQUESTS[what]
    for left_out in request.needs if len(request.needs) > 1 else ():
        clerk.user_permissions.clear()
        grant(clerk, *(name for name in request.needs if name != left_out))
        refused = request.send(browser(clerk), Objects(bob, products))
        assert refused.status_code == 403 and left_out in refused.content.decode(), left_out
    clerk.user_permissions.clear()
    grant(clerk, *request.needs)
    response = request.send(browser(clerk), Objects(bob, products))
    assert response.status_code == request.succeeds, response.content


@pytest.mark.parametrize("what", API_REQUESTS)
def test_superusers_may_send_every_api_request(what, staff, bob, products):
    request = API_REQUESTS[what]
    response = request.send(browser(staff), Objects(bob, products))
    assert response.status_code == request.succeeds, response.content


def test_api_keys_keep_their_scopes_whatever_staff_may(make_key, bob, products):
    objects = Objects(bob, products)
    audiences, reader = with_key(make_key("audiences:read")), with_key(make_key("recommendations:read"))
    for what in ("list campaigns", "export an audience's e-mails"):
        assert API_REQUESTS[what].send(audiences, objects).status_code == 200, what
    for what in ("another shopper's history", "another shopper's campaigns", "another visitor's session"):
        assert API_REQUESTS[what].send(reader, objects).status_code == 200, what
    for what, request in API_REQUESTS.items():
        if request.method != "get" or "experiment" in what:
            assert request.send(audiences, objects).status_code == 403, what


def test_preview_as_user_and_the_apis_user_parameter_follow_one_rule(clerk, bob, products):
    """Both show a shopper's lists and history: the same permission opens both, or neither."""
    page = reverse("admin:recommendations_userpreview_changelist")
    history = API_REQUESTS["another shopper's history"]

    def both() -> tuple[int, int]:
        client = browser(clerk)
        page_answer = client.get(page, {"user": bob.username})
        api_answer = history.send(client, Objects(bob, products))
        return page_answer.status_code, api_answer.status_code

    assert both() == (403, 403)
    grant(clerk, USER_VIEW)  # seeing accounts is not seeing what they browse
    assert both() == (403, 403)
    grant(clerk, PREVIEW)
    assert both() == (200, 200)
