"""Attribution counts against a scenario computed by hand, and results on planted effects."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from recommendations.events.sessions import merge_session_into_user
from recommendations.experiments.attribution import funnels
from recommendations.experiments.results import experiment_results
from recommendations.experiments.statistics import RatioSummary
from recommendations.models import (
    Assignment,
    Event,
    Experiment,
    ExperimentStatus,
    ServedRecommendation,
    Variant,
)

HOUR = dt.timedelta(hours=1)


def running_experiment(started: dt.datetime, **fields) -> tuple[Experiment, Variant, Variant]:
    experiment = Experiment.objects.create(
        key=fields.pop("key", "home"),
        name="Home page",
        status=ExperimentStatus.RUNNING,
        started_at=started,
        attribution_window_hours=24,
        **fields,
    )
    control = Variant.objects.create(experiment=experiment, key="control", is_control=True, traffic_share=50)
    challenger = Variant.objects.create(experiment=experiment, key="b", name="Two-tower v2", traffic_share=50)
    return experiment, control, challenger


def event(event_type, who, when, rec="", product="", revenue=None):
    user, session = (who, "") if not isinstance(who, str) else (None, who)
    return Event(
        event_type=event_type,
        user=user,
        session_id=session or (f"sess-{user.pk}" if user else ""),
        product_id=product,
        recommendation_id=rec,
        timestamp=when,
        revenue=Decimal(revenue) if revenue is not None else None,
        context={"products": [product or "p1"]} if event_type == "impression" else {},
    )


@pytest.fixture
def scenario(db):
    now = timezone.now()
    start = now - dt.timedelta(days=10)
    experiment, control, b = running_experiment(start)
    User = get_user_model()
    u1, u2, u3, u4, u5 = (User.objects.create_user(f"u{i}") for i in range(1, 6))
    Assignment.objects.bulk_create(
        [
            Assignment(experiment=experiment, variant=control, user=u1),
            Assignment(experiment=experiment, variant=control, user=u2),
            Assignment(experiment=experiment, variant=control, session_id="anon-1"),
            Assignment(experiment=experiment, variant=b, user=u3),
            Assignment(experiment=experiment, variant=b, user=u4),
        ]
    )
    t = start + dt.timedelta(days=1)
    Event.objects.bulk_create(
        [
            # Control, u1: shown R1, clicked p1, carted it, bought it through the list.
            event("impression", u1, t, "R1", "p1"),
            event("click", u1, t + HOUR, "R1", "p1"),
            event("add_to_cart", u1, t + 2 * HOUR, "R1", "p1"),
            event("purchase", u1, t + 3 * HOUR, "R1", "p1", "20.00"),
            # Control, u2: R2 ignored; R3 clicked p3, bought 5 h later without the id (window: 24 h);
            # bought p4 too, which no list of theirs led to.
            event("impression", u2, t, "R2", "p9"),
            event("impression", u2, t, "R3", "p3"),
            event("click", u2, t + HOUR, "R3", "p3"),
            event("purchase", u2, t + 6 * HOUR, "", "p3", "15.00"),
            event("purchase", u2, t + 6 * HOUR, "", "p4", "100.00"),
            # Control, anonymous session: clicked p2 in R4, bought it 30 h later: outside the window.
            event("impression", "anon-1", t, "R4", "p2"),
            event("click", "anon-1", t + HOUR, "R4", "p2"),
            event("purchase", "anon-1", t + 31 * HOUR, "", "p2", "50.00"),
            # B, u3: R5 clicked twice (one clicked list, two clicks), bought through it.
            event("impression", u3, t, "R5", "p1"),
            event("click", u3, t + HOUR, "R5", "p1"),
            event("click", u3, t + 2 * HOUR, "R5", "p1"),
            event("purchase", u3, t + 3 * HOUR, "R5", "p1", "40.00"),
            # B, u4: shown R6; clicked a recommendation id that is not one of b's lists.
            event("impression", u4, t, "R6", "p5"),
            event("click", u4, t + HOUR, "R1", "p1"),
            # Not in the experiment: u5, and u1 before it started.
            event("impression", u5, t, "R7", "p1"),
            event("click", u5, t + HOUR, "R7", "p1"),
            event("impression", u1, start - HOUR, "R0", "p1"),
            event("click", u1, start - HOUR, "R0", "p1"),
        ]
    )
    return experiment


def test_attribution_matches_the_hand_computed_scenario(scenario):
    control, b = funnels(scenario)
    assert control.key == "control" and b.key == "b"
    assert (control.visitors, b.visitors) == (3, 2)
    assert (control.impressions, control.clicked_impressions, control.clicks) == (4, 3, 3)
    assert (control.add_to_carts, control.purchases, control.revenue) == (1, 2, Decimal("35.00"))
    assert control.converted_visitors == 2
    assert (b.impressions, b.clicked_impressions, b.clicks) == (2, 1, 2)
    assert (b.add_to_carts, b.purchases, b.revenue, b.converted_visitors) == (0, 1, Decimal("40.00"), 1)
    assert b.revenue_summary().mean == 20.0  # 40 over two visitors
    # Click-through per visitor (clicked lists, lists shown): u1 (1, 1), u2 (1, 2), anon-1 (1, 1).
    assert control.ctr_summary() == RatioSummary.of([(1, 1), (1, 2), (1, 1)])
    assert b.ctr_summary() == RatioSummary.of([(1, 1), (0, 1)])  # u3, u4


def test_a_list_counts_for_the_variant_that_served_it_and_a_signed_in_session_is_its_user(db):
    """An anonymous visitor is shown control's list, clicks, then signs in to an account that is
    bucketed into b and buys: the list, its click and the purchase are control's, and so is the
    person, as a visitor of both variants; the session is not a second visitor next to the
    account."""
    start = timezone.now() - dt.timedelta(days=2)
    experiment, control, b = running_experiment(start, key="login")
    User = get_user_model()
    hana, lee, other = (User.objects.create_user(n) for n in ("hana", "lee", "other"))
    Assignment.objects.bulk_create(
        [
            Assignment(experiment=experiment, variant=control, session_id="anon-hana"),
            Assignment(experiment=experiment, variant=b, user=hana),
            Assignment(experiment=experiment, variant=b, session_id="anon-lee"),  # lee never assigned
            Assignment(experiment=experiment, variant=b, user=other),
        ]
    )
    served = {"R-hana": "control", "R-lee": "b", "R-other": "b"}
    ServedRecommendation.objects.bulk_create(
        [
            ServedRecommendation(
                id=rec, kind="for_you", source="two_tower", context={"experiment": "login", "variant": v}
            )
            for rec, v in served.items()
        ]
        + [
            ServedRecommendation(
                id="R-old", kind="for_you", source="two_tower", context={"experiment": "x", "variant": "b"}
            )
        ]
    )
    t = start + HOUR
    Event.objects.bulk_create(
        [
            event("impression", "anon-hana", t, "R-hana", "p1"),
            event("click", "anon-hana", t + HOUR, "R-hana", "p1"),
            event("impression", "anon-lee", t, "R-lee", "p2"),
            event("click", "anon-lee", t + HOUR, "R-lee", "p2"),
            event("impression", other, t, "R-other", "p3"),
        ]
    )
    assert merge_session_into_user("anon-hana", hana) == 2
    assert merge_session_into_user("anon-lee", lee) == 2
    Event.objects.bulk_create(
        [
            event("purchase", hana, t + 2 * HOUR, "", "p1", "50.00"),
            event("purchase", lee, t + 2 * HOUR, "R-lee", "p2", "30.00"),
            # A list another experiment served is no variant's here, whoever saw it.
            event("impression", other, t, "R-old", "p4"),
        ]
    )
    control_funnel, b_funnel = funnels(experiment)
    assert (control_funnel.visitors, b_funnel.visitors) == (1, 3)  # hana; hana, lee, other: once each
    assert (control_funnel.impressions, control_funnel.clicks, control_funnel.purchases) == (1, 1, 1)
    assert control_funnel.revenue_by_visitor == {f"u:{hana.pk}": Decimal("50.00")}
    assert (b_funnel.impressions, b_funnel.clicks, b_funnel.purchases) == (2, 1, 1)
    assert b_funnel.revenue_by_visitor == {f"u:{lee.pk}": Decimal("30.00")}


def test_lists_served_outside_the_experiment_belong_to_no_variant(db):
    """A visitor bucketed into b uses lists that b did not serve: the landing page's, served
    before they had a session to bucket (no experiment in its context), and one served under
    the promoted default of an earlier experiment. Neither counts for b (nor for the control);
    only a list whose served row has expired falls back to the visitor's variant."""
    start = timezone.now() - dt.timedelta(days=2)
    experiment, _, b = running_experiment(start, key="outside")
    Assignment.objects.create(experiment=experiment, variant=b, session_id="anon")
    contexts = {
        "R-landing": {},
        "R-promoted": {"experiment": "earlier", "variant": "winner"},
        "R-b": {"experiment": "outside", "variant": "b"},
    }
    ServedRecommendation.objects.bulk_create(
        [
            ServedRecommendation(id=rec, kind="trending", source="popular", context=c)
            for rec, c in contexts.items()
        ]
    )
    t = start + HOUR
    Event.objects.bulk_create(
        [
            event(event_type, "anon", t + i * HOUR, rec, product)
            for rec, product in [
                ("R-landing", "p1"),
                ("R-promoted", "p2"),
                ("R-b", "p3"),
                ("R-expired", "p4"),
            ]
            for i, event_type in enumerate(["impression", "click"])
        ]
        + [
            event("purchase", "anon", t + 3 * HOUR, "R-landing", "p1", "10.00"),
            event("purchase", "anon", t + 3 * HOUR, "", "p2", "20.00"),
            event("purchase", "anon", t + 3 * HOUR, "R-b", "p3", "30.00"),
        ]
    )
    control_funnel, b_funnel = funnels(experiment)
    assert (b_funnel.impressions, b_funnel.clicks, b_funnel.purchases, b_funnel.revenue) == (
        2,
        2,
        1,
        Decimal("30.00"),
    )
    assert (control_funnel.impressions, control_funnel.clicks, control_funnel.purchases) == (0, 0, 0)
    assert (control_funnel.visitors, b_funnel.visitors) == (0, 1)


