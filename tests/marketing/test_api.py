"""The marketing and experiment endpoints: answers, validation errors, permission refusals, CSV."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client, override_settings

from recommendations.events.tracking import SESSION_KEY
from recommendations.experiments import variant_for
from recommendations.marketing.audiences import create_segment, refresh_segment
from recommendations.marketing.export import audience_rows, user_labels, write_csv
from recommendations.models import (
    ApiKey,
    Assignment,
    Campaign,
    CampaignKind,
    Experiment,
    ExperimentStatus,
    Segment,
)
from recommendations.privacy.optout import set_opted_out
from tests.hostapp.models import Member
from tests.marketing.conftest import add_event
from tests.marketing.test_attribution import three_challengers

FOR_ME = "/api/campaigns/for-me/"


def audience_url(campaign) -> str:
    return f"/api/campaigns/{campaign.pk}/audience/"


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def key_client(*scopes: str) -> Client:
    _, raw = ApiKey.objects.create_key("newsletter", list(scopes))
    return Client(HTTP_AUTHORIZATION=f"Api-Key {raw}")


@pytest.fixture
def staff(db):
    """A superuser: what staff need of each permission is `tests/security/test_access.py`'s."""
    return get_user_model().objects.create_user("boss", password="pw", is_staff=True, is_superuser=True)


@pytest.fixture
def tea(shop):
    return Campaign.objects.create(name="Tea week", category_names=["Tea"], discount_text="-20% on tea")


def read_csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_for_me_answers_the_signed_in_visitor(shop, tea):
    Campaign.objects.create(name="Garden week", category_names=["Garden"])
    response = client_for(shop.users["tea_lover"]).get(FOR_ME, {"limit": 1})
    assert response.status_code == 200
    (only,) = response.json()["results"]
    assert (only["name"], only["discount_text"], only["method"]) == ("Tea week", "-20% on tea", "affinity")
    assert set(only["product_ids"]) == set(shop.ids("Tea"))


def test_for_me_follows_the_anonymous_session(shop, tea):
    garden = Campaign.objects.create(name="Garden week", category_names=["Garden"])
    client = Client()
    session = client.session
    session[SESSION_KEY] = "anon-garden"  # what the beacon or track() gives a new visitor
    session.save()
    add_event("view", session="anon-garden", product=shop.products["Garden"][0])
    assert client.get(FOR_ME).json()["results"][0]["id"] == garden.pk


def test_for_me_refuses_other_users_and_bad_parameters(shop, tea, staff):
    other = shop.users["coffee_lover"].pk
    refused = client_for(shop.users["tea_lover"]).get(FOR_ME, {"user": other})
    assert refused.status_code == 403 and "only get your own" in refused.json()["detail"]
    assert client_for(staff).get(FOR_ME, {"user": other}).status_code == 200
    bad = client_for(shop.users["tea_lover"]).get(FOR_ME, {"limit": 0})
    assert bad.status_code == 400 and "limit" in bad.json()
    typo = client_for(shop.users["tea_lover"]).get(FOR_ME, {"limt": 5})
    assert typo.status_code == 400 and "Unknown parameter" in typo.json()["limt"][0]


def test_audience_endpoint_refuses_everyone_but_staff_and_scoped_keys(shop, tea):
    anonymous = Client().get(audience_url(tea))
    assert anonymous.status_code == 403 and "staff" in anonymous.json()["detail"]
    shopper = client_for(shop.users["tea_lover"]).get(audience_url(tea))
    assert shopper.status_code == 403 and "audiences:read" in shopper.json()["detail"]
    wrong_scope = key_client("recommendations:read").get(audience_url(tea))
    assert wrong_scope.status_code == 403 and "audiences:read" in wrong_scope.json()["detail"]
    assert key_client("audiences:read").get(audience_url(tea)).status_code == 200
    # Staff need to be allowed to see the people too, not only the campaign and its segments.
    clerk = get_user_model().objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_campaign", "view_segment"]))
    no_people = client_for(clerk).get(audience_url(tea), {"format": "csv"})
    assert no_people.status_code == 403 and "auth.view_user" in read_csv(no_people)[0]["error"]
    clerk.user_permissions.add(Permission.objects.get(codename="view_user"))
    assert client_for(clerk).get(audience_url(tea), {"format": "csv"}).status_code == 200


