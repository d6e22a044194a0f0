"""The admin's SVG charts: every chart shares one wrapper, escapes its labels, skips gaps."""

import math

from recommendations.admin import charts


def test_line_chart_gives_each_series_its_axis_and_skips_missing_values():
    svg = charts.line_chart(
        [1, 2, 3],
        [
            charts.Series("loss", [3.0, 2.0, 1.0], "#0072B2"),
            charts.Series("<ndcg>", [math.nan, 0.1, 0.2], "#D55E00"),
        ],
        x_label="epoch",
        title="Training curve",
    )
    assert svg.startswith('<svg class="rec-chart"') and "<title>Training curve</title>" in svg
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 5  # the NaN epoch has no point
    assert "epoch 1: loss 3.0000" in svg and "epoch 1: &lt;ndcg&gt;" not in svg
    assert 'text-anchor="end" class="tick" style="fill:#0072B2">1<' in svg  # loss on the left
    assert 'text-anchor="start" class="tick" style="fill:#D55E00">0.2<' in svg  # NDCG on the right


def test_interval_bars_draw_whiskers_only_where_an_interval_is_known():
    svg = charts.interval_bars(
        [("A & B (control)", 0.05, (0.04, 0.06)), ("C", None, None)], title="Conversion by variant"
    )
    assert svg.startswith('<svg class="rec-chart"') and "<title>Conversion by variant</title>" in svg
    assert "A &amp; B (control)" in svg and "A & B" not in svg
    assert svg.count("<path") == 1 and "95% interval 4.0% to 6.0%" in svg
    assert ">5.0%</text>" in svg and ">-</text>" in svg and ">10%</text>" in svg  # axis up to 10%
