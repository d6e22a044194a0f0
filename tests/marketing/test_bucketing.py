"""Bucketing is stable, salted by the experiment, and follows the configured shares."""

from collections import Counter
from decimal import Decimal

from scipy.stats import chisquare

from recommendations.experiments.bucketing import assign, position

SHARES = [("control", Decimal("50")), ("b", Decimal("30")), ("c", Decimal("20"))]
IDS = [f"u:{i}" for i in range(10_000)]


def test_the_same_visitor_always_gets_the_same_variant():
    first = [assign("homepage-2026", unit, SHARES) for unit in IDS]
    again = [assign("homepage-2026", unit, SHARES) for unit in IDS]
    assert first == again
    assert min(position("x", u) for u in IDS[:100]) >= 0.0 and max(position("x", u) for u in IDS[:100]) < 1.0


def test_ten_thousand_ids_follow_the_shares():
    counts = Counter(assign("homepage-2026", unit, SHARES) for unit in IDS)
    expected = [float(share) / 100 * len(IDS) for _, share in SHARES]
    observed = [counts[key] for key, _ in SHARES]
    # Chi-square goodness of fit: a hash that follows the shares passes at the 1% level ...
    assert chisquare(observed, expected).pvalue > 0.01
    # ... and no arm is more than 1.5 percentage points off its share.
    for (key, share), count in zip(SHARES, observed, strict=True):
        assert abs(count / len(IDS) - float(share) / 100) < 0.015, key


def test_experiments_are_salted_independently():
    a = [assign("exp-a", unit, SHARES[:2]) for unit in IDS]
    b = [assign("exp-b", unit, SHARES[:2]) for unit in IDS]
    agreement = sum(x == y for x, y in zip(a, b, strict=True)) / len(IDS)
    # Independent 62.5/37.5 splits agree on 0.625^2 + 0.375^2 = 53% of visitors, not all of them.
    assert 0.50 < agreement < 0.57


def test_shares_do_not_need_to_be_percentages_and_a_zero_slice_gets_nobody():
    counts = Counter(assign("scale", unit, [("a", 1), ("b", 0), ("c", 3)]) for unit in IDS)
    assert counts["b"] == 0
    assert abs(counts["a"] / len(IDS) - 0.25) < 0.015
