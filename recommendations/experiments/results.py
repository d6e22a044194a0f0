"""Experiment results: each variant's rates with intervals, compared with the control.

Three metrics, each with the test that suits it:

- CTR (clicked lists / lists shown): Wilson interval, two-proportion z-test;
- conversion (visitors who bought / visitors): Wilson interval, two-proportion z-test;
- revenue per visitor (zeros included): t interval, Welch's t-test.

Until every variant has `experiment.min_visitors` visitors and the control has shown a
list, the results say "not enough data yet" and no winner is suggested: peeking at early
p-values is how A/B tests produce false winners.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from recommendations.experiments.attribution import VariantFunnel, funnels
from recommendations.experiments.statistics import (
    DEFAULT_ALPHA,
    Interval,
    TestResult,
    mean_interval,
    two_proportion_z_test,
    welch_t_test,
    wilson_interval,
)
from recommendations.models import Experiment

METRICS = ("ctr", "conversion", "revenue_per_visitor")
METRIC_LABELS = {
    "ctr": "Click-through rate",
    "conversion": "Conversion",
    "revenue_per_visitor": "Revenue / visitor",
}
# The metric a winner must improve significantly; revenue is reported but too noisy to decide on alone.
PRIMARY_METRIC = "conversion"


@dataclass(frozen=True)
class Metric:
    value: float | None
    interval: Interval | None
    # Compared with the control (None for the control itself or without data).
    lift: float | None = None
    test: TestResult | None = None


@dataclass
class VariantResult:
    funnel: VariantFunnel
    metrics: dict[str, Metric] = field(default_factory=dict)

    @property
    def beats_control(self) -> bool:
        """Significantly better than the control on the primary metric."""
        metric = self.metrics.get(PRIMARY_METRIC)
        return bool(metric and metric.test and metric.test.significant and (metric.lift or 0) > 0)


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
    def status_line(self) -> str:
        if not self.enough_data:
            return "Not enough data yet: " + "; ".join(self.shortfalls) + "."
        winner = self.suggested_winner
        if winner is None:
            return (
                f"No variant beats the control on {METRIC_LABELS[PRIMARY_METRIC].lower()} (p < {self.alpha})."
            )
        lift = winner.metrics[PRIMARY_METRIC].lift or 0.0
        p_value = winner.metrics[PRIMARY_METRIC].test.p_value  # type: ignore[union-attr]
        return (
            f"{winner.funnel.label} beats the control on {METRIC_LABELS[PRIMARY_METRIC].lower()} "
            f"by {lift:+.1%} (p = {p_value:.4f})."
        )


def _lift(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return (value - baseline) / baseline


def _metrics(funnel: VariantFunnel, control: VariantFunnel | None, alpha: float) -> dict[str, Metric]:
    compare = control is not None and control.variant_id != funnel.variant_id
    ctr = funnel.clicked_impressions / funnel.impressions if funnel.impressions else None
    conversion = funnel.converted_visitors / funnel.visitors if funnel.visitors else None
    revenue = funnel.revenue_summary()
    rpv = revenue.mean if funnel.visitors else None
    metrics = {
        "ctr": Metric(ctr, wilson_interval(funnel.clicked_impressions, funnel.impressions, alpha)),
        "conversion": Metric(conversion, wilson_interval(funnel.converted_visitors, funnel.visitors, alpha)),
        "revenue_per_visitor": Metric(rpv, mean_interval(revenue, alpha)),
    }
    if not compare:
        return metrics
    assert control is not None
    control_values = {
        "ctr": control.clicked_impressions / control.impressions if control.impressions else None,
        "conversion": control.converted_visitors / control.visitors if control.visitors else None,
        "revenue_per_visitor": control.revenue_summary().mean if control.visitors else None,
    }
    tests = {
        "ctr": two_proportion_z_test(
            funnel.clicked_impressions,
            funnel.impressions,
            control.clicked_impressions,
            control.impressions,
            alpha,
        ),
        "conversion": two_proportion_z_test(
            funnel.converted_visitors, funnel.visitors, control.converted_visitors, control.visitors, alpha
        ),
        "revenue_per_visitor": welch_t_test(revenue, control.revenue_summary(), alpha),
    }
    return {
        name: Metric(m.value, m.interval, _lift(m.value, control_values[name]), tests[name])
        for name, m in metrics.items()
    }


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
    return ExperimentResults(
        experiment=experiment,
        variants=[VariantResult(f, _metrics(f, control, alpha)) for f in rows],
        enough_data=not shortfalls,
        shortfalls=shortfalls,
        alpha=alpha,
    )