def test_a_variant_never_counts_more_buyers_than_visitors(db):
    """Two anonymous sessions of control click control's lists, sign in to accounts bucketed
    into b and buy: control credits both purchases, so it counts both people as visitors next
    to its own c0, and its conversion is 2 of 3 (not 2 of 1, which the interval refuses)."""
    start = timezone.now() - dt.timedelta(days=2)
    experiment, control, b = running_experiment(start, key="movers")
    User = get_user_model()
    c0, u1, u2 = (User.objects.create_user(n) for n in ("c0", "u1", "u2"))
    Assignment.objects.bulk_create(
        [
            Assignment(experiment=experiment, variant=control, user=c0),
            Assignment(experiment=experiment, variant=control, session_id="s1"),
            Assignment(experiment=experiment, variant=control, session_id="s2"),
            Assignment(experiment=experiment, variant=b, user=u1),
            Assignment(experiment=experiment, variant=b, user=u2),
        ]
    )
    ServedRecommendation.objects.bulk_create(
        [
            ServedRecommendation(
                id=rec,
                kind="for_you",
                source="two_tower",
                context={"experiment": "movers", "variant": "control"},
            )
            for rec in ("R1", "R2")
        ]
    )
    t = start + HOUR
    Event.objects.bulk_create(
        [
            event("impression", "s1", t, "R1", "p1"),
            event("click", "s1", t + HOUR, "R1", "p1"),
            event("impression", "s2", t, "R2", "p2"),
            event("click", "s2", t + HOUR, "R2", "p2"),
        ]
    )
    merge_session_into_user("s1", u1)
    merge_session_into_user("s2", u2)
    Event.objects.bulk_create(
        [
            event("purchase", u1, t + 2 * HOUR, "", "p1", "10.00"),
            event("purchase", u2, t + 2 * HOUR, "", "p2", "10.00"),
        ]
    )
    control_funnel, b_funnel = funnels(experiment)
    assert (control_funnel.visitors, control_funnel.converted_visitors) == (3, 2)
    assert (b_funnel.visitors, b_funnel.converted_visitors) == (2, 0)
    results = experiment_results(experiment)
    conversion = results.control.metrics["conversion"]
    assert conversion.value == pytest.approx(2 / 3)
    assert conversion.interval.low < 2 / 3 < conversion.interval.high
    assert results.variants[1].metrics["conversion"].lift == -1.0


