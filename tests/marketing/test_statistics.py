"""The statistics against published examples (no database)."""

import pytest

from recommendations.experiments.statistics import (
    MeanSummary,
    mean_interval,
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
