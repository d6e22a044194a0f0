"""The shapes every service shares: who is asking, a candidate, and the answer.

Services produce `Candidate`s (a product id, a score, where it came from and why); the
business rules (`serving.rules`) turn them into a `RecommendationResult`, whose items are
host product objects in score order, each with its `Recommendation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db import models

from recommendations.conf import rec_settings
from recommendations.events.tracking import get_session_id
from recommendations.privacy.optout import is_opted_out

if TYPE_CHECKING:
    from django.http import HttpRequest

    from recommendations.serving.presentation import ShownObjects

# Where `Audience.for_request` keeps the request's audience.
REQUEST_ATTRIBUTE = "_recommendations_audience"


class Kind:
    """Names of the recommendation types; they key `SERVING_RULES` and served records."""

    FOR_YOU = "for_you"
    SIMILAR = "similar"
    BOUGHT_TOGETHER = "bought_together"
    TRENDING = "trending"
    NEW_ARRIVALS = "new_arrivals"
    RECENTLY_VIEWED = "recently_viewed"
    BUY_AGAIN = "buy_again"
    STORE_PRODUCTS = "store_products"
    SEARCH = "search"
    RERANK = "rerank"
    STORES = "stores"
    SIMILAR_STORES = "similar_stores"


class Audience:
    """Who the list is for, and what the page already showed them.

    `user` is an authenticated user or None; anonymous visitors are known by `session_id`
    (the beacon's session). `shown` is shared by every block of one page so that a product
    appears once; the template tags keep it on the request. `memo` holds what was read about
    the visitor during this request (opt-out flag, history, purchases, experiment variant), so
    each is read once however many blocks the page has.

    Privacy (recommendations.privacy.optout): a user who opted out of personalisation is served
    like an unknown visitor: `user` reads None and `session_id` "". The flag is read on first
    use, in the same query as the visitor's history (`serving.history`), unless the host checks
    it itself (`OPT_OUT_CHECK`).

    `record_exposure=False` serves the visitor's lists without recording that they saw them:
    no exposure to their experiment variant, no served list (`attribution.record_served`).
    Staff previewing a shopper must change neither the experiment's results nor what the
    shopper was shown (the served lists, the dashboard's coverage).
    """

    def __init__(
        self,
        user: Any = None,
        session_id: str = "",
        shown: set[str] | None = None,
        *,
        record_exposure: bool = True,
    ) -> None:
        self.given_user = user if user is not None and getattr(user, "is_authenticated", False) else None
        self.given_session_id = session_id or ""
        self.shown = set() if shown is None else shown
        self.record_exposure = record_exposure
        self.memo: dict[str, Any] = {}

    @classmethod
    def for_request(cls, request: HttpRequest) -> Audience:
        """The visitor of this request, one per request: every block, view and tag shares it.

        Sharing keeps a product to one block of the page and reads the visitor's history and
        variant once. An anonymous visitor is known by the engine's session id once an event
        created it; a request creates none, so crawlers cost no session rows.
        """
        audience = request.__dict__.get(REQUEST_ATTRIBUTE)
        if audience is None:
            session_id = get_session_id(request, create=False)
            audience = cls(user=getattr(request, "user", None), session_id=session_id)
            request.__dict__[REQUEST_ATTRIBUTE] = audience
        return audience

    def __repr__(self) -> str:
        return f"Audience(user_id={self.given_user_id!r}, session_id={self.given_session_id!r})"

    @property
    def given_user_id(self) -> Any:
        """The signed-in user's key, before the opt-out check (for reading their history)."""
        return self.given_user.pk if self.given_user is not None else None

    @property
    def opted_out(self) -> bool:
        if "opted_out" not in self.memo:
            if self.given_user is None:
                self.memo["opted_out"] = False
            elif rec_settings.OPT_OUT_CHECK is not None:
                self.memo["opted_out"] = is_opted_out(self.given_user)
            else:
                from recommendations.serving.history import load

                load(self)  # sets memo["opted_out"] with the history, in one query
        return self.memo["opted_out"]

    @property
    def user(self) -> Any:
        return None if self.opted_out else self.given_user

    @property
    def session_id(self) -> str:
        return "" if self.opted_out else self.given_session_id

    @property
    def user_id(self) -> Any:
        return None if self.opted_out else self.given_user_id

    @property
    def is_known(self) -> bool:
        return self.user_id is not None or bool(self.session_id)


@dataclass
class Options:
    """Per-request knobs; `None` means "use the type's rule from SERVING_RULES"."""

    limit: int | None = None
    exclude: frozenset[str] = frozenset()
    explain: bool = False
    category: str | None = None


def _candidate(
    product_id: str, score: float, source: str, reason: str, about: str | None, embedding: Any, tier: int
) -> Candidate:
    """A pickled `Candidate` again (its vector read-only: cached lists are never changed)."""
    if isinstance(embedding, tuple):
        embedding = np.frombuffer(embedding[0], dtype=embedding[1])
    return Candidate(product_id, score, source, reason, about, embedding, tier)


@dataclass
class Candidate:
    """A product proposed by one source, before business rules."""

    product_id: str
    score: float
    source: str
    # Product ids the reason refers to ("because you viewed X") and how to phrase it.
    reason: str = ""
    about: str | None = None
    embedding: Any = None
    # Lists are ordered by tier first: a fallback source (tier 1) fills in after the main one.
    tier: int = 0

    def __reduce__(self) -> tuple[Callable[..., Candidate], tuple[Any, ...]]:
        # Cached lists pickle as constructor arguments, a vector as its bytes: a list of 40 with
        # 64-d vectors pickles in a third of the time numpy's own form takes, and loads faster.
        embedding = self.embedding
        if isinstance(embedding, np.ndarray) and embedding.ndim == 1:
            embedding = (embedding.tobytes(), embedding.dtype.str)
        fields = (self.product_id, self.score, self.source, self.reason, self.about, embedding, self.tier)
        return _candidate, fields

    def explain(self, titles: dict[str, str]) -> str:
        if self.about is None:
            return self.reason
        return self.reason.format(title=titles.get(self.about, "a product you saw"))


@dataclass(frozen=True)
class Recommendation:
    """One recommended item as surfaces show it (`product_id` is a store id in store lists)."""

    product_id: str
    score: float
    source: str
    reason: str
    recommendation_id: str
    position: int


@dataclass
class RecommendationResult:
    """An answer: recommendations in order, and the host objects and cards they show.

    `items` pairs each host object with its `Recommendation` (the objects are read on first
    use); `cards()` pairs the cards, which an API answer needs instead and which often come
    from the card cache without reading any object (`serving.presentation`).
    `queryset()` gives host code a lazy QuerySet of the same products in the same order,
    so any further ORM filter applies.
    """

    kind: str
    recommendation_id: str
    source: str
    model: type[models.Model]
    recommendations: list[Recommendation]
    shown: ShownObjects
    model_version_id: int | None = None

    @property
    def items(self) -> list[tuple[models.Model, Recommendation]]:
        """(host object, recommendation) in order; products deleted meanwhile are left out."""
        objects = self.shown.objects()
        return [(objects[rec.product_id], rec) for rec in self.recommendations if rec.product_id in objects]

    def cards(self) -> list[tuple[dict[str, Any], Recommendation]]:
        """(card, recommendation) in order; the cards are shared, so copy one to change it."""
        cards = self.shown.cards()
        return [(cards[rec.product_id], rec) for rec in self.recommendations if rec.product_id in cards]

    @property
    def ids(self) -> list[str]:
        """Engine keys (string primary keys) of the items, best first."""
        return [rec.product_id for rec in self.recommendations]

    @property
    def objects(self) -> list[models.Model]:
        """Host objects, each with a `.recommendation` attribute for templates."""
        out = []
        for obj, rec in self.items:
            obj.recommendation = rec
            out.append(obj)
        return out

    def queryset(self) -> models.QuerySet:
        from recommendations.serving.queryset import ordered_queryset

        return ordered_queryset(self.model, self.ids)

    def __len__(self) -> int:
        return len(self.recommendations)

    def __iter__(self) -> Iterator[tuple[models.Model, Recommendation]]:
        return iter(self.items)
