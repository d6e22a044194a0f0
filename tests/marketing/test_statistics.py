"""The statistics against published examples (no database)."""

import numpy as np
import pytest

from recommendations.experiments.statistics import (
    MeanSummary,
    RatioSummary,
    fisher_exact_test,
    holm,
    mean_interval,
    proportion_test,
    ratio_interval,
    ratio_t_test,
    two_proportion_z_test,
    welch_t_test,
    wilson_interval,
)


def test_two_proportion_z_test_matches_the_textbook():
    # B. Burt Gerstman, StatPrimer (San Jose State University), chapter 9B "Two proportions",
    # exercise 9B.16 "Drug testing student athletes": 5 of 95 vs 12 of 62 used drugs;
    # published z = 2.78 and P = 0.0054 (two-tailed, no continuity correction).
    result = two_proportion_z_test(5, 95, 12, 62)
    assert round(abs(result.statistic), 2) == 2.78
    assert result.statistic < 0  # the first group has the lower rate
    assert result.p_value == pytest.approx(0.0054, abs=1e-4)
    assert result.significant


def test_wilson_interval_matches_newcombe_1998():
    # R. G. Newcombe, "Two-sided confidence intervals for the single proportion: comparison of
    # seven methods", Statistics in Medicine 17 (1998) 857-872, Table I, Wilson score method.
    published = {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }
    for (successes, trials), (low, high) in published.items():
        interval = wilson_interval(successes, trials)
        assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_welch_t_test_matches_the_published_example():
    # Wikipedia, "Welch's t-test", Examples, first pair of samples (equal sizes, unequal
    # variances): published t = -2.46, degrees of freedom 25.0, p = 0.021.
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    result = welch_t_test(MeanSummary.of(a1), MeanSummary.of(a2))
    assert round(result.statistic, 2) == -2.46
    assert round(result.df, 1) == 25.0
    assert round(result.p_value, 3) == 0.021


def test_degenerate_inputs_give_no_answer_rather_than_nonsense():
    assert wilson_interval(0, 0) is None
    assert two_proportion_z_test(0, 0, 3, 10) is None
    assert two_proportion_z_test(0, 10, 0, 10) is None  # nobody converted anywhere: no variance
    assert welch_t_test(MeanSummary.of([1.0]), MeanSummary.of([1.0, 2.0])) is None
    assert welch_t_test(MeanSummary.of([0.0, 0.0]), MeanSummary.of([0.0, 0.0])) is None
    assert mean_interval(MeanSummary.of([5.0])) is None
    with pytest.raises(ValueError, match="between 0 and trials"):
        wilson_interval(11, 10)


