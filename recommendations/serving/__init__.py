"""Serving: turns vectors, events and the catalogue into recommendations.

One function per recommendation type, called by every surface (API, template tags, the
manager, the admin preview) with an `Audience` and `Options` (`serving.types`):

- `products.for_you`, `similar`, `bought_together`, `trending`, `new_arrivals`,
  `recently_viewed`, `buy_again`, `store_products`, `rerank`
- `stores.stores_for_user`, `similar_stores`
- `search.search`

Each returns a `RecommendationResult`: host objects in order with a recommendation id,
score, source and reason each, and `.queryset()` for further ORM filtering. The visitor's
experiment variant (model version, recommender, rules) comes from `variants`. Tables behind
them are refreshed by `statistics.refresh_statistics()` and `catalog.index_products()` (also
on each product save, `catalog.SearchIndexProcessor`); the `prune_served` task
(`recommendations.tasks`) keeps served lists for `SERVED_RETENTION_DAYS`.
"""
