"""The names of the app's Celery tasks, for every place that names one: the tasks themselves
(`recommendations.tasks`), their routes (`queues.TASK_ROUTES`) and what sends them by name (the
admin's "Retrain now", `indexing`), so a web process never imports the training code.

A name is what beat's schedule rows and queued messages carry, so it never changes, even where
the code moved: the marketing, serving and privacy tasks keep the module path they were first
registered under. The data migrations that created the schedule keep their own copies of these
strings: they are history. This module imports nothing, so settings may import it.
"""

RETRAIN = "recommendations.tasks.retrain"
EMBED = "recommendations.tasks.embed"
EMBED_PRODUCTS = "recommendations.tasks.embed_products"
SYNC_PRODUCT_VECTORS = "recommendations.tasks.sync_product_vectors"
REFRESH_STATISTICS = "recommendations.tasks.refresh_statistics"
PURGE = "recommendations.tasks.purge"
REFRESH_SEGMENTS = "recommendations.marketing.tasks.refresh_segments"
PRUNE_SERVED = "recommendations.serving.tasks.prune_served"
PURGE_EXPIRED_EVENTS = "recommendations.privacy.tasks.purge_expired_events"
