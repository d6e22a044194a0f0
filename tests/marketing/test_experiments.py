"""Which variant a visitor gets, exposures, and the start / stop / promote lifecycle."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from recommendations.events.tracking import SESSION_KEY
from recommendations.experiments import lifecycle, model_version_for, variant_for
from recommendations.models import Assignment, Experiment, ModelStatus, ModelVersion, Variant
from recommendations.privacy.optout import set_opted_out
from recommendations.serving.types import Audience
from tests.events.test_sessions import GOOGLEBOT


def make_experiment(key="home", shares=(50, 50), control=0) -> Experiment:
    experiment = Experiment.objects.create(key=key, name=key)
    for i, share in enumerate(shares):
        Variant.objects.create(
            experiment=experiment, key=f"v{i}", traffic_share=Decimal(share), is_control=i == control
        )
    return experiment


@pytest.fixture
def users(db):
    User = get_user_model()
    return User.objects.bulk_create([User(username=f"visitor{i}") for i in range(400)])


def test_nothing_is_live_until_an_experiment_starts(users):
    make_experiment()
    assert variant_for(users[0]) is None
    assert not Assignment.objects.exists()


def test_a_started_experiment_buckets_visitors_stably_and_records_each_once(users):
    experiment = lifecycle.start(make_experiment(shares=(80, 20)))
    first = {u.pk: variant_for(u).variant_key for u in users}
    again = {u.pk: variant_for(Audience(user=u)).variant_key for u in users}
    assert first == again
    assert 0.72 < sum(v == "v0" for v in first.values()) / len(users) < 0.88
    assert Assignment.objects.filter(experiment=experiment).count() == len(users)
    stored = dict(Assignment.objects.values_list("user_id", "variant__key"))
    assert stored == first


def test_anonymous_visitors_are_bucketed_by_their_session(users):
    lifecycle.start(make_experiment())
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    request.session = SessionStore()
    request.session[SESSION_KEY] = "anon-42"
    choice = variant_for(request)
    assert choice == variant_for("anon-42") == variant_for(Audience(session_id="anon-42"))
    assignment = Assignment.objects.get()
    assert (assignment.user_id, assignment.session_id, assignment.variant_id) == (
        None,
        "anon-42",
        choice.variant_id,
    )
    assert variant_for(AnonymousUser()) is None  # nobody to bucket
    variant_for("anon-43", record=False)
    assert Assignment.objects.count() == 1


def test_opted_out_users_and_crawlers_are_not_bucketed(users):
    """As serving's Audience does: no variant, no exposure, and a crawler gets no session."""
    lifecycle.start(make_experiment())
    private = users[0]
    set_opted_out(private)
    request = RequestFactory().get("/")
    request.user, request.session = private, SessionStore()
    assert variant_for(request) is None and variant_for(private) is None
    assert variant_for(Audience.for_request(request)) is None
    for _ in range(5):
        crawler = RequestFactory().get("/", HTTP_USER_AGENT=GOOGLEBOT)
        crawler.user, crawler.session = AnonymousUser(), SessionStore()
        assert variant_for(crawler) is None
        assert SESSION_KEY not in crawler.session
    assert not Assignment.objects.exists()
    assert variant_for(users[1]) is not None  # everyone else is bucketed as before


def test_starting_checks_shares_control_and_that_nothing_else_runs(users):
    with pytest.raises(ValidationError, match=r"add up to 90%, not 100%"):
        lifecycle.start(make_experiment("short", shares=(60, 30)))
    with pytest.raises(ValidationError, match="exactly one variant as the control"):
        lifecycle.start(make_experiment("nocontrol", shares=(50, 50), control=None))
    lifecycle.start(make_experiment("first"))
    second = make_experiment("second")
    with pytest.raises(ValidationError, match="'first' is running; stop it"):
        lifecycle.start(second)
    assert Experiment.objects.get(key="second").status == "draft"


