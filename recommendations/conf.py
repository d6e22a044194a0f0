"""The `RECOMMENDATIONS` settings object.

The host project configures the app with one dict in its settings::

    RECOMMENDATIONS = {
        "PRODUCT_MODEL": "catalog.Product",
        "PRODUCT_ADAPTER": "catalog.recommendations.ProductAdapter",
    }

`rec_settings.PRODUCT_MODEL` reads a value, falling back to `DEFAULTS`; dotted paths named in
`IMPORT_STRINGS` are imported on first use. A dict setting is laid over its default
(`laid_over`): the entries a host leaves out keep their defaults, so that setting one weight or
one rule never drops the others; `manage.py check` (recommendations.checks) refuses entries
the defaults do not know. Unknown keys raise `ImproperlyConfigured`
(a typo must not silently fall back to a default), and the object reloads on Django's
`setting_changed` signal so `override_settings(RECOMMENDATIONS=...)` works in tests.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

SETTING_NAME = "RECOMMENDATIONS"

DEFAULTS: dict[str, Any] = {
    # The host's catalogue: "app_label.ModelName" and the adapters that read it.
    "PRODUCT_MODEL": None,
    "STORE_MODEL": None,
    "PRODUCT_ADAPTER": "recommendations.adapters.ProductAdapter",
    "STORE_ADAPTER": "recommendations.adapters.StoreAdapter",
    # Behaviour events: how much each kind says about a shopper's taste. A rating's weight
    # is RATING_WEIGHTS[value]. Like every dict setting, a host's dict is laid over this one:
    # types left out keep these weights, and a weight of 0 stops a type from counting.
    "EVENT_WEIGHTS": {
        "view": 1.0,
        "click": 1.0,
        "add_to_cart": 3.0,
        "favourite": 3.0,
        "purchase": 5.0,
        "rating": 0.0,
    },
    "RATING_WEIGHTS": {1: -1.0, 2: 0.0, 3: 1.0, 4: 3.0, 5: 5.0},
    # An event that is DECAY_HALF_LIFE_DAYS old counts half as much as one from today.
    "DECAY_HALF_LIFE_DAYS": 60.0,
    "SESSION_GAP_MINUTES": 30,
    "BOT_USER_AGENT_PATTERNS": [
        r"(?<!cu)bot\b",  # Googlebot, bingbot, AhrefsBot...; not Cubot phones ("Cubot Note 20")
        r"crawl",
        r"spider",
        r"slurp",
        r"headlesschrome",
        r"python-requests",
        r"curl/",
        r"wget/",
    ],
    # Sessions that send more events than this per minute are treated as bots in training.
    "MAX_EVENTS_PER_SESSION_PER_MINUTE": 120,
    "MAX_BATCH_EVENTS": 500,
    "MAX_BATCH_BYTES": 1_000_000,
    "MAX_EVENT_FUTURE_SECONDS": 300,
    # Browser sessions (the beacon) send small things: a context (page, referrer, kind,
    # position; the products or stores it lists not counted) of at most this many bytes as
    # JSON, else a 400. API keys and server code are not capped.
    "MAX_BROWSER_CONTEXT_BYTES": 4096,
    # ...and a batch of at most this many bytes (413 above it; MAX_BATCH_BYTES is the API keys'
    # cap): sendBeacon and keepalive fetch refuse more than 64 KB, and the beacon sends 30 KB at
    # most. Per event alone, a cap would still let one request store a megabyte.
    "MAX_BROWSER_BATCH_BYTES": 65_536,
    # Requests per period for the REST API, per API key, per signed-in user and per anonymous
    # client address (DRF rate strings: "N/second|minute|hour|day"; None: not limited, and not
    # counted, e.g. where a proxy in front limits rates: a count is a cache round trip).
    # Kinds left out keep these rates; `manage.py check` refuses unknown kinds and bad rates.
    "API_THROTTLE_RATES": {"api_key": "6000/minute", "user": "600/minute", "anonymous": "300/minute"},
    # Learning: "auto" picks CUDA when present, else CPU.
    "DEVICE": "auto",
    "TRAINING": {},
    # Processes that train one model, data-parallel (recommendations.learning.launch): "auto"
    # is one per visible GPU when training on "cuda", else 1. N > 1 also works on CPU (gloo),
    # where it rarely beats one process's threads. Under torchrun, its process count applies.
    "TRAINING_PROCESSES": "auto",
    # Keeps product vectors in step with catalogue saves: a class with setup()/teardown()
    # (see recommendations.signal_processors and .indexing); None turns embedding on save off.
    "SIGNAL_PROCESSOR": "recommendations.indexing.OnCommitSignalProcessor",
    # Serving: business rules per recommendation type ("default" applies to every type; a
    # type's own dict overrides it). A host's rules are laid over these, type by type and rule
    # by rule. Types: for_you, similar, bought_together, trending, new_arrivals,
    # recently_viewed, buy_again, store_products, search, rerank.
    "SERVING_RULES": {
        "default": {
            "limit": 10,
            "exclude_purchased": True,
            "max_per_store": 3,
            "max_per_category": None,
            # 0..1: weight of relevance against novelty in MMR re-ranking; None = off.
            "mmr_lambda": None,
            # 0..1: leave out the main source's candidates scoring below this share of its best
            # one (a list of close matches rather than a full one padded with unrelated ones).
            "min_relative_score": None,
        },
        # Close matches from one store are still close matches: the per-store cap would
        # replace them with worse ones from other stores.
        "similar": {"min_relative_score": 0.5, "max_per_store": None},
        # Its like products too (a store sells what goes with its products): capped, the close
        # matches of the product's own store made way for weak ones of others (a board game
        # "similar to" earphones).
        "bought_together": {"max_per_store": None},
        "recently_viewed": {"exclude_purchased": False, "max_per_store": None},
        "buy_again": {"exclude_purchased": False, "max_per_store": None},
        "rerank": {"exclude_purchased": False, "max_per_store": None},
        "search": {"exclude_purchased": False, "max_per_store": None, "limit": 20},
        "store_products": {"max_per_store": None},
    },
    # Boost or bury products: [{"filter": {"brand": "Acme"}, "factor": 1.5, "types": ["for_you"]}].
    # `filter` is an ORM lookup on the host's product model; factor > 1 boosts, < 1 buries,
    # 0 removes; `types` (optional) limits the rule to some recommendation types.
    "BOOST_RULES": [],
    # Real-time personalisation: the latest REALTIME_HISTORY events of a user or session are
    # blended into the stored user vector; an event REALTIME_HALF_LIFE_MINUTES old counts half.
    "REALTIME_HISTORY": 20,
    "REALTIME_HALF_LIFE_MINUTES": 60.0,
    # Share of the session's vector in the blend when the user also has a stored vector.
    "REALTIME_SESSION_WEIGHT": 0.5,
    # How far back serving reads a visitor's events (recent history, and the purchases that
    # "already bought" excludes): a bound lets PostgreSQL skip older monthly partitions of the
    # events table, so a request's cost does not grow with the years kept. None reads them all.
    "SERVING_HISTORY_DAYS": 365,
    "TRENDING_HALF_LIFE_DAYS": 3.0,
    "TRENDING_WINDOW_DAYS": 30,
    "POPULAR_WINDOW_DAYS": 180,
    "PAIRS_PER_PRODUCT": 50,
    # Shoppers (sessions for viewed together) who must have had both products before a pair is
    # kept: a pair of one basket scores a full cosine of 1 and outranked well-supported pairs.
    "PAIRS_MIN_SHOPPERS": 2,
    # A product counts as replenishable (buy it again) when this share of its buyers rebought it.
    "REPLENISHABLE_MIN_REPEAT_RATE": 0.1,
    # The index that ranks products for a user (user . item + bias, an inner product):
    # "hnsw", "ivfflat" (lists: the square root of the rows) or "auto": HNSW, compared with
    # IVFFlat when HNSW needs a long search for SCORE_SEARCH_RECALL, keeping the faster. Which
    # kind is faster depends on where users' vectors lie (docs/benchmarks.md). Either way the
    # search length is tuned per model version on a sample of its users: the shortest that
    # finds SCORE_SEARCH_RECALL of their exact top 10 (recommendations.vectors.tuning); the
    # similar-products search likewise, on a sample of its products.
    # Applies to versions whose indexes are built from then on.
    "SCORE_INDEX": "auto",
    # The same choice for the cosine index of "similar products": HNSW finds an item's
    # neighbours with a short search on most catalogues; where it needs a long one (a million
    # products spread wide), "auto" compares it with IVFFlat and keeps the faster.
    "SIMILAR_INDEX": "auto",
    "SCORE_SEARCH_RECALL": 0.97,
    # Each product's nearest products and each user's best products (by their stored vector)
    # are ranked once per model version, exactly, and kept as lists of this many products:
    # serving then reads one row instead of searching an index ("similar products", and
    # "recommended for you" until the visitor's latest events move their taste). 0 = off.
    "PRECOMPUTED_LIST_LENGTH": 64,
    # A kind of list is ranked exactly when it takes at most this many scores (rows x
    # products): 2e11 is about 10 minutes on 2 CPU cores and seconds on a GPU. Past it,
    # "similar" lists are ranked by cluster (as IVFFlat searches, probing as many clusters as
    # reach SCORE_SEARCH_RECALL) when that fits, and users' lists are left to their index.
    "PRECOMPUTED_LIST_MAX_SCORES": 200_000_000_000,
    # Lists an IVFFlat search scans when the version has no tuned value.
    "IVFFLAT_PROBES": 20,
    # HNSW candidate list sizes when a version has no tuned value: item-to-item queries
    # (similar products) start inside the data; users' queries on an HNSW score index search
    # longer.
    "HNSW_EF_SEARCH": 100,
    "HNSW_EF_SEARCH_FOR_USERS": 800,
    # Alias in DATABASES of a read replica that serving reads vectors and the active version
    # from (None: the default database); needs recommendations.routers.VectorReplicaRouter.
    "VECTOR_READ_DATABASE": None,
    # Seconds a computed list is reused (0 = off); a new event of the user starts a new one.
    "SERVING_CACHE_SECONDS": 60,
    # Which of settings.CACHES keeps those lists. A visitor's lists change with each of their
    # events, so another process seldom reads one again: a cache in each process's memory
    # loses little and costs a request 1.3-1.5 ms of CPU less than Redis (measured). Search
    # matches, marketing's figures and the rate counters stay in the "default" cache.
    "SERVING_CACHE_ALIAS": "default",
    # Seconds each process reuses what a search query finds (its keyword hits and the products
    # near their meaning, the same for every visitor; other processes take a copy from Django's
    # cache), counted from when it was computed, then as long again serving it while a
    # thread recomputes it; 0 = every search reads it anew. A product's changed title reaches
    # search this much later; stock and `is_active` are checked on every request. Longer than
    # lists: at 1M products a common word's ranking costs PostgreSQL 20-130 ms.
    "SEARCH_CACHE_SECONDS": 300,
    # Seconds a product's card (title, price, category, store, link) is reused between requests
    # while the adapter's `updated_field` is unchanged (0 = off; needs `updated_field`): the
    # store's name and the category path may lag this long. Stock is never taken from it.
    "CARD_CACHE_SECONDS": 60,
    # Cards each process keeps at most (least recently used dropped first).
    "CARD_CACHE_SIZE": 50_000,
    # Store what was recommended (one row per list) so clicks and purchases can be joined.
    "RECORD_SERVED": True,
    # Served lists are queued and written by one thread per process, in batches, at most this
    # many seconds later; 0 writes each in its request (one statement). A browser's click
    # credits a list only once it is written (events.references.claimable_by_browser), so this
    # stays below the time a shopper takes to click what a page shows.
    "SERVED_WRITE_DELAY_SECONDS": 0.25,
    "SERVED_RETENTION_DAYS": 30,
    # Template tags log errors and render nothing; with DEBUG on, this re-raises them.
    "RAISE_TEMPLATE_ERRORS": False,
    # Privacy (recommendations.privacy). OPT_OUT_CHECK: dotted path of `f(user) -> bool` when
    # the host keeps the opt-out flag itself; None uses PersonalisationPreference.
    "OPT_OUT_CHECK": None,
    # Events older than this many days are deleted by a daily task (None keeps them forever);
    # with EVENT_RETENTION_AGGREGATE they are first added up into DailyEventCount.
    "EVENT_RETENTION_DAYS": None,
    "EVENT_RETENTION_AGGREGATE": True,
}

# Settings that hold a dotted path, imported on first use; each with an example for the error
# message when it cannot be imported.
IMPORT_STRINGS = {
    "PRODUCT_ADAPTER": "catalog.recommendations.ProductAdapter",
    "STORE_ADAPTER": "catalog.recommendations.StoreAdapter",
    "OPT_OUT_CHECK": "accounts.privacy.has_opted_out",
    "SIGNAL_PROCESSOR": "recommendations.indexing.OnCommitSignalProcessor",
}
CHOICES = {"SCORE_INDEX": ("auto", "hnsw", "ivfflat"), "SIMILAR_INDEX": ("auto", "hnsw", "ivfflat")}


def laid_over(default: dict[Any, Any], configured: dict[Any, Any]) -> dict[Any, Any]:
    """`configured` laid over `default`, entry by entry: an entry left out keeps its default,
    and an entry that is a dict in both is laid over in turn (a type's serving rules)."""
    merged = dict(default)
    for key, value in configured.items():
        if isinstance(value, dict) and isinstance(default.get(key), dict):
            value = laid_over(default[key], value)
        merged[key] = value
    return merged


class RecommendationSettings:
    """Lazy, validated access to `settings.RECOMMENDATIONS` merged over `DEFAULTS`."""

    def __init__(self) -> None:
        self._cached: dict[str, Any] = {}
        self._user_settings: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._user_settings is None:
            configured = getattr(settings, SETTING_NAME, {}) or {}
            if not isinstance(configured, dict):
                raise ImproperlyConfigured(f"settings.{SETTING_NAME} must be a dict.")
            unknown = sorted(set(configured) - set(DEFAULTS))
            if unknown:
                raise ImproperlyConfigured(
                    f"Unknown key(s) in settings.{SETTING_NAME}: {', '.join(unknown)}. "
                    f"Valid keys are: {', '.join(sorted(DEFAULTS))}."
                )
            self._user_settings = configured
        return self._user_settings

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid {SETTING_NAME} setting: {name!r}")
        if name in self._cached:
            return self._cached[name]
        value = self.user_settings.get(name, DEFAULTS[name])
        if isinstance(DEFAULTS[name], dict) and isinstance(value, dict):
            value = laid_over(DEFAULTS[name], value)
        if name in CHOICES and value not in CHOICES[name]:
            raise ImproperlyConfigured(
                f"settings.{SETTING_NAME}[{name!r}] = {value!r} is not one of: {', '.join(CHOICES[name])}."
            )
        if name in IMPORT_STRINGS and isinstance(value, str):
            try:
                value = import_string(value)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"settings.{SETTING_NAME}[{name!r}] = {value!r} cannot be imported: {exc}. "
                    f"Give the dotted path of a class or function, e.g. {IMPORT_STRINGS[name]!r}."
                ) from exc
        self._cached[name] = value
        return value

    def validate(self) -> None:
        """Read every key once so that bad configuration fails at start-up, not mid-request."""
        for name in DEFAULTS:
            getattr(self, name)

    def reload(self) -> None:
        self._cached.clear()
        self._user_settings = None


rec_settings = RecommendationSettings()


def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        rec_settings.reload()
        from recommendations import adapters

        adapters.clear_cache()


setting_changed.connect(_reload_on_change)
