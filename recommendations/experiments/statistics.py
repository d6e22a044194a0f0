"""The statistics behind experiment results: intervals and tests, from counts and sums only.

Attribution reduces millions of events to a handful of numbers per variant (successes and
trials for proportions; count, sum and sum of squares for revenue; per-visitor sums for
click-through), so every function here takes those summaries, never raw rows. All tests
are two-sided at the given `alpha`; `holm` adjusts the p-values of several challengers
compared with one control.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class TestResult:
    """A two-sided test of "no difference": the statistic, its p-value and the verdict."""

    statistic: float
    p_value: float
    alpha: float = DEFAULT_ALPHA
    df: float | None = None
    # Which test, as the results name it ("Fisher's exact test").
    method: str = ""
    # Holm-adjusted p-value when several challengers were compared with the control (`holm`).
    adjusted_p_value: float | None = None
    comparisons: int = 1

    @property
    def decisive_p_value(self) -> float:
        """The p-value the verdict rests on: adjusted for the comparisons when there were several."""
        return self.p_value if self.adjusted_p_value is None else self.adjusted_p_value

    @property
    def significant(self) -> bool:
        return self.decisive_p_value < self.alpha

    @property
    def summary(self) -> str:
        """ "p = 0.0123, Fisher's exact test", saying when p was adjusted for several comparisons."""
        if self.comparisons > 1:
            return (
                f"p = {self.decisive_p_value:.4f} adjusted for {self.comparisons} comparisons "
                f"(Holm; unadjusted {self.p_value:.4f}), {self.method}"
            )
        return f"p = {self.p_value:.4f}, {self.method}"


@dataclass(frozen=True)
class MeanSummary:
    """Enough to compare means: n, sum and sum of squares (per-visitor revenue, say)."""

    n: int
    total: float
    total_squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 in the denominator); 0 with fewer than two values."""
        if self.n < 2:
            return 0.0
        return max(self.total_squares - self.total * self.total / self.n, 0.0) / (self.n - 1)

    @classmethod
    def of(cls, values: list[float]) -> MeanSummary:
        return cls(len(values), sum(values), sum(v * v for v in values))


@dataclass(frozen=True)
class RatioSummary:
    """A rate whose trials are clustered by visitor (clicked lists / lists shown): the number of
    visitors with a trial, and the sums over them of successes x, trials y, x², y² and xy.

    Visitors, not lists, are randomised, and a visitor's lists are alike (one clicks often,
    another never): treating every list as independent understates the variance, and a
    test that does flags about a fifth of experiments with no effect as significant.
    """

    visitors: int
    successes: float
    trials: float
    successes_squares: float
    trials_squares: float
    products: float

    @property
    def ratio(self) -> float:
        return self.successes / self.trials if self.trials else 0.0

    @property
    def variance(self) -> float:
        """Variance of the ratio by the delta method (cluster-robust linearisation):
        sum((x - r·y)²) / (sum y)², times v / (v - 1); 0 with fewer than two visitors."""
        if self.visitors < 2 or not self.trials:
            return 0.0
        r = self.ratio
        residuals = self.successes_squares - 2 * r * self.products + r * r * self.trials_squares
        return max(residuals, 0.0) / (self.trials * self.trials) * self.visitors / (self.visitors - 1)

    @classmethod
    def of(cls, pairs: list[tuple[float, float]]) -> RatioSummary:
        """From (successes, trials) per visitor; visitors without trials are left out."""
        pairs = [(x, y) for x, y in pairs if y]
        return cls(
            len(pairs),
            sum(x for x, _ in pairs),
            sum(y for _, y in pairs),
            sum(x * x for x, _ in pairs),
            sum(y * y for _, y in pairs),
            sum(x * y for x, y in pairs),
        )


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def wilson_interval(successes: int, trials: int, alpha: float = DEFAULT_ALPHA) -> Interval | None:
    """Wilson score interval for a proportion; None with no trials.

    Unlike the textbook p ± z·SE it stays inside [0, 1] and keeps its coverage for the small
    counts and rates near zero that click-through rates have (Newcombe 1998).
    """
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and trials ({trials}), got {successes}.")
    return _wilson(successes / trials, trials, alpha)


def _wilson(p: float, trials: float, alpha: float) -> Interval:
    z = _z(alpha)
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_z_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, alpha: float = DEFAULT_ALPHA
) -> TestResult | None:
    """Pooled two-proportion z-test of p_a = p_b; None when either group is empty or nobody varies."""
    if trials_a <= 0 or trials_b <= 0:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if standard_error == 0:
        return None
    z = (successes_a / trials_a - successes_b / trials_b) / standard_error
    return TestResult(
        statistic=z, p_value=float(2 * stats.norm.sf(abs(z))), alpha=alpha, method="two-proportion z-test"
    )