def test_promoting_makes_the_winner_everyones_default(users):
    experiment = lifecycle.start(make_experiment())
    with pytest.raises(ValidationError, match=r"has no variant .+v7.+: promote one of v0, v1"):
        lifecycle.stop(experiment, promote="v7")
    assert lifecycle.stop(experiment, promote="v1") == experiment.variants.get(key="v1")
    for user in users[:50]:
        choice = variant_for(user)
        assert (choice.variant_key, choice.is_default) == ("v1", True)
    assert variant_for("any-session").variant_key == "v1"
    with pytest.raises(ValidationError, match="is not running"):
        lifecycle.stop(experiment)


def test_stopping_without_promotion_returns_everyone_to_the_defaults(users):
    experiment = lifecycle.start(make_experiment())
    assert lifecycle.stop(experiment) is None
    assert variant_for(users[0]) is None


def test_a_later_experiment_serves_the_promoted_default_where_its_variants_are_empty(users):
    """After a promotion the winner is production: the next experiment's control, left empty,
    is that (not the built-in defaults), a challenger changes only what it names, and
    promoting the control keeps it."""
    candidate = ModelVersion.objects.create(status=ModelStatus.READY, dimensions=4)
    first = make_experiment("first")
    rules = {"default": {"max_per_store": 1}}
    first.variants.filter(key="v1").update(recommender="popular", rules=rules, model_version=candidate)
    lifecycle.start(first)
    lifecycle.stop(first, promote="v1")
    second = make_experiment("second")
    second.variants.filter(key="v1").update(recommender="two_tower")
    lifecycle.start(second)
    served = {
        (c.variant_key, c.recommender, c.model_version_id, str(c.rules))
        for c in (variant_for(u) for u in users[:40])
    }
    assert served == {
        ("v0", "popular", candidate.pk, str(rules)),
        ("v1", "two_tower", candidate.pk, str(rules)),
    }
    assert lifecycle.stop(second, promote="v0").recommender == "popular"
    control = Variant.objects.get(experiment=second, key="v0")
    assert (control.recommender, control.model_version_id, control.rules) == ("popular", candidate.pk, rules)
    choice = variant_for(users[0])
    assert (choice.experiment_key, choice.variant_key, choice.recommender) == ("second", "v0", "popular")
    assert (choice.model_version_id, choice.rules, choice.is_default) == (candidate.pk, rules, True)


def test_stopping_without_promotion_keeps_the_earlier_promoted_default(users):
    first = make_experiment("first")
    first.variants.filter(key="v1").update(recommender="popular")
    lifecycle.start(first)
    lifecycle.stop(first, promote="v1")
    second = lifecycle.start(make_experiment("second"))
    assert {variant_for(u).recommender for u in users[:20]} == {"popular"}
    assert lifecycle.stop(second) is None
    choice = variant_for(users[0])
    assert (choice.experiment_key, choice.variant_key, choice.recommender) == ("first", "v1", "popular")


def test_starting_refuses_a_variant_whose_model_version_cannot_serve(users):
    retired = ModelVersion.objects.create(status=ModelStatus.RETIRED, dimensions=4)
    experiment = make_experiment()
    experiment.variants.filter(key="v1").update(model_version=retired)
    with pytest.raises(ValidationError, match=rf"'v1' names model version {retired.pk}, which is retired"):
        lifecycle.start(experiment)
    assert Experiment.objects.get(pk=experiment.pk).status == "draft"


def test_the_variant_chooses_the_model_version(users, caplog):
    active = ModelVersion.objects.create(status=ModelStatus.ACTIVE, dimensions=4)
    candidate = ModelVersion.objects.create(status=ModelStatus.READY, dimensions=4)
    experiment = make_experiment(shares=(50, 50))
    experiment.variants.filter(key="v1").update(model_version=candidate)
    lifecycle.start(experiment)
    versions = {variant_for(u).variant_key: model_version_for(u) for u in users[:40]}
    assert versions == {"v0": active, "v1": candidate}
    candidate.status = ModelStatus.RETIRED  # its vectors may be gone: serve the active one
    candidate.save()
    lifecycle.stop(experiment, promote=experiment.variants.get(key="v1"))
    with caplog.at_level("WARNING", logger="recommendations.experiments.assignment"):
        assert model_version_for(users[0]) == active
        assert model_version_for(users[1]) == active
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # once per process, not once per request
    assert f"names model version {candidate.pk}, which is retired" in warnings[0]
