"""A drop-in Django app that learns from shoppers' behaviour and recommends products,
stores, searches and campaigns.

Add "recommendations" to INSTALLED_APPS and configure `RECOMMENDATIONS = {...}`; see
`recommendations.conf` for the keys and `recommendations.adapters` for the catalogue contract.
"""
