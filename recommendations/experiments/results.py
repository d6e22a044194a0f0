"""Experiment results: each variant's rates with intervals, compared with the control.

Three metrics, each with the test that suits it:

- CTR (clicked lists / lists shown): visitors, not lists, are randomised and one visitor's
  lists are alike, so the variance is measured per visitor (delta method): a Wilson interval
  on the effective number of lists, Welch's t-test on the visitors' linearised values;
- conversion (visitors who bought / visitors): Wilson interval; two-proportion z-test, or
  Fisher's exact test when a group expects fewer than 5 buyers or non-buyers (the z-test's
  p-values are too small there);
- revenue per visitor (zeros included): t interval, Welch's t-test.

With several challengers, each metric's p-values are adjusted together (Holm): a challenger
is significant, and may win, only on its adjusted p-value, so an A/B/n test finds a false
winner no more often than an A/B test. A challenger beats the control when its conversion
is higher and significantly so, also against a control that converted nobody (which has no
relative lift to show).

Until every variant has `experiment.min_visitors` visitors and the control has shown a
list, the results say "not enough data yet" and no winner is suggested: peeking at early
p-values is how A/B tests produce false winners.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from django.utils import timezone

from recommendations.experiments.attribution import VariantFunnel, funnels
from recommendations.experiments.statistics import (
    DEFAULT_ALPHA,
    Interval,
    TestResult,
    holm,
    mean_interval,
    proportion_test,
    ratio_interval,
    ratio_t_test,
    welch_t_test,
    wilson_interval,
)
from recommendations.models import Experiment
from recommendations.serving.cache import forget, from_cache

METRICS = ("ctr", "conversion", "revenue_per_visitor")
METRIC_LABELS = {
    "ctr": "Click-through rate",
    "conversion": "Conversion",
    "revenue_per_visitor": "Revenue / visitor",
}
# The metric a winner must improve significantly; revenue is reported but too noisy to decide on alone.
PRIMARY_METRIC = "conversion"
# How long the admin's page shows the results it computed: the funnels read every event of
# the experiment's time (about 1 s at 235,000 events), on every view without this.
RECENT_RESULTS_SECONDS = 60


@dataclass(frozen=True)
class Metric:
    value: float | None
    interval: Interval | None
    # Compared with the control (None for the control itself or without data); the lift is
    # relative, so also None when the control's value is 0, where the difference still says.
    lift: float | None = None
    test: TestResult | None = None
    difference: float | None = None


@dataclass
class VariantResult:
    funnel: VariantFunnel
    metrics: dict[str, Metric] = field(default_factory=dict)

    @property
    def beats_control(self) -> bool:
        """Significantly better than the control on the primary metric."""
        metric = self.metrics.get(PRIMARY_METRIC)
        return bool(metric and metric.test and metric.test.significant and (metric.difference or 0) > 0)


@dataclass
class ExperimentResults:
    experiment: Experiment
    variants: list[VariantResult]
    enough_data: bool
    # Why there is not enough data yet, one line per shortfall.
    shortfalls: list[str]
    alpha: float = DEFAULT_ALPHA

    @property
    def control(self) -> VariantResult | None:
        return next((v for v in self.variants if v.funnel.is_control), None)

    @property
    def suggested_winner(self) -> VariantResult | None:
        """The challenger with the best significant lift on the primary metric, if any."""
        if not self.enough_data:
            return None
        winners = [v for v in self.variants if not v.funnel.is_control and v.beats_control]
        return max(winners, key=lambda v: v.metrics[PRIMARY_METRIC].value or 0.0, default=None)

    @property
    def comparisons(self) -> int:
        """How many challengers were tested against the control on the primary metric."""
        return sum(1 for v in self.variants if v.metrics[PRIMARY_METRIC].test is not None)

    @property
    def status_line(self) -> str:
        if not self.enough_data:
            return "Not enough data yet: " + "; ".join(self.shortfalls) + "."
        metric_name = METRIC_LABELS[PRIMARY_METRIC].lower()
        winner = self.suggested_winner
        if winner is None:
            adjusted = f", adjusted for {self.comparisons} comparisons" if self.comparisons > 1 else ""
            return f"No variant beats the control on {metric_name} (p < {self.alpha}{adjusted})."
        metric = winner.metrics[PRIMARY_METRIC]
        assert metric.test is not None and metric.value is not None  # a winner has both
        change = (
            f"by {metric.lift:+.1%}" if metric.lift is not None else f"with {metric.value:.1%} against 0%"
        )
        return f"{winner.funnel.label} beats the control on {metric_name} {change} ({metric.test.summary})."


def _compare(value: float | None, baseline: float | None) -> tuple[float | None, float | None]:
    """(relative lift, difference) of a value against the control's; no lift from a baseline of 0."""
    if value is None or baseline is None:
        return None, None
    return ((value - baseline) / baseline if baseline else None), value - baseline


