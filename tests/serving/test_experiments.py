"""An experiment's variant drives what its visitors see everywhere: API, template tags, services.

The shop's vectors put every shopper's taste in face care, while trending is all nail care,
so a list says by its products (and sources) which recommender made it.
"""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from recommendations.experiments import assignment, lifecycle, variant_for
from recommendations.models import (
    Assignment,
    Experiment,
    ModelStatus,
    ModelVersion,
    ProductVector,
    ServedRecommendation,
    UserVector,
)
from recommendations.serving import products, search, stores
from recommendations.serving.rules import rules_for
from recommendations.serving.statistics import refresh_statistics
from recommendations.serving.types import Audience, Options
from tests.serving.conftest import TITLES, add_event, blocks, product_ids, render, vector_of

pytestmark = pytest.mark.django_db

FACE = [0.0, 1.0, 0.0, 0.0]
NAILS = [0.0, 0.0, 1.0, 0.0]


def start_experiment(**variants: dict) -> Experiment:
    """A running experiment "home" whose variants (the first is the control) share traffic evenly."""
    experiment = Experiment.objects.create(key="home", name="Home page")
    for i, (key, fields) in enumerate(variants.items()):
        experiment.variants.create(
            key=key, traffic_share=Decimal(100) / len(variants), is_control=i == 0, **fields
        )
    return lifecycle.start(experiment)


def serve_everyone(**fields) -> None:
    """A variant with these fields promoted: every visitor gets it."""
    experiment = start_experiment(control={}, winner=fields)
    lifecycle.stop(experiment, promote=experiment.variants.get(key="winner"))


@pytest.fixture
def shoppers(catalog, model):
    """20 shoppers whose stored taste is face care; nail care is what trends."""
    users = get_user_model().objects.bulk_create(get_user_model()(username=f"shopper{i}") for i in range(20))
    UserVector.objects.bulk_create(UserVector(model_version=model, user=u, embedding=FACE) for u in users)
    for title in TITLES["Nails"][:3]:
        add_event(catalog, "purchase", title, session="trend-setter")
    refresh_statistics()
    return users


def variant_of(user) -> str:
    return variant_for(user, record=False).variant_key


def test_the_variant_chooses_the_recommender_of_for_you(catalog, model, shoppers):
    start_experiment(popular={"recommender": "popular"}, vectors={"recommender": "two_tower"})
    seen = set()
    for user in shoppers:
        result = products.for_you(Audience(user=user), Options(limit=3))
        variant = variant_of(user)
        seen.add(variant)
        sources = {rec.source for _, rec in result.items}
        if variant == "popular":
            assert set(catalog.titles(result.ids)) <= set(TITLES["Nails"]) and sources == {"trending"}
            assert result.model_version_id is None
        else:
            assert set(catalog.titles(result.ids)) <= set(TITLES["Face"]) and sources == {"two_tower"}
            assert result.model_version_id == model.pk
        served = ServedRecommendation.objects.get(pk=result.recommendation_id)
        assert (served.context["experiment"], served.context["variant"]) == ("home", variant)
    assert seen == {"popular", "vectors"}
    assert Assignment.objects.count() == len(shoppers)


def test_cooccurrence_variant_uses_no_vectors(catalog, model):
    for session in ("a", "b"):
        add_event(catalog, "view", "Argan shampoo", session=session)
        add_event(catalog, "view", "Cuticle oil", session=session)
    refresh_statistics()
    serve_everyone(recommender="cooccurrence")
    session = "fresh-visitor"
    add_event(catalog, "view", "Argan shampoo", session=session)
    result = products.for_you(Audience(session_id=session), Options(limit=3, explain=True))
    assert catalog.titles(result.ids)[0] == "Cuticle oil"
    assert result.items[0][1].source == "co_view" and result.model_version_id is None


def test_one_visitor_one_variant_through_the_api_and_the_tags(catalog, model, shoppers):
    start_experiment(popular={"recommender": "popular"}, vectors={})
    client = APIClient()
    for user in shoppers[:8]:
        client.force_login(user)
        body = client.get("/api/recommendations/for-you/", {"limit": 3}).json()
        html = render("{% recommended_products limit=3 %}", user=user)
        via_api = ServedRecommendation.objects.get(pk=body["recommendation_id"]).context
        via_tag = ServedRecommendation.objects.get(pk=blocks(html)[0]).context
        assert via_api["variant"] == via_tag["variant"] == variant_of(user)
        assert product_ids(html) == [item["id"] for item in body["results"]]
        expected = "Nails" if variant_of(user) == "popular" else "Face"
        assert {item["title"] for item in body["results"]} <= set(TITLES[expected])
    assert Assignment.objects.filter(user__in=shoppers[:8]).count() == 8