def test_mean_summary_variance_and_interval():
    summary = MeanSummary.of([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert summary.mean == 5.0
    assert summary.variance == pytest.approx(32 / 7)
    interval = mean_interval(summary)
    assert interval.low < 5.0 < interval.high


def test_fisher_exact_test_matches_the_published_examples():
    # Wikipedia, "Fisher's exact test", Example: 1 of 10 men and 11 of 14 women studying,
    # two-sided p = 0.002759; Fisher's lady tasting tea, 3 of 4 cups right: p = 0.4857.
    assert fisher_exact_test(1, 10, 11, 14).p_value == pytest.approx(0.002759, abs=1e-6)
    assert fisher_exact_test(3, 4, 1, 4).p_value == pytest.approx(0.4857, abs=1e-4)
    assert fisher_exact_test(3, 4, 1, 4).method == "Fisher's exact test"


def test_small_counts_are_tested_exactly_and_large_ones_with_the_z_test():
    # 6 of 10 against 1 of 10 expects 3.5 buyers per group: the z-test says p = 0.019, a
    # "winner"; the exact (hypergeometric) p is (286 + 5005 + 5005 + 286) / 184756 = 0.0573.
    small = proportion_test(6, 10, 1, 10)
    assert small.method == "Fisher's exact test"
    assert small.p_value == pytest.approx(10582 / 184756)
    assert not small.significant
    assert two_proportion_z_test(6, 10, 1, 10).p_value == pytest.approx(0.0191, abs=1e-4)
    large = proportion_test(44, 200, 20, 200)  # expects 32 buyers per group
    assert large.method == "two-proportion z-test"
    assert large.statistic == pytest.approx(3.273, abs=1e-3)
    assert proportion_test(0, 10, 0, 10) is None  # nobody varies: nothing to test


def test_holm_adjusts_several_p_values_step_down():
    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06
    # (an adjusted p-value never falls below a smaller one's); back in the given order.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.03]) == [0.03]
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_the_click_through_test_measures_the_variance_per_visitor():
    # Three visitors with two lists each per group. A clicked 1, 0 and 2 lists: r = 1/2,
    # residuals x - r y = 0, -1, 1, variance 2 / 6² x 3/2 = 1/12. B clicked 0, 0, 1: r = 1/6,
    # residuals -1/3, -1/3, 2/3, variance (2/3) / 36 x 3/2 = 1/36. t = (1/3) / sqrt(1/9) = 1,
    # Welch's df = (1/9)² / ((1/12)² / 2 + (1/36)² / 2) = 3.2.
    a = RatioSummary.of([(1, 2), (0, 2), (2, 2)])
    b = RatioSummary.of([(0, 2), (0, 2), (1, 2), (0, 0)])  # a visitor without a list is no unit
    assert (a.variance, b.variance, b.visitors) == (pytest.approx(1 / 12), pytest.approx(1 / 36), 3)
    result = ratio_t_test(a, b)
    assert result.statistic == pytest.approx(1.0)
    assert result.df == pytest.approx(3.2)
    assert not result.significant
    assert ratio_t_test(RatioSummary.of([(1, 2)]), b) is None  # one visitor: no variance to measure


def test_a_visitors_alike_lists_count_for_about_one_in_the_click_through_interval():
    # Ten visitors shown ten lists each; three click all of theirs, seven none. Residuals 7 and
    # -3: variance (3 x 49 + 7 x 9) / 100² x 10/9 = 0.02333, so r(1 - r) / variance = 9
    # effective lists (about one per visitor), not 100.
    clustered = RatioSummary.of([(10, 10)] * 3 + [(0, 10)] * 7)
    interval = ratio_interval(clustered)
    assert (interval.low, interval.high) == pytest.approx(
        (wilson_interval(2.7, 9).low, wilson_interval(2.7, 9).high)
    )
    assert interval.high - interval.low > 2.5 * (wilson_interval(30, 100).high - wilson_interval(30, 100).low)
    # Without clustering (every visitor alike) it is the lists' own Wilson interval.
    nothing_clicked = ratio_interval(RatioSummary.of([(0, 10)] * 10))
    assert (nothing_clicked.low, nothing_clicked.high) == pytest.approx((0.0, wilson_interval(0, 100).high))


def test_the_click_through_test_keeps_its_false_positive_rate_when_visitors_differ():
    """An A/A test: both groups have the same mix of visitors (each with their own click rate,
    beta(0.5, 4.5), ten lists each). Counting lists as independent flags about a fifth of these
    as significant; the visitor-level test about the 5% it promises."""
    rng = np.random.default_rng(2)

    def group(visitors: int = 300, lists: int = 10) -> tuple[RatioSummary, int, int]:
        clicked = rng.binomial(lists, rng.beta(0.5, 4.5, visitors))
        summary = RatioSummary.of([(float(c), float(lists)) for c in clicked])
        return summary, int(clicked.sum()), visitors * lists

    runs = 1500
    visitor_level = list_level = 0
    for _ in range(runs):
        (a, clicks_a, lists_a), (b, clicks_b, lists_b) = group(), group()
        visitor_level += ratio_t_test(a, b).significant
        list_level += two_proportion_z_test(clicks_a, lists_a, clicks_b, lists_b).significant
    assert 0.03 < visitor_level / runs < 0.07
    assert list_level / runs > 0.15