def test_attribution_reads_the_events_in_a_fixed_number_of_queries(scenario, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):  # variants, assignments, signed-in sessions, events
        funnels(scenario)


def test_small_experiments_say_not_enough_data_yet(scenario):
    results = experiment_results(scenario)
    assert not results.enough_data
    assert results.suggested_winner is None
    assert results.status_line.startswith("Not enough data yet: control has 3 of the 100 visitors needed")
    control = results.control
    assert control.metrics["ctr"].value == 0.75
    assert control.metrics["ctr"].interval.low < 0.75 < control.metrics["ctr"].interval.high
    challenger = results.variants[1]
    assert challenger.metrics["conversion"].lift == pytest.approx((1 / 2 - 2 / 3) / (2 / 3))


def planted(experiment, variant, n, buyers, *, start):
    """n visitors of `variant`: each shown a list and clicks it; `buyers` of them buy for 10."""
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"{variant.key}-{i}") for i in range(n)])
    Assignment.objects.bulk_create(
        [Assignment(experiment=experiment, variant=variant, user=u) for u in users]
    )
    t = start + HOUR
    events = []
    for i, user in enumerate(users):
        rec = f"{variant.key}-{i}"
        events += [event("impression", user, t, rec, "p1"), event("click", user, t + HOUR, rec, "p1")]
        if i < buyers:
            events.append(event("purchase", user, t + 2 * HOUR, rec, "p1", "10.00"))
    Event.objects.bulk_create(events)