def test_audience_as_json_then_csv_from_the_saved_segment(shop, tea, staff):
    live = client_for(staff).get(audience_url(tea)).json()
    assert (live["source"], live["method"], live["count"]) == ("live", "affinity", 2)
    assert [row["username"] for row in live["results"]] == ["tea_lover", "newbie"]

    segment = create_segment(tea, name="Tea newsletter")
    api = key_client("audiences:read")
    bad = api.get(audience_url(tea), {"format": "csv", "limit": "abc"})
    assert bad.status_code == 400 and read_csv(bad) == [{"error": "limit: A valid integer is required."}]
    response = api.get(audience_url(tea), {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert f"campaign-{tea.pk}-audience.csv" in response["Content-Disposition"]
    rows = read_csv(response)
    assert [(r["username"], r["email"]) for r in rows] == [
        ("tea_lover", "tea_lover@example.com"),
        ("newbie", "newbie@example.com"),
    ]
    assert list(rows[0]) == ["user_id", "username", "email", "score"]
    assert float(rows[0]["score"]) > float(rows[1]["score"]) > 0
    by_accept = api.get(audience_url(tea), HTTP_ACCEPT="text/csv")
    assert read_csv(by_accept) == rows
    assert api.get(audience_url(tea)).json()["segment"] == segment.pk


@pytest.mark.django_db
def test_audiences_of_a_user_model_without_an_email_field_leave_the_email_empty():
    """A host's user model may sign in by a handle and have no e-mail field: Django's
    `get_email_field_name()` still says "email", and the preview, the audience API and the
    exports read it (a 500 in each)."""
    with override_settings(AUTH_USER_MODEL="hostapp.Member"):
        ann = Member.objects.create(handle="=ann")
        assert user_labels() == ("Handle", "")
        rows = audience_rows([(ann.pk, 0.5)])
        assert rows == [{"user_id": ann.pk, "username": "=ann", "email": "", "score": 0.5}]
        out = io.StringIO()
        write_csv(rows, out)
    assert list(csv.DictReader(io.StringIO(out.getvalue()))) == [
        {"user_id": str(ann.pk), "username": "'=ann", "email": "", "score": "0.500000"}
    ]


def test_audience_of_an_empty_campaign_is_a_400_that_says_what_to_add(shop, staff):
    """`detail` is one text, as the README promises (it was a list of messages here)."""
    empty = Campaign.objects.create(name="Nothing yet", kind=CampaignKind.PROMOTION)
    response = client_for(staff).get(audience_url(empty))
    assert response.status_code == 400 and isinstance(response.json()["detail"], str)
    assert "promotes nothing: add products, categories or stores" in response.json()["detail"]
    as_csv = client_for(staff).get(audience_url(empty), {"format": "csv"})
    assert as_csv.status_code == 400 and "promotes nothing" in read_csv(as_csv)[0]["error"]
    assert client_for(staff).get("/api/campaigns/999999/audience/").status_code == 404


def test_campaign_validation_errors_in_the_api(shop, staff):
    client = client_for(staff)
    base = {"name": "Spring", "kind": "promotion", "category_names": ["Garden"]}
    reversed_dates = client.post(
        "/api/campaigns/",
        {**base, "starts_at": "2026-05-10T00:00:00Z", "ends_at": "2026-05-01T00:00:00Z"},
        content_type="application/json",
    )
    assert reversed_dates.status_code == 400
    assert "ends (2026-05-01 00:00) before it starts" in reversed_dates.json()["ends_at"][0]
    bad_rules = client.post(
        "/api/campaigns/", {**base, "audience_rules": {"max_audiance": 5}}, content_type="application/json"
    )
    assert (
        bad_rules.status_code == 400
        and "Unknown audience rule(s): max_audiance" in bad_rules.json()["audience_rules"][0]
    )
    unknown = client.post(
        "/api/campaigns/", {**base, "product_ids": ["999999", "abc"]}, content_type="application/json"
    )
    assert unknown.status_code == 400
    assert unknown.json()["product_ids"] == ["No such product: abc, 999999. Give primary keys."]
    for link in (
        "javascript:alert(document.cookie)",
        " JavaScript:alert(1)",
        "//evil.example/",
        "ftp://x.example/",
    ):
        refused = client.post("/api/campaigns/", {**base, "link_url": link}, content_type="application/json")
        assert refused.status_code == 400, link
        assert "a path on this site" in refused.json()["link_url"][0]
    assert not Campaign.objects.exists()
    created = client.post(
        "/api/campaigns/", {**base, "link_url": "/offers/garden/"}, content_type="application/json"
    )
    assert created.status_code == 201 and Campaign.objects.filter(name="Spring").exists()
    # A change that reverses the window is refused too, and nothing is written.
    campaign_id = created.json()["id"]
    patched = client.patch(
        f"/api/campaigns/{campaign_id}/", {"ends_at": "2000-01-01T00:00:00Z"}, content_type="application/json"
    )
    assert patched.status_code == 400 and Campaign.objects.get(pk=campaign_id).ends_at is None


def test_an_active_campaign_that_targets_nobody_is_refused_a_draft_is_kept(shop, staff):
    client = client_for(staff)
    benefit = {"name": "Perk", "kind": "member_benefit", "audience_rules": {}}
    refused = client.post("/api/campaigns/", benefit, content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["audience_rules"] == [
        "Member benefit 'Perk' names no customer segment. Add \"rfm_segments\" to its audience rules, "
        'e.g. ["loyal_high_spender"]. Or make it inactive to keep it as a draft until it does.'
    ]
    empty = client.post(
        "/api/campaigns/", {"name": "Promo", "kind": "promotion"}, content_type="application/json"
    )
    assert empty.status_code == 400
    assert "Campaign 'Promo' promotes nothing: add products" in empty.json()["non_field_errors"][0]
    assert not Campaign.objects.exists()
    draft = client.post("/api/campaigns/", {**benefit, "is_active": False}, content_type="application/json")
    assert draft.status_code == 201
    activated = client.patch(
        f"/api/campaigns/{draft.json()['id']}/", {"is_active": True}, content_type="application/json"
    )
    assert activated.status_code == 400 and not Campaign.objects.get().is_active


def test_campaign_writes_are_staff_only(shop, tea):
    reader = key_client("audiences:read")
    assert reader.get("/api/campaigns/").status_code == 200
    refused = reader.post("/api/campaigns/", {"name": "x"}, content_type="application/json")
    assert refused.status_code == 403 and "staff" in refused.json()["detail"]
    assert client_for(shop.users["tea_lover"]).get("/api/campaigns/").status_code == 403
    # Staff who may only view campaigns in the admin may only read them here.
    viewer = get_user_model().objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    assert client_for(viewer).get(f"/api/campaigns/{tea.pk}/").status_code == 200
    for write in (
        client_for(viewer).post("/api/campaigns/", {"name": "x"}, content_type="application/json"),
        client_for(viewer).patch(
            f"/api/campaigns/{tea.pk}/", {"priority": 9}, content_type="application/json"
        ),
        client_for(viewer).delete(f"/api/campaigns/{tea.pk}/"),
    ):
        assert write.status_code == 403 and "ask a superuser to grant them" in write.json()["detail"]
    assert list(Campaign.objects.values_list("name", "priority")) == [(tea.name, tea.priority)]


def experiment_body(*shares, key="home") -> dict:
    return {
        "key": key,
        "name": "Home page",
        "variants": [
            {"key": f"v{i}", "traffic_share": str(share), "is_control": i == 0}
            for i, share in enumerate(shares)
        ],
    }


def test_experiment_shares_must_sum_to_100(staff):
    client = client_for(staff)
    response = client.post("/api/experiments/", experiment_body(60, 30), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["variants"] == [
        "Traffic shares add up to 90%, not 100%. Adjust them (60, 30) so that they sum to 100."
    ]
    assert not Experiment.objects.exists()
    created = client.post(
        "/api/experiments/", experiment_body("33.33", "33.33", "33.34"), content_type="application/json"
    )
    assert created.status_code == 201 and len(created.json()["variants"]) == 3


def test_experiment_variants_need_one_control_and_distinct_keys(staff):
    body = experiment_body(50, 50, key="keys")
    body["variants"][1] |= {"key": "v0", "is_control": True}
    response = client_for(staff).post("/api/experiments/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["variants"] == [
        "Mark exactly one variant as the control: the others are compared with it.",
        "Variant key(s) 'v0' used more than once: give each variant of an experiment its own key.",
    ]
    assert not Experiment.objects.exists()


def test_a_started_experiment_keeps_its_key_and_variants(staff, db):
    client = client_for(staff)
    created = client.post("/api/experiments/", experiment_body(50, 50), content_type="application/json")
    url = f"/api/experiments/{created.json()['id']}/"
    client.post(f"{url}start/")
    renamed = client.patch(url, {"name": "Home v2", "key": "home"}, content_type="application/json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Home v2"
    rekeyed = client.patch(url, {"key": "home2"}, content_type="application/json")
    assert rekeyed.status_code == 400 and "cannot change" in rekeyed.json()["key"][0]
    reshared = client.patch(
        url, {"variants": experiment_body(60, 40)["variants"]}, content_type="application/json"
    )
    assert reshared.status_code == 400
    assert reshared.json()["variants"] == [
        "Variants of a started experiment cannot change; create a new experiment."
    ]
    assert Experiment.objects.get().key == "home"


def test_a_variant_names_a_recommender_serving_knows(staff):
    body = experiment_body(50, 50)
    body["variants"][1]["recommender"] = "populer"
    response = client_for(staff).post("/api/experiments/", body, content_type="application/json")
    assert response.status_code == 400
    assert (
        "'populer' is not a recommender; use one of two_tower"
        in response.json()["variants"]["1"]["recommender"][0]
    )


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("oops", "must be a JSON object of recommendation types"),
        ({"homepage": {"limit": 4}}, "'homepage' is not a recommendation type"),
        ({"default": {"limit": "abc"}}, "default: limit must be an integer from 1 to 100, not 'abc'."),
        ({"similar": {"max_per_shop": 1}}, "similar: 'max_per_shop' is not a rule"),
        ({"for_you": {"mmr_lambda": 2}}, "for_you: mmr_lambda must be null or a number from 0 to 1"),
        ({"trending": []}, "The rules of 'trending' must be a JSON object"),
    ],
)
def test_variant_rules_serving_cannot_apply_are_a_400(staff, rules, message):
    body = experiment_body(50, 50)
    body["variants"][1]["rules"] = rules
    response = client_for(staff).post("/api/experiments/", body, content_type="application/json")
    assert response.status_code == 400
    (problems,) = response.json()["variants"]["1"]["rules"]  # the second variant's
    assert message in problems
    assert not Experiment.objects.exists()


def test_experiment_results_name_the_test_and_the_adjusted_p_value(staff):
    experiment = three_challengers()
    results = client_for(staff).get(f"/api/experiments/{experiment.pk}/results/").json()
    assert (
        results["status"]
        == "No variant beats the control on conversion (p < 0.05, adjusted for 3 comparisons)."
    )
    conversion = results["variants"][1]["metrics"]["conversion"]
    assert conversion["test"] == "two-proportion z-test"
    assert conversion["comparisons"] == 3 and conversion["significant"] is False
    assert conversion["p_value"] == pytest.approx(0.0294, abs=1e-4)
    assert conversion["adjusted_p_value"] == pytest.approx(3 * conversion["p_value"], abs=1e-5)
    assert conversion["difference"] == pytest.approx(0.075)
    assert results["variants"][0]["metrics"]["conversion"]["test"] is None  # the control


def test_experiment_lifecycle_through_the_api(staff, db):
    client = client_for(staff)
    experiment_id = client.post(
        "/api/experiments/", experiment_body(50, 50), content_type="application/json"
    ).json()["id"]
    assert client.post(f"/api/experiments/{experiment_id}/start/").json()["status"] == "running"
    again = client.post(f"/api/experiments/{experiment_id}/start/")
    assert again.status_code == 400 and "only a draft can start" in again.json()["detail"]
    results = client.get(f"/api/experiments/{experiment_id}/results/").json()
    assert results["enough_data"] is False and results["status"].startswith("Not enough data yet")
    no_winner = client.post(
        f"/api/experiments/{experiment_id}/stop/", {"promote": "winner"}, content_type="application/json"
    )
    assert no_winner.status_code == 400 and "No winner to promote" in no_winner.json()["detail"]
    # Visitors are being bucketed into it: the admin refuses to delete it, and so does the API.
    running = client.delete(f"/api/experiments/{experiment_id}/")
    assert running.status_code == 400 and "stop it before deleting it" in running.json()["detail"]
    assert Experiment.objects.filter(pk=experiment_id).exists()
    unknown = client.post(
        f"/api/experiments/{experiment_id}/stop/", {"promote": "v9"}, content_type="application/json"
    )
    assert unknown.status_code == 400 and "has no variant 'v9'" in unknown.json()["detail"]
    stopped = client.post(
        f"/api/experiments/{experiment_id}/stop/", {"promote": "v1"}, content_type="application/json"
    )
    experiment = Experiment.objects.get(pk=experiment_id)
    assert stopped.status_code == 200 and experiment.status == ExperimentStatus.STOPPED
    assert experiment.winner.key == "v1"
    # Its promoted variant is everyone's default until it is deleted, which ends that at once.
    assert variant_for("anyone").variant_key == "v1"
    assert client.delete(f"/api/experiments/{experiment_id}/").status_code == 204
    assert variant_for("anyone") is None
    refused = key_client("audiences:read").get("/api/experiments/")
    assert refused.status_code == 403 and refused.json()["detail"] == (
        "API keys may not do this: sign in as a staff user."
    )


def test_staff_looking_at_a_shoppers_lists_are_not_the_shoppers_exposure(staff, shop):
    """A server with an API key renders what it asks for to the shopper, so that counts; a
    signed-in staff member looking is not the shopper."""
    client = client_for(staff)
    experiment_id = client.post(
        "/api/experiments/", experiment_body(50, 50), content_type="application/json"
    ).json()["id"]
    assert client.post(f"/api/experiments/{experiment_id}/start/").status_code == 200
    shopper = shop.users["tea_lover"]
    for url in ("/api/recommendations/for-you/", FOR_ME):
        assert client.get(url, {"user": shopper.pk}).status_code == 200
    assert not Assignment.objects.exists()
    server = key_client("recommendations:read")
    assert server.get("/api/recommendations/for-you/", {"user": shopper.pk}).status_code == 200
    assert list(Assignment.objects.values_list("user_id", flat=True)) == [shopper.pk]
    # The shopper's own visit counts too (once per shopper and experiment).
    assert client_for(shopper).get("/api/recommendations/for-you/").status_code == 200
    assert Assignment.objects.count() == 1


def test_editing_what_a_campaign_targets_leaves_its_old_segment_out_of_the_audience(shop, tea, staff):
    """The review changed Headphones week to Speakers and was still served the headphone fans."""
    segment = create_segment(tea)
    client = client_for(staff)
    assert client.get(audience_url(tea)).json()["segment"] == segment.pk
    banner = client.patch(
        f"/api/campaigns/{tea.pk}/", {"discount_text": "-25%"}, content_type="application/json"
    )
    assert banner.status_code == 200
    assert client.get(audience_url(tea)).json()["segment"] == segment.pk  # a text edit changes no one

    patched = client.patch(
        f"/api/campaigns/{tea.pk}/", {"category_names": ["Coffee"]}, content_type="application/json"
    )
    assert patched.status_code == 200
    live = client.get(audience_url(tea)).json()
    assert (live["source"], live["segment"], live["count"]) == ("live", None, 2)
    assert {row["username"] for row in live["results"]} == {"coffee_lover", "loyal"}
    as_csv = read_csv(client.get(audience_url(tea), {"format": "csv"}))
    assert {row["username"] for row in as_csv} == {"coffee_lover", "loyal"}

    refresh_segment(Segment.objects.get(pk=segment.pk))  # as the periodic task does
    again = client.get(audience_url(tea)).json()
    assert (again["source"], again["segment"]) == ("segment", segment.pk)
    assert {row["username"] for row in again["results"]} == {"coffee_lover", "loyal"}


@pytest.mark.parametrize("saved", [False, True])
def test_the_audience_count_is_its_size_and_limit_and_offset_page_through_it(shop, staff, saved):
    """`count` was the rows answered (the first 100 of 118); opted-out users count in neither."""
    welcome = Campaign.objects.create(
        name="Welcome", kind=CampaignKind.MEMBER_BENEFIT, audience_rules={"rfm_segments": ["new_customer"]}
    )
    set_opted_out(shop.users["tea_lover"])
    if saved:
        create_segment(welcome)
    client = client_for(staff)
    first = client.get(audience_url(welcome), {"limit": 2}).json()
    rest = client.get(audience_url(welcome), {"limit": 2, "offset": 2}).json()
    assert (first["source"], first["count"], rest["count"]) == ("segment" if saved else "live", 3, 3)
    assert (len(first["results"]), len(rest["results"])) == (2, 1)
    everyone = [row["username"] for row in first["results"] + rest["results"]]
    assert sorted(everyone) == ["coffee_lover", "gardener", "newbie"]
    assert [
        row["username"] for row in read_csv(client.get(audience_url(welcome), {"format": "csv"}))
    ] == everyone
    negative = client.get(audience_url(welcome), {"offset": -1})
    assert negative.status_code == 400 and "offset" in negative.json()
    # Past the largest audience: a 400, where itertools.islice's ValueError on a saved segment was a 500.
    past = client.get(audience_url(welcome), {"offset": "99999999999999999999"})
    assert past.status_code == 400 and "less than or equal to 1000000" in past.json()["offset"][0]
    assert client.get(audience_url(welcome), {"offset": 1_000_000}).json()["results"] == []


def test_null_audience_rules_are_a_400_as_in_the_admin(shop, staff):
    body = {"name": "Spring", "category_names": ["Garden"], "audience_rules": None}
    refused = client_for(staff).post("/api/campaigns/", body, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["audience_rules"] == ["This field may not be null."]
    left_out = client_for(staff).post(
        "/api/campaigns/", {"name": "Spring", "category_names": ["Garden"]}, content_type="application/json"
    )
    assert left_out.status_code == 201 and Campaign.objects.get().audience_rules == {}


def test_an_unknown_id_is_named_as_the_serving_endpoints_name_theirs(staff, db):
    """DRF said "No Campaign matches the given query.", or "Not found." of an id that is not a
    number; a product's endpoints say "No product with id '7'."."""
    client = client_for(staff)
    for url, message in (
        ("/api/campaigns/999999/", "No campaign with id '999999'."),
        ("/api/campaigns/abc/", "No campaign with id 'abc'."),
        ("/api/campaigns/999999/audience/", "No campaign with id '999999'."),
        ("/api/experiments/999999/results/", "No experiment with id '999999'."),
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["detail"] == message, url
    stop = client.post("/api/experiments/abc/stop/", {}, content_type="application/json")
    assert stop.status_code == 404 and stop.json()["detail"] == "No experiment with id 'abc'."