def fisher_exact_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, alpha: float = DEFAULT_ALPHA
) -> TestResult | None:
    """Fisher's exact test of p_a = p_b (the statistic is the sample odds ratio); None when
    either group is empty. Exact at any size, where the z-test's normal approximation fails."""
    if trials_a <= 0 or trials_b <= 0:
        return None
    table = [[successes_a, trials_a - successes_a], [successes_b, trials_b - successes_b]]
    odds_ratio, p_value = stats.fisher_exact(table, alternative="two-sided")
    return TestResult(
        statistic=float(odds_ratio), p_value=float(p_value), alpha=alpha, method="Fisher's exact test"
    )


# Below this many expected successes or failures in a group, the z-test's p-values are too
# small (Cochran's rule of thumb): 1 of 10 against 6 of 10 gives z-test p = 0.019, exact 0.057.
MIN_EXPECTED_COUNT = 5


def proportion_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, alpha: float = DEFAULT_ALPHA
) -> TestResult | None:
    """Test p_a = p_b with the z-test when every expected count is at least
    `MIN_EXPECTED_COUNT`, else with Fisher's exact test; None when either group is empty or
    nobody varies (all succeeded, or none)."""
    if trials_a <= 0 or trials_b <= 0:
        return None
    successes, trials = successes_a + successes_b, trials_a + trials_b
    if successes in (0, trials):
        return None
    smallest_margin = min(successes, trials - successes)
    if smallest_margin * min(trials_a, trials_b) / trials < MIN_EXPECTED_COUNT:
        return fisher_exact_test(successes_a, trials_a, successes_b, trials_b, alpha)
    return two_proportion_z_test(successes_a, trials_a, successes_b, trials_b, alpha)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values tested together, in their order.

    Comparing several challengers with one control at `alpha` each finds a false winner far
    more often than `alpha` (nine challengers with no effect: about one experiment in eight);
    an adjusted p-value below `alpha` keeps that chance at `alpha` for the whole set. Holm is
    uniformly more powerful than Bonferroni and needs no assumption about how the tests
    depend on each other (they share the control).
    """
    m = len(p_values)
    adjusted = [0.0] * m
    running_max = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running_max = max(running_max, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running_max
    return adjusted


def welch_t_test(a: MeanSummary, b: MeanSummary, alpha: float = DEFAULT_ALPHA) -> TestResult | None:
    """Welch's t-test of mean_a = mean_b (unequal variances); None without two values per group
    or when both groups are constant. Revenue per visitor is mostly zeros with a long tail,
    so the variances differ a lot between variants: Student's pooled test would mislead."""
    if a.n < 2 or b.n < 2:
        return None
    va, vb = a.variance / a.n, b.variance / b.n
    if va + vb == 0:
        return None
    t = (a.mean - b.mean) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va * va / (a.n - 1) + vb * vb / (b.n - 1))
    return TestResult(
        statistic=t,
        p_value=float(2 * stats.t.sf(abs(t), df)),
        alpha=alpha,
        df=df,
        method="Welch's t-test",
    )


def mean_interval(summary: MeanSummary, alpha: float = DEFAULT_ALPHA) -> Interval | None:
    """Student-t interval for a mean; None with fewer than two values."""
    if summary.n < 2:
        return None
    half = float(stats.t.ppf(1 - alpha / 2, summary.n - 1)) * math.sqrt(summary.variance / summary.n)
    return Interval(summary.mean - half, summary.mean + half)


def ratio_interval(summary: RatioSummary, alpha: float = DEFAULT_ALPHA) -> Interval | None:
    """Wilson interval for a clustered rate, on the effective number of trials: the trials
    divided by the design effect of clustering (Korn & Graubard 1998), never more than the
    trials themselves. Without variance to measure (a rate of 0 or 1, a single visitor) the
    trials count as independent. None without trials."""
    if summary.trials <= 0:
        return None
    r, variance = summary.ratio, summary.variance
    effective = summary.trials
    if 0 < r < 1 and variance > 0:
        effective = min(effective, r * (1 - r) / variance)
    return _wilson(r, effective, alpha)


def ratio_t_test(a: RatioSummary, b: RatioSummary, alpha: float = DEFAULT_ALPHA) -> TestResult | None:
    """Test ratio_a = ratio_b with each ratio's visitor-level (delta method) variance, so the
    unit of the test is the unit that was randomised: Welch's t-test on the visitors'
    linearised values, whose degrees of freedom keep small experiments honest. None without
    two visitors with a trial per group or when neither ratio varies."""
    if a.visitors < 2 or b.visitors < 2:
        return None
    va, vb = a.variance, b.variance
    if va + vb == 0:
        return None
    t = (a.ratio - b.ratio) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va * va / (a.visitors - 1) + vb * vb / (b.visitors - 1))
    return TestResult(
        statistic=t,
        p_value=float(2 * stats.t.sf(abs(t), df)),
        alpha=alpha,
        df=df,
        method="Welch's t-test on visitor-level (delta method) variance",
    )