def _metrics(funnel: VariantFunnel, control: VariantFunnel | None, alpha: float) -> dict[str, Metric]:
    compare = control is not None and control.variant_id != funnel.variant_id
    ctr = funnel.ctr_summary()
    conversion = funnel.converted_visitors / funnel.visitors if funnel.visitors else None
    revenue = funnel.revenue_summary()
    rpv = revenue.mean if funnel.visitors else None
    metrics = {
        "ctr": Metric(ctr.ratio if ctr.trials else None, ratio_interval(ctr, alpha)),
        "conversion": Metric(conversion, wilson_interval(funnel.converted_visitors, funnel.visitors, alpha)),
        "revenue_per_visitor": Metric(rpv, mean_interval(revenue, alpha)),
    }
    if not compare:
        return metrics
    assert control is not None
    control_ctr = control.ctr_summary()
    control_values = {
        "ctr": control_ctr.ratio if control_ctr.trials else None,
        "conversion": control.converted_visitors / control.visitors if control.visitors else None,
        "revenue_per_visitor": control.revenue_summary().mean if control.visitors else None,
    }
    tests = {
        "ctr": ratio_t_test(ctr, control_ctr, alpha),
        "conversion": proportion_test(
            funnel.converted_visitors, funnel.visitors, control.converted_visitors, control.visitors, alpha
        ),
        "revenue_per_visitor": welch_t_test(revenue, control.revenue_summary(), alpha),
    }
    compared = {}
    for name, m in metrics.items():
        lift, difference = _compare(m.value, control_values[name])
        compared[name] = Metric(m.value, m.interval, lift, tests[name], difference)
    return compared


def _adjust_for_comparisons(variants: list[VariantResult]) -> None:
    """Holm-adjust each metric's p-values across the challengers tested on it (see the module
    docstring); with one challenger the adjusted p-value is its own."""
    for name in METRICS:
        tested = [(v, test) for v in variants if (test := v.metrics[name].test) is not None]
        adjusted = holm([test.p_value for _, test in tested])
        for (variant, test), p_value in zip(tested, adjusted, strict=True):
            adjusted_test = replace(test, adjusted_p_value=p_value, comparisons=len(tested))
            variant.metrics[name] = replace(variant.metrics[name], test=adjusted_test)


def _shortfalls(experiment: Experiment, rows: list[VariantFunnel]) -> list[str]:
    problems = []
    if not any(f.is_control for f in rows):
        problems.append("mark one variant as the control")
    for funnel in rows:
        if funnel.visitors < experiment.min_visitors:
            problems.append(
                f"{funnel.label} has {funnel.visitors} of the {experiment.min_visitors} visitors needed"
            )
    control = next((f for f in rows if f.is_control), None)
    if control is not None and control.impressions == 0:
        problems.append(f"{control.label} has not shown a recommendation yet")
    return problems


def experiment_results(
    experiment: Experiment, now: dt.datetime | None = None, alpha: float = DEFAULT_ALPHA
) -> ExperimentResults:
    """Funnels, intervals and tests of every variant; see the module docstring."""
    rows = funnels(experiment, now)
    control = next((f for f in rows if f.is_control), None)
    shortfalls = _shortfalls(experiment, rows)
    variants = [VariantResult(f, _metrics(f, control, alpha)) for f in rows]
    _adjust_for_comparisons(variants)
    return ExperimentResults(
        experiment=experiment,
        variants=variants,
        enough_data=not shortfalls,
        shortfalls=shortfalls,
        alpha=alpha,
    )


@dataclass(frozen=True)
class RecentResults:
    results: ExperimentResults
    computed_at: dt.datetime


def _recent_key(experiment: Experiment) -> str:
    # With the status: results kept while running are not shown for the stopped experiment.
    return f"recommendations:experiment-results:{experiment.pk}:{experiment.status}"


def recent_results(experiment: Experiment) -> RecentResults:
    """`experiment_results`, computed at most once per `RECENT_RESULTS_SECONDS` (in Django's
    default cache, shared by the processes where it is), with the time it was computed."""
    return from_cache(
        _recent_key(experiment),
        lambda: RecentResults(experiment_results(experiment), timezone.now()),
        RECENT_RESULTS_SECONDS,
    )


def forget_recent_results(experiment: Experiment) -> None:
    """The next `recent_results` computes them afresh."""
    forget([_recent_key(experiment)])
