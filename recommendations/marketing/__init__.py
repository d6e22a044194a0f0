"""Personalised marketing: which campaigns a visitor sees, and who a campaign should reach.

- `targeting.campaigns_for(audience)`: the running campaigns for one visitor, best first
  (`show_campaigns`: the same, recorded as shown, as pages and the API show them);
- `audiences.build_audience(campaign)` / `audiences.refresh_segment(segment)`: the users most
  likely to engage with a campaign, saved as a `Segment`; `export.write_csv` for newsletters;
- `rfm` (member benefits by recency, frequency and spend), `inventory` (slow sellers for
  flash sales) and `caps` (the distinct viewers an impression cap counts) are the building
  blocks the targeting rules use.

Kept free of imports so that `recommendations.models` can use `marketing.rules`.
"""