def test_a_real_difference_is_significant_and_suggested_as_winner(db):
    start = timezone.now() - dt.timedelta(days=3)
    experiment, control, b = running_experiment(start, key="planted", min_visitors=150)
    planted(experiment, control, 200, 20, start=start)  # 10% conversion
    planted(experiment, b, 200, 44, start=start)  # 22% conversion
    results = experiment_results(experiment)
    assert results.enough_data
    conversion = results.variants[1].metrics["conversion"]
    assert conversion.value == pytest.approx(0.22) and conversion.lift == pytest.approx(1.2)
    # Pooled z for 44/200 vs 20/200: p = 0.16, SE = sqrt(.16 * .84 * (2/200)) = 0.03666, z = 3.273.
    assert conversion.test.statistic == pytest.approx(3.273, abs=1e-3)
    assert conversion.test.significant
    assert results.variants[1].metrics["revenue_per_visitor"].test.significant
    assert results.suggested_winner.funnel.key == "b"
    assert results.status_line.startswith("Two-tower v2 beats the control on conversion by +120.0%")


def test_no_difference_means_no_winner(db):
    start = timezone.now() - dt.timedelta(days=3)
    experiment, control, b = running_experiment(start, key="flat", min_visitors=150)
    planted(experiment, control, 200, 20, start=start)
    planted(experiment, b, 200, 22, start=start)
    results = experiment_results(experiment)
    assert results.enough_data and results.suggested_winner is None
    assert results.status_line == "No variant beats the control on conversion (p < 0.05)."


def test_a_control_that_converted_nobody_can_be_beaten(db):
    start = timezone.now() - dt.timedelta(days=3)
    experiment, control, b = running_experiment(start, key="zero", min_visitors=100)
    planted(experiment, control, 200, 0, start=start)
    planted(experiment, b, 200, 12, start=start)  # 6%: z-test p = 0.0004
    results = experiment_results(experiment)
    conversion = results.variants[1].metrics["conversion"]
    assert conversion.lift is None and conversion.difference == pytest.approx(0.06)
    assert conversion.test.p_value == pytest.approx(0.00044, abs=1e-5)
    assert results.suggested_winner.funnel.key == "b"
    assert results.status_line == (
        "Two-tower v2 beats the control on conversion with 6.0% against 0% (p = 0.0004, two-proportion z-test)."
    )


def test_a_small_experiment_is_judged_with_the_exact_test(db):
    start = timezone.now() - dt.timedelta(days=3)
    experiment, control, b = running_experiment(start, key="small", min_visitors=10)
    planted(experiment, control, 10, 1, start=start)
    planted(experiment, b, 10, 6, start=start)  # the z-test would call p = 0.019 a winner
    results = experiment_results(experiment)
    test = results.variants[1].metrics["conversion"].test
    assert (test.method, round(test.p_value, 4)) == ("Fisher's exact test", 0.0573)
    assert results.enough_data and results.suggested_winner is None


def three_challengers() -> Experiment:
    """Conversion of 200 visitors each: control 20, b 35 (a winner alone: z-test p = 0.029),
    c 20, d 21."""
    start = timezone.now() - dt.timedelta(days=3)
    experiment, control, b = running_experiment(start, key="abn", min_visitors=150)
    for variant, buyers in [
        (control, 20),
        (b, 35),
        (Variant.objects.create(experiment=experiment, key="c", traffic_share=25), 20),
        (Variant.objects.create(experiment=experiment, key="d", traffic_share=25), 21),
    ]:
        planted(experiment, variant, 200, buyers, start=start)
    return experiment


def test_several_challengers_are_judged_on_holm_adjusted_p_values(db):
    """b alone would win (p = 0.029 < 0.05), but it is one of three challengers: its p-value
    adjusted for three comparisons is 3 x 0.029 = 0.088, and nothing wins."""
    results = experiment_results(three_challengers())
    test = results.variants[1].metrics["conversion"].test
    assert test.p_value == pytest.approx(0.0294, abs=1e-4)
    assert test.comparisons == 3 and test.adjusted_p_value == pytest.approx(3 * test.p_value)
    assert not test.significant and results.suggested_winner is None
    assert (
        results.status_line
        == "No variant beats the control on conversion (p < 0.05, adjusted for 3 comparisons)."
    )
    assert (
        test.summary
        == f"p = 0.0882 adjusted for 3 comparisons (Holm; unadjusted {test.p_value:.4f}), two-proportion z-test"
    )
