"""The statistics behind experiment results: intervals and tests, from counts and sums only.

Attribution reduces millions of events to a handful of numbers per variant (successes and
trials for proportions; count, sum and sum of squares for revenue), so every function here
takes those summaries, never raw rows. All tests are two-sided at the given `alpha`.
"""

from __future__ import annotations

import math
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

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


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
    z = _z(alpha)
    p = successes / trials
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
    return TestResult(statistic=z, p_value=float(2 * stats.norm.sf(abs(z))), alpha=alpha)


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
    return TestResult(statistic=t, p_value=float(2 * stats.t.sf(abs(t), df)), alpha=alpha, df=df)


def mean_interval(summary: MeanSummary, alpha: float = DEFAULT_ALPHA) -> Interval | None:
    """Student-t interval for a mean; None with fewer than two values."""
    if summary.n < 2:
        return None
    half = float(stats.t.ppf(1 - alpha / 2, summary.n - 1)) * math.sqrt(summary.variance / summary.n)
    return Interval(summary.mean - half, summary.mean + half)