def test_variant_rules_layer_over_the_configured_rules(catalog, model, shoppers, settings):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVING_RULES": {"for_you": {"limit": 4}}}
    start_experiment(plain={}, strict={"rules": {"default": {"limit": 2}, "for_you": {"max_per_store": 1}}})
    by_variant = {}
    for user in shoppers:
        by_variant.setdefault(variant_of(user), user)
    plain, strict = Audience(user=by_variant["plain"]), Audience(user=by_variant["strict"])
    assert (rules_for("for_you", plain)["limit"], rules_for("for_you", plain)["max_per_store"]) == (4, 3)
    assert (rules_for("for_you", strict)["limit"], rules_for("for_you", strict)["max_per_store"]) == (2, 1)
    assert rules_for("trending", strict)["limit"] == 2 and rules_for("trending", plain)["limit"] == 10

    assert len(products.for_you(plain, Options())) == 4
    picked = products.for_you(strict, Options())
    stores_shown = [obj.store_id for obj, _ in picked.items]
    assert len(stores_shown) == 2 and len(set(stores_shown)) == 2


def test_a_variant_saved_with_rules_serving_cannot_apply_is_served_without_them(
    catalog, model, shoppers, caplog
):
    """A row saved around `Variant.clean()` (a raw update, a row from before it checked) must
    not fail the lists of every visitor in the experiment, the control's included."""
    experiment = start_experiment(plain={}, broken={})
    experiment.variants.filter(key="broken").update(rules={"default": {"limit": "abc"}})
    assignment.clear_cache()
    response = APIClient().get("/api/recommendations/trending/")
    assert response.status_code == 200 and response.json()["results"]
    assert "served without its rules" in caplog.text and "limit must be an integer" in caplog.text
    for user in shoppers[:6]:
        assert rules_for("trending", Audience(user=user))["limit"] == 10


def test_a_cached_list_does_not_outlive_a_change_of_variant(catalog, model, shoppers):
    user = shoppers[0]
    before = products.for_you(Audience(user=user), Options(limit=3))
    assert set(catalog.titles(before.ids)) <= set(TITLES["Face"])
    serve_everyone(recommender="popular")
    after = products.for_you(Audience(user=user), Options(limit=3))
    assert set(catalog.titles(after.ids)) <= set(TITLES["Nails"])


def test_the_variant_model_version_serves_every_type(catalog, model, shoppers):
    """A variant's own (ready, not active) version: its vectors make nail care the user's taste."""
    candidate = ModelVersion.objects.create(algorithm="two_tower", status=ModelStatus.READY, dimensions=4)
    ProductVector.objects.bulk_create(
        ProductVector(model_version=candidate, product_id=str(p.pk), embedding=vector_of(catalog, title))
        for title, p in catalog.products.items()
    )
    UserVector.objects.create(model_version=candidate, user=catalog.users["alice"], embedding=NAILS)
    serve_everyone(model_version=candidate)
    alice = Audience(user=catalog.users["alice"])
    result = products.for_you(alice, Options(limit=3))
    assert set(catalog.titles(result.ids)) <= set(TITLES["Nails"]) and result.model_version_id == candidate.pk
    assert search.search("polish", alice, Options()).model_version_id == candidate.pk
    store = str(catalog.stores["Nails"].pk)
    assert products.store_products(store, alice, Options()).model_version_id == candidate.pk
    assert stores.stores_for_user(alice, Options()).model_version_id == candidate.pk
    # Retired (its vectors may be gone): its visitors fall back to the active version.
    ModelVersion.objects.filter(pk=candidate.pk).update(status=ModelStatus.RETIRED)
    assignment.clear_cache()
    assert products.for_you(Audience(user=catalog.users["alice"]), Options()).model_version_id == model.pk


def test_no_experiment_serves_the_active_version_and_records_no_variant(catalog, model):
    result = products.for_you(Audience(user=catalog.users["alice"]), Options())
    served = ServedRecommendation.objects.get(pk=result.recommendation_id)
    assert result.model_version_id == model.pk and "variant" not in served.context
    assert not Assignment.objects.exists()
