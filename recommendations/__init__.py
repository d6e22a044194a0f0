"""A drop-in Django app that learns from shoppers' behaviour and recommends products,
stores, searches and campaigns.

Add "recommendations" to INSTALLED_APPS and configure `RECOMMENDATIONS = {...}`; see
`recommendations.conf` for the keys and `recommendations.adapters` for the catalogue contract.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # `recommendations.track` without importing models when the package is imported (settings).
    if name in ("track", "claim_recommendation"):
        from recommendations.events import tracking

        return getattr(tracking, name)
    raise AttributeError(f"module 'recommendations' has no attribute {name!r}")
